"""The window hands a flow the parameter values it was given, exactly, and a scripted
start that cannot run says why and ends.

Found by a new user: an int default above 2**31 broke the flow's view (a spin box's
OverflowError) and every parameter then ran as 0; floats were rounded to 6 decimals
(`1e-7` ran as 0.0); `--screenshot` waited for ever for a run a required parameter kept
from starting; every run's start switched the user off the Timeline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import WAIT_MS, close_window, flow_key

from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout
from flowdeck_desktop.app import build

EXACT = """
from flowdeck import FlowSpec, Parameter, step


class ExactFlow(FlowSpec):
    seed = Parameter("seed", default=12345678901)
    lr = Parameter("lr", default=1e-7)
    ratio = Parameter("ratio", default=0.3333333333)
    count = Parameter("count", type=int, required=True)

    @step
    def start(self):
        self.seen = (self.seed, self.lr, self.ratio, self.count)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ExactFlow()
"""


def test_numbers_reach_the_flow_as_written(qtbot, settings, tmp_path: Path) -> None:
    (tmp_path / "exact.py").write_text(EXACT)
    controller, window = build(settings, [str(tmp_path)], restore=False)
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        key = flow_key(controller, "ExactFlow")
        window.select_flow(key)
        assert window.act_run.isEnabled()  # the view was built whole
        assert window.params.values() == {"seed": "12345678901", "lr": "1e-07",
                                          "ratio": "0.3333333333", "count": ""}
        assert window.params.missing_required() == ["count"]  # an empty int is missing
        window.bottom.setCurrentIndex(1)  # the Timeline: it stays through the run's start
        window.params._editors["count"].setText("3")  # type: ignore[attr-defined]
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
            window.run_selected()
        assert window.bottom.currentIndex() == 1
        record = RunIndex(RunLayout(tmp_path / ".flowdeck", "ExactFlow")).latest().record
        assert record.param_values == {"seed": 12345678901, "lr": 1e-7,
                                       "ratio": 0.3333333333, "count": 3}
    finally:
        close_window(controller, window)


def test_a_scripted_start_that_cannot_run_says_why_and_ends(tmp_path: Path) -> None:
    (tmp_path / "exact.py").write_text(EXACT)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join(str(Path(__file__).parents[1] / d)
                                          for d in ("core", "desktop")))
    done = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "--new-instance",
                           "--screenshot", str(tmp_path / "shot.png"), "--size", "800x600",
                           str(tmp_path / "exact.py")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert "Fill in the required parameter(s): count." in done.stderr
    assert (tmp_path / "shot.png").stat().st_size > 0  # the window as it said so
