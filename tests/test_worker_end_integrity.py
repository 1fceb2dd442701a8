"""What happens in a task's worker after its step returns cannot pass for a success.

A worker runs the step, writes its record, then ends as a Python process ends (exit
handlers, leftover threads: `task.finish_worker_process`). Whatever goes wrong after the
step, or whatever the step leaves behind that reaches past it (a forked child returning
from the step, a blocked SIGALRM, a deleted store, a umask), must fail the task with a
message naming the cause, or be undone, never report a run succeeded that did not
finish. Real `python flow.py run` processes (a review's reproducers).
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import WAIT_S, child_env, run_flow

from flowdeck import Flow


def _write(folder: Path, source: str) -> Path:
    path = folder / "flow.py"
    path.write_text(textwrap.dedent(source))
    return path


def _attempt_records(folder: Path, flow: str, step: str) -> list[dict]:
    """The attempt records of `step`'s first task in the latest run, as stored on disk."""
    run = Flow(flow, root=folder / ".flowdeck").latest_run
    task_dir = folder / ".flowdeck" / flow / "runs" / run.id / step
    records = sorted(task_dir.glob("*/attempt-*.json"))
    return [json.loads(p.read_text()) for p in records]


EXIT_HANDLER = """
import atexit, ctypes, os
from flowdeck import FlowSpec, catch, current, retry, step


def crash():
    ctypes.string_at(0)  # SIGSEGV, in native code


class ExitHandlerFlow(FlowSpec):
    @{decorator}
    @step
    def start(self):
        if current.retry_count < {failing}:
            atexit.register({handler})
        self.value = 1
        self.next(self.end)

    @step
    def end(self):
        print("end ran, caught:", getattr(self, "oops", None))


if __name__ == "__main__":
    ExitHandlerFlow()
"""


def _exit_handler_flow(folder: Path, handler: str, decorator: str = "retry(times=0)",
                       failing: int = 1) -> Path:
    return _write(folder, EXIT_HANDLER.format(handler=handler, decorator=decorator,
                                              failing=failing))


@pytest.mark.parametrize("server", ["0", "always"])
def test_an_exit_handler_exiting_with_its_own_code_fails_the_task(tmp_path: Path,
                                                                  server: str) -> None:
    path = _exit_handler_flow(tmp_path, "lambda: os._exit(5)")
    result = run_flow(path, "run", env=child_env(FLOWDECK_FORK_SERVER=server))
    assert result.returncode == 1, result.stderr
    assert "end ran" not in result.stdout
    said = ("Step `start` returned and its result was saved, but then its exit handlers "
            "(atexit, or the threads it left running) exited with code 5: their work may be "
            "incomplete, so the task failed.")
    assert said in result.stderr
    run = Flow("ExitHandlerFlow", root=tmp_path / ".flowdeck").latest_run
    assert run.status == "failed" and not run.successful
    task = run["start"].task
    assert not task.successful and said in str(task.exception)
    [record] = _attempt_records(tmp_path, "ExitHandlerFlow", "start")
    assert record["status"] == "failed" and said in record["error"]["message"]


def test_a_crash_in_an_exit_handler_is_retried(tmp_path: Path) -> None:
    """The first attempt's handler segfaults: that attempt failed (its record says so),
    @retry runs the step again, and the second attempt's success carries the run."""
    path = _exit_handler_flow(tmp_path, "crash", decorator="retry(times=1)")
    result = run_flow(path, "run")
    assert result.returncode == 0, result.stderr
    assert "end ran" in result.stdout
    assert "exit handlers (atexit, or the threads it left running) crashed (SIGSEGV)" in \
        result.stderr
    first, second = _attempt_records(tmp_path, "ExitHandlerFlow", "start")
    assert first["status"] == "failed" and "crashed (SIGSEGV)" in first["error"]["message"]
    assert second["status"] == "succeeded"


def test_an_exit_handler_killed_from_outside_is_not_called_a_crash(tmp_path: Path) -> None:
    path = _exit_handler_flow(tmp_path, "lambda: os.kill(os.getpid(), 9)")
    result = run_flow(path, "run")
    assert result.returncode == 1, result.stderr
    assert ("exit handlers (atexit, or the threads it left running) were killed by SIGKILL: "
            "their work may be incomplete") in result.stderr


def test_catch_treats_a_crash_after_the_step_as_a_task_that_died(tmp_path: Path) -> None:
    """As Metaflow's @catch with a task process that dies: its last attempt gets the
    fallback attempt, which records FailureHandledByCatch, and the run goes on."""
    path = _exit_handler_flow(tmp_path, "crash", decorator='catch(var="oops")', failing=9)
    result = run_flow(path, "run")
    assert result.returncode == 0, result.stderr
    assert "end ran, caught: " in result.stdout and "FailureHandledByCatch" in result.stdout
    first, fallback = _attempt_records(tmp_path, "ExitHandlerFlow", "start")
    assert first["status"] == "failed" and "crashed (SIGSEGV)" in first["error"]["message"]
    assert fallback["status"] == "succeeded" and fallback["caught"]


FORK_IN_STEP = """
import os
from flowdeck import FlowSpec, step


class ForkFlow(FlowSpec):
    @step
    def start(self):
        pid = os.fork()
        self.who = "parent" if pid else "child"
        if not pid:
            {child}
        else:
            os.waitpid(pid, 0)  # the child is done before the worker saves anything
        self.next(self.end)

    @step
    def end(self):
        print("end sees", self.who)


if __name__ == "__main__":
    ForkFlow()
"""


@pytest.mark.parametrize("child", ["pass", "raise ValueError('from the child')"])
def test_a_forked_child_leaving_the_step_leaves_the_task_to_its_worker(
        tmp_path: Path, child: str) -> None:
    """Before, the child saved its artifacts and wrote the task's record over the worker's:
    the next step saw the child's values, and nobody was told."""
    path = _write(tmp_path, FORK_IN_STEP.replace("{child}", child))
    result = run_flow(path, "run")
    assert result.returncode == 0, result.stderr
    assert "end sees parent" in result.stdout
    how = "returned from the step" if child == "pass" else "raised ValueError out of the step"
    assert f"that step `start` forked with os.fork() {how}. Only the task's own process" in \
        result.stderr
    assert "End the child with os._exit(...) once its work is done." in result.stderr
    assert ("ValueError: from the child" in result.stderr) == (child != "pass")
    [record] = _attempt_records(tmp_path, "ForkFlow", "start")
    assert record["status"] == "succeeded" and "error" not in record
    assert Flow("ForkFlow", root=tmp_path / ".flowdeck").latest_run["start"].task.data.who == \
        "parent"


@pytest.mark.parametrize(("child", "code"), [("sys.exit(0)", 0), ("sys.exit(3)", 3),
                                             ("sys.exit('bye')", 1)])
def test_a_forked_child_that_exits_itself_exits_as_in_a_plain_script(
        tmp_path: Path, child: str, code: int) -> None:
    """`sys.exit(0)` in the child was told as "raised SystemExit out of the step", with a
    traceback, and its exit code was 1: a parent checking it saw it fail."""
    source = FORK_IN_STEP.replace("import os\n", "import os, sys\n").replace(
        "{child}", child).replace(
        "os.waitpid(pid, 0)  # the child is done before the worker saves anything",
        "print('child exit code', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))")
    path = _write(tmp_path, source)
    result = run_flow(path, "run")
    assert result.returncode == 0, result.stderr
    assert f"child exit code {code}" in result.stdout and "end sees parent" in result.stdout
    assert "forked with os.fork()" not in result.stderr and "Traceback" not in result.stderr
    assert ("bye" in result.stderr) == (code == 1)



SIGALRM_BLOCKED = """
import atexit, signal, threading, time
from flowdeck import FlowSpec, step


class MaskFlow(FlowSpec):
    @step
    def start(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        {left}
        self.next(self.end)

    @step
    def end(self):
        print("the run went on")


if __name__ == "__main__":
    MaskFlow()
"""

#: What a step leaves for its task's end to wait for, and what the task says at the bound.
LEFT = {
    "thread": ('threading.Thread(target=time.sleep, args=(3600,), name="sleeper").start()',
               "the threads it left running (sleeper) have not ended"),
    "exit handler": ("atexit.register(time.sleep, 3600)", "its exit handlers have not finished"),
}


@pytest.mark.parametrize("server", ["0", "always"])
@pytest.mark.parametrize("left", sorted(LEFT))
def test_the_bound_on_the_wait_at_exit_holds_with_sigalrm_blocked(
        tmp_path: Path, server: str, left: str) -> None:
    """The wait's timer is SIGALRM; a step that blocked it (and so the threads it started
    after) kept the timer's signal pending in every thread, and the run waited for ever."""
    code, said = LEFT[left]
    path = _write(tmp_path, SIGALRM_BLOCKED.replace("{left}", code))
    result = run_flow(path, "run", timeout=WAIT_S,
                      env=child_env(FLOWDECK_EXIT_WAIT_S="1", FLOWDECK_FORK_SERVER=server))
    assert result.returncode == 0, result.stderr
    assert "the run went on" in result.stdout
    assert f"step `start` returned 1 s ago and {said}: the task ends now" in result.stderr


STORE_GONE = """
import os, shutil
from flowdeck import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))


class GoneFlow(FlowSpec):
    @step
    def start(self):
        shutil.rmtree(os.path.join(HERE, ".flowdeck"))
        self.value = 1
        self.next(self.end)

    @step
    def end(self):
        print("the run went on")


if __name__ == "__main__":
    GoneFlow()
"""


def test_a_worker_that_cannot_write_its_record_says_why(tmp_path: Path) -> None:
    """The step removed the store: before, the worker's OSError ended it through its
    `os._exit` with the cancel's code before anything printed it ("exited with code 130
    before it finished (os._exit or a crash in native code)")."""
    path = _write(tmp_path, STORE_GONE)
    result = run_flow(path, "run")
    assert result.returncode == 1, result.stderr
    assert "the run went on" not in result.stdout
    assert "code 130" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "[flowdeck] step `start` ran, but its task could not write its record " \
           "(attempt-0.json): cannot write " in result.stderr, result.stderr
    assert ("No such file or directory: its folder was removed while the run wrote to it. "
            "Leave the store's folders (.flowdeck) alone") in result.stderr
    assert ("Task failed: StoreError: Step `start`'s task could not write into the run's "
            "store; the task's stderr (above) names the file, the error and whether the step "
            "ran.") in result.stderr


UMASK_STEP = """
import os
from flowdeck import FlowSpec, step


class UmaskFlow(FlowSpec):
    @step
    def start(self):
        os.umask(0o777)  # the step's business, not the store's
        self.value = "a value of the step's"
        self.next(self.end)

    @step
    def end(self):
        print("end sees", self.value)


if __name__ == "__main__":
    UmaskFlow()
"""

OTHER_FLOW = """
from flowdeck import FlowSpec, step


class OtherFlow(FlowSpec):
    @step
    def start(self):
        self.other = "another flow's value"
        self.next(self.end)

    @step
    def end(self):
        print("other sees", self.other)


if __name__ == "__main__":
    OtherFlow()
"""


def test_a_steps_umask_does_not_reach_the_store(tmp_path: Path) -> None:
    """Before, the worker stored the step's artifacts and record under the step's umask:
    blob folders `d---------`, records mode 000, and (as any user but root) every later
    run in that store failed with PermissionError."""
    flows = {"UmaskFlow": UMASK_STEP, "OtherFlow": OTHER_FLOW}
    for name, source in flows.items():
        path = tmp_path / f"{name.lower()}.py"
        path.write_text(textwrap.dedent(source))
        result = subprocess.run([sys.executable, str(path), "run"], cwd=tmp_path,
                                env=child_env(), capture_output=True, text=True,
                                timeout=WAIT_S, umask=0o022)
        assert result.returncode == 0, result.stderr
    assert "other sees another flow's value" in result.stdout
    modes = {(entry.is_dir(), stat.S_IMODE(entry.stat().st_mode))
             for entry in (tmp_path / ".flowdeck").rglob("*")}
    assert modes == {(True, 0o755), (False, 0o644)}, sorted(modes)


INJECTED = '''
import flowdeck.engine.executors.local as local
from flowdeck import FlowSpec, step


def broken_set_up(*args, **kwargs):  # a fault injected where Flowdeck sets a worker up
    raise RuntimeError("injected into the worker's set-up")


local.prepare_worker_process = broken_set_up


class Injected(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Injected()
'''


def test_a_worker_that_fails_outside_its_step_says_so_with_its_traceback(
        tmp_path: Path) -> None:
    """An exception in the worker outside the step's own handling (Flowdeck's fault) ended
    it with the cancel's code 130 and nothing said: "exited with code 130 (os._exit or a
    crash in native code)"."""
    path = tmp_path / "injected.py"
    path.write_text(INJECTED)
    result = subprocess.run([sys.executable, str(path), "run"], cwd=tmp_path,
                            env=child_env(FLOWDECK_FORK_SERVER="0"), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "the task's worker process failed outside the step" in out
    assert "RuntimeError: injected into the worker's set-up" in out
    assert "code 130" not in out and "cancel" not in out.lower()
