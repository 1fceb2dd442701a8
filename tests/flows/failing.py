"""A flow whose middle step fails until the file is fixed (tests rewrite FIX_ME)."""
from flowdeck import FlowSpec, step

FIX_ME = False


class FailingFlow(FlowSpec):
    @step
    def start(self):
        self.numbers = [1, 2, 3]
        self.next(self.divide)

    @step
    def divide(self):
        divisor = 1 if FIX_ME else 0
        self.ratios = [n / divisor for n in self.numbers]
        self.next(self.end)

    @step
    def end(self):
        print("ratios", self.ratios)


if __name__ == "__main__":
    FailingFlow().run()
