# expect: missing-next line 7
from flowdeck import FlowSpec, step


class MissingNextFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1

    @step
    def end(self):
        pass
