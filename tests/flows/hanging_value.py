"""A value whose unpickling never ends, beside a small one: for the tests of the time
limits on loading artifacts (tests/test_artifact_preview.py, test_artifact_viewers.py).

    count   int: loads at once
    stuck   an object whose __setstate__ never returns (until the loader's time limit)

`count` comes first, so the helper's list summarises it before `stuck` spends its limit.
"""
import time

from flowdeck import FlowSpec, step


class Stuck:
    """Unpickling this never ends (until the helper's time limit)."""

    def __init__(self):
        self.turns = 1

    def __setstate__(self, state):
        time.sleep(3600)


class HangingValueFlow(FlowSpec):
    @step
    def start(self):
        self.count = 7
        self.stuck = Stuck()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HangingValueFlow().run()
