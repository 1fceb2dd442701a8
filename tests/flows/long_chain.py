"""A long linear flow (26 steps: start, step_01..step_24, end): taller than the DAG pane at
a laptop size. `fail_at` makes that step raise; `hold_at` makes that step wait until the
file `gate` exists (so a test sees it running for as long as it needs, with no clock)."""
import os
import time

from flowdeck import FlowSpec, Parameter, step


class LongChainFlow(FlowSpec):
    fail_at = Parameter("fail_at", default=0, help="the step number that raises (0: none)")
    hold_at = Parameter("hold_at", default=0, help="the step number that waits for `gate`")
    gate = Parameter("gate", default="", help="a file whose existence lets `hold_at` go on")

    def _checkpoint(self, number):
        """Fail or wait here, as the parameters say."""
        if number == self.hold_at:
            while not os.path.exists(self.gate):
                time.sleep(0.05)
        if number == self.fail_at:
            raise RuntimeError(f"step {number} failed on purpose")

    @step
    def start(self):
        self.next(self.step_01)

    @step
    def step_01(self):
        self._checkpoint(1)
        self.next(self.step_02)

    @step
    def step_02(self):
        self._checkpoint(2)
        self.next(self.step_03)

    @step
    def step_03(self):
        self._checkpoint(3)
        self.next(self.step_04)

    @step
    def step_04(self):
        self._checkpoint(4)
        self.next(self.step_05)

    @step
    def step_05(self):
        self._checkpoint(5)
        self.next(self.step_06)

    @step
    def step_06(self):
        self._checkpoint(6)
        self.next(self.step_07)

    @step
    def step_07(self):
        self._checkpoint(7)
        self.next(self.step_08)

    @step
    def step_08(self):
        self._checkpoint(8)
        self.next(self.step_09)

    @step
    def step_09(self):
        self._checkpoint(9)
        self.next(self.step_10)

    @step
    def step_10(self):
        self._checkpoint(10)
        self.next(self.step_11)

    @step
    def step_11(self):
        self._checkpoint(11)
        self.next(self.step_12)

    @step
    def step_12(self):
        self._checkpoint(12)
        self.next(self.step_13)

    @step
    def step_13(self):
        self._checkpoint(13)
        self.next(self.step_14)

    @step
    def step_14(self):
        self._checkpoint(14)
        self.next(self.step_15)

    @step
    def step_15(self):
        self._checkpoint(15)
        self.next(self.step_16)

    @step
    def step_16(self):
        self._checkpoint(16)
        self.next(self.step_17)

    @step
    def step_17(self):
        self._checkpoint(17)
        self.next(self.step_18)

    @step
    def step_18(self):
        self._checkpoint(18)
        self.next(self.step_19)

    @step
    def step_19(self):
        self._checkpoint(19)
        self.next(self.step_20)

    @step
    def step_20(self):
        self._checkpoint(20)
        self.next(self.step_21)

    @step
    def step_21(self):
        self._checkpoint(21)
        self.next(self.step_22)

    @step
    def step_22(self):
        self._checkpoint(22)
        self.next(self.step_23)

    @step
    def step_23(self):
        self._checkpoint(23)
        self.next(self.step_24)

    @step
    def step_24(self):
        self._checkpoint(24)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LongChainFlow()
