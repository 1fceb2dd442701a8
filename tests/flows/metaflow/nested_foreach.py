"""A foreach inside a foreach: 2 outer items x 3 inner items."""

from metaflow import FlowSpec, step


class MfNestedFlow(FlowSpec):

    @step
    def start(self):
        self.outer = ["a", "b"]
        self.next(self.pick, foreach="outer")

    @step
    def pick(self):
        self.letter = self.input
        self.inner = [1, 2, 3]
        self.next(self.combine, foreach="inner")

    @step
    def combine(self):
        self.pair = f"{self.letter}{self.input}"
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.pairs = [i.pair for i in inputs]
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.all_pairs = [p for i in inputs for p in i.pairs]
        self.next(self.end)

    @step
    def end(self):
        print("pairs", self.all_pairs)


if __name__ == "__main__":
    MfNestedFlow()
