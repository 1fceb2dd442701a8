"""Task attempts as processes forked on this machine (the default executor).

Past a run's first DIRECT_FORKS tasks, workers are forked by the run's fork server
(`forkserver.py`), a copy of the orchestrator made then, so the orchestrator's own
heap, which grows with the run, is no longer copied and write-protected per task. Where
the server cannot run (no pidfd, no fd passing) or has died, workers are forked by the
orchestrator directly, with the same semantics.

Each worker leads its own process group and, on Linux, adopts its orphans (a child
subreaper) and dies with the process that forked it (a parent-death SIGKILL); when a
task ends, everything it left behind is killed and reaped, new sessions included
(`flowdeck.engines.processes`).
"""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from flowdeck.analysis.diagnostics import UsageError
from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engine.executors.base import Executor, Launched
from flowdeck.engine.task import (
    END_MAGIC,
    END_MESSAGE,
    EXIT_CANCELLED,
    TaskRequest,
    execute_task,
    finish_worker_process,
    flush_before_fork,
    prepare_worker_process,
    set_end_pipe,
    warm_exit_state,
    warm_worker_state,
    worker_failed,
)
from flowdeck.engine.taskstate import foreach_input_ref, preload
from flowdeck.engines import processes
from flowdeck.store.blobs import BlobStore

if TYPE_CHECKING:  # the server's module is imported once a run needs it (not for hello)
    from flowdeck.engine.executors.forkserver import ExitPipe, ForkServer

#: FLOWDECK_FORK_SERVER=0 forks every worker from the orchestrator (for comparison);
#: "always" forks every worker through the server, the first ones too; a number N starts
#: the server after N direct forks (tests, benchmarks).
FORK_SERVER_ENV = "FLOWDECK_FORK_SERVER"
#: Workers forked directly before the fork server starts. Measured (whole processes, pairs
#: interleaved, quiet 2-core machine): a 1,000-task foreach took 6% longer through the
#: server (the extra hop per task costs more than the orchestrator's copy-on-write
#: faults it saves at that heap size), a 5,000-task one 6% less wall and 14% less CPU.
DIRECT_FORKS = 1000
#: A request with more parents than this (a join after a fan-out) is forked directly even
#: while the server runs: the server's request is pickled object by object through a
#: Python hook (55,000 calls, 37 ms for a join of 1,000), and the worker unpickles it all
#: again, where one fork of the orchestrator costs a few milliseconds at most.
SERVED_PARENTS_MAX = 64


class LocalExecutor(Executor):
    """Forks one worker process per attempt, through the run's fork server."""

    name = "local"

    def __init__(self) -> None:
        if not hasattr(os, "fork"):
            raise UsageError("Flowdeck runs each task in a forked worker process, which this "
                             "system (Windows) does not offer yet. Run flows under WSL.")
        self.guard: processes.RunGuard | None = None
        self.adopter: processes.Adopter | None = None
        self.server: ForkServer | None = None
        choice = os.environ.get(FORK_SERVER_ENV, "").strip().lower()
        self.use_server = hasattr(os, "pidfd_open") and choice != "0"
        self.direct_forks = (0 if choice == "always" else int(choice) if choice.isdigit()
                             and choice != "0" else DIRECT_FORKS)
        self.blobs: BlobStore | None = None  # the run's store, for preloading foreach lists
        self.served: dict[int, ExitPipe] = {}  # by key (negative), the server's workers
        self.last_key = 0
        self.started = 0
        self.ends_r = -1  # the run's pipe on which workers say they ended (`early_ends`)
        self.released: dict[int, Released] = {}  # by pid: workers ended early, not yet reaped
        self.left: dict[int, bool] = {}  # by pid: said it ended, had left processes

    def before_guard(self, run_id: str) -> None:
        warm_exit_state(run_id)  # its scan of every object, before the guard shares them

    def open(self, guard: processes.RunGuard | None) -> None:
        self.guard = guard
        self.adopter = processes.Adopter()  # after the guard: it must not adopt the guard
        if not processes.LINUX:  # a worker lists what it left in /proc: elsewhere, exits tell
            return
        self.ends_r, ends_w = os.pipe()
        os.set_blocking(self.ends_r, False)
        os.set_blocking(ends_w, False)  # a worker never waits to say it ended (see _tell_ended)
        set_end_pipe(ends_w)

    @property
    def ends_fd(self) -> int | None:
        return self.ends_r if self.ends_r >= 0 else None

    def early_ends(self, running_keys: set[int]) -> list[tuple[int, int]]:
        """(pid, wait status) of each worker that said it ended since the last call. A word
        that is not one (a step wrote into the pipe) drops what follows it in this read:
        those workers are seen when they exit, as they were before they could tell."""
        self._reap_released(running_keys)
        try:
            data = os.read(self.ends_r, 65536)
        except (BlockingIOError, OSError):
            return []
        ends = []
        for offset in range(0, len(data) - END_MESSAGE.size + 1, END_MESSAGE.size):
            magic, pid, code, left = END_MESSAGE.unpack_from(data, offset)
            if magic != END_MAGIC:
                break
            self.left[pid] = bool(left)
            ends.append((pid, (code & 0xFF) << 8))  # the status of an exit with that code
        return ends

    def release(self, launched: Launched) -> None:
        """The orchestrator is done with an attempt whose worker said it ended: reap the
        worker once it has exited.

        Before its word the worker killed and reaped what its task left (it is the parent
        of all of it: `task._end_what_it_left`). SIGKILL to its process group ends the
        worker (past its last act) and anything a thread of its forked after that; once
        the worker is gone, a sweep reaps what it could not (stuck in the kernel).
        """
        pid = launched.key
        processes.signal_group_quietly(pid, signal.SIGKILL)
        self.released[pid] = Released(launched.exit_fd, self.left.pop(pid, True))

    def _reap_released(self, running_keys: set[int], wait: bool = False) -> None:
        """Reap the released workers that have exited; with `wait`, wait for them (they
        were killed: a moment), except one stuck in the kernel, which `close` reports.
        `running_keys`: the live workers, which a sweep leaves alone."""
        deadline = time.monotonic() + processes.Adopter.REAP_WAIT_S
        for pid, released in list(self.released.items()):
            while wait and not _exited(pid) and time.monotonic() < deadline:
                time.sleep(0.001)
            if not _exited(pid):
                continue
            del self.released[pid]
            processes.reap(pid)
            if released.exit_fd is not None:
                os.close(released.exit_fd)
            if self.guard is not None:
                self.guard.untrack(pid)
            if released.left_processes and self.adopter is not None:
                self.adopter.sweep(keep=running_keys | self._ours())  # what it left, now ours

    def start(self, request: TaskRequest, close_inherited: Callable[[], None]) -> Launched:
        self.started += 1
        warm_worker_state(request)  # before either fork: the server inherits it too
        served = self.use_server and len(request.parents) <= SERVED_PARENTS_MAX
        if served and self.server is None and self.started > self.direct_forks:
            from flowdeck.engine.executors.forkserver import ForkServer
            flush_before_fork()  # before this task's pipes exist
            self.server = ForkServer(request, lambda: self._close_for_server(close_inherited))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        launched = None
        if served and self.server is not None:
            launched = self._start_served(request, out_r, out_w, err_r, err_w)
        if launched is None:
            launched = self._start_forked(request, close_inherited, out_r, out_w, err_r, err_w)
        if self.guard is not None and launched.pid is not None:
            self.guard.track(launched.pid)
        return launched

    def _close_for_server(self, close_inherited: Callable[[], None]) -> None:
        """In the fork server: the orchestrator's fds, and the pipe for early ends (the
        server tells the orchestrator itself when each of its workers has ended)."""
        close_inherited()
        self._close_own_fds()
        if self.ends_r >= 0:
            os.close(self.ends_r)
        set_end_pipe(None)

    def _close_own_fds(self) -> None:
        """In a process forked from the orchestrator: this executor's fds that the
        orchestrator's list does not name, the pidfds of ended workers not reaped yet (a
        fan-out's workers held up to 17) and the fork server's socket."""
        for released in self.released.values():
            if released.exit_fd is not None:
                os.closerange(released.exit_fd, released.exit_fd + 1)
        if self.server is not None:
            fd = self.server.sock.fileno()  # the fd only: closing the object runs Python code
            os.closerange(fd, fd + 1)

    def _start_served(self, request: TaskRequest, out_r: int, out_w: int, err_r: int,
                      err_w: int) -> Launched | None:
        """Fork through the server; None when the server is gone, after which every worker
        is forked directly."""
        from flowdeck.engine.executors.forkserver import ExitPipe, ForkServerGone
        assert self.server is not None
        exit_r, exit_w = os.pipe()
        try:
            self.server.fork(request, out_w, err_w, exit_w)
        except ForkServerGone:
            os.close(exit_r)
            os.close(exit_w)
            self._drop_server()
            return None
        for fd in (out_w, err_w, exit_w):
            os.close(fd)
        os.set_blocking(exit_r, False)
        self.last_key -= 1  # a served worker's key: its pid may never come (a failed fork)
        pipe = self.served[self.last_key] = ExitPipe(exit_r)
        # The server tells the pid right after its fork; events and the guard want it now.
        return Launched(key=self.last_key, out_fd=out_r, err_fd=err_r, exit_fd=exit_r,
                        pid=pipe.wait_pid())

    def _drop_server(self) -> None:
        self.use_server = False
        if self.server is not None:
            self.server.close()
            self.server = None

    def _start_forked(self, request: TaskRequest, close_inherited: Callable[[], None],
                      out_r: int, out_w: int, err_r: int, err_w: int) -> Launched:
        ref = foreach_input_ref(request.frames, request.parents)
        if ref is not None:
            if self.blobs is None:  # one store per run: its look for a datastore mark once
                self.blobs = BlobStore(request.root)
            preload(self.blobs, ref)
        flush_before_fork()
        gc.freeze()  # the worker's collector then skips inherited objects: no copy-on-write storm
        parent = os.getpid()
        pid = processes.fork_holding_signals()
        if pid == 0:  # the worker
            code = EXIT_CANCELLED
            try:
                processes.become_task_worker(parent)
                os.close(out_r)
                os.close(err_r)
                if self.ends_r >= 0:
                    os.close(self.ends_r)
                close_inherited()
                self._close_own_fds()
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.close(out_w)
                os.close(err_w)
                prepare_worker_process(pipes=True)
                code = execute_task(request)
                finish_worker_process(request, code)
            except BaseException as exc:  # noqa: BLE001 (a worker must end by os._exit)
                code = worker_failed(exc)
            finally:
                os._exit(code)
        try:
            os.setpgid(pid, pid)  # also here: a signal to the group may come before the child runs
        except OSError:
            pass
        os.close(out_w)
        os.close(err_w)
        return Launched(key=pid, out_fd=out_r, err_fd=err_r, exit_fd=_pidfd_open(pid), pid=pid)

    def ended(self, launched: Launched, running_keys: set[int]) -> int | None:
        pid = launched.key
        if pid in self.served:  # the server ends its leftovers and reaps it
            return self._served_ended(launched)
        self.left.pop(pid, None)  # a word it sent but that lost to its exit
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

    def _served_ended(self, launched: Launched) -> int | None:
        pipe = self.served[launched.key]
        pipe.poll()
        self._learn_pid(launched, pipe)
        if pipe.status is None:
            return None
        del self.served[launched.key]
        if self.guard is not None and pipe.pid is not None:
            self.guard.untrack(pipe.pid)
        return pipe.status

    def _learn_pid(self, launched: Launched, pipe: ExitPipe) -> None:
        if launched.pid is None and pipe.pid is not None:
            launched.pid = pipe.pid
            if self.guard is not None:
                self.guard.track(pipe.pid)

    def _pid(self, launched: Launched) -> int | None:
        """The worker's pid to signal (a served worker's may still be on its way); None
        once the server has reaped it, when the pid may be another process's."""
        pipe = self.served.get(launched.key)
        if pipe is None:
            return launched.key if launched.key > 0 else None
        pipe.wait_pid()
        self._learn_pid(launched, pipe)
        pipe.poll()
        return launched.pid if pipe.status is None else None

    def _end_leftovers(self, pid: int, running_keys: set[int]) -> None:
        """Kill and reap everything the exited worker left: its process group, and (Linux)
        every orphan it left to us, in a new session or not. Other tasks' processes stay:
        each live worker adopts its own orphans."""
        processes.signal_group_quietly(pid, signal.SIGKILL)
        if self.adopter is not None:
            self.adopter.sweep(keep=running_keys | self._ours())

    def _ours(self) -> set[int]:
        """Children of the orchestrator that a sweep must leave alone: the fork server, and
        the released workers not reaped yet (they are on their way out)."""
        ours = set(self.released)
        if self.server is not None:
            ours.add(self.server.pid)
        return ours

    def interrupt(self, launched: Launched) -> None:
        """SIGINT to the worker alone, as a terminal's Ctrl+C would reach a plain script."""
        pid = self._pid(launched)
        if pid is not None:
            processes.signal_quietly(pid, signal.SIGINT)

    def nudge(self, launched: list[Launched]) -> None:
        for one in launched:
            pid = self._pid(one)
            if pid is not None:
                processes.nudge(pid)

    def kill(self, launched: Launched) -> None:
        """SIGKILL a task's worker, its process group and every process below it."""
        pid = self._pid(launched)
        if pid is not None:
            processes.signal_group_quietly(pid, signal.SIGKILL)
            processes.kill_tree(pid)

    def reap_killed(self, launched: Launched) -> bool:
        self.left.pop(launched.key, None)
        if launched.key in self.served:
            return self.ended(launched, set()) is not None
        return processes.reap(launched.key)

    def close(self, running_keys: set[int]) -> list[int]:
        self._reap_released(running_keys, wait=True)
        for released in self.released.values():  # stuck: the adopter's last sweep reports them
            if released.exit_fd is not None:
                os.close(released.exit_fd)
        self.released.clear()
        set_end_pipe(None)
        if self.ends_r >= 0:
            os.close(self.ends_r)
            self.ends_r = -1
        if self.server is not None:
            self.server.close()
            self.server = None
        return self.adopter.close(keep=running_keys) if self.adopter is not None else []


@dataclass
class Released:
    """A worker that said it ended, until it is reaped."""

    exit_fd: int | None  # its pidfd, closed once it is reaped
    left_processes: bool  # it said it had left processes: a sweep after it reaps strays


def _pidfd_open(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None


def _exited(pid: int) -> bool:
    """True once a child has exited, without reaping it (its pid and group stay ours)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
