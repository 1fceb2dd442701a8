# Expected: two flows. ChildFlow inherits start and end from BaseFlow
# (a flow class in the same file) and overrides start to go through `extra`.
from flowdeck import FlowSpec, step


class BaseFlow(FlowSpec):
    """A complete flow that others extend."""

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class ChildFlow(BaseFlow):
    """Adds a step between start and end."""

    @step
    def start(self):
        self.next(self.extra)

    @step
    def extra(self):
        self.next(self.end)
