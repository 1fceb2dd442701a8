"""Read past runs: `Flow`, `Run`, `Step`, `Task`, in the style of Metaflow's client.

    Flow("TrainFlow").latest_run["end"].task.data.best

Everything is read from the datastore on disk, lazily: listing runs reads
only `run.json` files, and an artifact is unpickled only when accessed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from flowdeck.store.blobs import DEFAULT_DIRNAME, ROOT_ENV, BlobRef, FlowDatastore, read_json
from flowdeck.store.events import read_events


class ClientError(LookupError):
    """A flow, run, step or task that does not exist (the message says where we looked)."""


def find_root(flow_name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where a flow's runs live: the given root, $FLOWDECK_HOME, or `.flowdeck/` upward from the cwd."""
    if root is not None:
        return Path(root)
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).expanduser()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_DIRNAME
        if (candidate / flow_name).is_dir():
            return candidate
    main_file = getattr(__import__("__main__"), "__file__", None)
    if main_file:
        candidate = Path(main_file).resolve().parent / DEFAULT_DIRNAME
        if (candidate / flow_name).is_dir():
            return candidate
    return here / DEFAULT_DIRNAME


def _hostname() -> str:
    return os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        return self.task.datastore.blobs.get(self.ref.sha)

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
        self.datastore = run.datastore
        self.step_name = step
        self.id = task_id
        self.dir = run.dir / step / task_id
        self._meta: dict[str, Any] | None = None

    @property
    def pathspec(self) -> str:
        return f"{self.run.pathspec}/{self.step_name}/{self.id}"

    @property
    def attempts(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.dir.glob("attempt-*.json"))

    @property
    def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            attempts = self.attempts
            if attempts:
                self._meta = read_json(self.dir / f"attempt-{attempts[-1]}.json")
            else:
                self._meta = {"status": "running" if self.run.status == "running" else "unknown"}
        return self._meta

    @property
    def status(self) -> str:
        return self.metadata.get("status", "unknown")

    @property
    def successful(self) -> bool:
        return self.status in ("succeeded", "reused")

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "reused", "failed", "cancelled")

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
        meta = self.metadata
        task_dir = self.dir
        attempt = self.attempt
        if meta.get("origin"):  # a reused task's logs are the origin task's
            origin_run, step, task_id = meta["origin"].split("/")
            task_dir = self.run.datastore.task_dir(origin_run, step, task_id)
            attempt = int(meta.get("origin_attempt", 0))
        path = task_dir / f"attempt-{attempt}.{kind}"
        try:
            return path.read_bytes().decode("utf-8", errors="replace")
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
        self.dir = run.dir / name

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
        task = Task(self.run, self.id, str(task_id))
        if not task.dir.is_dir():
            raise ClientError(f"No task {task_id} in {self.pathspec}.")
        return task

    def __repr__(self) -> str:
        return f"Step('{self.pathspec}')"


class Run:
    """One run of a flow: `Run("TrainFlow/1764000000000")`."""

    def __init__(self, pathspec: str, root: str | os.PathLike[str] | None = None):
        flow, _, run_id = pathspec.partition("/")
        if not run_id:
            raise ClientError(f"A run's pathspec is FlowName/run_id, not {pathspec!r}.")
        self.flow_name = flow
        self.id = run_id
        self.datastore = FlowDatastore(find_root(flow, root), flow)
        self.dir = self.datastore.run_dir(run_id)
        if not (self.dir / "run.json").exists():
            raise ClientError(f"No run {pathspec} under {self.datastore.root}.")
        self._info: dict[str, Any] | None = None

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.id}"

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None or self._info.get("status") == "running":
            self._info = read_json(self.dir / "run.json")
        return self._info

    @property
    def status(self) -> str:
        """succeeded, failed, cancelled, running, or crashed (its process died mid-run)."""
        info = self.info
        status = info.get("status", "unknown")
        if status == "running" and not self._process_alive(info):
            return "crashed"
        return status

    def _process_alive(self, info: dict[str, Any]) -> bool:
        if info.get("host") and info.get("host") != _hostname():
            return True  # another machine's run: we cannot tell, assume it runs
        return _pid_alive(info.get("pid"))

    @property
    def successful(self) -> bool:
        return self.status == "succeeded"

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled", "crashed")

    @property
    def created_at(self) -> float:
        return float(self.info.get("start") or 0)

    @property
    def finished_at(self) -> float | None:
        return self.info.get("end")

    @property
    def duration(self) -> float | None:
        end = self.finished_at
        return end - self.created_at if end else None

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.info.get("params") or {})

    @property
    def origin_run_id(self) -> str | None:
        return self.info.get("origin_run_id")

    @property
    def step_hashes(self) -> dict[str, str]:
        return dict(self.info.get("step_hashes") or {})

    @property
    def events(self) -> list[dict[str, Any]]:
        return read_events(self.dir / "events.jsonl")

    def steps(self) -> list[Step]:
        return [Step(self, p.name) for p in sorted(self.dir.iterdir()) if p.is_dir()]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps())

    def __getitem__(self, step: str) -> Step:
        if not (self.dir / step).is_dir():
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
        return self.info.get("error") or next(
            (t.exception for s in self.steps() for t in s.tasks() if t.exception), None)

    def __repr__(self) -> str:
        return f"Run('{self.pathspec}')"


class Flow:
    """All runs of one flow, newest first."""

    def __init__(self, name: str, root: str | os.PathLike[str] | None = None):
        self.id = name
        self.datastore = FlowDatastore(find_root(name, root), name)

    def runs(self) -> list[Run]:
        runs = [Run(f"{self.id}/{rid}", root=self.datastore.root)
                for rid in self.datastore.list_run_ids()]
        return sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs())

    def __getitem__(self, run_id: str) -> Run:
        return Run(f"{self.id}/{run_id}", root=self.datastore.root)

    @property
    def latest_run(self) -> Run | None:
        runs = self.runs()
        return runs[0] if runs else None

    @property
    def latest_successful_run(self) -> Run | None:
        return next((r for r in self.runs() if r.successful), None)

    def __repr__(self) -> str:
        return f"Flow('{self.id}')"
