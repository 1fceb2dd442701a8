"""`RunState`: a run's graph and task states, folded from its event stream.

The same fold serves a live run (events as they arrive) and a past run
(its `events.jsonl` read from disk), so history and live views share one
code path. Signals fire only when a step's summary really changes, which
keeps a 10,000-task foreach from flooding the views.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from flowdeck.store.events import read_events


@dataclass
class TaskRecord:
    """One task as the events describe it (its latest attempt)."""

    task_id: str
    step: str
    status: str = "running"
    attempt: int = 0
    start: float = 0.0
    end: float | None = None
    pid: int | None = None
    foreach_index: int | None = None
    logs: dict[str, str] | None = None
    error: dict[str, Any] | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    origin: str | None = None


@dataclass(frozen=True)
class StepSummary:
    """What the DAG shows for a step; compared by value to skip no-op updates."""

    status: str = "pending"
    done: int = 0
    total: int = 0
    duration: float | None = None
    attempt: int = 0


class RunState(QObject):
    """Graph + task states of one run. Feed it events with `apply`."""

    step_changed = Signal(str)
    task_changed = Signal(str)
    run_changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._clear()

    def _clear(self) -> None:
        self.run_id = ""
        self.flow = ""
        self.file = ""
        self.graph: dict[str, Any] = {}
        self.params: dict[str, Any] = {}
        self.status = "pending"
        self.started: float | None = None
        self.finished: float | None = None
        self.error: dict[str, Any] | None = None
        self.tasks: dict[str, TaskRecord] = {}
        self.steps: dict[str, StepSummary] = {}
        self._expected: dict[str, int] = {}
        self._splits: dict[str, dict[str, int]] = {}
        self._tallies: dict[str, StepTally] = {}

    # -- loading ----------------------------------------------------------------

    def reset(self, graph: dict[str, Any] | None = None) -> None:
        self._clear()
        if graph:
            self._set_graph(graph)
        self.run_changed.emit()

    def load_file(self, events_path: str) -> None:
        """A past run: fold its whole stream, then announce once."""
        self.blockSignals(True)
        try:
            self.reset()
            for event in read_events(events_path):
                self.apply(event)
        finally:
            self.blockSignals(False)
        self.run_changed.emit()

    def _set_graph(self, graph: dict[str, Any]) -> None:
        self.graph = graph
        for name in (graph.get("graph") or {}):
            self.steps.setdefault(name, StepSummary())

    # -- folding events ---------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> None:
        handler = getattr(self, f"_on_{event.get('type')}", None)
        if handler is not None:
            handler(event)

    def _on_run_started(self, e: dict[str, Any]) -> None:
        self.run_id = str(e.get("run_id", ""))
        self.flow = e.get("flow", "")
        self.file = e.get("file", "")
        self.params = dict(e.get("params") or {})
        self.status = "running"
        self.started = e.get("t")
        self._set_graph(e.get("graph") or {})
        self.run_changed.emit()

    def _on_task_started(self, e: dict[str, Any]) -> None:
        task_id = str(e["task_id"])
        foreach = e.get("foreach") or {}
        record = self._take(task_id, e["step"])
        record.status = "running"
        record.attempt = int(e.get("attempt", 0))
        record.start = float(e.get("t") or time.time())
        record.end = None
        record.pid = e.get("pid")
        record.logs = e.get("logs")
        record.foreach_index = foreach.get("index")
        self._put(record)
        self.task_changed.emit(task_id)
        self._refresh_step(e["step"])

    def _on_task_finished(self, e: dict[str, Any]) -> None:
        task_id = str(e["task_id"])
        record = self._take(task_id, e["step"])
        status = e.get("status", "failed")
        record.status = "running" if e.get("will_retry") else status
        record.attempt = int(e.get("attempt", 0))
        record.end = float(e.get("t") or time.time())
        record.error = e.get("error")
        record.artifacts = list(e.get("artifacts") or [])
        record.origin = e.get("origin")
        if not record.start:
            record.start = record.end
        self._put(record)
        if e.get("foreach_splits"):
            self._splits.setdefault(e["step"], {})[task_id] = int(e["foreach_splits"])
            self._propagate_expected(e["step"])
        self.task_changed.emit(task_id)
        self._refresh_step(e["step"])

    def _on_run_finished(self, e: dict[str, Any]) -> None:
        self.status = e.get("status", "failed")
        self.finished = e.get("t")
        self.error = e.get("error")
        for step, summary in list(self.steps.items()):
            if summary.status == "running" and self.status == "cancelled":
                self._set_step(step, StepSummary("cancelled", summary.done, summary.total,
                                                 summary.duration, summary.attempt))
        self.run_changed.emit()

    def mark_ended(self, status: str) -> None:
        """The process ended without a `run_finished` (killed, crashed, stopped)."""
        if self.status not in ("running", "pending"):
            return
        self.status = status
        self.finished = time.time()
        for task in list(self.tasks.values()):
            if task.status == "running":
                self._take(task.task_id, task.step)
                task.status = "cancelled" if status == "cancelled" else "failed"
                task.end = self.finished
                self._put(task)
                self.task_changed.emit(task.task_id)
        for step in list(self.steps):
            self._refresh_step(step)
        self.run_changed.emit()

    def _propagate_expected(self, foreach_step: str) -> None:
        """k/N for a foreach body: N is the sum of the splits of every foreach task so far.

        The count flows on through the body's linear steps and static splits and
        stops at joins, whose own tasks are counted as they appear.
        """
        nodes = self.graph.get("graph") or {}
        total = sum(self._splits.get(foreach_step, {}).values())
        stack = list((nodes.get(foreach_step) or {}).get("next") or [])
        seen: set[str] = set()
        while stack:
            step = stack.pop()
            node = nodes.get(step) or {}
            if step in seen or node.get("type") == "join":
                continue
            seen.add(step)
            self._expected[step] = total
            self._refresh_step(step)
            if node.get("type") not in ("split-foreach",):
                stack.extend(node.get("next") or [])

    # -- step summaries ---------------------------------------------------------

    def _take(self, task_id: str, step: str) -> TaskRecord:
        """The task's record, taken out of its step's tally until `_put` puts it back."""
        record = self.tasks.get(task_id)
        if record is None:
            record = TaskRecord(task_id, step)
            self.tasks[task_id] = record
        else:
            self._tallies.setdefault(record.step, StepTally()).remove(record)
        return record

    def _put(self, record: TaskRecord) -> None:
        self._tallies.setdefault(record.step, StepTally()).add(record)

    def _refresh_step(self, step: str) -> None:
        tally = self._tallies.get(step) or StepTally()
        self._set_step(step, tally.summary(self._expected.get(step, 0)))

    def _set_step(self, step: str, summary: StepSummary) -> None:
        if self.steps.get(step) != summary:
            self.steps[step] = summary
            self.step_changed.emit(step)

    def tasks_of(self, step: str) -> list[TaskRecord]:
        return sorted((t for t in self.tasks.values() if t.step == step),
                      key=lambda t: (t.foreach_index if t.foreach_index is not None else -1,
                                     int(t.task_id) if t.task_id.isdigit() else 0))

    def failed_task(self) -> TaskRecord | None:
        return next((t for t in self.tasks.values() if t.status == "failed"), None)


@dataclass
class StepTally:
    """Running counts of a step's tasks, so a summary costs O(1) however many tasks it has."""

    by_status: Counter = field(default_factory=Counter)
    first_start: float | None = None
    last_end: float | None = None
    attempt: int = 0

    def add(self, task: TaskRecord) -> None:
        self.by_status[task.status] += 1
        if task.start and (self.first_start is None or task.start < self.first_start):
            self.first_start = task.start
        if task.end is not None and (self.last_end is None or task.end > self.last_end):
            self.last_end = task.end
        self.attempt = max(self.attempt, task.attempt)

    def remove(self, task: TaskRecord) -> None:
        self.by_status[task.status] -= 1

    def summary(self, expected: int) -> StepSummary:
        count = sum(self.by_status.values())
        if not count:
            return StepSummary("pending", 0, expected)
        total = max(expected, count)
        done = self.by_status["succeeded"] + self.by_status["reused"]
        running = self.by_status["running"] > 0
        if self.by_status["failed"]:
            status = "failed"
        elif running or done < total:
            status = "cancelled" if not running and self.by_status["cancelled"] else "running"
        elif self.by_status["reused"] == count:
            status = "reused"
        else:
            status = "succeeded"
        duration = None
        if not running and self.first_start is not None and self.last_end is not None:
            duration = round(self.last_end - self.first_start, 3)
        return StepSummary(status, done, total, duration, self.attempt)

