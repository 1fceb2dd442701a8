"""A metric that changes with its parameters, for plots across runs and run comparison."""

from flowdeck import FlowSpec, Parameter, step


class MetricRunsFlow(FlowSpec):
    """`loss` depends on `rate` and `seed`; `fit` scores each of `width` grid points."""

    rate = Parameter("rate", default=0.1, help="a learning rate")
    seed = Parameter("seed", default=1, help="a noise seed")
    width = Parameter("width", default=20, help="how many grid points fit scores")
    label = Parameter("label", default="shared", help="the same in every run")

    @step
    def start(self):
        """The grid the foreach fans out over, and values every run shares."""
        self.grid = [round(0.05 * i, 2) for i in range(self.width)]
        self.note = "the same in every run"
        self.next(self.fit, foreach="grid")

    @step
    def fit(self):
        """One score per grid point: highest where the point equals the rate."""
        self.point = self.input
        self.score = round(1.0 - (self.point - self.rate) ** 2, 6)
        self.next(self.join)

    @step
    def join(self, inputs):
        """The best score of the grid."""
        self.best = max(i.score for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        """A loss per run, and a text that is no number."""
        self.loss = round(1.0 / (1.0 + self.rate) + 0.01 * self.seed, 6)
        self.summary = f"loss {self.loss}"


if __name__ == "__main__":
    MetricRunsFlow()
