"""The processes of a run, on Linux: find, kill and reap every one, so none outlives its run.

A step may start processes of its own (`subprocess.Popen`, multiprocessing, a
shell that backgrounds a job), and some of them leave the step's process group
or session (`start_new_session=True`). Signalling a process group misses those,
and once their parent exits they are reparented away from the run. Linux offers
two controls that close the gaps, both reached through `prctl` (via ctypes):

- a *child subreaper* (`PR_SET_CHILD_SUBREAPER`) adopts every orphaned
  descendant instead of init, so what a task leaves behind stays within reach
  of the process that must clean up after it;
- a *parent-death signal* (`PR_SET_PDEATHSIG`) kills a worker when the
  process that forked it dies, even by SIGKILL.

Both are per process and Linux only: elsewhere every function here reports
"not available" (False, empty lists) and callers fall back to process groups.
The orchestrator's side is `Adopter` (with workers that adopt their own
orphans, every stray it finds belongs to a task that has ended) and `RunGuard`
(a small process of its own that ends the run's processes when the orchestrator
is killed, since its workers then die and their orphans go to init); the
launcher's side (`run_leftovers`) finds a run's processes by the run id
in their environment, which every descendant inherits unless it clears its
environment on purpose.
"""

from __future__ import annotations

import _signal
import ctypes
import os
import select
import signal
import time
from collections.abc import Iterable
from typing import Any

from flowdeck.store.liveness import LINUX, proc_stat

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

_libc: ctypes.CDLL | None = None


def _c_library() -> ctypes.CDLL:
    """The C library (raises OSError where there is none to open)."""
    global _libc
    if _libc is None:  # the interpreter's own symbols hold libc's: no find_library subprocess
        _libc = ctypes.CDLL(None, use_errno=True)
        for name in ("prctl", "fflush"):  # looked up here, once: not in every forked task
            getattr(_libc, name, None)  # (no prctl outside Linux)
    return _libc


def _prctl(option: int, arg: int | ctypes._Pointer[ctypes.c_int]) -> bool:
    """Call prctl(2); True when it succeeded. Never raises: a missing libc is "not available"."""
    if not LINUX:
        return False
    try:
        return int(_c_library().prctl(option, arg, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def flush_c_stdio() -> None:
    """fflush(NULL): what native code printed through C's stdio and C still buffers (all
    of it when stdout is a pipe), which `os._exit` would drop where `exit` writes it."""
    try:
        _c_library().fflush(None)
    except (OSError, AttributeError):
        pass


def is_child_subreaper() -> bool:
    """Whether this process adopts its orphaned descendants now."""
    flag = ctypes.c_int(0)
    return _prctl(PR_GET_CHILD_SUBREAPER, ctypes.pointer(flag)) and bool(flag.value)


def set_child_subreaper(on: bool) -> bool:
    """Make this process adopt (or stop adopting) its orphaned descendants; False if impossible."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def occupy_standard_fds() -> None:
    """Open /dev/null on each of fds 0, 1 and 2 that is closed (a launcher started this
    process without them), before the run makes any pipe: the lowest free numbers
    would otherwise go to the run's pipes and sockets, and a worker that makes its
    output pipes its fds 1 and 2 would overwrite them (through the fork server, a task's
    stderr was lost)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
            if null == fd:
                os.set_inheritable(fd, True)  # a standard fd, as a started program expects it
            else:  # another thread took the number first: it is occupied, all this wants
                os.close(null)


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """In a freshly forked child: get `sig` when the parent dies; die now if it already has.

    The parent can die between fork() and prctl(); the child would then never
    get the signal (its new parent is alive), so it checks getppid() right after.
    """
    if _prctl(PR_SET_PDEATHSIG, int(sig)) and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


# -- reading /proc ------------------------------------------------------------------------

def is_live(pid: int) -> bool:
    """True while a process exists and has not finished (a zombie has finished)."""
    stat = proc_stat(pid)
    return stat is not None and not stat.ended


def _all_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """The direct children of a process (zombies included: they still need reaping)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                found += [int(p) for p in handle.read().split()]
        except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN: scan every process
            return [p for p in _all_pids() if (s := proc_stat(p)) is not None and s.ppid == pid]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` in the tree, parents before their children."""
    out: list[int] = []
    frontier = [pid]
    while frontier:
        below = [c for p in frontier for c in children(p)]
        out += below
        frontier = below
    return out


def session_members(sid: int) -> list[int]:
    """Live processes whose session is `sid` (a run started in a new session: its own)."""
    return [p for p in _all_pids() if (s := proc_stat(p)) is not None and s.session == sid
            and not s.ended]


def marked_processes(name: str, value: str) -> list[int]:
    """Live processes started with `name=value` in their environment (inherited by default)."""
    needle = f"\0{name}={value}\0".encode()
    found = []
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = b"\0" + handle.read()
        except OSError:  # gone, or another user's
            continue
        if needle in environ + b"\0" and is_live(pid):
            found.append(pid)
    return found


# -- killing and reaping ------------------------------------------------------------------

def signal_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_group_quietly(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything below it (the parent first, so it forks no more)."""
    signal_quietly(pid, signal.SIGKILL)
    for below in descendants(pid):
        signal_quietly(below, signal.SIGKILL)


def end_children(parent: int, spare: set[int], limit: float) -> list[int]:
    """Kill and reap every child of `parent` (this process) but `spare`, with all below
    them, round after round: a child killed before its own children were listed hands
    them to a subreaper parent, and the next round lists them. Returns the children
    still there after `limit` seconds (stuck in the kernel)."""
    deadline = time.monotonic() + limit
    while True:
        strays = [p for p in children(parent) if p not in spare]
        if not strays:
            return []
        for pid in strays:
            kill_tree(pid)
        left = [pid for pid in strays if not reap(pid)]
        if left and time.monotonic() > deadline:
            return left
        if left:
            time.sleep(0.002)


def reap(pid: int) -> bool:
    """Collect a child's exit status if it has ended; True once it is gone."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done != 0


#: How long `kill_all` waits for killed processes to be gone. A SIGKILLed process still
#: has to be scheduled to tear itself down: on a loaded machine (two busy cores) that
#: took longer than the 0.25 s of 50 rounds it once had, and `flowdeck run` returned
#: with the run's processes still there (seen in CI).
KILL_WAIT_S = 10.0


def kill_all(pids: Iterable[int], spare: set[int], wait_s: float = KILL_WAIT_S) -> list[int]:
    """SIGKILL `pids` (and all below them) until none is live; returns any still live after
    `wait_s` (stuck in the kernel).

    Rounds repeat the search: a process may fork while its siblings are being
    killed. Never signals this process, its ancestors or `spare`.
    """
    protected = spare | _ancestors()
    todo = [p for p in pids if p not in protected]
    deadline = time.monotonic() + wait_s
    while True:
        live = [p for p in todo if is_live(p)]
        if not live or time.monotonic() > deadline:
            return live
        for pid in live:
            kill_tree(pid)
        time.sleep(0.005)


def _ancestors() -> set[int]:
    """This process and every process above it: never ours to kill."""
    out = set()
    pid = os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        stat = proc_stat(pid)
        pid = stat.ppid if stat else 0
    return out | {1}


def run_leftovers(run_pid: int, marker: tuple[str, str]) -> list[int]:
    """What is left of a run started in its own session: its session's processes, and every
    process carrying the run's marker in its environment (new-session descendants too)."""
    if not LINUX:
        return []
    return sorted(set(session_members(run_pid)) | set(marked_processes(*marker)))


#: Stop signals (Ctrl+C, SIGTERM) within this long of the last new stop request are that
#: same request: one keypress reaches a command twice when a wrapper passes it on (the
#: terminal signals the foreground group, and `timeout` signals its child again), and a
#: process manager may signal the group and the process. Counted as a second request,
#: that copy forced the stop: the run's processes were killed before the run recorded
#: its end, whether it came 1 ms or 0.3 s later deciding if the run was cancelled or left
#: "running". A person's second Ctrl+C, on purpose, comes later than this.
STOP_BURST_S = 1.0


class StopBurst:
    """The stop requests among the stop signals a process gets (the one owner of the burst
    rule, for the orchestrator and for `flowdeck run`): the first signal is a request, and
    so is each one that comes more than STOP_BURST_S after the last request."""

    def __init__(self) -> None:
        self.count = 0  # requests so far (signals of a burst count once)
        self.last_at: float | None = None

    def request(self) -> bool:
        """Note one stop signal; True when it is a new request, False for a copy of the
        last one. Called from signal handlers: it only reads the clock and counts."""
        now = time.monotonic()
        if self.last_at is not None and now - self.last_at < STOP_BURST_S:
            return False
        self.last_at = now
        self.count += 1
        return True


#: The signals a new task worker holds blocked from its fork until it has handlers of its
#: own (`fork_holding_signals`, `release_held_signals`).
HELD_AT_FORK = frozenset({signal.SIGINT, signal.SIGTERM})


def fork_holding_signals() -> int:
    """`os.fork()` for a task worker: the child starts with HELD_AT_FORK blocked and calls
    `release_held_signals` once its own handlers are set; the parent's mask is as it was.

    Until then the child has its parent's handlers: the orchestrator's cancel handler,
    which took a cancel's SIGINT for the run's own and returned (the step ran on until
    the grace's SIGKILL, its `except KeyboardInterrupt` never ran), or a fork server's
    SIG_IGN, which dropped it. Blocked, the signal waits for the worker's handler (Linux
    keeps a blocked signal pending even while it is ignored). `_signal`'s functions, not
    `signal`'s, which make sets of enum members: objects written right after each fork, on
    pages the parent then copies.
    """
    previous = _signal.pthread_sigmask(_signal.SIG_BLOCK, HELD_AT_FORK)
    try:
        pid = os.fork()
    except BaseException:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, previous)
        raise
    if pid:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, previous)
    return pid


#: What a cancel sends, during its grace, to each worker it interrupted (`nudge`). SIGURG:
#: ignored by default (a process that has no handler for it, a worker still setting up,
#: loses nothing), and used by nothing a step is likely to run (Go's runtime nudges its
#: threads with it for the same reason).
NUDGE_SIGNAL = signal.SIGURG


def nudge(pid: int) -> None:
    """Wake a worker whose SIGINT Python may have only noted.

    Python's C handler notes a signal; the handler runs when the main thread next checks.
    A SIGINT that lands after the last check and before a blocking call begins (or that
    the kernel gave to another thread) leaves the main thread in that call, as a plain
    script's Ctrl+C does: a cancel then killed the step at the grace, its `except
    KeyboardInterrupt` never run. The worker's handler for NUDGE_SIGNAL does nothing; its
    arrival breaks the blocking call and Python runs the noted handler. A call with
    nothing noted is resumed where Python retries it (PEP 475: its sleeps, reads, waits);
    once the worker took its interrupt it ignores nudges (`task._on_sigint`), so a
    clean-up's calls that do not retry (`os.lockf`) are left alone. A step that installed
    its own SIGINT handler gets one nudge (`task._on_nudge`)."""
    signal_quietly(pid, NUDGE_SIGNAL)


def release_held_signals() -> None:
    """In a worker forked by `fork_holding_signals`, its handlers set: take what was held
    (a pending SIGINT is delivered now, to the worker's handler), through `_signal` too."""
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, HELD_AT_FORK)


def switch_handler(signum: int, handler: Any) -> Any:
    """`_signal.signal(signum, handler)` without the race CPython reports: its C handler
    only notes a signal, and the noted one runs at the next check; one that landed while
    the handler became SIG_IGN or SIG_DFL was found noted with no Python handler, and
    printed "OSError: Signal 14 ignored due to race condition" into a task's log (a
    timeout's repeat as its timer was disarmed). Blocked meanwhile, it stays with the
    kernel, and SIG_IGN, set on the way, drops it: the new handler starts clean. Returns
    the previous handler. Not from inside a signal handler: there Python has set aside
    what it noted until the handler returns, and one noted before stays noted with no
    handler (`task._stop_taking_nudges` blocks its signal instead)."""
    ignore = int(signal.SIG_IGN)
    # Whether it was blocked before, asked before blocking it: another signal's handler
    # may raise (a cancel's KeyboardInterrupt) as any call returns, and one raising as the
    # block's call returned left the signal blocked for good (it is unblocked in `finally`
    # however the block ends, unless it was blocked already).
    was_blocked = signum in _signal.pthread_sigmask(_signal.SIG_BLOCK, ())
    try:
        _signal.pthread_sigmask(_signal.SIG_BLOCK, (signum,))
        previous = _signal.signal(signum, ignore)  # runs a noted one first, as Python does
        if handler != ignore:
            _signal.signal(signum, handler)
    finally:
        if not was_blocked:
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, (signum,))
    return previous


def drop_signal_wakeup() -> None:
    """In a forked child: stop writing a byte per signal into the parent's wake-up pipe.

    The child closes its copy of that pipe; a signal arriving after (a cancel's SIGINT to a
    worker still setting up) made Python print "Exception ignored when trying to write to
    the signal wakeup fd" into the task's stderr. Not the main thread: nothing was set."""
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass


def become_task_worker(parent: int) -> None:
    """In a freshly forked task worker: drop the parent's signal wake-ups (before it closes
    the parent's fds), lead a process group of its own (a Ctrl+C or a launcher's signal to
    the orchestrator's group reaches the task only through the orchestrator), die with
    `parent` (the process that forked it), and adopt the step's orphans so they stay within
    reach until the task ends."""
    drop_signal_wakeup()
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    die_with_parent(parent)
    set_child_subreaper(True)


class Adopter:
    """While a run goes, this process adopts every orphan below it; `sweep` ends the strays.

    Workers are children of this process and adopt their own orphans while they
    live, so a child of ours that is not a live worker was left by a task that
    has ended: it is ours to kill. Children this process had before the run
    (a program that runs a flow in-process may have its own) are never touched.
    """

    REAP_WAIT_S = 5.0

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.was_subreaper = is_child_subreaper()
        self.active = set_child_subreaper(True)
        self.foreign = set(children(self.pid)) if self.active else set()

    def sweep(self, keep: set[int]) -> list[int]:
        """Kill and reap every child but `keep` (live workers) and the foreign ones, with all
        below them; returns the pids that would not die (stuck in the kernel)."""
        if not self.active:
            return []
        return end_children(self.pid, keep | self.foreign, self.REAP_WAIT_S)

    def close(self, keep: set[int]) -> list[int]:
        """A last sweep, then stop adopting (unless this process did before the run)."""
        stuck = self.sweep(keep)
        if self.active and not self.was_subreaper:
            set_child_subreaper(False)
        return stuck


class RunGuard:
    """A process forked at run start that ends the run's processes once the orchestrator is gone.

    Workers die with a killed orchestrator (PDEATHSIG), and what they started is then
    orphaned to init, out of every reach but the run id in its environment: before,
    a SIGKILL of `python flow.py run` from a shell left a step's `sleep 300` running
    (20 of 20 times). The guard is forked before any task, leaves the session (a kill
    of the orchestrator's process group misses it), and waits on a pipe whose only
    writer is the orchestrator (workers close it); the orchestrator tells it each
    worker's process group as it starts and ends. End of file (or the orchestrator's
    pidfd firing) means the orchestrator died: the guard SIGKILLs the live workers'
    process groups and every process marked with the run id, for a few rounds (a
    process caught between fork and exec carries the mark only once it execs), and
    exits; init (or the nearest subreaper) reaps it. The guard reads the pipe at most
    every BATCH_PAUSE_S, so a foreach wakes it about 50 times a second instead of twice
    per task (what it has not read stays in the pipe and is read before it cleans).
    Processes marked before the run
    (a shell that exported the run id, and what else it started) and the guard's
    ancestors are spared. A run that ends as it should has
    cleaned up itself, and `close()` kills and reaps the guard. Costs a fork, a kill
    and a reap per run (0.7 ms here). Linux only: elsewhere `active` is False and
    every method does nothing.
    """

    CLEANUP_ROUNDS = 6
    ROUND_PAUSE_S = 0.03
    BATCH_PAUSE_S = 0.02

    def __init__(self, marker: tuple[str, str], inherited: bool = False) -> None:
        """`inherited`: this process was started with the marker in its environment (by a
        launcher, or a shell that exported it); every process marked before the run (the
        shell itself, what else it started) is then spared."""
        self.pid = 0
        self._w = -1
        if not LINUX or not hasattr(os, "fork"):
            return
        spare = set(marked_processes(*marker)) if inherited else set()
        r, w = os.pipe()  # close-on-exec: exec'd grandchildren never hold it
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return
        if pid == 0:
            try:
                os.close(w)
                _guard_main(r, parent, marker, spare)
            finally:
                os._exit(0)
        os.close(r)
        os.set_blocking(w, False)  # a stopped guard must never stall the run: messages drop
        self.pid, self._w = pid, w

    @property
    def active(self) -> bool:
        return self._w >= 0

    @property
    def fd(self) -> int:
        """The pipe's write end (-1 when inactive): a forked worker closes it."""
        return self._w

    def track(self, pgid: int) -> None:
        """A worker leads process group `pgid` now."""
        self._send(b"+%d\n" % pgid)

    def untrack(self, pgid: int) -> None:
        """That group is empty and reaped: its number may be reused, never kill it again."""
        self._send(b"-%d\n" % pgid)

    def _send(self, data: bytes) -> None:
        if self._w < 0:
            return
        try:
            os.write(self._w, data)
        except OSError:  # the guard is gone (or its pipe full): the run id still marks all
            pass

    def close(self) -> None:
        """The run ended and cleaned up after itself: end the guard and reap it here.

        SIGKILL (our own unreaped child: its pid cannot have been reused) rather than a
        word on the pipe, which costs the guard's wake-up and exit: 0.3 ms against 1.3 ms.
        """
        if self._w < 0:
            return
        signal_quietly(self.pid, signal.SIGKILL)
        os.close(self._w)
        self._w = -1
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _guard_main(r: int, parent: int, marker: tuple[str, str], spare: set[int]) -> None:
    """The guard's life (in the forked child): wait for the orchestrator's end, then clean."""
    spare = spare | _ancestors()  # the orchestrator's launcher, a shell: never the run's
    try:
        os.setsid()
    except OSError:
        pass
    drop_signal_wakeup()
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
    except (ValueError, OSError):  # not the main thread of the forking program
        pass
    os.closerange(3, r)
    os.closerange(r + 1, 1 << 16)  # no pipe, socket or log of the run held open by us
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    pidfd = None
    opener = getattr(os, "pidfd_open", None)
    if opener is not None:
        try:
            pidfd = opener(parent)
        except OSError:
            pidfd = None
    groups: set[int] = set()
    buffer = b""
    poller = select.poll()  # not select(): the pipe's number may be past FD_SETSIZE
    for fd in (r,) if pidfd is None else (r, pidfd):
        poller.register(fd, select.POLLIN)
    while os.getppid() == parent:
        ready = {fd for fd, _ in poller.poll()}
        if r not in ready:
            os.set_blocking(r, False)  # the orchestrator is gone: read what it left, then clean
        try:
            data = os.read(r, 65536)
        except BlockingIOError:
            data = b""
        except OSError:
            data = b""
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line[:1] in (b"+", b"-") and line[1:].isdigit():
                (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))
        if not data:
            break
        time.sleep(RunGuard.BATCH_PAUSE_S)  # let messages gather: one wake-up for many
    _end_run(groups, marker, spare)


def _end_run(groups: set[int], marker: tuple[str, str], spare: set[int]) -> None:
    """SIGKILL the workers' process groups and every process marked with the run id but
    those marked before the run (`spare`)."""
    spare = spare | {os.getpid()}
    for _ in range(RunGuard.CLEANUP_ROUNDS):
        for pgid in groups:
            signal_group_quietly(pgid, signal.SIGKILL)
        kill_all([p for p in marked_processes(*marker) if p not in spare], spare=spare)
        time.sleep(RunGuard.ROUND_PAUSE_S)
