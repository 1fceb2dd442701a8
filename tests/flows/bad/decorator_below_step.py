# expect: decorator-below-step line 8
from flowdeck import FlowSpec, retry, step


class DecoratorBelowStepFlow(FlowSpec):
    @retry(times=2)  # above @step: the order Metaflow takes
    @step
    @retry(times=2)
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
