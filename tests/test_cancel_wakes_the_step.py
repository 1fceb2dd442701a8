"""A cancel's interrupt is taken by a step asleep in a blocking call, not at the grace's kill.

Python's C-level handler only notes a signal; the step sees KeyboardInterrupt when the
interpreter next checks for signals. A signal noted while the main thread is not in a
system call it would interrupt (it landed after the interpreter's last check and before
`time.sleep` began, or it was delivered to another thread of the step) leaves the main
thread asleep: a plain script's Ctrl+C waits that long. A cancel then ended the task by
the grace's SIGKILL, its `except KeyboardInterrupt` and `finally` never run (about 1
round in 300 of the reliability campaign's `cancel_rounds.py`). During the grace the
orchestrator now nudges each worker it interrupted (`processes.NUDGE_SIGNAL`, whose
handler does nothing): the nudge breaks the blocking call, which runs the noted
handler. A worker that took its interrupt ignores nudges: its clean-up's calls are never
broken, even those that would not retry.

The step below makes the lost case certain: its main thread blocks SIGINT, so the
kernel gives the run's SIGINT to the step's other thread, where Python notes it and the
main thread sleeps on. Real `python flow.py run` processes, real signals; the same on a
real Dask cluster in test_dask_executor.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env, wait_for

from flowdeck import Flow

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="forked workers and signals")

ASLEEP_FLOW = """
import ctypes, os, signal, threading, time
from flowdeck import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))


def mark(name):
    open(os.path.join(HERE, name), "w").close()


def take_only_sigint(in_try):
    signal.pthread_sigmask(signal.SIG_SETMASK, set(signal.valid_signals()) - {signal.SIGINT})
    in_try.wait()  # "asleep" once the step is inside its try: a cancel before it (while
    mark("asleep")  # Thread.start() returned) ended the step unmarked, under CI's load
    time.sleep(600)


class AsleepFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @step
    def work(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        in_try = threading.Event()  # made here: a module's lock cannot travel to Dask
        threading.Thread(target=take_only_sigint, args=(in_try,), daemon=True).start()
        try:
            in_try.set()
            time.sleep(600)
        except KeyboardInterrupt:
            mark("interrupted")
            # A clean-up's call that does not retry when a signal breaks it (C's usleep
            # returns -1 then, as os.lockf raises InterruptedError): no nudge may reach it.
            mark("cleaned_up" if ctypes.CDLL(None).usleep(1_500_000) == 0 else "cut_short")
            raise
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    AsleepFlow()
"""


def cancel_once_asleep(path: Path, run_id: str, env: dict[str, str]) -> tuple[int, str]:
    """`python path run`, SIGTERM to it once its step made the file `asleep`; its exit
    code and stderr."""
    proc = subprocess.Popen([sys.executable, str(path), "run", "--run-id", run_id],
                            cwd=path.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (path.parent / "asleep").exists(), "the step to wait",
                 lambda: proc.poll() is None)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def cancel_an_asleep_step(folder: Path, env: dict[str, str]) -> None:
    """Run the flow, SIGTERM the run once its step sleeps, check the step took its
    interrupt (also run on a Dask cluster by test_dask_executor.py)."""
    path = folder / "asleepflow.py"
    path.write_text(ASLEEP_FLOW)
    code, err = cancel_once_asleep(path, "asleep", env)
    assert code == 128 + signal.SIGTERM, err
    run = Flow("AsleepFlow", root=folder / ".flowdeck")["asleep"]
    assert run.status == "cancelled"
    record = run["work"].task.record
    assert record is not None and record.status == "cancelled"
    # The step's own KeyboardInterrupt ended it, its clean-up whole, and the worker wrote
    # its record; not the SIGKILL that ends what ignores a cancel for its grace (exit -9).
    assert (folder / "interrupted").exists(), record
    assert not (folder / "cut_short").exists(), "a nudge reached the step's clean-up"
    assert (folder / "cleaned_up").exists(), record
    assert record.error is not None and record.error["type"] == "KeyboardInterrupt", record
    assert record.exit_code is None, record
    log = run["work"].task.stderr
    assert "Cancelled: the run was stopped while step `work` ran" in log, log
    assert "time.sleep(600)" in log, log  # where it was: the user's own line


@pytest.mark.parametrize("server", ["0", "always"])
def test_a_cancel_reaches_a_step_whose_interrupt_was_only_noted(tmp_path: Path,
                                                                server: str) -> None:
    cancel_an_asleep_step(tmp_path, child_env(FLOWDECK_FORK_SERVER=server))


#: A step that handles its own stop: its SIGINT handler counts, its loop notices, and its
#: clean-up makes calls that do not retry when a signal breaks them, counting the broken.
OWN_HANDLER_FLOW = """
import ctypes, os, signal, time
from flowdeck import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))


class OwnHandlerFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @step
    def work(self):
        asked = []
        signal.signal(signal.SIGINT, lambda signum, frame: asked.append(signum))
        open(os.path.join(HERE, "asleep"), "w").close()
        while not asked:
            time.sleep(0.02)
        libc = ctypes.CDLL(None)
        broken = sum(libc.usleep(100_000) != 0 for _ in range(15))  # 1.5 s of the grace
        with open(os.path.join(HERE, "report"), "w") as out:
            out.write(f"{len(asked)} {broken}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    OwnHandlerFlow()
"""


def test_a_step_with_its_own_sigint_handler_is_nudged_once_at_most(tmp_path: Path) -> None:
    """Its handler is called once (the cancel sends one SIGINT), and of its clean-up's
    calls that do not retry at most one is broken: the first nudge tells the worker the
    step handles its stop itself, and it ignores the rest (there were about 7 in 1.5 s)."""
    path = tmp_path / "ownhandler.py"
    path.write_text(OWN_HANDLER_FLOW)
    code, err = cancel_once_asleep(path, "own", child_env())
    assert code == 128 + signal.SIGTERM, err
    handled, broken = map(int, (tmp_path / "report").read_text().split())
    assert handled == 1
    assert broken <= 1, f"{broken} of the clean-up's calls were broken by nudges"
    run = Flow("OwnHandlerFlow", root=tmp_path / ".flowdeck")["own"]
    assert run.status == "cancelled"
    record = run["work"].task.record  # it chose to finish its work: the task succeeded
    assert record is not None and record.status == "succeeded"


SLOW_SAVE_FLOW = """
import os, time
from flowdeck import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))


class SlowToStore:
    def __reduce__(self):  # a value that takes long to pickle: the test cancels meanwhile
        open(os.path.join(HERE, "asleep"), "w").close()
        time.sleep(60)
        return (SlowToStore, ())


class SlowSaveFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @step
    def work(self):
        self.kept = 1
        self.slow = SlowToStore()
        if not os.path.exists(os.path.join(HERE, "never")):
            raise KeyboardInterrupt("the step's own")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SlowSaveFlow()
"""


def test_a_cancel_ends_the_save_after_a_steps_own_interrupt(tmp_path: Path) -> None:
    """A step that raised KeyboardInterrupt itself (no stop) fails as on any raise, and its
    artifacts are kept; a cancel while they are saved ended nothing (SIGINT was ignored
    by then, nudges too), and the task was killed at the grace (exit -9, found in review).
    The worker now takes the cancel, drops the save and writes its own record."""
    path = tmp_path / "slowsave.py"
    path.write_text(SLOW_SAVE_FLOW)
    code, err = cancel_once_asleep(path, "slow", child_env())
    assert code == 128 + signal.SIGTERM, err
    run = Flow("SlowSaveFlow", root=tmp_path / ".flowdeck")["slow"]
    assert run.status == "cancelled"
    record = run["work"].task.record
    assert record is not None and record.status == "cancelled", record
    assert record.exit_code is None, record  # its own record, not the grace's SIGKILL
    assert record.error is not None and record.error["type"] == "KeyboardInterrupt", record
