"""A flow that writes an artifact, then sleeps in parallel branches (for stop and kill tests)."""
import multiprocessing
import os
import time

from flowdeck import FlowSpec, Parameter, step


def _sleep_forever():
    time.sleep(3600)


class SleepyFlow(FlowSpec):
    seconds = Parameter("seconds", default=3600.0)

    @step
    def start(self):
        self.payload = list(range(1000))
        self.next(self.nap_a, self.nap_b)

    @step
    def nap_a(self):
        child = multiprocessing.get_context("fork").Process(target=_sleep_forever)
        child.start()
        print("napping with helper", child.pid, flush=True)
        self.helper = child.pid
        time.sleep(self.seconds)
        self.next(self.join)

    @step
    def nap_b(self):
        print("napping", os.getpid(), flush=True)
        time.sleep(self.seconds)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SleepyFlow().run()
