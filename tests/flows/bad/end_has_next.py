# expect: end-has-next line 12
from flowdeck import FlowSpec, step


class EndHasNextFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        self.next(self.start)
