"""Static split, nested foreach, merge_artifacts, retry and catch in one flow."""
import os

from flowdeck import FlowSpec, Parameter, catch, current, retry, step


class BranchFlow(FlowSpec):
    """Exercises every transition kind."""

    size = Parameter("size", default=3, help="items per inner foreach")
    fail_once = Parameter("fail_once", default=True, type=bool, help="fail the first attempt")

    @step
    def start(self):
        self.common = "same"
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "L"
        self.next(self.join_sides)

    @retry(times=2)
    @step
    def right(self):
        self.side = "R"
        if self.fail_once and current.retry_count == 0:
            raise RuntimeError("first attempt fails")
        self.attempts = current.retry_count
        self.next(self.join_sides)

    @step
    def join_sides(self, inputs):
        self.sides = sorted(i.side for i in inputs)
        self.right_attempts = inputs.right.attempts
        self.merge_artifacts(inputs, exclude=["side"])
        self.next(self.fan_out)

    @step
    def fan_out(self):
        self.outer = ["a", "b"]
        self.next(self.outer_each, foreach="outer")

    @step
    def outer_each(self):
        self.letter = self.input
        self.inner = list(range(self.size))
        self.next(self.inner_each, foreach="inner")

    @catch(var="problem")
    @step
    def inner_each(self):
        self.value = f"{self.letter}{self.input}"
        self.stack = [(i, n) for i, n, _ in self.foreach_stack()]
        if self.value == "b2":
            raise ValueError("b2 is bad")
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.values = [i.value for i in inputs]
        self.problems = [f"{i.problem.type}: {i.problem.exception}" if i.problem else None
                         for i in inputs]
        self.merge_artifacts(inputs, include=["common"])
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.all_values = [v for i in inputs for v in i.values]
        self.all_problems = [p for i in inputs for p in i.problems if p]
        self.common = inputs[0].common
        self.next(self.end)

    @step
    def end(self):
        print("values", self.all_values, "pid", os.getpid())


if __name__ == "__main__":
    BranchFlow()
