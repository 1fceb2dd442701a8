# expect: reserved-name line 12
# expect: invalid-name line 16
from flowdeck import FlowSpec, step


class ReservedNameFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.input)

    @step
    def input(self):
        self.next(self.Finish)

    @step
    def Finish(self):
        self.next(self.end)

    @step
    def end(self):
        pass
