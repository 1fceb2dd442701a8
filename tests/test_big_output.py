"""A step that prints megabytes is not paced by the window, and the log view stays bounded.

`RunProcess` used to read the run's output through QProcess on the GUI thread, so the
run's pipe filled whenever the event loop was busy (the log view inserting lines) and
the step waited: 100 MB took about 30 s in the window against 1 s headless. The output
is now read by a thread of its own; the log view keeps its line limit and shows the tail.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import wait_for

from flowdeck.engines.base import LaunchSpec
from flowdeck.engines.interpreter import Interpreter
from flowdeck.engines.launching import build_launch
from flowdeck.store.events import read_events
from flowdeck_desktop.control.run_process import RunProcess, core_path
from flowdeck_desktop.views.log_view import LogView

pytest.importorskip("pytestqt")

LINES = 100_000  # of 100 bytes: 10 MB, far more than a pipe (64 KB) holds

FLOW = f'''from flowdeck import FlowSpec, step


class LoudFlow(FlowSpec):
    @step
    def start(self):
        pad = "x" * 86
        for i in range({LINES}):
            print(f"line {{i:07d}} {{pad}}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LoudFlow()
'''


def launch(path: Path) -> LaunchSpec:
    return build_launch(str(path), "LoudFlow", "flowdeck", ["run"],
                        interpreter=Interpreter(sys.executable, "configured"),
                        core_dir=core_path())


def run_finished(spec: LaunchSpec) -> bool:
    try:
        return any(e.get("type") == "run_finished" for e in read_events(spec.events_path))
    except OSError:
        return False


def test_a_loud_step_finishes_without_the_event_loop_and_the_view_keeps_the_tail(
        qtbot, tmp_path: Path) -> None:
    path = tmp_path / "loud.py"
    path.write_text(FLOW)
    logs = LogView(max_lines=1_000)
    qtbot.addWidget(logs)
    run = RunProcess(launch(path))
    run.output.connect(lambda stream, text: logs.append(text, stream))
    ended: list[str] = []
    run.ended.connect(lambda _code, status: ended.append(status))
    run.start()
    # The GUI thread is busy (no event loop turns): the run still goes to its end.
    wait_for(lambda: run_finished(run.spec), "the run ending while the event loop waits")
    qtbot.waitUntil(lambda: bool(ended), timeout=60_000)
    qtbot.waitUntil(lambda: not logs.has_pending(), timeout=60_000)
    assert ended == ["succeeded"]
    text = logs.text()
    assert f"line {LINES - 1:07d}" in text, text[-600:]  # the tail is shown
    assert logs.line_count() <= logs.maximum_line_count() == 1_000
    assert len(text) <= 1_000 * 200  # bounded by the line limit, not by the 10 MB printed
    assert logs.dropped_line_count > 0
