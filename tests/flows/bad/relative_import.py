# expect: relative-import line 3
from flowdeck import FlowSpec, step
from .helpers import prepare


class RelativeFlow(FlowSpec):
    """A relative import: `python FILE` runs the file as a script, outside any package."""

    @step
    def start(self):
        prepare()
        self.next(self.end)

    @step
    def end(self):
        pass
