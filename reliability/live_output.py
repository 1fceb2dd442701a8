"""A step that prints 100 MB, watched live in the window and then clicked.

The real controller and window (offscreen): the run's output flows through
`RunProcess` into the log view while a 10 ms QTimer heartbeat measures the longest
event-loop stall; then the finished task is clicked, which reads its log in bounded
pages on a pool thread. Printed: stalls, the window's memory before, at its peak and
after, the characters the log view holds, the run's length in the window.

A loss: a stall over 1 s, a log view holding more than its bounds (50,000 lines live; a
2 MB page, twice, when clicked), the clicked log read on the GUI thread, or a run that
does not succeed.

    python3 reliability/live_output.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from common import Tally, Workdir, child_env, parse_args, rss_mb, write_flow

LINES = 1_000_000  # of 100 bytes: 100 MB
STALL_LIMIT_S = 1.0

FLOW = f'''from flowdeck import FlowSpec, step


class LoudFlow(FlowSpec):
    @step
    def start(self):
        pad = "x" * 86
        for i in range({LINES}):
            print(f"line {{i:07d}} {{pad}}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LoudFlow()
'''


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
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.app.processEvents()  # type: ignore[attr-defined]
            self.peak = max(self.peak, rss_mb())
            if until():
                return True
            time.sleep(0.002)
        return False


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], full=1, quick=1, unit="runs")
    tally = Tally("live_output: 100 MB of output, live in the window and clicked")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with Workdir("live", args.keep) as work:
        os.environ["HOME"] = str(work / "home")
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QApplication

        from flowdeck_desktop.app import build
        from flowdeck_desktop.views.log_view import PAGE_BYTES
        app = QApplication.instance() or QApplication([])
        folder = work / "flows"
        flow = write_flow(folder, "loud.py", FLOW)
        began = time.monotonic()  # the same run without a window, for comparison
        subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", str(flow)],
                       cwd=folder, env=child_env(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=600)
        headless = time.monotonic() - began
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
        before = rss_mb()
        watch.reset()
        began = time.monotonic()
        controller.start_run(key)
        problems = [] if watch.spin(lambda: bool(ended), 600) else ["the run never ended"]
        took = time.monotonic() - began
        logs = window.logs
        watch.spin(lambda: not logs.has_pending(), 30)
        if ended and ended[0] != "succeeded":
            problems.append(f"the run {ended[0]}")
        live_chars, live_lines, live_stall = len(logs.text()), logs.line_count(), watch.longest
        if live_stall > STALL_LIMIT_S:
            problems.append(f"the window stalled {live_stall:.2f} s while the output came")
        if live_lines > logs.maximum_line_count():
            problems.append(f"the live log holds {live_lines} lines")
        tally.figure("live: run length in the window", f"{took:.1f} s "
                     f"(`flowdeck run`: {headless:.1f} s)")
        tally.figure("live: longest event-loop stall", f"{live_stall * 1000:.0f} ms")
        tally.figure("live: window RSS before / peak / after",
                     f"{before:.0f} / {watch.peak:.0f} / {rss_mb():.0f} MB")
        tally.figure("live: log view holds", f"{live_lines:,} lines, {live_chars:,} chars "
                     f"(longest flush {logs.longest_flush_seconds * 1000:.0f} ms)")
        tally.round(problems, "the run, live")

        problems = []
        watch.reset()
        clicked_rss = rss_mb()
        began = time.monotonic()
        window._on_step_clicked("start")
        done = watch.spin(lambda: logs.last_page is not None and not logs.has_pending()
                          and f"line {LINES - 1:07d}" in logs.text(), 60)
        page = logs.last_page
        if not done or page is None:
            problems.append("the clicked task's tail never showed")
        else:
            if page.reader_thread == threading.get_ident():
                problems.append("the log was read on the GUI thread")
            if len(logs.text()) > 2 * PAGE_BYTES + 1000:
                problems.append(f"the log view holds {len(logs.text()):,} chars")
        if watch.longest > STALL_LIMIT_S:
            problems.append(f"the window stalled {watch.longest:.2f} s on the click")
        tally.figure("click: tail shown after", f"{time.monotonic() - began:.2f} s")
        tally.figure("click: longest event-loop stall", f"{watch.longest * 1000:.0f} ms")
        tally.figure("click: window RSS before / peak", f"{clicked_rss:.0f} / {watch.peak:.0f} MB")
        tally.figure("click: read", f"{page.bytes_read:,} bytes off the GUI thread, "
                     f"{len(logs.text()):,} chars shown" if page else "nothing")
        tally.round(problems, "the task, clicked")
        window.close()
        controller.shutdown()
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
