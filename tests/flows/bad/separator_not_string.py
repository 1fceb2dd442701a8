"""`separator=` on parameters that are not strings (Metaflow refuses them too).
# expect: separator-not-string line 9
# expect: separator-not-string line 10
"""
from flowdeck import FlowSpec, Parameter, step


class SeparatorFlow(FlowSpec):
    ids = Parameter("ids", type=int, separator=",")
    sizes = Parameter("sizes", default=3, separator=",")
    words = Parameter("words", default="a b", separator=" ")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
