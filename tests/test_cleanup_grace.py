"""A cancelled step gets its grace: SIGINT (KeyboardInterrupt in the step), time to clean up,
and only then SIGKILL; Ctrl+C, SIGTERM and the window's Stop all give it, and every view of
the run (run record, events, the window) says "cancelled".
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import WAIT_MS, child_env, close_window, flow_key
from PySide6.QtCore import QSettings

from flowdeck import Flow
from flowdeck.engine.runtime import CANCEL_GRACE_S
from flowdeck.engines.base import DEFAULT_STOP_GRACE_S
from flowdeck.store.events import read_events

FLOW = '''
import contextlib
import os
import signal
import time
from pathlib import Path

from flowdeck import FlowSpec, Parameter, step


class CleanupFlow(FlowSpec):
    mode = Parameter("mode", default="cleanup")

    @step
    def start(self):
        here = Path(__file__).parent
        if self.mode == "stubborn":  # deaf to TERM and INT: only SIGKILL ends it
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:  # ready is said inside the try: a stop seen after it always meets the handler
            (here / "ready").write_text("ready")
            time.sleep(60)
        except KeyboardInterrupt:
            time.sleep(1)
            (here / "marker").write_text("cleaned")
            raise
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CleanupFlow()
'''


def write_flow(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cleanupflow.py"
    path.write_text(FLOW)
    return path


def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def assert_cancelled_everywhere(folder: Path) -> None:
    """The run record and the event stream agree: cancelled, start's task cancelled too."""
    run = Flow("CleanupFlow", root=folder / ".flowdeck").latest_run
    assert run.status == "cancelled" and not run.successful
    events = read_events(run.dir / "events.jsonl")
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "cancelled"
    finished = [e for e in events if e["type"] == "task_finished"]
    assert [(e["step"], e["status"]) for e in finished] == [("start", "cancelled")]


def test_the_window_waits_longer_than_the_engine_grace() -> None:
    """The window's KILL must never cut the orchestrator's own cancel short: after its grace
    the orchestrator still kills, reaps and records, which takes a while on a busy machine."""
    assert DEFAULT_STOP_GRACE_S >= CANCEL_GRACE_S + 1.0


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_a_step_cleans_up_when_the_run_is_cancelled(tmp_path: Path, how: str) -> None:
    path = write_flow(tmp_path)
    proc = subprocess.Popen([sys.executable, str(path)], cwd=tmp_path, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    wait_for((tmp_path / "ready").exists)
    if how == "sigterm":
        os.kill(proc.pid, signal.SIGTERM)
    else:  # a terminal's Ctrl+C reaches the foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    sig = signal.SIGTERM if how == "sigterm" else signal.SIGINT
    assert proc.returncode == 128 + sig, err
    assert (tmp_path / "marker").read_text() == "cleaned"
    assert_cancelled_everywhere(tmp_path)


@pytest.fixture
def app(qtbot, settings: QSettings, tmp_path: Path):
    from flowdeck_desktop.app import build

    folder = tmp_path / "flows"
    write_flow(folder)
    controller, window = build(settings, [str(folder)])
    window.show()
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    yield controller, window, folder
    close_window(controller, window)


def test_stop_in_the_window_lets_the_step_clean_up(qtbot, app) -> None:
    controller, window, folder = app
    key = flow_key(controller, "CleanupFlow")
    window.select_flow(key)
    window.run_selected()
    wait_for((folder / "ready").exists)
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.stop_selected()
    assert blocker.args[1] == "cancelled"
    assert controller.states[key].status == "cancelled"
    assert window.scene.step_state("start").status == "cancelled"
    assert (folder / "marker").read_text() == "cleaned"
    assert_cancelled_everywhere(folder)


def test_a_step_deaf_to_signals_ends_cancelled_in_the_window_and_history(
        qtbot, tmp_path: Path) -> None:
    """SIGTERM and SIGINT ignored: the engine kills it after its grace and records the run
    as cancelled before the window's own KILL; both verdicts say cancelled."""
    from test_run_process import request_for

    from flowdeck_desktop.control.run_process import RunProcess

    path = write_flow(tmp_path)
    run = RunProcess(request_for(path, "CleanupFlow", "--mode", "stubborn"))
    ended: list[str] = []
    run.ended.connect(lambda code, status: ended.append(status))
    run.start()
    wait_for((tmp_path / "ready").exists)
    with qtbot.waitSignal(run.ended, timeout=WAIT_MS):
        run.stop()
    assert ended == ["cancelled"]
    assert not (tmp_path / "marker").exists()  # it never saw the interrupt
    assert_cancelled_everywhere(tmp_path)


# -- one Ctrl+C delivered twice, a second one, a run killed before it records its end ----------

def _start(path: Path, how: str, *args: str) -> subprocess.Popen[str]:
    """`python FILE` or `flowdeck run FILE`, leading a process group as a shell's job does."""
    argv = ([sys.executable, str(path), *args] if how == "script" else
            [sys.executable, "-m", "flowdeck.cli.main", "run", str(path), *args])
    return subprocess.Popen(argv, cwd=path.parent, env=child_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


@pytest.mark.parametrize("gap_s", [0.0, 0.2], ids=["at-once", "a-moment-later"])
@pytest.mark.parametrize("how", ["script", "flowdeck-run"])
def test_one_ctrl_c_delivered_twice_is_one_stop(tmp_path: Path, how: str,
                                                gap_s: float) -> None:
    """`timeout` passes a Ctrl+C on: the terminal signals the group, `timeout` its child
    again, a moment later. Both copies counted, the second forced the stop: `python FILE`
    killed the step in its cleanup, and `flowdeck run` KILLed the run before it recorded
    anything (its record said "running" for good) while it printed "cancelled"."""
    path = write_flow(tmp_path)
    proc = _start(path, how)
    wait_for((tmp_path / "ready").exists)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(gap_s)  # within processes.STOP_BURST_S
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert (tmp_path / "marker").read_text() == "cleaned"  # the step had its grace
    assert_cancelled_everywhere(tmp_path)
    if how == "flowdeck-run":
        assert "The run was cancelled (exit code 130)." in out


def test_a_second_ctrl_c_forces_the_steps_and_the_run_is_still_recorded(tmp_path: Path) -> None:
    """A real second Ctrl+C (after the burst) in `flowdeck run`: it stops waiting for a step
    deaf to signals, and the run still records its end as cancelled (it was KILLed)."""
    from flowdeck.engines.processes import STOP_BURST_S
    path = write_flow(tmp_path)
    proc = _start(path, "flowdeck-run", "--mode", "stubborn")
    wait_for((tmp_path / "ready").exists)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(STOP_BURST_S + 0.3)  # past the burst: a second request, not a copy
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert_cancelled_everywhere(tmp_path)
    assert "The run was cancelled (exit code 130)." in out


def test_a_run_killed_before_it_records_its_end_is_not_said_cancelled(tmp_path: Path) -> None:
    """The orchestrator cannot record (stopped here with SIGSTOP): after the grace
    `flowdeck run` KILLs it and says what is true, never "cancelled"."""
    from flowdeck.store.index import RunIndex
    from flowdeck.store.layout import RunLayout
    path = write_flow(tmp_path)
    proc = _start(path, "flowdeck-run", "--mode", "stubborn")
    wait_for((tmp_path / "ready").exists)
    runs = RunIndex(RunLayout(tmp_path / ".flowdeck", "CleanupFlow")).runs()
    orchestrator = runs[0].record.pid
    os.kill(orchestrator, signal.SIGSTOP)
    try:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(orchestrator, signal.SIGKILL)
    assert proc.returncode == 130, out
    run = Flow("CleanupFlow", root=tmp_path / ".flowdeck").latest_run
    assert run.status == "crashed"  # its record says running, its process is gone
    assert "was cancelled" not in out
    assert "before it recorded its end (exit code 130)" in out
