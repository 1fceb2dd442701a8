"""A run that did not finish never reports success.

KeyboardInterrupt is how Python reports Ctrl+C, but a step can raise it, a
task process can get SIGINT alone, and pickling can raise it. Unless the run
itself is being cancelled, each is a task failure: non-zero exit, run status
"failed", and the steps after it do not run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import child_env, process_alive, run_flow

from flowdeck import Flow

FLOW = '''
import os
import sys
import time
from pathlib import Path
from flowdeck import FlowSpec, Parameter, step


class Explodes:
    def __reduce__(self):
        raise KeyboardInterrupt("from __reduce__")


class StopFlow(FlowSpec):
    mode = Parameter("mode", default="raise")

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.b)

    @step
    def b(self):
        if self.mode == "raise":
            raise KeyboardInterrupt("x")
        if self.mode == "reduce":
            self.bad = Explodes()
        if self.mode == "sleep":
            Path(os.environ["PID_FILE"]).write_text(str(os.getpid()))
            time.sleep(3600)
        self.next(self.c)

    @step
    def c(self):
        self.next(self.end)

    @step
    def end(self):
        print("reached the end")


if __name__ == "__main__":
    StopFlow()
'''


def _flow(tmp_path: Path) -> Path:
    path = tmp_path / "stopflow.py"
    path.write_text(FLOW)
    return path


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _assert_failed_at_b(tmp_path: Path, returncode: int, stdout: str, stderr: str) -> dict:
    """Non-zero exit, a failed run and task `b`, and no step after `b` ever ran."""
    assert returncode == 1, stderr
    assert "reached the end" not in stdout
    flow = Flow("StopFlow", root=tmp_path / ".flowdeck")
    run = flow.latest_run
    assert run.status == "failed" and not run.successful and not run.finished  # as Metaflow: no end
    assert flow.latest_successful_run is None
    assert [s.id for s in run.steps()] == ["b", "start"]  # c and end never ran
    task = run["b"].task
    assert task.status == "failed" and not task.successful
    finished = [e for e in run.events if e["type"] == "run_finished"]
    assert finished[-1]["status"] == "failed" and finished[-1]["exit_code"] == 1
    assert task.exception is not None
    return task.exception


def test_a_step_that_raises_keyboard_interrupt_fails_the_run(tmp_path: Path) -> None:
    path = _flow(tmp_path)
    result = run_flow(path)
    error = _assert_failed_at_b(tmp_path, result.returncode, result.stdout, result.stderr)
    assert error["type"] == "KeyboardInterrupt"
    assert "Step `b` raised KeyboardInterrupt('x')" in error["message"]
    assert "Step `b` raised KeyboardInterrupt('x')" in result.stderr


def test_an_artifact_whose_pickling_raises_keyboard_interrupt_fails_the_run(
        tmp_path: Path) -> None:
    path = _flow(tmp_path)
    result = run_flow(path, "--mode", "reduce")
    error = _assert_failed_at_b(tmp_path, result.returncode, result.stdout, result.stderr)
    assert "while saving artifact `bad`" in error["message"]


def _start(path: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(path), *args], cwd=path.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_sigint_to_one_task_process_fails_the_run(tmp_path: Path) -> None:
    path = _flow(tmp_path)
    pid_file = tmp_path / "b.pid"
    proc = _start(path, "--mode", "sleep", env=child_env(PID_FILE=str(pid_file)))
    _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
    task_pid = int(pid_file.read_text())
    os.kill(task_pid, signal.SIGINT)  # the task alone: the run is not being cancelled
    out, err = proc.communicate(timeout=60)
    error = _assert_failed_at_b(tmp_path, proc.returncode, out, err)
    assert error.get("signal") == "SIGINT" and "interrupted by SIGINT" in error["message"]
    assert not process_alive(task_pid)
    # The task's log: where the step was, then why that failed it.
    log = Flow("StopFlow", root=tmp_path / ".flowdeck").latest_run["b"].task.stderr
    assert "time.sleep(3600)" in log and "KeyboardInterrupt" in log, log
    assert log.rstrip().endswith("not one task process."), log
    assert "flowdeck" + os.sep not in log, log  # no frame of the engine's


def test_ctrl_c_on_the_whole_process_group_still_cancels(tmp_path: Path) -> None:
    """Ctrl+C reaches the orchestrator and its workers at once: that is a cancel, not a failure."""
    path = _flow(tmp_path)
    pid_file = tmp_path / "b.pid"
    proc = _start(path, "--mode", "sleep", env=child_env(PID_FILE=str(pid_file)))
    _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, err
    run = Flow("StopFlow", root=tmp_path / ".flowdeck").latest_run
    assert run.status == "cancelled" and not run.successful
    b = run["b"].task
    assert b.status == "cancelled" and b.metadata["error"]["message"] == "cancelled"
    # Its log says where the step was when the run was stopped, and that it was a cancel:
    # not the worker's guess that the run was not cancelled.
    assert "time.sleep(3600)" in b.stderr and "KeyboardInterrupt" in b.stderr, b.stderr
    assert b.stderr.rstrip().endswith(
        "Cancelled: the run was stopped while step `b` ran (above: where it was)."), b.stderr
    assert "not cancelled" not in b.stderr and "flowdeck" + os.sep not in b.stderr, b.stderr
    assert [s.id for s in run.steps()] == ["b", "start"]
