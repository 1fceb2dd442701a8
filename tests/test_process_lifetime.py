"""Nothing a run starts outlives it: not a step's subprocess, not one in a new session.

A step starts `sleep 300` twice: once plainly (in the task's process group) and
once with `start_new_session=True` (out of every process group the run has).
Whether the run ends by itself, is cancelled, or its orchestrator is killed,
none of them may be left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import WAIT_MS, child_env, process_alive

from flowdeck import Flow

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="process lifetime is enforced on Linux (prctl, /proc)")

FLOW = '''
import os
import subprocess
import time
from pathlib import Path

from flowdeck import FlowSpec, Parameter, step


class LifeFlow(FlowSpec):
    mode = Parameter("mode", default="finish")

    @step
    def start(self):
        plain = subprocess.Popen(["sleep", "300"])
        detached = subprocess.Popen(["sleep", "300"], start_new_session=True)
        pids = Path(os.environ["PIDS_FILE"])
        pids.with_suffix(".tmp").write_text(f"{os.getpid()} {plain.pid} {detached.pid}")
        pids.with_suffix(".tmp").rename(pids)
        if self.mode == "hang":
            time.sleep(3600)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LifeFlow()
'''


def write_flow(folder: Path) -> Path:
    path = folder / "lifeflow.py"
    path.write_text(FLOW)
    return path


def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def read_pids(pids_file: Path) -> list[int]:
    """The worker, its plain child and its new-session child, once the step has started them."""
    wait_for(pids_file.exists)
    return [int(p) for p in pids_file.read_text().split()]


def kill_leftovers(pids: list[int]) -> None:
    """Test hygiene only (after the assertions): never leave a sleeper behind on failure."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_run(path: Path, pids_file: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(path), "--mode", mode], cwd=path.parent,
                            env=child_env(PIDS_FILE=str(pids_file)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_a_run_that_ends_leaves_no_process_of_its_steps(tmp_path: Path) -> None:
    path = write_flow(tmp_path)
    pids_file = tmp_path / "pids"
    proc = start_run(path, pids_file, "finish")
    out, err = proc.communicate(timeout=60)
    pids = read_pids(pids_file)
    try:
        assert proc.returncode == 0, err
        assert Flow("LifeFlow", root=tmp_path / ".flowdeck").latest_run.successful
        # The run has ended: the orchestrator killed and reaped its step's processes first.
        assert [p for p in pids if process_alive(p)] == []
    finally:
        kill_leftovers(pids)


def test_a_cancelled_run_leaves_no_process_of_its_steps(tmp_path: Path) -> None:
    path = write_flow(tmp_path)
    pids_file = tmp_path / "pids"
    proc = start_run(path, pids_file, "hang")
    pids = read_pids(pids_file)
    try:
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert Flow("LifeFlow", root=tmp_path / ".flowdeck").latest_run.status == "cancelled"
        assert [p for p in pids if process_alive(p)] == []
    finally:
        kill_leftovers(pids)


def test_workers_die_with_a_killed_orchestrator(tmp_path: Path) -> None:
    """SIGKILL gives the orchestrator no chance to clean up; its workers die with it
    (PR_SET_PDEATHSIG). What a step started is then orphaned out of the orchestrator's
    reach: a launcher that outlives the run ends it (the window does: see
    test_the_window_ends_what_a_killed_orchestrator_left); a plain shell cannot.
    """
    path = write_flow(tmp_path)
    pids_file = tmp_path / "pids"
    proc = start_run(path, pids_file, "hang")
    worker, plain, detached = pids = read_pids(pids_file)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        wait_for(lambda: not process_alive(worker))
    finally:
        kill_leftovers(pids)


def test_a_stopped_window_run_leaves_no_process_of_its_steps(qtbot, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from test_run_process import request_for

    from flowdeck_desktop.control.run_process import RunProcess

    path = write_flow(tmp_path)
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("PIDS_FILE", str(pids_file))
    run = RunProcess(request_for(path, "LifeFlow", "--mode", "hang"))
    ended: list[str] = []
    run.ended.connect(lambda code, status: ended.append(status))
    run.start()
    pids = read_pids(pids_file)
    try:
        with qtbot.waitSignal(run.ended, timeout=WAIT_MS):
            run.stop()
        assert ended == ["cancelled"]
        assert [p for p in pids if process_alive(p)] == []
    finally:
        kill_leftovers(pids)


def test_the_window_ends_what_a_killed_orchestrator_left(qtbot, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """The orchestrator is killed from outside: the window, its parent, finds the run's
    processes by their session and by the run id in their environment, new sessions too."""
    from test_run_process import request_for

    from flowdeck_desktop.control.run_process import RunProcess

    path = write_flow(tmp_path)
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("PIDS_FILE", str(pids_file))
    run = RunProcess(request_for(path, "LifeFlow", "--mode", "hang"))
    ended: list[str] = []
    run.ended.connect(lambda code, status: ended.append(status))
    run.start()
    pids = read_pids(pids_file)
    try:
        assert run.pid is not None
        with qtbot.waitSignal(run.ended, timeout=WAIT_MS):
            os.kill(run.pid, signal.SIGKILL)
        assert ended == ["crashed"]
        qtbot.waitUntil(lambda: not any(process_alive(p) for p in pids), timeout=WAIT_MS)
    finally:
        kill_leftovers(pids)
