"""`@catch(var=...)` that names no artifact: a number, a flow's own name, no identifier.
# expect: decorator-argument line 10
# expect: decorator-argument line 16
# expect: decorator-argument line 22
"""
from flowdeck import FlowSpec, catch, step


class CatchVarFlow(FlowSpec):
    @catch(var=5)
    @step
    def start(self):
        raise ValueError("caught into nothing")
        self.next(self.middle)

    @catch(var="next")
    @step
    def middle(self):
        raise ValueError("caught into the method")
        self.next(self.end)

    @catch(var="bad name")
    @step
    def end(self):
        pass
