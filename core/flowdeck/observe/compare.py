"""Two runs of a flow side by side: parameters, step durations and artifacts. Pure Python.

Everything here comes from records (`run.json` and each task's final attempt record),
never from an artifact's value: two artifacts are equal when their blobs have the same
content hash, which the attempt records already hold. So comparing two runs unpickles
nothing and runs no code from either run (the window may compare another user's runs).

Tasks are matched across the runs by their place in the fan-out (the attempt record's
`signature`, the same identity resume uses), so item 3 of a foreach is compared with
item 3 of the other run whatever task ids the runs gave them.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import field
from typing import Any

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.blobs import SHORT_TEXT_MAX
from flowdeck.store.index import RunEntry, RunIndex
from flowdeck.store.layout import InvalidId, RunLayout
from flowdeck.store.records import AttemptRecord, ParamRecord, RunRecord
from flowdeck.store.status import REUSED, TASK_DONE


@dataclass(frozen=True)
class RunSide:
    """What compare reads of one run: its entry (record, status) and its tasks' final
    attempts, with the messages of the records that could not be read."""

    entry: RunEntry
    attempts: list[AttemptRecord]
    problems: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.entry.run_id

    @property
    def record(self) -> RunRecord | None:
        return self.entry.record


def read_side(layout: RunLayout, run_id: str) -> RunSide:
    """One run as compare needs it, read through the store's index (no value is loaded)."""
    index = RunIndex(layout)
    try:
        entry = index.read(run_id)
        attempts, damaged = index.final_attempts(run_id)
    except InvalidId as exc:
        raise ValueError(f"Cannot compare run {run_id!r} of {layout.flow}: {exc}") from None
    problems = ([entry.damage] if entry.damage else []) + damaged
    return RunSide(entry, attempts, problems)


# -- parameters ------------------------------------------------------------------------

@dataclass(frozen=True)
class ParamDiff:
    """One parameter in both runs; None where a run has no such parameter."""

    name: str
    left: str | None
    right: str | None
    differs: bool


def _param_text(param: ParamRecord) -> str:
    value = param.value
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _param_key(record: RunRecord, param: ParamRecord) -> tuple[str, Any]:
    """What decides equality: the value's blob hash when the run stored one, else its JSON."""
    ref = record.param_refs.get(param.attr) or record.param_refs.get(param.name)
    if isinstance(ref, dict) and isinstance(ref.get("sha"), str):
        return ("sha", ref["sha"])
    return ("json", json.dumps(param.value, sort_keys=True, default=str))


def compare_params(left: RunRecord | None, right: RunRecord | None) -> list[ParamDiff]:
    """Parameters by attribute name, in the left run's order, then the right's extras."""
    lefts = {p.attr: p for p in (left.params if left else [])}
    rights = {p.attr: p for p in (right.params if right else [])}
    out = []
    for name in [*lefts, *(n for n in rights if n not in lefts)]:
        a, b = lefts.get(name), rights.get(name)
        if a is not None and b is not None and left is not None and right is not None:
            key_a, key_b = _param_key(left, a), _param_key(right, b)
            differs = key_a != key_b if key_a[0] == key_b[0] else _param_text(a) != _param_text(b)
        else:
            differs = True
        out.append(ParamDiff(name, _param_text(a) if a else None,
                             _param_text(b) if b else None, differs))
    return out


# -- steps -----------------------------------------------------------------------------

@dataclass(frozen=True)
class StepTimes:
    """A step's tasks in one run: how many, how they ended, and their durations."""

    tasks: int
    done: int
    reused: int
    failed: int
    total: float
    median: float
    first_start: float

    @classmethod
    def of(cls, attempts: list[AttemptRecord]) -> "StepTimes":
        durations = [a.duration for a in attempts]
        return cls(tasks=len(attempts), done=sum(a.status in TASK_DONE for a in attempts),
                   reused=sum(a.status == REUSED for a in attempts),
                   failed=sum(a.status not in TASK_DONE for a in attempts),
                   total=sum(durations), median=statistics.median(durations) if durations
                   else 0.0, first_start=min((a.start for a in attempts), default=0.0))

    @property
    def counts(self) -> tuple[int, int, int]:
        return (self.tasks, self.done, self.failed)


@dataclass(frozen=True)
class StepDiff:
    """One step in both runs (None where a run has no task of it).

    `code_changed` compares the step's source hash in the two run records (None when a
    record lacks it). Durations always differ a little, so they never count as a
    difference; task counts, failures and changed code do.
    """

    step: str
    left: StepTimes | None
    right: StepTimes | None
    code_changed: bool | None

    @property
    def counts_differ(self) -> bool:
        if self.left is None or self.right is None:
            return True
        return self.left.counts != self.right.counts

    @property
    def differs(self) -> bool:
        return self.counts_differ or bool(self.code_changed)

    @property
    def change(self) -> float | None:
        """Right's total duration relative to left's (0.1 = 10 % longer); None if unknown."""
        if self.left is None or self.right is None or self.left.total <= 0:
            return None
        return self.right.total / self.left.total - 1.0


def _by_step(attempts: list[AttemptRecord]) -> dict[str, list[AttemptRecord]]:
    steps: dict[str, list[AttemptRecord]] = {}
    for attempt in attempts:
        steps.setdefault(attempt.step, []).append(attempt)
    return steps


def compare_steps(left: RunSide, right: RunSide) -> list[StepDiff]:
    """Every step either run has tasks of, in the order the steps first started."""
    lefts, rights = _by_step(left.attempts), _by_step(right.attempts)
    times = {step: StepTimes.of(a) for step, a in lefts.items()}
    other = {step: StepTimes.of(a) for step, a in rights.items()}
    hashes_a = left.record.step_hashes if left.record else {}
    hashes_b = right.record.step_hashes if right.record else {}

    def started(step: str) -> tuple[float, str]:
        found = [t.first_start for t in (times.get(step), other.get(step)) if t is not None]
        return (min(found), step)

    out = []
    for step in sorted(set(times) | set(other), key=started):
        a, b = hashes_a.get(step), hashes_b.get(step)
        out.append(StepDiff(step, times.get(step), other.get(step),
                            None if not a or not b else a != b))
    return out


# -- artifacts -------------------------------------------------------------------------

@dataclass(frozen=True)
class ArtifactCell:
    """An artifact as its record names it: content hash, size in bytes, type name, and
    the text of a small scalar value where the task recorded one (`BlobRef.short`)."""

    sha: str
    size: int
    type: str
    short: str | None = None

    @classmethod
    def of(cls, ref: dict[str, Any]) -> "ArtifactCell":
        short = ref.get("short")
        return cls(str(ref.get("sha", "")), int(ref.get("size") or 0),
                   str(ref.get("type") or "object"),
                   short if isinstance(short, str) and len(short) <= SHORT_TEXT_MAX else None)


@dataclass(frozen=True)
class TaskArtifact:
    """One artifact of one task place (a foreach item, a branch) in both runs."""

    place: str  # "" for a step's only task; "grid[3]", "branch 1"... otherwise
    left: ArtifactCell | None
    right: ArtifactCell | None
    left_task: str | None = None  # the task ids, to name them
    right_task: str | None = None

    @property
    def differs(self) -> bool:
        if self.left is None or self.right is None:
            return True
        return self.left.sha != self.right.sha

    @property
    def change(self) -> str:
        """How this place differs, in the words of the whole view: "", "differs", or
        "only in A" / "only in B" when one run has no such artifact here."""
        if self.left is None:
            return "only in B"
        if self.right is None:
            return "only in A"
        return "differs" if self.differs else ""


@dataclass(frozen=True)
class ArtifactDiff:
    """One artifact of one step, per task place; `differs` if any place differs."""

    step: str
    name: str
    tasks: list[TaskArtifact]

    @property
    def differing(self) -> int:
        return sum(t.differs for t in self.tasks)

    @property
    def differs(self) -> bool:
        return self.differing > 0

    @property
    def single(self) -> bool:
        """True when the step ran one task (nothing to aggregate)."""
        return len(self.tasks) == 1

    @property
    def change(self) -> str:
        """The step's word for it: a single task's own, "only in A/B" when every task
        differing lacks it on the same side, else how many of its tasks differ."""
        if self.single:
            return self.tasks[0].change
        words = {t.change for t in self.tasks if t.differs}
        if len(words) == 1 and words != {"differs"}:
            return f"{words.pop()} ({self.differing} of {len(self.tasks)} tasks)"
        return f"{self.differing} of {len(self.tasks)} tasks differ" if words else ""


def place_of(attempt: AttemptRecord) -> str:
    """A task's place in its fan-out, as a person reads it: `grid[3]`, `branch 1`,
    `round 2`, `control` (nested places joined by ` / `); "" outside any split."""
    parts = []
    for frame in attempt.frames:
        kind, index = frame.get("kind"), frame.get("index")
        if kind == "foreach":
            parts.append(f"{frame.get('var') or 'item'}[{index}]")
        elif kind == "split":
            parts.append(f"branch {index}")
        elif kind == "loop":
            parts.append(f"round {index}")
        elif kind == "control":
            parts.append("control")
    return " / ".join(parts)


def _order(attempt: AttemptRecord) -> tuple[Any, ...]:
    return tuple((str(f.get("split_step")), int(f.get("index") or 0)) for f in attempt.frames)


def _places(attempts: list[AttemptRecord]) -> dict[str, AttemptRecord]:
    """A step's tasks by their place (signature), in fan-out order; a repeated signature
    (which a correct run never writes) keeps each task apart under its id."""
    out: dict[str, AttemptRecord] = {}
    for attempt in sorted(attempts, key=lambda a: (_order(a), a.task_id)):
        key = attempt.signature
        if key in out:
            key = f"{key}#{attempt.task_id}"
        out[key] = attempt
    return out


def compare_artifacts(left: RunSide, right: RunSide, steps: list[str]) -> list[ArtifactDiff]:
    """Per step (in `steps` order), per artifact name (sorted), per task place."""
    lefts, rights = _by_step(left.attempts), _by_step(right.attempts)
    out = []
    for step in steps:
        a_places, b_places = _places(lefts.get(step, [])), _places(rights.get(step, []))
        keys = [*a_places, *(k for k in b_places if k not in a_places)]
        names = sorted({n for p in (*a_places.values(), *b_places.values())
                        for n in p.artifacts})
        for name in names:
            tasks = []
            for key in keys:
                a, b = a_places.get(key), b_places.get(key)
                ref_a = a.artifacts.get(name) if a else None
                ref_b = b.artifacts.get(name) if b else None
                if ref_a is None and ref_b is None:
                    continue
                shown = a if a is not None else b
                assert shown is not None
                tasks.append(TaskArtifact(place_of(shown),
                                          ArtifactCell.of(ref_a) if ref_a else None,
                                          ArtifactCell.of(ref_b) if ref_b else None,
                                          a.task_id if a else None, b.task_id if b else None))
            out.append(ArtifactDiff(step, name, tasks))
    return out


# -- the whole comparison --------------------------------------------------------------

@dataclass(frozen=True)
class RunComparison:
    """Two runs side by side (left is usually the older one)."""

    left: RunSide
    right: RunSide
    params: list[ParamDiff]
    steps: list[StepDiff]
    artifacts: list[ArtifactDiff]

    @property
    def problems(self) -> list[str]:
        return [*self.left.problems, *self.right.problems]

    @property
    def engines_unread(self) -> list[str]:
        return engines_unread(self.left, self.right)

    def summary(self) -> str:
        """One line: how many parameters, steps and artifacts differ."""
        params = sum(p.differs for p in self.params)
        unread = self.engines_unread
        if unread:
            engines = " and ".join(e.capitalize() for e in unread)
            return (f"{params} of {len(self.params)} parameters differ; steps and artifacts "
                    f"are not compared for a run of {engines}'s engine, whose tasks are in its "
                    "own datastore (select the run in History to see them)")
        steps = sum(s.differs for s in self.steps)
        names = {a.name for a in self.artifacts}
        differing = {a.name for a in self.artifacts if a.differs}
        return (f"{params} of {len(self.params)} parameters, {steps} of {len(self.steps)} "
                f"steps and {len(differing)} of {len(names)} artifacts differ")


def engines_unread(left: RunSide, right: RunSide) -> list[str]:
    """The engines other than Flowdeck's that made either run: their tasks and artifacts
    are in their own datastore (Metaflow's), which this comparison does not read, so steps
    and artifacts would compare as empty ("0 of 0 differ")."""
    engines = {side.record.engine for side in (left, right) if side.record}
    return sorted(e for e in engines if e != "flowdeck")


def compare_sides(left: RunSide, right: RunSide) -> RunComparison:
    """Compare two runs read with `read_side`. Parameters are artifacts of every step too;
    they are compared once, as parameters, not again under each step. A run another
    engine made has no task records here (`RunComparison.engines_unread`): its steps and
    artifacts are left out, not listed as all different beside a run of Flowdeck's."""
    params = compare_params(left.record, right.record)
    if engines_unread(left, right):
        return RunComparison(left, right, params, [], [])
    steps = compare_steps(left, right)
    names = {p.name for p in params}
    artifacts = [a for a in compare_artifacts(left, right, [s.step for s in steps])
                 if a.name not in names]
    return RunComparison(left, right, params, steps, artifacts)


def compare_runs(layout: RunLayout, left_id: str, right_id: str) -> RunComparison:
    """Compare two runs of one flow from their records (ValueError for an invalid id)."""
    return compare_sides(read_side(layout, left_id), read_side(layout, right_id))
