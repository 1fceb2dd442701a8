"""A foreach over a list and its join."""

from metaflow import FlowSpec, Parameter, step


class MfForeachFlow(FlowSpec):

    count = Parameter("count", default=3, type=int, help="How many items")

    @step
    def start(self):
        self.items = list(range(self.count))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = self.input * self.input
        print("square of", self.input, "is", self.value)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = [i.value for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("values", self.values)


if __name__ == "__main__":
    MfForeachFlow()
