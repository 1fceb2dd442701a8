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
orphans, every stray it finds belongs to a task that has ended); the launcher's side (`run_leftovers`) finds a run's processes by the run id
in their environment, which every descendant inherits unless it clears its
environment on purpose.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterable

LINUX = sys.platform.startswith("linux")

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

_libc: ctypes.CDLL | None = None


def _prctl(option: int, arg: int | ctypes._Pointer[ctypes.c_int]) -> bool:
    """Call prctl(2); True when it succeeded. Never raises: a missing libc is "not available"."""
    global _libc
    if not LINUX:
        return False
    try:
        if _libc is None:  # the interpreter's own symbols hold libc's: no find_library subprocess
            _libc = ctypes.CDLL(None, use_errno=True)
        return int(_libc.prctl(option, arg, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def is_child_subreaper() -> bool:
    """Whether this process adopts its orphaned descendants now."""
    flag = ctypes.c_int(0)
    return _prctl(PR_GET_CHILD_SUBREAPER, ctypes.pointer(flag)) and bool(flag.value)


def set_child_subreaper(on: bool) -> bool:
    """Make this process adopt (or stop adopting) its orphaned descendants; False if impossible."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """In a freshly forked child: get `sig` when the parent dies; die now if it already has.

    The parent can die between fork() and prctl(); the child would then never
    get the signal (its new parent is alive), so it checks getppid() right after.
    """
    if _prctl(PR_SET_PDEATHSIG, int(sig)) and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


# -- reading /proc ------------------------------------------------------------------------

def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgid, session) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()  # the name may hold spaces and brackets
    try:
        return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def is_live(pid: int) -> bool:
    """True while a process exists and has not finished (a zombie has finished)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X", "x")


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
            return [p for p in _all_pids() if (_stat(p) or ("", 0, 0, 0))[1] == pid]
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
    return [p for p in _all_pids() if (s := _stat(p)) is not None and s[3] == sid
            and s[0] not in ("Z", "X", "x")]


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


def reap(pid: int) -> bool:
    """Collect a child's exit status if it has ended; True once it is gone."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done != 0


def kill_all(pids: Iterable[int], spare: set[int], rounds: int = 50) -> list[int]:
    """SIGKILL `pids` (and all below them) until none is live; returns any that would not die.

    Rounds repeat the search: a process may fork while its siblings are being
    killed. Never signals this process, its ancestors or `spare`.
    """
    protected = spare | _ancestors()
    todo = [p for p in pids if p not in protected]
    for _ in range(rounds):
        live = [p for p in todo if is_live(p)]
        if not live:
            return []
        for pid in live:
            kill_tree(pid)
        time.sleep(0.005)
    return [p for p in todo if is_live(p)]


def _ancestors() -> set[int]:
    """This process and every process above it: never ours to kill."""
    out = set()
    pid = os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        stat = _stat(pid)
        pid = stat[1] if stat else 0
    return out | {1}


def run_leftovers(run_pid: int, marker: tuple[str, str]) -> list[int]:
    """What is left of a run started in its own session: its session's processes, and every
    process carrying the run's marker in its environment (new-session descendants too)."""
    if not LINUX:
        return []
    return sorted(set(session_members(run_pid)) | set(marked_processes(*marker)))


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
        deadline = time.monotonic() + self.REAP_WAIT_S
        while True:
            strays = [p for p in children(self.pid) if p not in keep and p not in self.foreign]
            if not strays:
                return []
            for pid in strays:
                kill_tree(pid)
            left = [pid for pid in strays if not reap(pid)]
            if left and time.monotonic() > deadline:
                return left
            if left:
                time.sleep(0.002)

    def close(self, keep: set[int]) -> list[int]:
        """A last sweep, then stop adopting (unless this process did before the run)."""
        stuck = self.sweep(keep)
        if self.active and not self.was_subreaper:
            set_child_subreaper(False)
        return stuck
