"""Read a whole datastore back the way Flowdeck's readers do, and say what did not read.

Used after every kill (nothing may be half-written: records and blobs are written
atomically) and by the corruption script (what is damaged must be named, not crash).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import common  # noqa: F401  (puts this checkout's core on sys.path)

from flowdeck.store.blobs import BlobRef, BlobStore
from flowdeck.store.events import read_events
from flowdeck.store.layout import RUN_JSON, RunLayout, flows_in
from flowdeck.store.records import AttemptRecord, DamagedRecord, RunRecord


@dataclass
class StoreReport:
    """What a full read of a store found."""

    records: int = 0
    attempts: int = 0
    blobs: int = 0
    events_files: int = 0
    problems: list[str] = field(default_factory=list)


def check_store(root: Path) -> StoreReport:
    """Read every run.json, attempt record, event stream and blob under `root`."""
    report = StoreReport()
    for flow in flows_in(root):
        layout = RunLayout(root, flow)
        for run_dir in _dirs(layout.runs_dir):
            _check_run(run_dir, report)
    _check_blobs(root, report)
    return report


def _dirs(path: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(path)
                      if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
    except OSError:
        return []


def _check_run(run_dir: Path, report: StoreReport) -> None:
    run_json = run_dir / RUN_JSON
    if run_json.exists():
        try:
            RunRecord.read(run_json)
            report.records += 1
        except (DamagedRecord, OSError) as exc:
            report.problems.append(f"{run_json}: {exc}")
    events = run_dir / "events.jsonl"
    if events.exists():
        try:
            read_events(events)
            report.events_files += 1
        except Exception as exc:  # any failure to read is what we look for
            report.problems.append(f"{events}: {type(exc).__name__}: {exc}")
    for step_dir in _dirs(run_dir):
        for task_dir in _dirs(step_dir):
            for entry in sorted(task_dir.glob("attempt-*.json")):
                try:
                    AttemptRecord.read(entry)
                    report.attempts += 1
                except (DamagedRecord, OSError) as exc:
                    report.problems.append(f"{entry}: {exc}")


def _check_blobs(root: Path, report: StoreReport) -> None:
    blobs = BlobStore(root)
    for folder in _dirs(root / "blobs"):
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue  # a temporary file a killed writer left: never read as a blob
            try:
                blobs.get(entry.name)
                report.blobs += 1
            except Exception as exc:  # any failure to read is what we look for
                report.problems.append(f"{entry}: {type(exc).__name__}: {exc}")


def missing_artifacts(root: Path, records: list[AttemptRecord]) -> list[str]:
    """Artifacts of finished attempts whose blob is absent or does not read back."""
    blobs = BlobStore(root)
    problems = []
    for record in records:
        if not record.done:
            continue
        for name, raw in record.artifacts.items():
            try:
                blobs.get(BlobRef.from_dict(raw).sha)
            except Exception as exc:
                problems.append(f"{record.step}/{record.task_id}.{name}: "
                                f"{type(exc).__name__}: {exc}")
    return problems
