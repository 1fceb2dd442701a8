# Expected: one flow, ParamFlow, ok, with four parameters (see test_discovery.py).
from flowdeck import FlowSpec, Parameter, step

DEFAULT_ALPHA = 0.5


class ParamFlow(FlowSpec):
    """Trains with parameters."""

    alpha = Parameter("alpha", default=0.01, help="Learning rate.")
    epochs = Parameter("epochs", default=10, type=int)
    run_name = Parameter("run-name", help="What to call the run.", required=True)
    scale = Parameter("scale", default=DEFAULT_ALPHA * 2)

    @step
    def start(self):
        """Load the data."""
        self.next(self.train)

    @step
    def train(self):
        """Fit the model."""
        self.next(self.end)

    @step
    def end(self):
        """Report."""
