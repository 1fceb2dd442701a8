"""The last step written as a join: the end step cannot be one (Metaflow says so too).
# expect: end-join line 19
"""
from flowdeck import FlowSpec, step


class EndWithInputsFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = self.input ** 2
        self.next(self.end)

    @step
    def end(self, inputs):
        self.total = sum(i.value for i in inputs)
