# expect: duplicate-step line 15
from flowdeck import FlowSpec, step


class TwoEndsFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        print("first end")

    @step
    def end(self):
        print("second end")
