"""Task attempts as processes forked from the orchestrator (the default executor).

Forking after the flow module is loaded costs about a millisecond, where Metaflow
starts a new interpreter (about 0.34 s) for every task. Each worker leads its own
process group and, on Linux, adopts its orphans (a child subreaper) and dies with the
orchestrator (a parent-death SIGKILL); the orchestrator adopts what a finished worker
leaves, and when a task ends everything it left behind is killed and reaped, new
sessions included (`flowdeck.engines.processes`).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Callable

from flowdeck.analysis.diagnostics import UsageError
from flowdeck.engine.executors.base import Executor, Launched
from flowdeck.engine.task import EXIT_CANCELLED, TaskRequest, execute_task, prepare_worker_process
from flowdeck.engines import processes


class LocalExecutor(Executor):
    """Forks one worker process per attempt."""

    name = "local"
    inherits_memory = True

    def __init__(self) -> None:
        if not hasattr(os, "fork"):
            raise UsageError("Flowdeck runs each task in a forked worker process, which this "
                             "system (Windows) does not offer yet. Run flows under WSL.")
        self.guard: processes.RunGuard | None = None
        self.adopter: processes.Adopter | None = None

    def open(self, guard: processes.RunGuard | None) -> None:
        self.guard = guard
        self.adopter = processes.Adopter()  # after the guard: it must not adopt the guard

    def start(self, request: TaskRequest, close_inherited: Callable[[], None]) -> Launched:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        _flush_stdio()
        gc.freeze()  # the worker's collector then skips inherited objects: no copy-on-write storm
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = EXIT_CANCELLED
            try:
                _become_worker(parent)
                os.close(out_r)
                os.close(err_r)
                close_inherited()
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.close(out_w)
                os.close(err_w)
                prepare_worker_process()
                code = execute_task(request)
            finally:
                os._exit(code)
        try:
            os.setpgid(pid, pid)  # also here: a signal to the group may come before the child runs
        except OSError:
            pass
        os.close(out_w)
        os.close(err_w)
        if self.guard is not None:
            self.guard.track(pid)
        return Launched(key=pid, out_fd=out_r, err_fd=err_r, exit_fd=_pidfd_open(pid), pid=pid)

    def ended(self, launched: Launched, running_keys: set[int]) -> int | None:
        pid = launched.key
        if hasattr(os, "waitid"):
            if not _exited(pid):
                return None
            self._end_leftovers(pid, running_keys)  # a zombie: its pid (and group) still ours
            _, status = os.waitpid(pid, 0)
        else:  # no way to look without reaping: the group is signalled after
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if not reaped:
                return None
            self._end_leftovers(pid, running_keys)
        if self.guard is not None:
            self.guard.untrack(pid)  # its group was killed and it is reaped
        return status

    def _end_leftovers(self, pid: int, running_keys: set[int]) -> None:
        """Kill and reap everything the exited worker left: its process group, and (Linux)
        every orphan it left to us, in a new session or not. Other tasks' processes stay:
        each live worker adopts its own orphans."""
        processes.signal_group_quietly(pid, signal.SIGKILL)
        if self.adopter is not None:
            self.adopter.sweep(keep=running_keys)

    def interrupt(self, launched: Launched) -> None:
        """SIGINT to the worker alone, as a terminal's Ctrl+C would reach a plain script."""
        processes.signal_quietly(launched.key, signal.SIGINT)

    def kill(self, launched: Launched) -> None:
        """SIGKILL a task's worker, its process group and every process below it."""
        processes.signal_group_quietly(launched.key, signal.SIGKILL)
        processes.kill_tree(launched.key)

    def reap_killed(self, launched: Launched) -> bool:
        return processes.reap(launched.key)

    def close(self, running_keys: set[int]) -> list[int]:
        return self.adopter.close(keep=running_keys) if self.adopter is not None else []


def _pidfd_open(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None


def _become_worker(parent: int) -> None:
    """In a fresh worker: lead a process group of its own (a Ctrl+C or a launcher's signal to
    the orchestrator's group reaches the task only through the orchestrator), die with the
    orchestrator, and adopt the step's orphans so they stay within reach until the task ends."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    processes.die_with_parent(parent)
    processes.set_child_subreaper(True)


def _exited(pid: int) -> bool:
    """True once a child has exited, without reaping it (its pid and group stay ours)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
