# Expected: one flow, StarFlow, engine metaflow, through `from metaflow import *`.
from metaflow import *  # noqa: F403


class StarFlow(FlowSpec):  # noqa: F405
    @step  # noqa: F405
    def start(self):
        self.next(self.end)

    @step  # noqa: F405
    def end(self):
        pass
