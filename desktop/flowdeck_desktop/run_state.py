"""`RunState`: a run's graph and task states, folded from its event stream.

The same fold serves a live run (events as they arrive) and a past run
(its `events.jsonl` read from disk), so history and live views share one
code path. Signals fire only when a step's summary really changes, which
keeps a 10,000-task foreach from flooding the views.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from flowdeck.events import read_events


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
        record = self.tasks.get(task_id)
        if record is None:
            record = TaskRecord(task_id, e["step"])
            self.tasks[task_id] = record
        record.status = "running"
        record.attempt = int(e.get("attempt", 0))
        record.start = float(e.get("t") or time.time())
        record.end = None
        record.pid = e.get("pid")
        record.logs = e.get("logs")
        record.foreach_index = foreach.get("index")
        self.task_changed.emit(task_id)
        self._refresh_step(e["step"])

    def _on_task_finished(self, e: dict[str, Any]) -> None:
        task_id = str(e["task_id"])
        record = self.tasks.setdefault(task_id, TaskRecord(task_id, e["step"]))
        status = e.get("status", "failed")
        record.status = "running" if e.get("will_retry") else status
        record.attempt = int(e.get("attempt", 0))
        record.end = float(e.get("t") or time.time())
        record.error = e.get("error")
        record.artifacts = list(e.get("artifacts") or [])
        record.origin = e.get("origin")
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
        for task in self.tasks.values():
            if task.status == "running":
                task.status = "cancelled" if status == "cancelled" else "failed"
                task.end = self.finished
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

    def _refresh_step(self, step: str) -> None:
        tasks = [t for t in self.tasks.values() if t.step == step]
        self._set_step(step, summarize(tasks, self._expected.get(step, 0)))

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


def summarize(tasks: list[TaskRecord], expected: int) -> StepSummary:
    """Fold a step's tasks into the one box the DAG draws."""
    if not tasks:
        return StepSummary("pending", 0, expected)
    total = max(expected, len(tasks))
    statuses = [t.status for t in tasks]
    done = sum(1 for s in statuses if s in ("succeeded", "reused"))
    ends = [t.end for t in tasks if t.end is not None]
    start = min(t.start for t in tasks)
    running = "running" in statuses
    duration = (time.time() if running or not ends else max(ends)) - start
    attempt = max(t.attempt for t in tasks)
    if "failed" in statuses:
        status = "failed"
    elif running or done < total:
        status = "running" if running else ("cancelled" if "cancelled" in statuses else "running")
    elif all(s == "reused" for s in statuses):
        status = "reused"
    else:
        status = "succeeded"
    return StepSummary(status, done, total, None if running else round(duration, 3), attempt)
