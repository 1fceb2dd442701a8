"""`RunState`: the Qt face of a run fold (`flowdeck.observe.fold.RunFold`).

All folding happens in the core's pure-Python `RunFold`; this adapter only
turns what `apply` reports as changed into signals, so views redraw exactly
the steps and tasks that changed. The same adapter serves a live run and a
past run loaded from its `events.jsonl`.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QObject, Signal

from flowdeck.observe.fold import FoldChange, RunFold, StepSummary, TaskView
from flowdeck.store.events import read_events
from flowdeck.store.records import engine_run_id

__all__ = ["RunState", "StepSummary", "TaskView"]


class RunState(QObject):
    """Graph + task states of one run. Feed it events with `apply`."""

    step_changed = Signal(str)
    task_changed = Signal(str)
    run_changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.fold = RunFold()

    # -- loading ----------------------------------------------------------------------

    def reset(self, graph: dict[str, Any] | None = None) -> None:
        self.fold = RunFold(graph)
        self.run_changed.emit()

    def load_file(self, events_path: str) -> None:
        """A past run: fold its whole stream, then announce once."""
        self.fold = RunFold()
        for event in read_events(events_path):
            self.fold.apply(event)
        self.run_changed.emit()

    # -- folding ----------------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> None:
        self._announce(self.fold.apply(event))

    def mark_ended(self, status: str, when: float | None = None) -> None:
        """The process ended without a `run_finished` (killed, crashed, stopped), at `when`
        (now when not given: a live run's end was just seen)."""
        self._announce(self.fold.mark_ended(status, time.time() if when is None else when))

    def _announce(self, change: FoldChange) -> None:
        for task_id in change.tasks:
            self.task_changed.emit(task_id)
        for step in change.steps:
            self.step_changed.emit(step)
        if change.run:
            self.run_changed.emit()

    # -- what views read --------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.fold.run_id

    @property
    def engine_run_id(self) -> str:
        """What a user pastes into its engine's client (`records.engine_run_id`)."""
        return engine_run_id(self.run_id, self.fold.metaflow_run_id)

    @property
    def flow(self) -> str:
        return self.fold.flow

    @property
    def file(self) -> str:
        return self.fold.file

    @property
    def status(self) -> str:
        return self.fold.status

    @property
    def graph(self) -> dict[str, Any]:
        return self.fold.graph

    @property
    def params(self) -> dict[str, Any]:
        return self.fold.params

    @property
    def error(self) -> dict[str, Any] | None:
        return self.fold.error

    @property
    def steps(self) -> dict[str, StepSummary]:
        return self.fold.steps

    @property
    def tasks(self) -> dict[str, TaskView]:
        return self.fold.tasks

    def begin(self, run_id: str, flow: str, file: str) -> None:
        """A run about to start (before its first event): who it is, status running."""
        self.fold.run_id, self.fold.flow, self.fold.file = run_id, flow, file
        self.fold.status = "running"

    def describe(self, flow: str, file: str) -> None:
        """A flow never run: name the flow so the header can say so."""
        self.fold.flow, self.fold.file = flow, file

    def tasks_of(self, step: str) -> list[TaskView]:
        return self.fold.tasks_of(step)

    def failed_task(self) -> TaskView | None:
        return self.fold.failed_task()
