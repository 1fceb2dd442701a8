# Expected: two flows, FirstFlow (line 5) and SecondFlow (line 17), both ok.
from flowdeck import FlowSpec, step


class FirstFlow(FlowSpec):
    """The first of two flows in one file."""

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class SecondFlow(FlowSpec):
    """The second flow."""

    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self):
        self.next(self.end)

    @step
    def end(self):
        pass
