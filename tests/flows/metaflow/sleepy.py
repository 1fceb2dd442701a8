"""Two branches that sleep a long time: for stopping a run."""

import time

from metaflow import FlowSpec, step


class MfSleepyFlow(FlowSpec):

    @step
    def start(self):
        self.next(self.nap_a, self.nap_b)

    @step
    def nap_a(self):
        time.sleep(120)
        self.next(self.join)

    @step
    def nap_b(self):
        time.sleep(120)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MfSleepyFlow()
