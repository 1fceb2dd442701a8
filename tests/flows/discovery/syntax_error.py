# Expected: no flow; one syntax-error diagnostic at line 9, column 28.
from flowdeck import FlowSpec, step


class BrokenFlow(FlowSpec):
    @step
    def start(self):
        self.values = [1, 2, 3]
        self.next(self.end))

    @step
    def end(self):
        pass
