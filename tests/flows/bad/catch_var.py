"""`@catch(var=...)` that names no artifact: a number, a flow's own name, no identifier,
a parameter's name, a step's name.
# expect: decorator-argument line 15
# expect: decorator-argument line 21
# expect: decorator-argument line 27
# expect: decorator-argument line 32
# expect: decorator-argument line 38
"""
from flowdeck import FlowSpec, Parameter, catch, step


class CatchVarFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @catch(var=5)
    @step
    def start(self):
        raise ValueError("caught into nothing")
        self.next(self.middle)

    @catch(var="next")
    @step
    def middle(self):
        raise ValueError("caught into the method")
        self.next(self.end_of_chain)

    @catch(var="bad name")
    @step
    def end_of_chain(self):
        self.next(self.parameter_named)

    @catch(var="alpha")
    @step
    def parameter_named(self):
        raise ValueError("caught into a read-only parameter")
        self.next(self.step_named)

    @catch(var="middle")
    @step
    def step_named(self):
        self.next(self.end)

    @step
    def end(self):
        pass
