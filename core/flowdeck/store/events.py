"""The structured event stream of a run (`events.jsonl`), its one writer and a reader.

The orchestrating process, and only it, appends one JSON object per line.
Each line is written with a single `write()` on a file opened with O_APPEND,
so a reader following the file never sees half an object except at the very
end, where `EventReader` holds the incomplete line back until it is whole.
Schema: docs/events.md.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import field
from pathlib import Path
from typing import Any

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.status import run_status, task_status

SCHEMA_VERSION = 1

RUN_STARTED = "run_started"
TASK_STARTED = "task_started"
TASK_FINISHED = "task_finished"
RUN_FINISHED = "run_finished"
ENGINE_RUN_ID = "engine_run_id"  # the engine's own id for the run (Metaflow's), once known
EVENT_TYPES = (RUN_STARTED, TASK_STARTED, TASK_FINISHED, RUN_FINISHED)


class EventWriter:
    """Appends events to a run's `events.jsonl`; one instance per run, in one process."""

    def __init__(self, path: Path, run_id: str):
        self.path = path
        self.run_id = run_id
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def emit(self, type: str, at: float | None = None, **fields: Any) -> dict[str, Any]:
        """Append one event. `at`: when it happened, where that was before now (a task
        forked in a burst is announced after the burst); never earlier than the events
        written before it."""
        when = time.time() if at is None else at
        event = {"v": SCHEMA_VERSION, "t": round(when, 6), "type": type,
                 "run_id": self.run_id, **fields}
        line = json.dumps(event, default=str, separators=(",", ":")) + "\n"
        data = line.encode("utf-8", "surrogateescape")
        try:
            written = os.write(self._fd, data)
        except OSError as exc:  # name the file: a full disk must say which one
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        if written < len(data):  # a full disk took part of the line: take it back, whole or none
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
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


# -- typed events ---------------------------------------------------------------------
# Consumers read events through `parse_event`, which applies docs/events.md's policy
# once: unknown event types are skipped (None), unknown fields ignored, an unknown
# task status is read as `failed`, and missing optional fields get their defaults.


@dataclass(frozen=True)
class RunStarted:
    """A run began: its flow, file, parameters and static graph (docs/events.md)."""

    t: float
    run_id: str
    flow: str = ""
    file: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    engine: str = "flowdeck"
    origin_run_id: str | None = None
    metaflow_run_id: str | None = None


@dataclass(frozen=True)
class TaskStarted:
    """A task attempt began (or was reused from the run a resume started from)."""

    t: float
    run_id: str
    step: str
    task_id: str
    attempt: int = 0
    pid: int | None = None
    reused: bool = False
    foreach_index: int | None = None
    foreach_num_splits: int | None = None
    input_paths: tuple[str, ...] = ()
    logs: dict[str, str] | None = None  # relative to the run folder
    #: The remote worker that ran the task (a Dask worker's address); None when local.
    worker: str | None = None


@dataclass(frozen=True)
class TaskFinished:
    """A task attempt ended: its status, error, artifacts and whether it will be retried."""

    t: float
    run_id: str
    step: str
    task_id: str
    attempt: int = 0
    status: str = "failed"
    duration: float = 0.0
    error: dict[str, Any] | None = None
    will_retry: bool = False
    artifacts: tuple[dict[str, Any], ...] = ()
    foreach_splits: int | None = None
    caught_error: dict[str, Any] | None = None
    origin: str | None = None


@dataclass(frozen=True)
class RunFinished:
    """A run ended: its status, duration, the error that stopped it and its exit code."""

    t: float
    run_id: str
    status: str = "failed"
    duration: float = 0.0
    error: dict[str, Any] | None = None
    exit_code: int | None = None


@dataclass(frozen=True)
class EngineRunId:
    """The id the run has in its engine's own terms (what `metaflow.Flow(...)[id]` takes)."""

    t: float
    run_id: str
    engine_run_id: str


Event = RunStarted | TaskStarted | TaskFinished | RunFinished | EngineRunId


def parse_event(raw: dict[str, Any]) -> Event | None:
    """A typed event, or None for a type this version does not know (or a broken one)."""
    kind = raw.get("type")
    parser: Callable[[dict[str, Any]], Event] | None = \
        _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        return None
    try:
        return parser(raw)
    except (KeyError, TypeError, ValueError):
        return None  # a damaged line: skipped, like a line that is not JSON


def _common(raw: dict[str, Any]) -> dict[str, Any]:
    return {"t": float(raw.get("t") or 0.0), "run_id": str(raw.get("run_id") or "")}


def _task(raw: dict[str, Any]) -> dict[str, Any]:
    return {**_common(raw), "step": str(raw["step"]), "task_id": str(raw["task_id"]),
            "attempt": int(raw.get("attempt") or 0)}


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _run_started(raw: dict[str, Any]) -> RunStarted:
    return RunStarted(**_common(raw), flow=str(raw.get("flow") or ""),
                      file=str(raw.get("file") or ""),
                      params=dict(_opt_dict(raw.get("params")) or {}),
                      graph=dict(_opt_dict(raw.get("graph")) or {}),
                      engine=str(raw.get("engine") or "flowdeck"),
                      origin_run_id=raw.get("origin_run_id"),
                      metaflow_run_id=raw.get("metaflow_run_id"))


def _task_started(raw: dict[str, Any]) -> TaskStarted:
    foreach = _opt_dict(raw.get("foreach")) or {}
    logs = _opt_dict(raw.get("logs"))
    return TaskStarted(**_task(raw), pid=_opt_int(raw.get("pid")),
                       reused=bool(raw.get("reused")),
                       foreach_index=_opt_int(foreach.get("index")),
                       foreach_num_splits=_opt_int(foreach.get("num_splits")),
                       input_paths=tuple(str(p) for p in raw.get("input_paths") or ()),
                       logs={str(k): str(v) for k, v in logs.items() if v} if logs else None,
                       worker=str(raw["worker"]) if raw.get("worker") else None)


def _task_finished(raw: dict[str, Any]) -> TaskFinished:
    return TaskFinished(**_task(raw), status=task_status(raw.get("status")),
                        duration=float(raw.get("duration") or 0.0),
                        error=_opt_dict(raw.get("error")),
                        will_retry=bool(raw.get("will_retry")),
                        artifacts=tuple(a for a in raw.get("artifacts") or () if isinstance(a, dict)),
                        foreach_splits=_opt_int(raw.get("foreach_splits")),
                        caught_error=_opt_dict(raw.get("caught_error")),
                        origin=raw.get("origin"))


def _run_finished(raw: dict[str, Any]) -> RunFinished:
    return RunFinished(**_common(raw), status=run_status(raw.get("status")),
                       duration=float(raw.get("duration") or 0.0),
                       error=_opt_dict(raw.get("error")), exit_code=_opt_int(raw.get("exit_code")))


def _engine_run_id(raw: dict[str, Any]) -> EngineRunId:
    return EngineRunId(**_common(raw), engine_run_id=str(raw["engine_run_id"]))


_PARSERS: dict[str, Callable[[dict[str, Any]], Event]] = {ENGINE_RUN_ID: _engine_run_id,
                                                        RUN_STARTED: _run_started, TASK_STARTED: _task_started,
            TASK_FINISHED: _task_finished, RUN_FINISHED: _run_finished}


def read_typed_events(path: str | os.PathLike[str]) -> list[Event]:
    """All whole, known events of a run, typed."""
    return [e for e in (parse_event(raw) for raw in read_events(path)) if e is not None]
