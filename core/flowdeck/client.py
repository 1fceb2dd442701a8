"""Read past runs: `Flow`, `Run`, `Step`, `Task`, in the style of Metaflow's client.

    Flow("TrainFlow").latest_run["end"].task.data.best

Everything is read from the datastore on disk, lazily: listing runs reads
only `run.json` files, and an artifact is unpickled only when accessed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from flowdeck.store.blobs import BlobRef, BlobStore
from flowdeck.store.events import read_events
from flowdeck.store.index import RunEntry, RunIndex, read_run
from flowdeck.store.layout import InvalidId, RunLayout, attempts_in, find_root
from flowdeck.store.records import AttemptRecord, RunRecord, final_attempt
from flowdeck.store.status import DAMAGED, RUN_FINAL, RUNNING, TASK_DONE, TASK_FINAL


class ClientError(LookupError):
    """A flow, run, step or task that does not exist (the message says where we looked)."""


class MetaflowData:
    """`task.data.name`: artifacts as attributes, loaded on first access."""

    def __init__(self, task: "Task"):
        self._task = task

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._task[name].data

    def __contains__(self, name: str) -> bool:
        return name in self._task.artifact_refs

    def __dir__(self) -> list[str]:
        return sorted(self._task.artifact_refs)


class DataArtifact:
    """One artifact of a task: name, type name, size in bytes, `.data` (unpickled on access)."""

    def __init__(self, task: "Task", name: str, ref: BlobRef):
        self.task = task
        self.id = name
        self.ref = ref

    @property
    def data(self) -> Any:
        return self.task.run.blobs.get(self.ref.sha)

    @property
    def size(self) -> int:
        return self.ref.size

    @property
    def type(self) -> str:
        return self.ref.type

    @property
    def sha(self) -> str:
        return self.ref.sha

    def __repr__(self) -> str:
        return f"DataArtifact('{self.task.pathspec}/{self.id}')"


class Task:
    """One task of a run (its final attempt)."""

    def __init__(self, run: "Run", step: str, task_id: str):
        self.run = run
        self.step_name = step
        self.id = task_id
        self.dir = run.layout.task_dir(run.id, step, task_id)
        self._meta: dict[str, Any] | None = None
        self._record: AttemptRecord | None = None

    @property
    def pathspec(self) -> str:
        return f"{self.run.pathspec}/{self.step_name}/{self.id}"

    @property
    def attempts(self) -> list[int]:
        return attempts_in(self.dir)

    @property
    def record(self) -> AttemptRecord | None:
        """The final attempt's record; None while the task has not written one."""
        if self._record is None:
            self._record = final_attempt(self.dir)
        return self._record

    @property
    def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            record = self.record
            if record is not None:
                self._meta = record.as_json()
            else:
                self._meta = {"status": "running" if self.run.status == "running" else "unknown"}
        return self._meta

    @property
    def status(self) -> str:
        return self.metadata.get("status", "unknown")

    @property
    def successful(self) -> bool:
        return self.status in TASK_DONE

    @property
    def finished(self) -> bool:
        return self.status in TASK_FINAL

    @property
    def attempt(self) -> int:
        return int(self.metadata.get("attempt", 0))

    @property
    def index(self) -> int | None:
        frames = [f for f in self.metadata.get("frames", []) if f.get("kind") == "foreach"]
        return frames[-1]["index"] if frames else None

    @property
    def foreach_indices(self) -> tuple[int, ...]:
        """Position in every enclosing foreach, outermost first (sorts tasks as their items)."""
        return tuple(f["index"] for f in self.metadata.get("frames", [])
                     if f.get("kind") == "foreach")

    @property
    def exception(self) -> dict[str, Any] | None:
        return self.metadata.get("error") if self.status == "failed" else None

    @property
    def origin(self) -> str | None:
        return self.metadata.get("origin")

    @property
    def artifact_refs(self) -> dict[str, BlobRef]:
        return {k: BlobRef.from_dict(v) for k, v in (self.metadata.get("artifacts") or {}).items()}

    @property
    def data(self) -> MetaflowData:
        return MetaflowData(self)

    @property
    def artifacts(self) -> list[DataArtifact]:
        return [DataArtifact(self, k, v) for k, v in self.artifact_refs.items()]

    def __getitem__(self, name: str) -> DataArtifact:
        refs = self.artifact_refs
        if name not in refs:
            raise KeyError(f"Task {self.pathspec} has no artifact {name!r}; it has "
                           f"{', '.join(sorted(refs)) or 'none'}.")
        return DataArtifact(self, name, refs[name])

    def _log(self, kind: str) -> str:
        record = self.record
        attempt = record.attempt if record else 0
        origin = record.origin if record else None
        paths = self.run.layout.log_paths(self.run.id, self.step_name, self.id, attempt, origin,
                                          record.origin_attempt if record else 0)
        try:
            return paths["stdout" if kind == "out" else "stderr"].read_bytes().decode(
                "utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def stdout(self) -> str:
        return self._log("out")

    @property
    def stderr(self) -> str:
        return self._log("err")

    @property
    def duration(self) -> float | None:
        return self.metadata.get("duration")

    def __repr__(self) -> str:
        return f"Task('{self.pathspec}')"


class Step:
    """The tasks of one step in a run."""

    def __init__(self, run: "Run", name: str):
        self.run = run
        self.id = name
        self.dir = run.layout.step_dir(run.id, name)

    @property
    def pathspec(self) -> str:
        return f"{self.run.pathspec}/{self.id}"

    def tasks(self) -> list[Task]:
        """Tasks in foreach order (then task id)."""
        if not self.dir.is_dir():
            return []
        tasks = [Task(self.run, self.id, p.name) for p in self.dir.iterdir() if p.is_dir()]
        return sorted(tasks, key=lambda t: (t.foreach_indices, int(t.id) if t.id.isdigit() else 0))

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks())

    @property
    def task(self) -> Task:
        tasks = self.tasks()
        if not tasks:
            raise ClientError(f"Step {self.pathspec} has no tasks.")
        return tasks[0]

    def __getitem__(self, task_id: str) -> Task:
        try:
            task = Task(self.run, self.id, str(task_id))
        except InvalidId as exc:
            raise ClientError(f"No task {task_id!r} in {self.pathspec}: {exc}") from None
        if not task.dir.is_dir():
            raise ClientError(f"No task {task_id} in {self.pathspec}.")
        return task

    def __repr__(self) -> str:
        return f"Step('{self.pathspec}')"


class Run:
    """One run of a flow: `Run("TrainFlow/1764000000000")`.

    A run whose `run.json` is damaged still opens: its status is `damaged` and
    `damage` says which file and why; reading its record raises that error.
    """

    def __init__(self, pathspec: str, root: str | os.PathLike[str] | None = None,
                 _entry: RunEntry | None = None):
        flow, _, run_id = pathspec.partition("/")
        if not run_id:
            raise ClientError(f"A run's pathspec is FlowName/run_id, not {pathspec!r}.")
        self.flow_name = flow
        self.id = run_id
        self.layout = RunLayout(find_root(flow, root), flow)
        self.blobs = BlobStore(self.layout.root)
        try:
            self.dir = self.layout.run_dir(run_id)
        except InvalidId as exc:
            raise ClientError(f"No run {pathspec}: {exc}") from None
        self._entry = _entry
        if _entry is None and not self.layout.run_json(run_id).exists():
            raise ClientError(f"No run {pathspec} under {self.layout.root}.")

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.id}"

    @property
    def entry(self) -> RunEntry:
        record = self._entry.record if self._entry else None
        if record is None or record.status == RUNNING:  # still being written: read again
            self._entry = read_run(self.layout, self.id)
        assert self._entry is not None
        return self._entry

    @property
    def damage(self) -> str | None:
        return self.entry.damage

    @property
    def record(self) -> RunRecord:
        """The run record; DamagedRecord (naming the file) when it cannot be read."""
        entry = self.entry
        if entry.record is None:
            raise ClientError(entry.damage or f"{self.pathspec} has no readable run.json")
        return entry.record

    @property
    def info(self) -> dict[str, Any]:
        return self.record.as_json()

    @property
    def status(self) -> str:
        """succeeded, failed, cancelled, running, crashed (its process died mid-run) or damaged."""
        return self.entry.status

    @property
    def successful(self) -> bool:
        return self.status == "succeeded"

    @property
    def finished(self) -> bool:
        return self.status in RUN_FINAL or self.status == DAMAGED

    @property
    def created_at(self) -> float:
        return self.entry.start

    @property
    def finished_at(self) -> float | None:
        return self.record.end

    @property
    def duration(self) -> float | None:
        end = self.finished_at
        return end - self.created_at if end else None

    @property
    def parameters(self) -> dict[str, Any]:
        return self.record.param_values

    @property
    def origin_run_id(self) -> str | None:
        return self.record.origin_run_id

    @property
    def step_hashes(self) -> dict[str, str]:
        return dict(self.record.step_hashes)

    @property
    def events(self) -> list[dict[str, Any]]:
        return read_events(self.layout.events(self.id))

    def steps(self) -> list[Step]:
        return [Step(self, p.name) for p in sorted(self.dir.iterdir()) if p.is_dir()]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps())

    def __getitem__(self, step: str) -> Step:
        if not step.isidentifier() or not (self.dir / step).is_dir():
            raise ClientError(f"Run {self.pathspec} has no step {step!r} (it may not have "
                              "run yet).")
        return Step(self, step)

    @property
    def end_task(self) -> Task | None:
        try:
            return self["end"].task
        except ClientError:
            return None

    @property
    def data(self) -> MetaflowData | None:
        """The end step's artifacts, as Metaflow's `run.data`."""
        task = self.end_task
        return task.data if task else None

    @property
    def exception(self) -> dict[str, Any] | None:
        return self.record.error or next(
            (t.exception for s in self.steps() for t in s.tasks() if t.exception), None)

    def __repr__(self) -> str:
        return f"Run('{self.pathspec}')"


class Flow:
    """All runs of one flow, newest first."""

    def __init__(self, name: str, root: str | os.PathLike[str] | None = None):
        self.id = name
        self.layout = RunLayout(find_root(name, root), name)
        self.index = RunIndex(self.layout)

    def runs(self) -> list[Run]:
        """Every run, newest first; a damaged run is listed with status `damaged`."""
        return [Run(f"{self.id}/{e.run_id}", root=self.layout.root, _entry=e)
                for e in self.index.runs()]

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs())

    def __getitem__(self, run_id: str) -> Run:
        return Run(f"{self.id}/{run_id}", root=self.layout.root)

    @property
    def latest_run(self) -> Run | None:
        entry = self.index.latest()
        return Run(f"{self.id}/{entry.run_id}", root=self.layout.root, _entry=entry) \
            if entry else None

    @property
    def latest_successful_run(self) -> Run | None:
        entry = self.index.latest_successful()
        return Run(f"{self.id}/{entry.run_id}", root=self.layout.root, _entry=entry) \
            if entry else None

    def __repr__(self) -> str:
        return f"Flow('{self.id}')"
