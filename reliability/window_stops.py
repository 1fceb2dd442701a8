"""Stops from the window at random moments, with steps that start children in new sessions.

The real controller and window (offscreen Qt, as pytest-qt would drive them, but as a
script): each round starts the flow with `controller.start_run`, waits a random time
(from before the orchestrator is up to after the run ended) while the event loop turns,
calls `controller.stop_run`, and checks:

- survivors: no process with the run's FLOWDECK_RUN_ID in its environment, and none of
  the run's descendants seen before the stop, is alive once the run has ended;
- a stuck UI: a 10 ms QTimer heartbeat measures the longest event-loop stall;
- time to stop, from `stop_run` to the run's `ended` signal;
- the run reads back (window and store) as cancelled, or succeeded if it ended first.

Each step's mode (a parameter, chosen per round) is plain, ignores SIGINT (so only the
engine's SIGKILL after its grace ends it), or cleans up slowly in `except
KeyboardInterrupt`.

    python3 reliability/window_stops.py [--quick] [--rounds N] [--seed S]
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter

from common import (
    Tally,
    Workdir,
    descendants,
    parse_args,
    run_survivors,
    summary,
    write_flow,
)

FLOW = '''import signal
import subprocess
import sys
import time

from flowdeck import FlowSpec, Parameter, step


class StopFlow(FlowSpec):
    """Tasks that start a child in a new session and a plain child, then take their time."""

    mode = Parameter("mode", default="plain", help="plain | ignore | slow-cleanup")

    @step
    def start(self):
        self.items = list(range(3))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                         start_new_session=True)
        subprocess.Popen(["sleep", "600"])
        if self.mode == "ignore":  # only the engine's SIGKILL after its grace ends it
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            time.sleep(10 if self.mode == "ignore" else 0.2 + 0.3 * self.input)
        except KeyboardInterrupt:
            if self.mode == "slow-cleanup":
                time.sleep(1.0)
            raise
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StopFlow()
'''

MODES = ["plain"] * 6 + ["ignore"] + ["slow-cleanup"] * 2
STALL_LIMIT_S = 1.0  # an event loop that does not turn for this long is a stuck window
STOP_LIMIT_S = 12.0  # the window's own KILL comes 3.5-5 s after the stop


class Heartbeat:
    """A QTimer every 10 ms; the longest gap between two beats is the longest stall."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer
        self.last = time.monotonic()
        self.longest = 0.0
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self.beat)
        self.timer.start()

    def beat(self) -> None:
        now = time.monotonic()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def reset(self) -> None:
        self.last = time.monotonic()
        self.longest = 0.0


def spin(app: object, seconds: float, until: object = None) -> bool:
    """Turn the event loop for `seconds` or until `until()`; whether `until` came true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()  # type: ignore[attr-defined]
        if until is not None and until():  # type: ignore[operator]
            return True
        time.sleep(0.002)
    return until is None


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], full=100, quick=20)
    tally = Tally("window_stops: Stop from the window at random moments")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with Workdir("stops", args.keep) as work:
        os.environ["HOME"] = str(work / "home")
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QApplication

        from flowdeck.store.index import RunIndex
        from flowdeck.store.layout import RunLayout
        from flowdeck_desktop.app import build
        app = QApplication.instance() or QApplication([])
        folder = work / "flows"
        write_flow(folder, "stopflow.py", FLOW)
        settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
        controller, window = build(settings, [str(folder)], restore=False)
        window.show()
        spin(app, 20, lambda: any(e.name == "StopFlow" for e in controller.model.entries()))
        key = next(e.key for e in controller.model.entries() if e.name == "StopFlow")
        ended: list[str] = []
        controller.run_ended.connect(lambda _key, status: ended.append(status))
        layout = RunLayout(folder / ".flowdeck", "StopFlow")
        heart = Heartbeat()
        stop_times: list[float] = []
        stalls: list[float] = []
        outcomes: Counter[str] = Counter()
        by_mode: dict[str, list[float]] = {}
        for number in range(args.rounds):
            mode = random.choice(MODES)
            ended.clear()
            heart.reset()
            controller.start_run(key, ["--mode", mode])
            session = controller.session(key)
            proc = session.run
            if proc is None:
                tally.round(["the run did not start"], f"round {number} ({mode})")
                continue
            run_id = proc.spec.run_id
            delay = random.uniform(0.0, 1.6)
            seen: set[int] = set()
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not ended:
                spin(app, 0.02)
                if proc.pid:
                    seen |= descendants(proc.pid)
            problems: list[str] = []
            going = not ended  # else the run ended first and there is nothing to time
            stopped_at = time.monotonic()
            controller.stop_run(key)
            if not spin(app, 30, lambda: bool(ended)):
                problems.append("the run never ended after Stop")
            took = time.monotonic() - stopped_at
            if going:
                stop_times.append(took)
                by_mode.setdefault(mode, []).append(took)
            stalls.append(heart.longest)
            if took > STOP_LIMIT_S:
                problems.append(f"took {took:.1f} s to stop")
            if heart.longest > STALL_LIMIT_S:
                problems.append(f"the window stalled {heart.longest:.2f} s")
            left = run_survivors(run_id, known=seen, seconds=1.0)
            if left:
                problems.append(f"processes outlived the run: {sorted(left)}")
            status = ended[0] if ended else "never ended"
            stored = RunIndex(layout).read(run_id).status if layout.run_json(run_id).exists() \
                else "no record"
            outcomes[f"{status} (store: {stored})"] += 1
            if status not in ("cancelled", "succeeded"):
                problems.append(f"the window says {status}")
            if stored not in ("cancelled", "succeeded", "no record", "crashed") or \
                    (stored in ("cancelled", "succeeded") and stored != status):
                problems.append(f"the store says {stored}, the window {status}")
            tally.round(problems, f"round {number} ({mode}, stop after {delay:.2f} s, "
                        f"{status})")
        for name, count in sorted(outcomes.items()):
            tally.figure(f"ended {name}", count)
        tally.figure("time to stop (runs still going)", summary(stop_times))
        for mode, times in sorted(by_mode.items()):
            tally.figure(f"time to stop, {mode}", summary(times))
        tally.figure("longest event-loop stall per round", summary(stalls))
        for run in controller.runs.values():
            run.stop()
            run.wait_stopped(5000)
        window.close()
        controller.shutdown()
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
