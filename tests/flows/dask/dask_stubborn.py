"""A step that swallows its @timeout's StepTimeout and keeps going: only the orchestrator's
kill (its deadline, some seconds past the timeout) can end it, on whatever runs the task."""
import time

from flowdeck import FlowSpec, StepTimeout, step, timeout


class StubbornFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.stubborn)

    @timeout(seconds=1)
    @step
    def stubborn(self):
        for _ in range(1000):
            try:
                time.sleep(60)
            except StepTimeout:
                print("ignoring the timeout", flush=True)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StubbornFlow()
