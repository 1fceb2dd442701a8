"""A soak: hundreds of runs through the engine, `flowdeck run` and the window, watched for leaks.

A third of the runs each go through `python flow.py`, `flowdeck run FILE` and the
window's `controller.start_run` (the real controller and window, offscreen, in this
process). Every run must succeed and leave no process behind. At intervals the script
prints, per run: the run's peak memory (engine and CLI: the process's max RSS), this
process's RSS, file descriptors and threads (the window's, during its third), the
datastore's size and the run's duration.

A leak is a loss: the window's RSS growing by more than 40 MB (and 30%) from the end of
its warm-up (the first fifth) to its last run, its descriptors by more than 10 or its
threads by more than 4; a run's peak memory growing by more than 20 MB from the first
fifth to the last; temporary files left in the store; runs getting 3 times slower.

    python3 reliability/soak.py [--quick] [--rounds N] [--seed S]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    Tally,
    Workdir,
    child_env,
    ended_with_this_script,
    fd_count,
    kill_quietly,
    marked,
    parse_args,
    rss_mb,
    thread_count,
    tree_size,
    write_flow,
)

MARK = "FLOWDECK_CAMPAIGN_SOAK"

FLOW = '''from flowdeck import FlowSpec, step


class SoakFlow(FlowSpec):
    """A small foreach with artifacts and some output: what a day of runs looks like."""

    @step
    def start(self):
        self.items = list(range(4))
        self.payload = bytes(100_000)
        print("starting")
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.square = self.input ** 2
        for i in range(50):
            print("working", self.input, i)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        assert self.total == 14


if __name__ == "__main__":
    SoakFlow()
'''


@dataclass
class Sample:
    run: int
    seconds: float
    peak_mb: float  # the run's own peak (engine, CLI), or this process's RSS (window)
    fds: int
    threads: int
    store_mb: float


@dataclass
class Phase:
    name: str
    samples: list[Sample] = field(default_factory=list)

    def print_sample(self, sample: Sample) -> None:
        print(f"  {self.name:>7} run {sample.run:4d}: {sample.seconds:5.2f} s, "
              f"{'peak' if self.name != 'window' else 'RSS'} {sample.peak_mb:6.1f} MB, "
              f"fds {sample.fds:3d}, threads {sample.threads:2d}, "
              f"store {sample.store_mb:6.1f} MB", flush=True)


def child_run(cmd: list[str], cwd: Path) -> tuple[int, float, float]:
    """(exit code, seconds, peak RSS in MB) of one run in a child process."""
    began = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=child_env(**{MARK: str(cwd)}),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=ended_with_this_script())
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - began, usage.ru_maxrss / 1024


def leftovers(folder: Path) -> set[int]:
    left = marked(MARK, str(folder))
    kill_quietly(left)
    return left


def process_phase(name: str, command: Callable[[Path], list[str]], folder: Path, runs: int,
                  tally: Tally, every: int) -> Phase:
    """Runs of the flow in child processes (the engine's or `flowdeck run`'s)."""
    flow = write_flow(folder, "soakflow.py", FLOW)
    phase = Phase(name)
    for number in range(runs):
        code, seconds, peak = child_run(command(flow), folder)
        left = leftovers(folder)
        problems = [f"exited {code}"] if code else []
        if left:
            problems.append(f"processes left: {sorted(left)}")
        sample = Sample(number, seconds, peak, fd_count(), thread_count(),
                        tree_size(folder / ".flowdeck") / 2**20)
        phase.samples.append(sample)
        if number % every == 0 or number == runs - 1:
            phase.print_sample(sample)
        tally.round(problems, f"{name} run {number}")
    return phase


def window_phase(folder: Path, runs: int, tally: Tally, every: int, work: Path) -> Phase:
    """Runs started with the window's controller, in this process (whose growth is the leak)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["HOME"] = str(work / "home")
    from PySide6.QtCore import QCoreApplication, QEvent, QSettings
    from PySide6.QtWidgets import QApplication

    from flowdeck_desktop.app import build
    app = QApplication.instance() or QApplication([])
    write_flow(folder, "soakflow.py", FLOW)
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    controller, window = build(settings, [str(folder)], restore=False)
    window.show()

    def spin(until: Callable[[], bool], limit: float) -> bool:
        """Turn the event loop as `app.exec()` does. processEvents() alone never runs
        deferred deletes (`deleteLater`), which the real loop does on every turn: without
        them each replaced run's RunProcess and RunState stayed alive, and the soak showed
        a leak of about 80 KB per run that the app does not have."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            app.processEvents()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            if until():
                return True
            time.sleep(0.002)
        return False

    spin(lambda: any(e.name == "SoakFlow" for e in controller.model.entries()), 20)
    key = next(e.key for e in controller.model.entries() if e.name == "SoakFlow")
    window.select_flow(key)
    ended: list[str] = []
    controller.run_ended.connect(lambda _key, status: ended.append(status))
    phase = Phase("window")
    for number in range(runs):
        ended.clear()
        began = time.monotonic()
        controller.start_run(key)
        problems = [] if spin(lambda: bool(ended), 120) else ["never ended"]
        seconds = time.monotonic() - began
        spin(lambda: False, 0.02)  # let the window take the end in (history, logs)
        if ended and ended[0] != "succeeded":
            problems.append(f"ended {ended[0]}")
        run = controller.session(key).run
        if run is not None and marked("FLOWDECK_RUN_ID", run.spec.run_id):
            problems.append("processes left")
        sample = Sample(number, seconds, rss_mb(), fd_count(), thread_count(),
                        tree_size(folder / ".flowdeck") / 2**20)
        phase.samples.append(sample)
        if number % every == 0 or number == runs - 1:
            phase.print_sample(sample)
        tally.round(problems, f"window run {number}")
    window.close()
    controller.shutdown()
    return phase


def leak_problems(phase: Phase) -> list[str]:
    """Growth from the end of the warm-up (the first fifth) to the end."""
    samples = phase.samples
    if len(samples) < 10:
        return []
    early = samples[len(samples) // 5: len(samples) // 5 + max(3, len(samples) // 10)]
    late = samples[-max(3, len(samples) // 10):]

    def median(values: list[float]) -> float:
        return statistics.median(values)

    problems = []
    grew = median([s.peak_mb for s in late]) - median([s.peak_mb for s in early])
    base = median([s.peak_mb for s in early])
    if phase.name == "window":
        if grew > 40 and grew > 0.3 * base:
            problems.append(f"the window's RSS grew {grew:.1f} MB")
        fds = late[-1].fds - early[0].fds
        if fds > 10:
            problems.append(f"{fds} more file descriptors")
        threads = late[-1].threads - early[0].threads
        if threads > 4:
            problems.append(f"{threads} more threads")
    elif grew > 20:
        problems.append(f"a run's peak memory grew {grew:.1f} MB")
    slower = median([s.seconds for s in late]) / max(1e-6, median([s.seconds for s in early]))
    if slower > 3:
        problems.append(f"runs got {slower:.1f} times slower")
    return problems


def describe(phase: Phase) -> str:
    first, last = phase.samples[0], phase.samples[-1]
    seconds = [s.seconds for s in phase.samples]
    what = "RSS" if phase.name == "window" else "peak RSS per run"
    return (f"{len(phase.samples)} runs, median {statistics.median(seconds):.2f} s; "
            f"{what} {first.peak_mb:.0f} -> {last.peak_mb:.0f} MB; fds {first.fds} -> "
            f"{last.fds}; threads {first.threads} -> {last.threads}; store "
            f"{first.store_mb:.1f} -> {last.store_mb:.1f} MB "
            f"({(last.store_mb - first.store_mb) / max(1, len(phase.samples) - 1) * 1024:.0f}"
            " KB per run)")


def temporary_files(folder: Path) -> list[Path]:
    return [p for p in (folder / ".flowdeck").rglob(".tmp-*")]


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], full=300, quick=100, unit="runs")
    tally = Tally("soak: runs through the engine, flowdeck run and the window")
    third = max(1, args.rounds // 3)
    every = max(1, third // 10)
    with Workdir("soak", args.keep) as work:
        phases = [
            process_phase("engine", lambda flow: [sys.executable, str(flow)],
                          work / "engine", third, tally, every),
            process_phase("cli", lambda flow: [sys.executable, "-m", "flowdeck.cli.main",
                                               "run", str(flow)],
                          work / "cli", third, tally, every),
            window_phase(work / "window", args.rounds - 2 * third, tally, every, work),
        ]
        for phase in phases:
            tally.figure(phase.name, describe(phase))
            folder = work / phase.name
            problems = leak_problems(phase)
            left = temporary_files(folder)
            if left:
                problems.append(f"{len(left)} temporary files left, e.g. {left[0]}")
            tally.round(problems, f"{phase.name}: leak check")
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
