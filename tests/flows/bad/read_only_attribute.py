# expect: flow-attribute-assigned line 9
# expect: flow-attribute-assigned line 15
from flowdeck import FlowSpec, step


class ReadOnlyAttributeFlow(FlowSpec):
    @step
    def start(self):
        self.name = "resnet50"  # the flow's name: read-only in a step
        self.items = [1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.index = 3
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
