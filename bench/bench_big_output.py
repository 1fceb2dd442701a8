"""A step printing 100 MB, run in the window (offscreen) and headless: how long each takes.

The real controller and window run the flow as a user would (Run on the selected flow);
a 10 ms QTimer heartbeat measures the longest event-loop stall while the output streams
in, and the window's RSS is sampled. The same flow also runs through `flowdeck run`
(headless, output to a file) and plain `python flow.py` for reference. Prints medians:

    python bench/bench_big_output.py                 # 100 MB, 3 repeats
    python bench/bench_big_output.py --mb 20 --repeat 1
    python bench/bench_big_output.py --profile       # cProfile of one window run
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import bench_env

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT / "core", ROOT / "desktop"):
    sys.path.insert(0, str(extra))

FLOW = '''from flowdeck import FlowSpec, step


class LoudFlow(FlowSpec):
    @step
    def start(self):
        pad = "x" * 86
        for i in range({lines}):
            print(f"line {{i:07d}} {{pad}}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LoudFlow()
'''


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Watcher:
    """Turns the event loop, measuring the longest gap between heartbeats and the peak RSS."""

    def __init__(self, app: object) -> None:
        from PySide6.QtCore import QTimer
        self.app = app
        self.last = time.monotonic()
        self.longest = 0.0
        self.peak = rss_mb()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self.beat)
        self.timer.start()

    def beat(self) -> None:
        now = time.monotonic()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def reset(self) -> None:
        self.last, self.longest, self.peak = time.monotonic(), 0.0, rss_mb()

    def spin(self, until: Callable[[], bool], limit: float) -> bool:
        """Run the event loop as the app does (no sleeps in between) until `until()`."""
        from PySide6.QtCore import QEventLoop, QTimer
        deadline = time.monotonic() + limit
        loop = QEventLoop()
        met = [False]

        def check() -> None:
            self.peak = max(self.peak, rss_mb())
            if until():
                met[0] = True
                loop.quit()
            elif time.monotonic() > deadline:
                loop.quit()
        checker = QTimer()
        checker.setInterval(10)
        checker.timeout.connect(check)
        checker.start()
        check()
        if not met[0]:
            loop.exec()
        checker.stop()
        return met[0]


def timed(cmd: list[str], cwd: Path) -> float:
    began = time.monotonic()
    subprocess.run(cmd, cwd=cwd, env=bench_env(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - began


def window_runs(folder: Path, work: Path, repeat: int, profile: bool) -> list[dict[str, float]]:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from flowdeck_desktop.app import build
    app = QApplication.instance() or QApplication([])
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    controller, window = build(settings, [str(folder)], restore=False)
    window.show()
    watch = Watcher(app)
    watch.spin(lambda: any(e.name == "LoudFlow" for e in controller.model.entries()), 20)
    key = next(e.key for e in controller.model.entries() if e.name == "LoudFlow")
    window.select_flow(key)
    watch.spin(lambda: False, 0.5)
    ended: list[str] = []
    controller.run_ended.connect(lambda _key, status: ended.append(status))
    results = []
    for _ in range(repeat):
        ended.clear()
        watch.spin(lambda: False, 0.3)
        before = rss_mb()
        watch.reset()
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        began = time.monotonic()
        controller.start_run(key)
        watch.spin(lambda: bool(ended), 900)
        took = time.monotonic() - began
        watch.spin(lambda: not window.logs.has_pending(), 60)
        shown = time.monotonic() - began
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        results.append({"took": took, "shown": shown, "stall": watch.longest,
                        "added": watch.peak - before, "lines": window.logs.line_count(),
                        "flush": window.logs.longest_flush_seconds,
                        "status_ok": float(ended[:1] == ["succeeded"])})
    window.close()
    controller.shutdown()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="megabytes the step prints")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one window run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowdeck-bigout-") as tmp:
        work = Path(tmp)
        os.environ["HOME"] = str(work / "home")
        folder = work / "flows"
        folder.mkdir()
        flow = folder / "loud.py"
        flow.write_text(FLOW.format(lines=args.mb * 10_000))  # lines of 100 bytes
        headless = [timed([sys.executable, "-m", "flowdeck.cli.main", "run", str(flow)], folder)
                    for _ in range(args.repeat)]
        plain = [timed([sys.executable, str(flow), "run", "--quiet"], folder)
                 for _ in range(args.repeat)]
        runs = window_runs(folder, work, 1 if args.profile else args.repeat, args.profile)
    med = statistics.median
    print(f"\n{args.mb} MB printed by one step, medians of {len(runs)}:")
    print(f"  python flow.py run --quiet:          {med(plain):6.2f} s")
    print(f"  flowdeck run (headless):             {med(headless):6.2f} s")
    print(f"  window, run to its end:              {med(r['took'] for r in runs):6.2f} s")
    print(f"  window, to the tail shown:           {med(r['shown'] for r in runs):6.2f} s")
    print(f"  window, longest event-loop stall:    {med(r['stall'] for r in runs) * 1000:6.0f} ms"
          f" (max {max(r['stall'] for r in runs) * 1000:.0f} ms)")
    print(f"  log view, longest flush:             {med(r['flush'] for r in runs) * 1000:6.0f} ms")
    print(f"  window, RSS added at peak:           {med(r['added'] for r in runs):6.0f} MB")
    print(f"  log view lines held:                 {int(med(r['lines'] for r in runs)):,}")
    print(f"  runs that succeeded:                 {int(sum(r['status_ok'] for r in runs))}"
          f" / {len(runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
