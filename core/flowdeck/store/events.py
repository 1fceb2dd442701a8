"""The structured event stream of a run (`events.jsonl`), its one writer and a reader.

The orchestrating process, and only it, appends one JSON object per line.
Each line is written with a single `write()` on a file opened with O_APPEND,
so a reader following the file never sees half an object except at the very
end, where `EventReader` holds the incomplete line back until it is whole.
Schema: docs/events.md.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1

RUN_STARTED = "run_started"
TASK_STARTED = "task_started"
TASK_FINISHED = "task_finished"
RUN_FINISHED = "run_finished"
EVENT_TYPES = (RUN_STARTED, TASK_STARTED, TASK_FINISHED, RUN_FINISHED)


class EventWriter:
    """Appends events to a run's `events.jsonl`; one instance per run, in one process."""

    def __init__(self, path: Path, run_id: str):
        self.path = path
        self.run_id = run_id
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        event = {"v": SCHEMA_VERSION, "t": round(time.time(), 6), "type": type,
                 "run_id": self.run_id, **fields}
        line = json.dumps(event, default=str, separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode("utf-8", "surrogateescape"))
        return event

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class EventReader:
    """Follows an `events.jsonl` incrementally: each `read()` returns the new whole events.

    Lines that are not valid JSON objects are skipped, so a consumer never
    crashes on a damaged stream; the file may not exist yet.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return list(_parse(lines))


def _parse(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for raw in lines:
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict) and "type" in event:
            yield event


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All whole events of a finished (or crashed) run."""
    return EventReader(path).read()
