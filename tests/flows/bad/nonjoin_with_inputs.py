# expect: join-without-split line 11
from flowdeck import FlowSpec, step


class NonJoinWithInputsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
