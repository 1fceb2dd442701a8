"""Save storms with rerun-on-save on: the final content runs exactly once, and last.

Each storm saves the flow file several times in quick succession, each save a new
version (a module-level VERSION, so every valid save changes the code outside the
steps), in the ways editors save: an atomic rename of a temporary file,
truncate-and-write (a half-written file is visible for a moment), a rename-away
backup and a fresh file, and saves with a syntax error in between. The last save is
always valid. Once everything is quiet, the runs started since the storm began are
read back from the store (each run records the hash of the code outside its steps):
exactly one of them has the final content, it is the newest run, and it succeeded.

    python3 reliability/save_storms.py [--quick] [--rounds N] [--seed S]
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from common import Tally, Workdir, parse_args, summary, write_flow

TEMPLATE = '''import time

from flowdeck import FlowSpec, step

VERSION = {version}


class StormFlow(FlowSpec):
    """Prints and keeps the version of the file it ran from."""

    @step
    def start(self):
        print("version", VERSION)
        self.version = VERSION
        time.sleep(0.3)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StormFlow()
'''

BROKEN = TEMPLATE.replace("self.next(self.end)", "self.next(self.end")
QUIET_S = 3.0  # past the watcher's longest coalescing (2 s): nothing more is coming


def save_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp{random.randrange(10**6)}")
    temporary.write_text(text)
    os.replace(temporary, path)


def save_truncating(path: Path, text: str) -> None:
    """Truncate, write half, pause, write the rest: a reader can see the half file."""
    with open(path, "w") as handle:
        half = len(text) // 2
        handle.write(text[:half])
        handle.flush()
        time.sleep(random.uniform(0.0, 0.08))
        handle.write(text[half:])


def save_with_backup(path: Path, text: str) -> None:
    """Rename the old file away, write a new one, remove the backup (some editors do this)."""
    backup = path.with_name(path.name + "~")
    os.replace(path, backup)
    path.write_text(text)
    backup.unlink()


SAVERS: dict[str, Callable[[Path, str], None]] = {
    "atomic": save_atomic, "truncate": save_truncating, "backup": save_with_backup}


def outside_hash(text: str, path: Path) -> str | None:
    from flowdeck.analysis.flowfile import analyze_source
    flows = analyze_source(text, str(path)).flows
    return flows[0].graph.outside_hash if flows else None


class Watch:
    """Turns the event loop and notes the last moment anything happened."""

    def __init__(self, app: object, controller: object, key: str) -> None:
        self.app, self.controller, self.key = app, controller, key
        self.last = time.monotonic()
        self.started: list[tuple[float, str]] = []  # (monotonic time, run id)
        controller.run_started.connect(self._on_started)  # type: ignore[attr-defined]
        controller.run_ended.connect(self.touch)  # type: ignore[attr-defined]
        controller.model.rowsInserted.connect(self.touch)  # type: ignore[attr-defined]
        controller.model.dataChanged.connect(self.touch)  # type: ignore[attr-defined]

    def touch(self, *_args: object) -> None:
        self.last = time.monotonic()

    def _on_started(self, _key: str, state: object) -> None:
        self.touch()
        self.started.append((time.monotonic(), getattr(state, "run_id", "") or ""))

    def spin(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.app.processEvents()  # type: ignore[attr-defined]
            time.sleep(0.005)

    def wait_until(self, condition: Callable[[], bool], limit: float) -> float | None:
        """Turn the loop until `condition()`; the monotonic time it held, or None."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if condition():
                return time.monotonic()
            self.spin(0.01)
        return None

    def settle(self, limit: float = 60.0) -> bool:
        """Wait until no run goes, none waits, and nothing happened for QUIET_S."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.spin(0.05)
            session = self.controller.session(self.key)  # type: ignore[attr-defined]
            busy = self.controller.is_running(self.key) or \
                session.pending_rerun is not None  # type: ignore[attr-defined]
            if busy:
                self.touch()
            elif time.monotonic() - self.last > QUIET_S:
                return True
        return False


def catalog_has(controller: object, key: str, final: str | None) -> bool:
    """Whether the window's catalog shows the file's final content (parsed, not stale)."""
    entry = controller.model.entry(key)  # type: ignore[attr-defined]
    return entry is not None and not entry.stale and entry.flow.graph.outside_hash == final


def storm(path: Path, version: int, watch: Watch, kinds: Counter[str]) -> tuple[int, str]:
    """Save a storm of versions; the final version and its content."""
    saves = random.randint(3, 8)
    text = ""
    for index in range(saves):
        last = index == saves - 1
        version += 1
        broken = not last and random.random() < 0.25
        text = (BROKEN if broken else TEMPLATE).format(version=version)
        kind = random.choice(list(SAVERS))
        SAVERS[kind](path, text)
        watch.touch()  # a save is activity: the storm is not over before its changes come
        kinds[kind + (" (syntax error)" if broken else "")] += 1
        watch.spin(random.choice([0.0, 0.02, 0.1, 0.2, 0.4]))
    return version, text


def check(layout: object, since: float, final: str | None, version: int) -> list[str]:
    """Exactly one run since `since` has the final content; it is the newest; it succeeded."""
    from flowdeck import Flow
    from flowdeck.store.index import RunIndex
    entries = [e for e in RunIndex(layout).runs()  # type: ignore[arg-type]
               if e.record is not None and e.record.start >= since]
    if not entries:
        return ["no run after the storm"]
    finals = [e for e in entries if e.record is not None and e.record.outside_hash == final]
    problems = []
    if len(finals) != 1:
        problems.append(f"the final content ran {len(finals)} times "
                        f"({', '.join(e.run_id + ' ' + e.status for e in finals)})")
    newest = entries[0]
    if newest.record is None or newest.record.outside_hash != final:
        problems.append(f"the newest run {newest.run_id} is not of the final content")
    elif newest.status != "succeeded":
        problems.append(f"the final run {newest.run_id} {newest.status}")
    else:
        run = Flow("StormFlow", root=layout.root)[newest.run_id]  # type: ignore[attr-defined]
        if run["start"].task.data.version != version:
            problems.append(f"the final run kept version {run['start'].task.data.version}")
    return problems


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], full=20, quick=5, unit="storms")
    tally = Tally("save_storms: rerun on save under save storms")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with Workdir("storms", args.keep) as work:
        os.environ["HOME"] = str(work / "home")
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QApplication

        from flowdeck.store.layout import RunLayout
        from flowdeck_desktop.control.controller import FlowdeckController
        app = QApplication.instance() or QApplication([])
        folder = work / "flows"
        path = write_flow(folder, "stormflow.py", TEMPLATE.format(version=0))
        settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
        controller = FlowdeckController(settings)
        controller.add_paths([str(folder)])
        deadline = time.monotonic() + 20
        while not any(e.name == "StormFlow" for e in controller.model.entries()) and \
                time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        key = next(e.key for e in controller.model.entries() if e.name == "StormFlow")
        watch = Watch(app, controller, key)
        controller.start_run(key)
        watch.settle()
        controller.set_auto_rerun(key, True)
        layout = RunLayout(folder / ".flowdeck", "StormFlow")
        kinds: Counter[str] = Counter()
        runs_per_storm: list[float] = []
        latency: list[float] = []
        seen_after: list[float] = []
        version = 0
        for number in range(args.rounds):
            since = time.time()
            before = len(watch.started)
            version, text = storm(path, version, watch, kinds)
            saved_at = time.monotonic()
            final = outside_hash(text, path)
            # The storm ends for the window when its watcher reports the last save: wait for
            # that first (a watcher starved of CPU may take longer than the quiet period), so
            # a slow watcher and a missed rerun are told apart.
            seen = watch.wait_until(lambda f=final: catalog_has(controller, key, f), 60.0)
            if seen is None:
                problems = ["the watcher never reported the last save (60 s)"]
            else:
                seen_after.append(seen - saved_at)
                problems = [] if watch.settle() else \
                    ["never settled (a run or a rerun kept going)"]
            problems += check(layout, since, final, version)
            runs_per_storm.append(len(watch.started) - before)
            if len(watch.started) > before:
                latency.append(max(0.0, watch.started[-1][0] - saved_at))
            tally.round(problems, f"storm {number} (up to version {version})")
        tally.figure("saves", ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        tally.figure("runs started per storm", summary(runs_per_storm, unit="runs", digits=1))
        tally.figure("last save to the watcher's report of it", summary(seen_after))
        tally.figure("last save to the final run's start", summary(latency))
        from flowdeck.store.index import RunIndex
        outcomes = Counter(e.status for e in RunIndex(layout).runs())
        tally.figure("runs recorded", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
        controller.shutdown()
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
