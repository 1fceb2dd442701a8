"""The run fold: a run's steps and tasks, folded from its event stream. Pure Python.

One fold for every consumer: the window's `RunState` (a thin Qt adapter that
emits what `apply` says changed), `flowdeck run`'s live table, and history
views of past runs. Per-step tallies make each event cost O(1) however many
tasks a step has; k/N totals come from the graph's foreach scopes
(`analysis.scopes`), so a step inside a foreach expects one task per item
even after joins of static splits inside that foreach.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import field, replace
from pathlib import Path
from typing import Any

from flowdeck.analysis.scopes import Scopes, foreach_scopes, nodes_of, switch_conditional
from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.events import (
    EngineRunId,
    Event,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskStarted,
    parse_event,
)
from flowdeck.store.status import (
    CANCELLED,
    FAILED,
    NOT_RUN,
    PENDING,
    REUSED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TASK_DONE,
)


@dataclass
class TaskView:
    """One task as the events describe it (its latest attempt)."""

    task_id: str
    step: str
    status: str = RUNNING
    attempt: int = 0
    start: float = 0.0
    end: float | None = None
    pid: int | None = None
    foreach_index: int | None = None
    logs: dict[str, str] | None = None  # relative to the run folder
    error: dict[str, Any] | None = None
    caught: dict[str, Any] | None = None  # the exception @catch turned into data
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    origin: str | None = None
    worker: str | None = None  # the remote worker that ran it (a Dask address); None: local

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.foreach_index if self.foreach_index is not None else -1,
                int(self.task_id) if self.task_id.isdigit() else 0)


@dataclass(frozen=True)
class StepSummary:
    """What a step looks like now; compared by value so views skip no-op updates."""

    status: str = PENDING
    done: int = 0
    total: int = 0
    duration: float | None = None
    attempt: int = 0
    #: For a switch step: the cases (step names) its tasks took so far, sorted.
    taken: tuple[str, ...] = ()


@dataclass
class FoldChange:
    """What one `apply` changed: steps whose summary changed, tasks, run-level fields."""

    steps: set[str] = field(default_factory=set)
    tasks: set[str] = field(default_factory=set)
    run: bool = False

    def __bool__(self) -> bool:
        return bool(self.steps or self.tasks or self.run)


@dataclass
class _Tally:
    """Running counts of one step's tasks."""

    by_status: Counter[str] = field(default_factory=Counter)
    first_start: float | None = None
    last_end: float | None = None
    attempt: int = 0

    def add(self, task: TaskView) -> None:
        self.by_status[task.status] += 1
        if task.start and (self.first_start is None or task.start < self.first_start):
            self.first_start = task.start
        if task.end is not None and (self.last_end is None or task.end > self.last_end):
            self.last_end = task.end
        self.attempt = max(self.attempt, task.attempt)

    def remove(self, task: TaskView) -> None:
        self.by_status[task.status] -= 1

    def summary(self, expected: int) -> StepSummary:
        count = sum(self.by_status.values())
        if not count:
            return StepSummary(PENDING, 0, expected)
        total = max(expected, count)
        done = self.by_status[SUCCEEDED] + self.by_status[REUSED]
        running = self.by_status[RUNNING] > 0
        if self.by_status[FAILED]:
            status = FAILED
        elif running or done < total:
            status = CANCELLED if not running and self.by_status[CANCELLED] else RUNNING
        elif self.by_status[REUSED] == count:
            status = REUSED
        else:
            status = SUCCEEDED
        duration = None
        if not running and self.first_start is not None and self.last_end is not None:
            duration = round(self.last_end - self.first_start, 3)
        return StepSummary(status, done, total, duration, self.attempt)


class RunFold:
    """Graph + task states of one run. Feed it events (typed or raw) with `apply`."""

    def __init__(self, graph: dict[str, Any] | None = None):
        self.run_id = ""
        self.flow = ""
        self.file = ""
        self.engine = "flowdeck"
        self.params: dict[str, Any] = {}
        self.status = PENDING
        self.started: float | None = None
        self.finished: float | None = None
        self.error: dict[str, Any] | None = None
        self.metaflow_run_id: str | None = None
        #: The latest event time seen: with `last_sign_of_life`, when a run that ended
        #: without saying so (killed) was last known alive.
        self.last_seen: float | None = None
        self.tasks: dict[str, TaskView] = {}
        self.steps: dict[str, StepSummary] = {}
        self.graph: dict[str, Any] = {}
        self._scopes = Scopes({})
        self._splits: dict[str, int] = {}  # foreach step -> items announced so far
        self._tallies: dict[str, _Tally] = {}
        self._switches: dict[str, list[str]] = {}  # switch step -> its cases' steps
        self._parents: dict[str, list[str]] = {}  # step -> steps with an edge into it
        self._taken: dict[str, set[str]] = {}  # switch step -> cases its tasks took
        self._decided: dict[str, set[str]] = {}  # switch step -> its tasks that took one
        self._conditional: dict[str, set[str]] = {}  # step -> switches deciding if it runs
        if graph:
            self.set_graph(graph)

    # -- graph ------------------------------------------------------------------------

    def set_graph(self, graph: dict[str, Any]) -> None:
        self.graph = graph
        self._scopes = foreach_scopes(graph)
        self._conditional = switch_conditional(graph)
        nodes = nodes_of(graph)
        self._switches = {name: [str(c) for c in node.get("next") or []]
                          for name, node in nodes.items() if node.get("type") == "split-switch"}
        self._parents = {name: [] for name in nodes}
        for name, node in nodes.items():
            for child in node.get("next") or []:
                if child in self._parents and child != name and name not in self._parents[child]:
                    self._parents[child].append(name)
        for name in nodes:
            self.steps.setdefault(name, StepSummary(PENDING, 0, self._expected(name)))

    def _expected(self, step: str) -> int:
        """Tasks the step will have: one per item of its innermost foreach, else one."""
        foreach = self._scopes.foreach_of(step)
        if foreach is None:
            return 1
        if any(self._scopes.foreach_of(s) == foreach for s in self._conditional.get(step, ())):
            return 0  # a switch in the same foreach picks it for some items only: count them
        return self._splits.get(foreach, 0)

    # -- events -----------------------------------------------------------------------

    def apply(self, event: Event | dict[str, Any]) -> FoldChange:
        typed = parse_event(event) if isinstance(event, dict) else event
        change = FoldChange()
        if typed is not None and typed.t and (self.last_seen is None or typed.t > self.last_seen):
            self.last_seen = typed.t
        if isinstance(typed, TaskStarted):
            self._task_started(typed, change)
        elif isinstance(typed, TaskFinished):
            self._task_finished(typed, change)
        elif isinstance(typed, RunStarted):
            self._run_started(typed, change)
        elif isinstance(typed, RunFinished):
            self._run_finished(typed, change)
        elif isinstance(typed, EngineRunId):
            self.metaflow_run_id = typed.engine_run_id
            change.run = True
        return change

    def _run_started(self, e: RunStarted, change: FoldChange) -> None:
        self.run_id, self.flow, self.file, self.engine = e.run_id, e.flow, e.file, e.engine
        self.params = dict(e.params)
        self.metaflow_run_id = e.metaflow_run_id or self.metaflow_run_id
        self.status = RUNNING
        self.started = e.t
        if e.graph:
            self.set_graph(e.graph)
            change.steps.update(self.steps)
        change.run = True

    def _task_started(self, e: TaskStarted, change: FoldChange) -> None:
        task = self._take(e.task_id, e.step)
        task.status = RUNNING
        task.attempt = e.attempt
        task.start = e.t
        task.end = None
        task.pid = e.pid
        task.worker = e.worker
        task.logs = e.logs
        task.foreach_index = e.foreach_index
        self._put(task)
        change.tasks.add(e.task_id)
        self._refresh(e.step, change)
        self._note_switch_choice(e, change)

    def _note_switch_choice(self, e: TaskStarted, change: FoldChange) -> None:
        """A task started from a switch task: that switch task took the case `e.step`.

        Read from `input_paths` (run/step/task), so no event field is needed and the
        Metaflow bridge's events work alike.
        """
        settled = False
        for path in e.input_paths:
            parts = path.split("/")
            if len(parts) < 3 or e.step not in self._switches.get(parts[-2], ()):
                continue
            switch = parts[-2]
            self._taken.setdefault(switch, set()).add(e.step)
            self._decided.setdefault(switch, set()).add(parts[-1])
            self._refresh(switch, change)
            settled = settled or self._all_decided(switch)
        if settled:  # only then can a case become "not taken": O(1) for the other events
            self._settle_skipped(change, run_over=False)

    def _all_decided(self, switch: str) -> bool:
        """Whether every task of a switch step has finished and taken its case."""
        tally = self._tallies.get(switch)
        done = tally.by_status[SUCCEEDED] + tally.by_status[REUSED] if tally else 0
        return self.steps.get(switch, StepSummary()).status in TASK_DONE and done > 0 and \
            len(self._decided.get(switch, ())) >= done

    def _settle_skipped(self, change: FoldChange, run_over: bool) -> None:
        """Mark the steps no task will reach because their switches took other cases.

        A step without tasks is skipped when every edge into it is dead: it comes from
        a skipped step, or from a switch whose tasks all finished and took other cases.
        Once a run has succeeded, every step without tasks was skipped.
        """
        if not self._switches and not run_over:
            return
        order = list(self._parents)
        skipped: set[str] = {s for s in order if self.steps.get(s, StepSummary()).status
                             == SKIPPED}
        for _ in range(len(order) + 1):
            grew = False
            for step in order:
                if step in skipped or self._tallies.get(step) and \
                        sum(self._tallies[step].by_status.values()):
                    continue
                parents = self._parents[step]
                if (run_over and self.status == SUCCEEDED) or (
                        parents and all(self._dead_edge(p, step, skipped) for p in parents)):
                    skipped.add(step)
                    grew = True
                    self._set_step(step, StepSummary(SKIPPED, 0, 0), change)
            if not grew:
                break

    def _settle_not_run(self, change: FoldChange) -> None:
        """Once a run has ended without succeeding, a step still pending was never reached:
        it is `not run` (left pending, it looked like a step about to start)."""
        if self.status in (SUCCEEDED, RUNNING, PENDING):
            return
        for step in self._parents:
            summary = self.steps.get(step, StepSummary())
            if summary.status == PENDING and not sum(
                    self._tallies[step].by_status.values() if step in self._tallies else []):
                self._set_step(step, StepSummary(NOT_RUN, 0, summary.total), change)

    def _dead_edge(self, parent: str, step: str, skipped: set[str]) -> bool:
        """An edge no task will take: from a skipped step, or a switch's case not taken."""
        if parent in skipped:
            return True
        if parent not in self._switches or step in self._taken.get(parent, ()):
            return False
        return self._all_decided(parent)

    def _task_finished(self, e: TaskFinished, change: FoldChange) -> None:
        task = self._take(e.task_id, e.step)
        task.status = RUNNING if e.will_retry else e.status
        task.attempt = e.attempt
        task.end = e.t
        task.error = e.error
        task.caught = e.caught_error
        task.artifacts = list(e.artifacts)
        task.origin = e.origin
        if not task.start:
            task.start = e.t
        self._put(task)
        change.tasks.add(e.task_id)
        self._refresh(e.step, change)
        if e.foreach_splits and e.status in TASK_DONE:
            self._splits[e.step] = self._splits.get(e.step, 0) + e.foreach_splits
            for step in self._body_of(e.step):
                self._refresh(step, change)

    def _body_of(self, foreach_step: str) -> list[str]:
        return [s for s in self._scopes.stacks if self._scopes.foreach_of(s) == foreach_step]

    def _run_finished(self, e: RunFinished, change: FoldChange) -> None:
        self.status = e.status
        self.finished = e.t
        self.error = e.error
        change.run = True
        self._settle_skipped(change, run_over=True)
        self._settle_not_run(change)
        if self.status == CANCELLED:
            for step, summary in list(self.steps.items()):
                if summary.status == RUNNING:
                    self._set_step(step, StepSummary(CANCELLED, summary.done, summary.total,
                                                     summary.duration, summary.attempt), change)

    def last_sign_of_life(self, events_path: str | os.PathLike[str]) -> float | None:
        """When a run that ended without saying so was last known alive: its latest event,
        its event stream's last write, or the last write to the log of a task it was running
        (a task that trained for an hour wrote no event but its output). A past run killed
        long ago ends there, not when someone looks at it; never after now (a file dated by
        another clock, or copied); None when nothing tells."""
        events = Path(events_path)
        folder = events.parent  # the run's folder: task logs are named relative to it
        paths = [events] + [folder / name for task in self.tasks.values()
                                           if task.status == RUNNING
                                           for name in (task.logs or {}).values()]
        times = [self.last_seen] if self.last_seen else []
        for path in paths:
            try:
                times.append(path.stat().st_mtime)
            except OSError:  # not written yet, or gone
                continue
        return min(max(times), time.time()) if times else None

    def mark_ended(self, status: str, when: float) -> FoldChange:
        """The process ended without a `run_finished` (killed, crashed, stopped)."""
        change = FoldChange()
        if self.status not in (RUNNING, PENDING):
            return change
        self.status = status
        self.finished = when
        for task in list(self.tasks.values()):
            if task.status == RUNNING:
                self._take(task.task_id, task.step)
                task.status = CANCELLED if status == CANCELLED else FAILED
                task.end = when
                self._put(task)
                change.tasks.add(task.task_id)
        for step in list(self.steps):
            self._refresh(step, change)
        self._settle_not_run(change)
        change.run = True
        return change

    # -- tallies ----------------------------------------------------------------------

    def _take(self, task_id: str, step: str) -> TaskView:
        """The task's view, taken out of its step's tally until `_put` puts it back."""
        task = self.tasks.get(task_id)
        if task is None:
            task = TaskView(task_id, step)
            self.tasks[task_id] = task
        else:
            self._tallies.setdefault(task.step, _Tally()).remove(task)
        return task

    def _put(self, task: TaskView) -> None:
        self._tallies.setdefault(task.step, _Tally()).add(task)

    def _refresh(self, step: str, change: FoldChange) -> None:
        tally = self._tallies.get(step) or _Tally()
        summary = tally.summary(self._expected(step))
        if summary.status in TASK_DONE and not self._items_known(step):
            summary = StepSummary(RUNNING, summary.done, summary.total, None, summary.attempt)
        if summary.status == PENDING and self.steps.get(step, StepSummary()).status == SKIPPED:
            return  # nothing reached it, and nothing will
        if step in self._switches:
            summary = replace(summary, taken=tuple(sorted(self._taken.get(step, ()))))
        self._set_step(step, summary, change)

    def _items_known(self, step: str) -> bool:
        """Whether every task of the step's foreach has announced its items (so N is final)."""
        foreach = self._scopes.foreach_of(step)
        if foreach is None or self.status not in (RUNNING, PENDING):
            return True
        return self.steps.get(foreach, StepSummary()).status in TASK_DONE

    def _set_step(self, step: str, summary: StepSummary, change: FoldChange) -> None:
        if self.steps.get(step) != summary:
            self.steps[step] = summary
            change.steps.add(step)

    # -- queries ----------------------------------------------------------------------

    def tasks_of(self, step: str) -> list[TaskView]:
        return sorted((t for t in self.tasks.values() if t.step == step),
                      key=lambda t: t.sort_key)

    def failed_task(self) -> TaskView | None:
        return next((t for t in self.tasks.values() if t.status == FAILED), None)

    def is_foreach_body(self, step: str) -> bool:
        return self._scopes.foreach_of(step) is not None
