# expect: parameter-clash line 7
# expect: parameter-assigned line 12
from flowdeck import FlowSpec, Parameter, step


class ParamClashFlow(FlowSpec):
    train = Parameter("train", default=1)
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.alpha = 2
        self.next(self.train)

    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass
