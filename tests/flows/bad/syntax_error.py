# expect: syntax-error line 8
from flowdeck import FlowSpec, step


class SyntaxErrorFlow(FlowSpec):
    @step
    def start(self):
        self.x = (1,
        self.next(self.end)

    @step
    def end(self):
        pass
