"""The flow from the README: one model per learning rate, keep the best."""
from flowdeck import FlowSpec, Parameter, current, step


class TrainFlow(FlowSpec):
    """Fit one model per learning rate and keep the best."""

    rates = Parameter("rates", default="0.1,0.01", help="comma-separated learning rates")

    @step
    def start(self):
        """Parse the grid of learning rates."""
        self.grid = [float(r) for r in self.rates.split(",")]
        self.next(self.fit, foreach="grid")

    @step
    def fit(self):
        """Score one learning rate."""
        self.rate = self.input
        self.score = -abs(self.rate - 0.05)
        print(f"task {current.task_id}: rate {self.rate} scores {self.score:.3f}")
        self.next(self.pick)

    @step
    def pick(self, inputs):
        """Keep the best rate."""
        self.best = max(inputs, key=lambda i: i.score).rate
        self.next(self.end)

    @step
    def end(self):
        print("best rate", self.best)


if __name__ == "__main__":
    TrainFlow().run()
