# expect: parameter-name line 8
# expect: parameter-name line 9
from flowdeck import FlowSpec, IncludeFile, Parameter, step


class NamelessFlow(FlowSpec):
    fine = Parameter("fine", default=1)
    alpha = Parameter(default=0.5)
    data = IncludeFile(default="data.csv")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
