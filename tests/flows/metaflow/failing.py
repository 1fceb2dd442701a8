"""Fails in `divide` until FIX_ME is set to True (the resume test edits the file)."""

from metaflow import FlowSpec, step

FIX_ME = False


class MfFailingFlow(FlowSpec):

    @step
    def start(self):
        self.numerator = 1
        self.next(self.divide)

    @step
    def divide(self):
        self.result = self.numerator / (1 if FIX_ME else 0)
        self.next(self.end)

    @step
    def end(self):
        print("result", self.result)


if __name__ == "__main__":
    MfFailingFlow()
