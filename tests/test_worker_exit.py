"""A task's worker ends as a Python process ends (engine/task.py `finish_worker_process`).

A forked worker leaves by `os._exit` (tearing down its copy of the orchestrator's heap
would write every page of it), which skips what a normal exit does. What the task
started must still end as it would under `python` (and under Metaflow, whose tasks are
processes of their own): its non-daemon threads run to their end, its exit handlers
run (those registered at import too, as in any process that imported the file), its
writes to any open file reach the file. What the orchestrator made at import with a
cleanup of its own (a TemporaryDirectory) is the run's, shared by its tasks: no task
cleans it up. Real `python flow.py run` processes, local and fork-server workers alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import child_env, run_flow, wait_for

from flowdeck.engines import processes

FLOW = """
import atexit, logging, logging.handlers, os, tempfile, threading, time
from flowdeck import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))
LOG = open(os.path.join(HERE, "module_log.txt"), "a")  # buffered, never flushed by a step
LOG.write("imported\\n")  # written at import, by the run alone
FILES = {"nested": open(os.path.join(HERE, "nested_log.txt"), "a")}  # not a global itself
RUN_DIR = tempfile.TemporaryDirectory()  # the run's: no task may clean it up
KEEP = []
BUFFERED = logging.getLogger("buffered")  # records kept in memory until logging's shutdown
BUFFERED.addHandler(logging.handlers.MemoryHandler(
    100, flushLevel=logging.CRITICAL, target=logging.FileHandler(os.path.join(HERE, "logged.txt"))))
BUFFERED.setLevel(logging.INFO)


def note(name, line):
    with open(os.path.join(HERE, name), "a") as handle:
        handle.write(line + "\\n")


atexit.register(note, "module_atexit.txt", "the module's handler")


def late_write(item):
    time.sleep(0.3)  # outlives the step's body: the worker must wait for it
    note("threads.txt", f"thread of item {item}")


class ExitFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        note(os.path.join(RUN_DIR.name, "shared.txt"), "the run's folder")
        self.next(self.work, foreach="items")

    @step
    def work(self):
        LOG.write(f"item {self.input}\\n")
        FILES["nested"].write(f"item {self.input}\\n")
        global LATE
        LATE = open(os.path.join(HERE, "late_log.txt"), "a")  # opened by the task, kept open
        LATE.write(f"item {self.input}\\n")
        BUFFERED.info("item %s", self.input)
        atexit.register(note, "task_atexit.txt", f"handler of item {self.input}")
        threading.Thread(target=late_write, args=(self.input,)).start()
        scratch = tempfile.TemporaryDirectory()  # never cleaned up by the step itself
        KEEP.append(scratch)
        self.scratch = scratch.name
        self.next(self.join)

    @step
    def join(self, inputs):
        self.scratches = [i.scratch for i in inputs]
        self.threads_done = open(os.path.join(HERE, "threads.txt")).read().count("thread")
        self.next(self.end)

    @step
    def end(self):
        print("threads done before the join:", self.threads_done)
        print("scratch left:", sum(os.path.exists(s) for s in self.scratches))
        print("run folder kept:", os.path.exists(os.path.join(RUN_DIR.name, "shared.txt")))


if __name__ == "__main__":
    ExitFlow()
"""


#: The tasks of FLOW: start, three of work, join, end.
TASKS = ["start", "work", "work", "work", "join", "end"]

#: FLOW for executors whose tasks run elsewhere (Dask): the flow class travels pickled
#: with the globals its steps use, and an open file cannot travel.
FLOW_WITHOUT_MODULE_FILE = FLOW.replace('        LOG.write(f"item {self.input}\\n")\n', "").replace(
    '        FILES["nested"].write(f"item {self.input}\\n")\n', "")
assert FLOW_WITHOUT_MODULE_FILE.count("LOG.write") == 1 and "FILES[" not in FLOW_WITHOUT_MODULE_FILE


@pytest.mark.parametrize("server", ["0", "always"])
def test_a_task_ends_as_a_python_process_ends(tmp_path: Path, server: str) -> None:
    path = tmp_path / "exitflow.py"
    path.write_text(textwrap.dedent(FLOW))
    result = run_flow(path, "run", env=child_env(FLOWDECK_FORK_SERVER=server))
    check_task_endings(result, tmp_path)
    # What the run wrote to the module-level file at import is there once: no task wrote
    # its copy of that buffer again.
    assert (tmp_path / "module_log.txt").read_text().count("imported") == 1
    # The run's temporary folder (made at import, in the orchestrator) was not touched by
    # any task.
    assert "run folder kept: True" in result.stdout
    # The handlers registered at import (the module's own, logging's shutdown) ran in every
    # task, as in any process that imported the file: once per task and once for the run.
    assert (tmp_path / "module_atexit.txt").read_text().splitlines() == [
        "the module's handler"] * (len(TASKS) + 1)
    assert sorted((tmp_path / "logged.txt").read_text().splitlines()) == [
        "item 1", "item 2", "item 3"]


def check_task_endings(result: subprocess.CompletedProcess[str], folder: Path,
                       module_file: bool = True) -> None:
    """What every task of FLOW must have done by its end (any executor); `module_file`
    False for FLOW_WITHOUT_MODULE_FILE."""
    assert result.returncode == 0, result.stderr
    # Each task's non-daemon thread ran to its end before its task did (so before the join).
    assert "threads done before the join: 3" in result.stdout
    assert sorted((folder / "threads.txt").read_text().splitlines()) == [
        "thread of item 1", "thread of item 2", "thread of item 3"]
    # Each task's own exit handler ran once, in that task.
    assert sorted((folder / "task_atexit.txt").read_text().splitlines()) == [
        "handler of item 1", "handler of item 2", "handler of item 3"]
    if module_file:  # the buffered writes of every task reached the files it wrote to
        for name in ("module_log.txt", "nested_log.txt", "late_log.txt"):
            lines = (folder / name).read_text().splitlines()
            assert sorted(line for line in lines if line.startswith("item")) == [
                "item 1", "item 2", "item 3"], name
    # A temporary folder a task left open was cleaned up when its task ended.
    assert "scratch left: 0" in result.stdout


C_PRINTF = """
import ctypes
from flowdeck import FlowSpec, step


class CFlow(FlowSpec):
    @step
    def start(self):
        ctypes.CDLL(None).printf(b"printed by C\\\\n")  # C's stdio: buffered on a pipe
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CFlow()
"""


@pytest.mark.parametrize("server", ["0", "always"])
def test_what_native_code_printed_reaches_the_log(tmp_path: Path, server: str) -> None:
    """Without PYTHONUNBUFFERED (a terminal's `python flow.py`), C's stdout on a pipe is
    fully buffered; `exit` would flush it, `os._exit` does not: the worker flushes it."""
    path = tmp_path / "cflow.py"
    path.write_text(textwrap.dedent(C_PRINTF))
    env = child_env(FLOWDECK_FORK_SERVER=server)
    env.pop("PYTHONUNBUFFERED")
    result = run_flow(path, "run", env=env)
    assert result.returncode == 0, result.stderr
    assert "printed by C" in result.stdout


LEFT_RUNNING = """
import multiprocessing, threading, time
from flowdeck import FlowSpec, step


class LeftFlow(FlowSpec):
    @step
    def start(self):
        threading.Thread(target=time.sleep, args=(3600,), name="napper").start()
        self.next(self.middle)

    @step
    def middle(self):
        # A non-daemon child: multiprocessing's exit handler joins it.
        multiprocessing.get_context("fork").Process(target=time.sleep, args=(3600,)).start()
        self.next(self.end)

    @step
    def end(self):
        print("the run went on")


if __name__ == "__main__":
    LeftFlow()
"""


@pytest.mark.parametrize("server", ["0", "always"])
def test_what_never_ends_is_stopped_with_its_task(tmp_path: Path, server: str) -> None:
    """A thread or child that never ends would keep a Python process (and a Metaflow task)
    from exiting for ever. A task waits $FLOWDECK_EXIT_WAIT_S for it, then ends, says so,
    and the run stops what it left: the run succeeds and nothing of it is left running."""
    path = tmp_path / "left.py"
    path.write_text(textwrap.dedent(LEFT_RUNNING))
    with _run_in_session(path, child_env(FLOWDECK_FORK_SERVER=server,
                                         FLOWDECK_EXIT_WAIT_S="1")) as proc:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "the run went on" in out
        assert ("step `start` returned 1 s ago and the threads it left running (napper) "
                "have not ended: the task ends now and stops them") in out + err
        assert "step `middle` returned 1 s ago and its exit handlers have not finished" in \
            out + err
        wait_for(lambda: not processes.session_members(proc.pid), "the run's processes to end")


@contextmanager
def _run_in_session(path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`python path run` in a session of its own; whatever of it is left is killed after."""
    proc = subprocess.Popen([sys.executable, str(path), "run"], cwd=path.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        yield proc
    finally:
        for pid in processes.session_members(proc.pid):
            os.kill(pid, signal.SIGKILL)


RUN_HELPER = """
import multiprocessing, os, time
from flowdeck import FlowSpec, step

# The run's own helper process, started at import: multiprocessing's exit handler must
# not treat it as a task's child (and terminate it) when a task ends.
HELPER = multiprocessing.get_context("fork").Process(target=time.sleep, args=(120,), daemon=True)
HELPER.start()


class HelperFlow(FlowSpec):
    @step
    def start(self):
        self.helper = HELPER.pid
        self.next(self.end)

    @step
    def end(self):
        try:  # running or sleeping: not a zombie left by a SIGTERM
            with open(f"/proc/{self.helper}/stat") as handle:
                alive = handle.read().rsplit(")", 1)[1].split()[0] not in "ZXx"
        except OSError:
            alive = False
        print("the run's helper outlived the task:", alive)
        HELPER.terminate()


if __name__ == "__main__":
    HelperFlow()
"""


@pytest.mark.parametrize("server", ["0", "always"])
def test_a_task_leaves_the_runs_own_processes_alone(tmp_path: Path, server: str) -> None:
    path = tmp_path / "helper.py"
    path.write_text(textwrap.dedent(RUN_HELPER))
    result = run_flow(path, "run", env=child_env(FLOWDECK_FORK_SERVER=server))
    assert result.returncode == 0, result.stderr
    assert "the run's helper outlived the task: True" in result.stdout


STEP_BOUND = """
import threading, time
from flowdeck import FlowSpec, environment, step

class BoundFlow(FlowSpec):
    @environment(vars={"FLOWDECK_EXIT_WAIT_S": "1"})
    @step
    def start(self):
        threading.Thread(target=time.sleep, args=(3600,), name="sleeper").start()
        self.next(self.end)

    @step
    def end(self):
        print("ended")

if __name__ == "__main__":
    BoundFlow()
"""


def test_a_step_sets_its_own_bound_on_the_wait(tmp_path: Path) -> None:
    """$FLOWDECK_EXIT_WAIT_S is read when the task ends: a step that sets it (here with
    @environment; a step that needs longer for its threads raises it) gets its own."""
    path = tmp_path / "bound.py"
    path.write_text(textwrap.dedent(STEP_BOUND))
    with _run_in_session(path, child_env()) as proc:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "step `start` returned 1 s ago and the threads it left running (sleeper)" in \
            out + err


CUT_SHORT = """
import atexit, os, time
from flowdeck import FlowSpec, step


def slow_cleanup():
    open(os.environ["CLEANUP_STARTED"], "w").close()
    time.sleep(600)


class CutShortFlow(FlowSpec):
    @step
    def start(self):
        atexit.register(slow_cleanup)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CutShortFlow()
"""


@pytest.mark.parametrize("server", ["0", "always"])
def test_an_exit_handler_cut_short_by_a_cancel_is_reported_as_python_does(
        tmp_path: Path, server: str) -> None:
    """A Ctrl+C while a task's exit handler runs cuts it short, as in a plain `python`
    process, and Python's own report of it names the handler's frames alone: before, the
    engine's SIGINT handler (a Python function) was a frame of every such report."""
    path = tmp_path / "cutshort.py"
    path.write_text(CUT_SHORT)
    started = tmp_path / "cleanup_started"
    env = child_env(CLEANUP_STARTED=str(started), FLOWDECK_FORK_SERVER=server)
    with _run_in_session(path, env) as proc:
        wait_for(started.exists, "the exit handler", still_going=lambda: proc.poll() is None)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err
    from flowdeck import Flow
    log = Flow("CutShortFlow", root=tmp_path / ".flowdeck").latest_run["start"].task.stderr
    assert log.startswith("Exception ignored in atexit callback: <function slow_cleanup"), log
    assert 'line 8, in slow_cleanup\n    time.sleep(600)\nKeyboardInterrupt' in log, log
    assert "flowdeck" + os.sep not in log, log
