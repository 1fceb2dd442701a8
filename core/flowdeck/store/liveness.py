"""Whether the process a record names is still the one that wrote it, and signalling it.

A run's `run.json` names its orchestrator by pid. A pid is reused once its process has
ended: after a crash (kill -9, a power cut) the pid in a `running` record can belong to
an unrelated process a day later, an editor or another user's job. With the pid alone,
the crash rule would call that run `running` for as long as the stranger lives, and
the window's Stop would send it SIGTERM, then SIGKILL.

So a record also keeps its process's start (`process_start`): on Linux the boot's id
and the process's start in clock ticks since boot (`/proc/<pid>/stat`, field 22), both
kept by the kernel, so a clock change later cannot move them. A live pid whose start
differs is another process. A record written before this field existed, or on a system
without `/proc` (macOS), is judged by its pid alone, as before.

A process that has ended but is not yet reaped by its parent (a zombie) is not alive:
it runs nothing and will write nothing more.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import NamedTuple

#: The system whose /proc this module reads (processes.py, which signals, uses it too).
LINUX = sys.platform.startswith("linux")

_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
_boot_id: str | None = None


def _read_boot_id() -> str | None:
    global _boot_id
    if _boot_id is None:
        try:
            with open(_BOOT_ID_FILE, "rb") as handle:  # bytes: no codec to look up
                _boot_id = handle.read().strip().decode() or None
        except OSError:
            return None
    return _boot_id


#: A process in one of these states has ended (a zombie waits to be reaped, X is dead).
ENDED_STATES = ("Z", "X", "x")


class ProcStat(NamedTuple):
    """What `/proc/<pid>/stat` says of a process (the fields read here)."""

    state: str
    ppid: int
    pgid: int
    session: int
    start_ticks: int  # since boot, in clock ticks: with the boot id, the process's identity

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES


def proc_stat(pid: int) -> ProcStat | None:
    """The process's `/proc/<pid>/stat`; None where it cannot be read (gone, no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The name (field 2) is in parentheses and may hold spaces or ')': count from its end.
    fields = raw[raw.rfind(b")") + 2:].split()
    try:
        return ProcStat(fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]),
                        int(fields[19]))
    except (IndexError, ValueError):
        return None


def _start_identity(ticks: int | None) -> str | None:
    """A process start as records keep it, `<boot id>:<start ticks>` (the one place that
    writes the format); None where it cannot be known."""
    boot = _read_boot_id() if ticks is not None else None
    return None if boot is None else f"{boot}:{ticks}"


def process_start(pid: int) -> str | None:
    """The identity of the start of process `pid`, or None where it cannot be known (not
    Linux, no such process)."""
    stat = proc_stat(pid) if LINUX else None
    return _start_identity(stat.start_ticks if stat else None)


_own_ticks: tuple[int, int | None] | None = None


def own_start_ticks() -> int | None:
    """This process's start in clock ticks since boot, read once per process: the run's
    start-up needs it twice (the script-unchanged check, the run's record), and the record
    is written more than once."""
    global _own_ticks
    pid = os.getpid()
    if _own_ticks is None or _own_ticks[0] != pid:  # a forked child is a process of its own
        stat = proc_stat(pid) if LINUX else None
        _own_ticks = (pid, stat.start_ticks if stat else None)
    return _own_ticks[1]


def own_process_start() -> str | None:
    """This process's start identity, for the record it writes."""
    return _start_identity(own_start_ticks())


def pid_alive(pid: int | None, started: str | None = None) -> bool:
    """Whether process `pid` is alive and, when its recorded start is given, still the
    process that was recorded (not a later one given the same pid)."""
    if not pid or pid <= 0:
        return False
    stat = proc_stat(pid) if LINUX else None
    if stat is not None:
        if stat.ended:  # a zombie: ended, its parent has not reaped it yet
            return False
        identity = _start_identity(stat.start_ticks)
        return started is None or identity is None or started == identity
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def may_signal(pid: int | None) -> bool:
    """Whether this process may signal `pid`, by the kernel's rule: we are root, or our
    real or effective user is its real or saved one (`Uid:` in /proc/<pid>/status, which
    holds even where the /proc files' owner does not). Unknown (no /proc, gone) counts as
    yes: the signal itself then says."""
    if not pid or pid <= 0:
        return False
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        return True
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            uid_line = next(line for line in handle if line.startswith(b"Uid:"))
        real, _effective, saved = (int(v) for v in uid_line.split()[1:4])
    except (OSError, StopIteration, ValueError):
        return True
    return bool({os.getuid(), os.geteuid()} & {real, saved})


def signal_recorded(pid: int | None, started: str | None, sig: int) -> bool:
    """Send `sig` to the recorded process if it is still that process; False when it is
    gone or another process now has its pid. On Linux the check and the signal go
    through one pidfd, so the pid cannot change hands between them."""
    if not pid or pid <= 0:  # 0 or -1 would signal the caller's group, or every process
        return False
    pidfd = _open_pidfd(pid)
    try:
        if not pid_alive(pid, started):
            return False
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return True


def _open_pidfd(pid: int) -> int | None:
    """A pidfd for `pid` (Linux 5.3 and later), which names that process even if its pid is
    reused after this call; None where there is none."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        return int(pidfd_open(pid))
    except OSError:  # gone (the check then says so), or not supported here
        return None
