"""A static split into two branches and their join."""

from metaflow import FlowSpec, step


class MfBranchFlow(FlowSpec):

    @step
    def start(self):
        self.x = 1
        self.next(self.left, self.right)

    @step
    def left(self):
        self.y = self.x + 1
        self.next(self.join)

    @step
    def right(self):
        self.y = self.x + 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.y for i in inputs)
        print("total", self.total)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MfBranchFlow()
