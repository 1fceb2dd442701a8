# expect: unknown-step line 8
from flowdeck import FlowSpec, step


class MissingStepFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.trian)

    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass
