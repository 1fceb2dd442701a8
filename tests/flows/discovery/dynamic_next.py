# Expected: one flow with a dynamic-next error at line 11: the target of
# self.next() is computed at run time, so it is not statically known.
from flowdeck import FlowSpec, step


class DynamicFlow(FlowSpec):
    @step
    def start(self):
        name = "end"
        self.note = name
        self.next(getattr(self, name))

    @step
    def end(self):
        pass
