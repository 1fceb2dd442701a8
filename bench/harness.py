"""What every process benchmark here shares: one environment, one way to time a process, interleaving, medians.

A benchmark measures whole `python file.py` processes, as a user runs them, so the
interpreter's start and teardown and every import are in the figure. One run gives:

    wall   perf_counter around spawn-to-reap (what a user waits for)
    cpu    user + sys of the whole process tree: `os.wait4` returns the child's usage
           together with every descendant it reaped (tasks, workers), so CPU spent in
           forked children is counted, which the parent's own clock would miss
    peak   the top process's high-water RSS (VmHWM), sampled from /proc every 20 ms
           while it runs (the mark only grows, so only growth in the last interval
           before exit can be missed); for an engine that is the orchestrator, not its
           tasks. `tree_peak` is wait4's ru_maxrss: the largest of the whole tree, which
           cannot say which process it was

Tools are interleaved run by run (and the order rotated every round) so that drift in
the machine's load hits every tool alike; figures are medians. Before every run the
file system is synced (`os.sync`, not timed): otherwise the kernel's writeback of what
earlier runs wrote (a 100 MB blob, Metaflow's store) lands on whichever run comes next,
and a tool that deletes what it wrote (the `np.save` floor) never pays it at all.
Output goes to files, not pipes, so a chatty tool never blocks on a full pipe and the
bench never pays for reading it during the timing; a failed run raises `BenchError` with
the output's tail.

Nothing is deleted while runs are timed. A tool whose store must start empty (`fresh`)
runs in a new copy of its folder each time, and every folder the benchmark made is
removed once its last run is timed (`remove_leftovers`). Why: on an ext4 file system
without a journal (this machine's), creating a file skips each inode freed in the last
60 s or more, reading every one of them, so a run that followed the removal of the
previous run's thousands of files paid for that removal (perf: 7 to 15% of all CPU of a
1,000-task foreach in `recently_deleted` and the block lookups under it). A user's run
follows no such removal, and a journalled ext4 has no such check.
"""

from __future__ import annotations

import atexit
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"


class BenchError(RuntimeError):
    """A measured command failed or printed something other than what it should."""


def bench_env() -> dict[str, str]:
    """The environment every measured process gets: the working tree's engine, a user's caches.

    The run store goes beside each flow file (no inherited FLOWDECK_HOME or run id), the
    bytecode cache is on as for users, Metaflow gets the user name it insists on, and
    no peer reports usage over the network.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CORE), env.get("PYTHONPATH")]))
    for name in ("PYTHONDONTWRITEBYTECODE", "FLOWDECK_HOME", "FLOWDECK_RUN_ID"):
        env.pop(name, None)
    env.setdefault("USERNAME", "bench")
    env["HAMILTON_TELEMETRY_ENABLED"] = "false"  # Hamilton before 1.89 phoned home
    if env.get("USER") == "root":
        env["USER"] = "bench"
    return env


@dataclass(frozen=True)
class Command:
    """One way of running a workload: argv, its folder, and a string its output must hold."""

    argv: tuple[str, ...]
    cwd: Path
    expect: str = ""
    #: A tool that persists, whose every run must start without a store, so that no run
    #: finds its values already stored by the run before (a content-addressed store skips
    #: the write of a value it holds: the dedup path, not a write). Such a command runs in
    #: a new copy of `cwd` each time (`in_new_folder`), never after a deletion.
    fresh: bool = False

    def in_new_folder(self) -> Command:
        """This command in a new sibling folder holding a copy of `cwd`'s files (its
        stores are folders: not copied), with the arguments that named files in `cwd`
        naming the copies. The folder stays until `remove_leftovers`."""
        folder = Path(tempfile.mkdtemp(prefix=f"{self.cwd.name}-run-", dir=self.cwd.parent))
        keep_until_the_end(folder)
        for entry in self.cwd.iterdir():
            if entry.is_file():
                shutil.copy2(entry, folder / entry.name)
        prefix = f"{self.cwd}{os.sep}"
        argv = tuple(str(folder / a[len(prefix):]) if a.startswith(prefix) else a
                     for a in self.argv)
        return Command(argv, folder, self.expect)


#: Folders the benchmark made, removed only once every run is timed (see the module's
#: docstring: a deletion on this file system slows the file creations after it).
_LEFTOVERS: list[Path] = []


def keep_until_the_end(folder: Path) -> None:
    """Remove `folder` at `remove_leftovers`, not now."""
    _LEFTOVERS.append(folder)


def remove_leftovers() -> None:
    """Remove every folder kept until the end: call once the last run is timed (and at exit,
    so an interrupted benchmark leaves nothing either)."""
    while _LEFTOVERS:
        shutil.rmtree(_LEFTOVERS.pop(), ignore_errors=True)


atexit.register(remove_leftovers)


@dataclass
class Sample:
    """One run of one command."""

    wall: float  # seconds
    cpu: float  # user + sys of the whole process tree, seconds
    peak_rss: int  # bytes, the top process's VmHWM (0 if it ended before the first sample)
    tree_peak_rss: int  # bytes, the largest RSS of any process in the tree (ru_maxrss)


@dataclass
class Series:
    """Every run of one command within a case, and their medians."""

    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples)

    @property
    def peak_rss(self) -> int:
        return int(statistics.median(s.peak_rss for s in self.samples))

    def as_json(self) -> dict[str, object]:
        return {"wall_median_s": self.wall, "cpu_median_s": self.cpu,
                "peak_rss_median_bytes": self.peak_rss,
                "runs": [asdict(s) for s in self.samples]}


def _vm_hwm(pid: int) -> int:
    """The process's RSS high-water mark in bytes, or 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_once(command: Command, env: dict[str, str] | None = None,
             interval: float = 0.02) -> Sample:
    """Run `command` to its end; its wall, tree CPU and top-process peak RSS."""
    if command.fresh:
        command = command.in_new_folder()
    with tempfile.TemporaryFile() as out:
        os.sync()  # start every run with no dirty pages of the runs before it
        began = time.perf_counter()
        proc = subprocess.Popen(command.argv, cwd=command.cwd, env=env or bench_env(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        peak = [0]
        done = threading.Event()

        def sample() -> None:  # VmHWM only grows: the last reading is the peak so far
            while not done.wait(interval):
                peak[0] = max(peak[0], _vm_hwm(proc.pid))

        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        watcher.join()
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0 or command.expect not in text:
        why = (f"exited with {proc.returncode}" if proc.returncode
               else f"did not print {command.expect!r}")
        raise BenchError(f"{' '.join(command.argv)} (in {command.cwd}) {why}; the end of its "
                         f"output:\n{text[-3000:]}")
    return Sample(wall=wall, cpu=usage.ru_utime + usage.ru_stime, peak_rss=peak[0],
                  tree_peak_rss=usage.ru_maxrss * 1024)


def interleave(commands: dict[str, Command], repeat: int, warmup: bool = True,
               progress: Callable[[str], None] | None = None) -> dict[str, Series]:
    """`repeat` rounds, each running every command once, the order rotated every round.

    One untimed warm-up run of each first fills the bytecode caches, as on any user's
    second run. A `fresh` command (a tool that persists) runs in a new folder every
    time, the warm-up too: a store the warm-up filled would turn every write into a dedup.
    """
    names = list(commands)
    env = bench_env()
    if warmup:
        for name in names:
            run_once(commands[name], env)
    series = {name: Series() for name in names}
    for round_ in range(max(repeat, 1)):
        shift = round_ % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            series[name].samples.append(run_once(commands[name], env))
            if progress:
                progress(name)
    return series


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on, and how busy it was meanwhile."""

    python: str
    executable: str
    platform: str
    cpus: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] | None = None  # None while running

    @staticmethod
    def now() -> Machine:
        return Machine(python=sys.version.split()[0], executable=sys.executable,
                       platform=platform.platform(), cpus=os.cpu_count() or 1,
                       load_before=os.getloadavg())

    def finished(self) -> Machine:
        return Machine(self.python, self.executable, self.platform, self.cpus,
                       self.load_before, os.getloadavg())

    def describe(self) -> str:
        def fmt(load: Sequence[float]) -> str:
            return " ".join(f"{x:.2f}" for x in load)
        after = f", after {fmt(self.load_after)}" if self.load_after else ""
        return (f"Python {self.python} ({self.executable}), {self.cpus} CPUs, {self.platform}; "
                f"load average (1, 5, 15 min) before {fmt(self.load_before)}{after}")
