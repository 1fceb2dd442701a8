"""Metaflow 2.19's `@step(start=True)` and `@step(end=True)`: refused with what to write.
# expect: custom-start-end line 9
# expect: custom-start-end line 19
"""
from flowdeck import FlowSpec, step


class CustomStartEndFlow(FlowSpec):
    @step(start=True)
    def load(self):
        self.rows = 10
        self.next(self.train)

    @step
    def train(self):
        self.model = self.rows * 2
        self.next(self.publish)

    @step(end=True)
    def publish(self):
        print(self.model)
