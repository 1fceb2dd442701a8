"""What every campaign script shares: the tally, the command line, temporary folders,
child processes, and looking at processes through /proc.

Each script measures the current checkout and ends with `tried / survived / lost`
(plus its own figures) and one machine-readable `CAMPAIGN {...}` line that
`run_all.py` collects. A script exits 1 when anything was lost, so each one can
gate a change on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
DESKTOP = ROOT / "desktop"
for _path in (CORE, DESKTOP):  # the checkout's code, whatever is installed
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

RUN_ID_ENV = "FLOWDECK_RUN_ID"
MAX_LOSSES_SHOWN = 25


@dataclass
class Tally:
    """Rounds tried, survived and lost, with why each loss was a loss, and named figures."""

    name: str
    tried: int = 0
    survived: int = 0
    lost: int = 0
    losses: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    started: float = field(default_factory=time.monotonic)

    def round(self, problems: Sequence[str], what: str) -> bool:
        """Count one round: survived when `problems` is empty, else lost (with the reasons)."""
        self.tried += 1
        if problems:
            self.lost += 1
            self.losses.append(f"{what}: {'; '.join(problems)}")
            print(f"  LOST {what}: {'; '.join(problems)}", flush=True)
            return False
        self.survived += 1
        return True

    def figure(self, name: str, value: object) -> None:
        self.figures[name] = str(value)

    def report(self) -> int:
        """Print the figures and the verdict; the exit code (1 on any loss)."""
        elapsed = time.monotonic() - self.started
        print(f"\n== {self.name} ==")
        if self.skipped:
            print(f"skipped: {self.skipped}")
        for name, value in self.figures.items():
            print(f"  {name}: {value}")
        for loss in self.losses[:MAX_LOSSES_SHOWN]:
            print(f"  lost: {loss}")
        if len(self.losses) > MAX_LOSSES_SHOWN:
            print(f"  ... and {len(self.losses) - MAX_LOSSES_SHOWN} more")
        print(f"tried / survived / lost: {self.tried} / {self.survived} / {self.lost}"
              f"  ({elapsed:.0f} s)")
        print("CAMPAIGN " + json.dumps({
            "name": self.name, "tried": self.tried, "survived": self.survived,
            "lost": self.lost, "seconds": round(elapsed, 1), "skipped": self.skipped,
            "figures": self.figures, "losses": self.losses[:MAX_LOSSES_SHOWN]}), flush=True)
        return 1 if self.lost else 0


def parse_args(description: str, full: int, quick: int, unit: str = "rounds"
               ) -> argparse.Namespace:
    """--quick, --rounds N, --seed S and --keep, the same in every script."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help=f"fewer {unit} ({quick} instead of {full})")
    parser.add_argument("--rounds", type=int, default=None, help=f"number of {unit}")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (printed, so a run can be repeated)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folders (their path is printed)")
    args = parser.parse_args()
    args.rounds = args.rounds or (quick if args.quick else full)
    args.seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    random.seed(args.seed)
    print(f"{parser.prog}: {args.rounds} {unit}, seed {args.seed}", flush=True)
    return args


class Workdir:
    """A temporary folder for one script, removed at the end unless --keep."""

    def __init__(self, name: str, keep: bool):
        self.path = Path(tempfile.mkdtemp(prefix=f"flowdeck-{name}-"))
        self.keep = keep

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.keep:
            print(f"kept: {self.path}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)


def child_env(**extra: str) -> dict[str, str]:
    """A flow process's environment: this checkout's core importable, unbuffered, UTF-8."""
    env = dict(os.environ)
    env.pop("FLOWDECK_HOME", None)
    env.pop(RUN_ID_ENV, None)
    env.pop("FLOWDECK_MEMORY_LIMIT_MB", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CORE), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def ended_with_this_script() -> Callable[[], None]:
    """A `preexec_fn` for a run this script starts: SIGTERM (a cancel) to the run when the
    script dies, however it dies (killed by `timeout`, Ctrl+C in its own terminal while the
    run sits in a session of its own). Without it a script killed between its rounds'
    clean-ups left its current run going: one ran on for 36 minutes."""
    from flowdeck.engines.processes import die_with_parent
    script = os.getpid()
    return lambda: die_with_parent(script, signal.SIGTERM)


def run(cmd: Sequence[str], cwd: Path, timeout: float = 120,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to its end, output captured as text (never raises on a bad exit)."""
    try:
        return subprocess.run(list(cmd), cwd=cwd, env=env or child_env(), capture_output=True,
                              text=True, encoding="utf-8", errors="replace", timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode("utf-8", "replace") if isinstance(exc.stderr, bytes) else ""
        return subprocess.CompletedProcess(list(cmd), -999, out, err + "\n[timed out]")


FLOWDECK_FRAME_MARKERS = (f"{os.sep}flowdeck{os.sep}", f"{os.sep}flowdeck_desktop{os.sep}")


def tracebacks(text: str) -> list[str]:
    """Every Python traceback in `text` (from its header to its exception line)."""
    found: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].lstrip().startswith("Traceback (most recent call last)"):
            block = [lines[index]]
            index += 1
            while index < len(lines) and (lines[index].startswith((" ", "\t")) or
                                          not lines[index].strip()):
                block.append(lines[index])
                index += 1
            if index < len(lines):
                block.append(lines[index])
            found.append("\n".join(block))
        index += 1
    return found


def our_frames(text: str) -> list[str]:
    """Frames of Flowdeck's own code in the tracebacks of `text` (an engine error leaking)."""
    frames = []
    for block in tracebacks(text):
        for line in block.splitlines():
            stripped = line.strip()
            if stripped.startswith("File \"") and any(m in stripped for m in
                                                      FLOWDECK_FRAME_MARKERS):
                frames.append(stripped)
    return frames


# -- processes -------------------------------------------------------------------------------

def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def is_live(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a zombie has finished)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return False
    return stat.rsplit(b")", 1)[-1].split()[0] != b"Z"


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def parent_of(pid: int) -> int:
    stat = _read(f"/proc/{pid}/stat")
    try:
        return int(stat.rsplit(b")", 1)[-1].split()[1])
    except (IndexError, ValueError):
        return 0


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (as /proc says now)."""
    parents = {p: parent_of(p) for p in all_pids()}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {p for p in found if is_live(p)}


def marked(name: str, value: str) -> set[int]:
    """Live processes whose environment holds `name=value` (what every descendant inherits)."""
    needle = f"{name}={value}".encode()
    found = set()
    for pid in all_pids():
        if pid == os.getpid():
            continue
        if needle in _read(f"/proc/{pid}/environ").split(b"\0") and is_live(pid):
            found.add(pid)
    return found


def run_survivors(run_id: str, known: Iterable[int] = (), seconds: float = 3.0) -> set[int]:
    """Processes of the run (marked with its run id, or among `known`) still alive after up
    to `seconds` (a SIGKILL takes a moment to land); those are killed then, so rounds stay
    apart."""
    known = set(known)
    deadline = time.monotonic() + seconds
    while True:
        left = marked(RUN_ID_ENV, run_id) | {p for p in known if is_live(p)}
        if not left or time.monotonic() > deadline:
            kill_quietly(left)
            return left
        time.sleep(0.05)


def kill_quietly(pids: Iterable[int], sig: int = 9) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def status_value(key: str, pid: int | str = "self") -> int:
    """A number from /proc/PID/status (VmRSS in kB, Threads, ...); 0 when unknown."""
    for line in _read(f"/proc/{pid}/status").decode(errors="replace").splitlines():
        if line.startswith(f"{key}:"):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return 0
    return 0


def rss_mb(pid: int | str = "self") -> float:
    return status_value("VmRSS", pid) / 1024


def fd_count(pid: int | str = "self") -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def thread_count(pid: int | str = "self") -> int:
    return status_value("Threads", pid)


def tree_size(path: Path) -> int:
    """Bytes of the regular files under `path`."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def summary(values: Sequence[float], unit: str = "s", digits: int = 2) -> str:
    """median / max of some measurements, for a figure line."""
    if not values:
        return "none"
    return (f"median {statistics.median(values):.{digits}f} {unit}, "
            f"max {max(values):.{digits}f} {unit} (n={len(values)})")


def write_flow(folder: Path, name: str, source: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        path.write_text(source, encoding="utf-8")
    return path
