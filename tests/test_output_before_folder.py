"""A worker's first moments, before its task's folder and its own handlers exist.

What a worker says before its task's folder exists is the task's, never a store error.

A worker makes its task's folder itself (off the orchestrator's path), but may write
before it does: a worker that dies in its setup says why, and Python prints a warning
there when a signal lands at the wrong moment. The orchestrator appended that output to
a log inside the missing folder and stopped the whole run with "cannot write ...: No
such file or directory. Check that folder (permissions, free inodes)": a wrong cause,
and the task's own failure lost. This was the intermittent failure of
`test_huge_foreach.py`'s SIGTERM test: the run's cancel sent SIGINT to a worker between
closing its copy of the orchestrator's signal wake-up pipe and dropping it, and Python
printed "Exception ignored when trying to write to the signal wakeup fd".

A cancel's SIGINT that reaches a worker before it has handlers of its own is kept for
them (`processes.fork_holding_signals`): before, the orchestrator's handler, inherited,
took it for the run's own (or the fork server's SIG_IGN dropped it), and the step ran
until the grace's SIGKILL.
Real `python flow.py run` processes, real forks and signals.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import child_env, run_flow

from flowdeck import Flow
from flowdeck.engines import processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="forked workers and the parent-death signal")

#: A flow whose `doomed` worker writes to its stderr and dies at the moment it makes its
#: task's folder (an audit hook on `os.mkdir`, inherited from the orchestrator by the fork):
#: deterministic output before the folder exists.
EARLY_FLOW = """
import os, sys
from flowdeck import FlowSpec, step

RUN = os.getpid()


def die_before_the_folder(event, args):
    if event == "os.mkdir" and os.getpid() != RUN and \\
            os.path.basename(os.path.dirname(os.fsdecode(args[0]))) == "doomed":
        os.write(2, b"said before my folder existed\\n")
        os._exit(3)


sys.addaudithook(die_before_the_folder)


class EarlyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.doomed)

    @step
    def doomed(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    EarlyFlow()
"""


@pytest.mark.parametrize("server", ["0", "always"])
def test_a_worker_that_dies_before_its_folder_keeps_its_words(tmp_path: Path,
                                                               server: str) -> None:
    path = tmp_path / "earlyflow.py"
    path.write_text(EARLY_FLOW)
    result = run_flow(path, "run", "--run-id", "early",
                      env=child_env(FLOWDECK_FORK_SERVER=server))
    assert result.returncode == 1, result.stderr
    # The run failed for the task's reason, not for the store.
    assert "cannot write" not in result.stderr
    assert "step `doomed` (task 2) raised ProcessExit" in result.stderr, result.stderr
    assert "exited with code 3" in result.stderr
    run = Flow("EarlyFlow", root=tmp_path / ".flowdeck")["early"]
    assert run.status == "failed"
    task = run["doomed"].task
    assert task.record is not None and task.record.exit_code == 3
    assert task.stderr == "said before my folder existed\n"


def test_a_signal_in_a_new_workers_setup_prints_nothing(tmp_path: Path) -> None:
    """A forked worker drops the parent's signal wake-up fd before it closes the parent's
    fds (`processes.become_task_worker`), so a signal arriving after the close finds none
    to write to. Before, Python reported the write's EBADF on the worker's stderr."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    err_r, err_w = os.pipe()
    previous_handler = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    previous_wakeup = signal.set_wakeup_fd(wake_w)
    try:
        pid = os.fork()
        if pid == 0:  # the worker: its setup, as the local executor does it
            code = 1
            try:
                os.dup2(err_w, 2)
                # The orchestrator's sys.stderr writes to fd 2 (pytest's capture does not)
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 (dropped at _exit)
                processes.become_task_worker(os.getppid())
                os.close(wake_w)  # the orchestrator's fds, closed
                os.kill(os.getpid(), signal.SIGUSR1)
                for _ in range(100):  # the interpreter runs the pending handler and report
                    pass
                sys.stderr.flush()
                code = 0
            finally:
                os._exit(code)
        os.close(err_w)
        _, status = os.waitpid(pid, 0)
        said = b""
        while chunk := os.read(err_r, 65536):
            said += chunk
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        signal.signal(signal.SIGUSR1, previous_handler)
        for fd in (wake_r, wake_w, err_r):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert said.decode() == ""


#: A flow whose `work` worker, right after its fork (an at-fork hook: before any of the
#: worker's own code), cancels the run and waits until the cancel's SIGINT has reached it.
#: Whether the child is that worker is decided in the parent, at the fork: a child forked
#: before `start` armed the hook (the run's guard) but scheduled late on a loaded machine
#: ran its hook after that, found the file, and cancelled the run during `start` (1 run in
#: 20 to 30 under load: CI saw a run with no `work` step).
CANCEL_IN_SETUP_FLOW = """
import os, signal, sys, time
from flowdeck import FlowSpec, step

RUN = os.getpid()
HERE = os.path.dirname(os.path.abspath(__file__))
ARMED = os.path.join(HERE, "armed")
done = []
armed_at_fork = [False]


def note_armed():  # in the forking process, just before the fork: the child inherits it
    armed_at_fork[0] = os.path.exists(ARMED)


def cancel_while_setting_up():
    if not armed_at_fork[0] or done:  # the `work` worker alone
        return
    done.append(1)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    os.kill(RUN, signal.SIGTERM)
    while signal.SIGINT not in signal.sigpending():  # the run's cancel reached this worker
        time.sleep(0.005)
    signal.pthread_sigmask(signal.SIG_SETMASK, before)


os.register_at_fork(before=note_armed, after_in_child=cancel_while_setting_up)


class CancelFlow(FlowSpec):
    @step
    def start(self):
        open(ARMED, "w").close()
        self.next(self.work)

    @step
    def work(self):
        open(os.path.join(HERE, "work_started"), "w").close()
        time.sleep(600)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CancelFlow()
"""


@pytest.mark.parametrize("server", ["0", "always"])
def test_a_cancel_that_reaches_a_worker_in_its_setup_stops_it(tmp_path: Path,
                                                              server: str) -> None:
    path = tmp_path / "cancelflow.py"
    path.write_text(CANCEL_IN_SETUP_FLOW)
    result = run_flow(path, "run", "--run-id", "cancel",
                      env=child_env(FLOWDECK_FORK_SERVER=server))
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    run = Flow("CancelFlow", root=tmp_path / ".flowdeck")["cancel"]
    assert run.status == "cancelled"
    record = run["work"].task.record
    assert record is not None and record.status == "cancelled"
    # Ended by its own KeyboardInterrupt (Python's 130), before the step's body began;
    # not by the SIGKILL that ends what ignores the cancel for its grace.
    assert record.exit_code == 130, record
    assert not (tmp_path / "work_started").exists()
