# expect: dynamic-next line 9
from flowdeck import FlowSpec, step


class DynamicNextFlow(FlowSpec):
    @step
    def start(self):
        name = "end"
        self.next(getattr(self, name))

    @step
    def end(self):
        pass
