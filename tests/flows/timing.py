"""Parallel CPU-bound foreach items and a @timeout step; records when each item ran."""
import time

from flowdeck import FlowSpec, Parameter, retry, step, timeout


class TimingFlow(FlowSpec):
    items = Parameter("items", default=4)
    work = Parameter("work", default=0.3, help="seconds of CPU per item")
    hang = Parameter("hang", default=False, help="make the last step hang past its timeout")

    @step
    def start(self):
        self.jobs = list(range(self.items))
        self.next(self.burn, foreach="jobs")

    @step
    def burn(self):
        self.began = time.time()
        while time.time() - self.began < self.work:
            pass
        self.ended = time.time()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.spans = [(i.began, i.ended) for i in inputs]
        self.next(self.maybe_hang)

    @retry(times=1)
    @timeout(seconds=1)
    @step
    def maybe_hang(self):
        if self.hang:
            time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TimingFlow().run()
