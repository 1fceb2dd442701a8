"""Corruption of every kind of file in the datastore, read back by every reader.

A pristine store holds a succeeded run and a failed one of a small flow. Each round
copies it, damages one file (run.json, an attempt record, events.jsonl, a blob, a
log) in one way (truncated to half, one byte flipped, replaced by garbage, emptied,
deleted), and reads everything back through:

- the client (`flowdeck.Flow(...).runs()`, each run's status, steps, tasks, their
  data, logs and exceptions);
- the window's history listing (`flowdeck_desktop.views.panes.list_runs`) and its
  fold of the event stream (what the window replays for a past run);
- `flowdeck list` on the folder;
- `python flow.py resume --origin-run-id <failed run>`.

A loss is an error no reader names (anything but Flowdeck's own errors, which say
which file), a damaged run.json not listed as damaged with its path, a traceback,
or a resume that neither completes nor says why it cannot.

    python3 reliability/corrupt_store.py [--quick] [--rounds N] [--seed S]
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import Tally, Workdir, child_env, parse_args, run, write_flow

from flowdeck.store.layout import RunLayout

FLOW = '''import os

from flowdeck import FlowSpec, step


class CorruptFlow(FlowSpec):
    """Artifacts in every step, a foreach, and a failure while a file says so."""

    @step
    def start(self):
        self.numbers = list(range(1000))
        self.items = [1, 2, 3]
        print("start says hello")
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.square = self.input ** 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.square for i in inputs)
        if os.path.exists(os.path.join(os.path.dirname(__file__), "fail-now")):
            raise ValueError("asked to fail")
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    CorruptFlow()
'''

WAYS: dict[str, Callable[[Path], None]] = {}


def way(name: str) -> Callable[[Callable[[Path], None]], Callable[[Path], None]]:
    def register(func: Callable[[Path], None]) -> Callable[[Path], None]:
        WAYS[name] = func
        return func
    return register


@way("truncate")
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@way("flip a byte")
def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    if data:
        index = random.randrange(len(data))
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))


@way("garbage")
def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(max(16, path.stat().st_size)))


@way("empty")
def _empty(path: Path) -> None:
    path.write_bytes(b"")


@way("delete")
def _delete(path: Path) -> None:
    path.unlink()


def make_pristine(folder: Path) -> tuple[str, str]:
    """A store with a succeeded and a failed run; their ids."""
    flow = write_flow(folder, "corruptflow.py", FLOW)
    env = child_env()
    for run_id in ("good", "bad"):
        marker = folder / "fail-now"
        if run_id == "bad":
            marker.write_text("")
        result = run([sys.executable, str(flow), "run", "--run-id", run_id], folder, env=env)
        marker.unlink(missing_ok=True)  # so a resume of the failed run can succeed
        if (result.returncode == 0) != (run_id == "good"):
            raise SystemExit(f"the pristine {run_id} run went wrong: {result.stderr[-800:]}")
    return "good", "bad"


def targets(layout: RunLayout) -> dict[str, list[Path]]:
    """The files of each kind the rounds damage (two of each, where there are two)."""
    good, bad = layout.run_dir("good"), layout.run_dir("bad")
    start_task = next((good / "start").iterdir())
    blob_names = sorted(p for p in (layout.root / "blobs").rglob("*") if p.is_file()
                        and not p.name.startswith("."))
    return {
        "run.json": [bad / "run.json", good / "run.json"],
        "attempt json": [next((bad / "start").iterdir()) / "attempt-0.json",
                         next((bad / "join").iterdir()) / "attempt-0.json"],
        "events.jsonl": [bad / "events.jsonl", good / "events.jsonl"],
        "blob": blob_names[:2],
        "log": [start_task / "attempt-0.out", next((good / "end").iterdir()) / "attempt-0.out"],
    }


def named(exc: BaseException, where: Path) -> bool:
    """Flowdeck's own error, whose message says which file (or run folder) it is about."""
    own = type(exc).__module__.startswith("flowdeck")
    text = str(exc)
    return own and (str(where) in text or where.name in text or "run" in text.lower())


def read_with_client(root: Path, damaged: Path) -> list[str]:
    """Everything the client can be asked about every run; unnamed errors are problems."""
    from flowdeck import Flow
    problems: list[str] = []

    def attempt(what: str, func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as exc:  # the question is whether it is one of ours, named
            if not named(exc, damaged):
                problems.append(f"client {what}: {type(exc).__name__}: {str(exc)[:200]}")
            return None

    for found in attempt("Flow.runs()", lambda: Flow("CorruptFlow", root=root).runs()) or []:
        attempt(f"{found.id}.status", lambda r=found: (r.status, r.successful, r.finished))
        for step in attempt(f"{found.id}.steps()", found.steps) or []:
            for task in attempt(f"{step.pathspec}.tasks()", step.tasks) or []:
                attempt(f"{task.pathspec}.status", lambda t=task: (t.status, t.exception))
                attempt(f"{task.pathspec}.stdout", lambda t=task: (t.stdout, t.stderr))
                attempt(f"{task.pathspec}.data", lambda t=task: [
                    getattr(t.data, a.id) for a in t.artifacts])
    return problems


def read_history(layout: RunLayout, damaged: Path) -> list[str]:
    """The window's history listing and its replay of each run's events."""
    from flowdeck.observe.fold import RunFold
    from flowdeck.store.events import parse_event, read_events
    from flowdeck_desktop.views.panes import list_runs
    problems = []
    try:
        listed = list_runs(layout)
    except Exception as exc:  # the listing must never fail for one damaged run
        return [f"history listing: {type(exc).__name__}: {exc}"]
    for summary in listed:
        if summary.status == "damaged" and str(layout.run_dir(summary.run_id)) not in \
                (summary.damage or ""):
            problems.append(f"history lists {summary.run_id} damaged without its path: "
                            f"{summary.damage}")
        try:
            fold = RunFold(None)
            for raw in read_events(layout.events(summary.run_id)):
                event = parse_event(raw)
                if event is not None:
                    fold.apply(event)
        except OSError:
            pass
        except Exception as exc:  # replaying a damaged stream must not fail
            problems.append(f"event replay of {summary.run_id}: {type(exc).__name__}: {exc}")
    if damaged.name == "run.json" and damaged.parent.name in ("good", "bad") and \
            damaged.exists():
        mine = [s for s in listed if s.run_id == damaged.parent.name]
        if mine and mine[0].record is None and mine[0].status != "damaged":
            problems.append(f"unreadable run {damaged.parent.name} listed {mine[0].status}")
    return problems


def commands(folder: Path, damaged: Path) -> list[str]:
    """`flowdeck list` and `python flow.py resume` on the damaged store."""
    problems = []
    listing = run([sys.executable, "-m", "flowdeck.cli.main", "list", str(folder)], folder)
    if listing.returncode != 0 or "Traceback" in listing.stdout + listing.stderr:
        problems.append(f"flowdeck list exited {listing.returncode}: {listing.stderr[-300:]}")
    resumed = run([sys.executable, str(folder / "corruptflow.py"), "resume",
                   "--origin-run-id", "bad", "--run-id", "resumed"], folder)
    said = resumed.stdout + resumed.stderr
    if "Traceback" in said:
        problems.append(f"resume printed a traceback: {said[-400:]}")
    if resumed.returncode != 0:
        # The one run that cannot be resumed is the one whose record is damaged or gone; a
        # folder without run.json is no run to any listing (as one killed while starting).
        record_damaged = damaged.name == "run.json" and damaged.parent.name == "bad"
        if not record_damaged or "cannot be resumed" not in said:
            problems.append(f"resume exited {resumed.returncode}: {said.strip()[-300:]}")
    return problems


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], full=50, quick=25)
    tally = Tally("corrupt_store: every file kind damaged every way, read back")
    with Workdir("corrupt", args.keep) as work:
        pristine = work / "pristine"
        make_pristine(pristine)
        kinds = list(targets(RunLayout(pristine / ".flowdeck", "CorruptFlow")))
        combos = [(kind, name, index) for index in (0, 1) for kind in kinds for name in WAYS]
        resumed_ok = 0
        for number, (kind, name, index) in enumerate(combos[:args.rounds]):
            folder = work / f"round{number}"
            shutil.copytree(pristine, folder, symlinks=True)
            layout = RunLayout(folder / ".flowdeck", "CorruptFlow")
            files = targets(layout)[kind]
            damaged = files[index % len(files)]
            WAYS[name](damaged)
            problems = read_with_client(layout.root, damaged)
            problems += read_history(layout, damaged)
            problems += commands(folder, damaged)
            if (layout.run_dir("resumed") / "run.json").exists():
                resumed_ok += 1
            where = damaged.relative_to(layout.root)
            tally.round(problems, f"{kind} {name} ({where})")
            shutil.rmtree(folder, ignore_errors=True)
        tally.figure("kinds x ways x files", f"{len(kinds)} x {len(WAYS)} x 2 "
                     f"({min(args.rounds, len(combos))} rounds)")
        tally.figure("resumes that made a run", resumed_ok)
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
