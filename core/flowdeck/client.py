"""Read past runs: `Flow`, `Run`, `Step`, `Task`, in the style of Metaflow's client.

    Flow("TrainFlow").latest_run["end"].task.data.best
    Task("TrainFlow/1764000000000-ab12cd/start/1").data.rates

Everything is read from the datastore on disk, lazily: listing runs reads
only `run.json` files, and an artifact is unpickled only when accessed.

Namespaces and tags follow Metaflow: every run records the tags given with
`--tag` (`user_tags`) and the engine's `system_tags` (`user:<name>`,
`project:<name>`, ...); the current namespace (`namespace()`, by default
`user:<your name>`, `None` for all) decides which runs `Flow(...)` lists and
which a pathspec may open. Runs recorded before tags existed have none and
are in every namespace. Objects reached from an object you already hold
(its steps, tasks, parents, a pickled `current.task`) are not checked again.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from flowdeck.authoring.values import PARALLEL_VAR, contents, username
from flowdeck.exception import (
    MetaflowInvalidPathspec,
    MetaflowNamespaceMismatch,
    MetaflowNotFound,
    MetaflowTaggingError,
)
from flowdeck.store.blobs import BlobDamagedError, BlobRef, BlobStore, atomic_write_json
from flowdeck.store.events import read_events
from flowdeck.store.index import RunEntry, RunIndex, read_run
from flowdeck.store.layout import (
    DATASTORE_ENV,
    DEFAULT_DIRNAME,
    InvalidId,
    RunLayout,
    attempt_file,
    attempts_in,
    datastore_of,
    default_root,
    find_root,
    is_store_url,
    store_url_of,
    stores_in_reach,
)
from flowdeck.store.records import AttemptRecord, DamagedRecord, RunRecord, final_attempt
from flowdeck.store.status import DAMAGED, RUN_FINAL, RUNNING, TASK_DONE, TASK_FINAL

#: User tags changed after the run started (`Run.add_tag`...): beside run.json, which only
#: the run's own orchestrator writes. Present only once a tag was changed.
MAX_TAG_SIZE = 500
MAX_USER_TAGS = 50


class ClientError(MetaflowNotFound):
    """A flow, run, step or task that does not exist (the message says where we looked).

    A MetaflowNotFound, and so also a KeyError, as Metaflow's `run["missing"]` raises.
    """


class RunDeleted(ClientError):
    """The run's folder was removed while it was being read (`flowdeck gc`, the window's
    Delete). Before, reading on raised a raw FileNotFoundError, or answered as if the run
    had no such step, no data and empty logs."""


class InvalidPathspec(ClientError, MetaflowInvalidPathspec):
    """A pathspec of the wrong shape (`Run('OnlyAFlow')`): Metaflow's
    MetaflowInvalidPathspec, and a ClientError as before."""


# -- object-store roots --------------------------------------------------------------------

def _store_root(flow: str, root: str | os.PathLike[str] | None) -> Path:
    """The local root to read: a folder, or the cache of an object-store URL (given, or
    $FLOWDECK_DATASTORE), marked as that store's cache."""
    path = find_root(flow, root if root is not None else _metadata_root)
    url = str(root) if root is not None else os.environ.get(DATASTORE_ENV)
    if is_store_url(url) and (root is None or is_store_url(str(root))):
        from flowdeck.store.objectstore import ReadCache
        ReadCache.of(path, url)
    return path


def _read_cache(root: Path) -> Any:
    """The `objectstore.ReadCache` of a reader's cache of an object store, else None
    (the working copy of a run made here is read as it is: its files are the newest)."""
    mark = datastore_of(root)
    if mark is None or mark.role != "cache":
        return None
    from flowdeck.store.objectstore import ReadCache
    return ReadCache(root, mark.url, mark.role)


def _where(root: Path) -> str:
    """A root for messages: its object store's URL when it is a copy of one."""
    mark = datastore_of(root)
    return f"{mark.url} (copied to {root})" if mark else str(root)


_Item = TypeVar("_Item")


class Listing(list[_Item]):
    """What `Flow.runs()`, `Run.steps()` and `Step.tasks()` return: a list (len, indexing,
    a second pass) that is also an iterator, as Metaflow's generators are: `next(f.runs())`
    is the newest run (it raised "'list' object is not an iterator"). `next` walks the
    items once, as a generator would; `for` and `list()` see them all."""

    _at = 0

    def __next__(self) -> _Item:
        if self._at >= len(self):
            raise StopIteration
        self._at += 1
        return self[self._at - 1]


# -- namespaces ----------------------------------------------------------------------------

_UNSET = object()
_namespace: Any = _UNSET


def default_namespace() -> str:
    """Go back to the default namespace, `user:<your name>`, and return it.

    The default follows the environment ($METAFLOW_USER, then the login name)
    each time it is read, until `namespace()` chooses another.
    """
    global _namespace
    _namespace = _UNSET
    return f"user:{username()}"


def get_namespace() -> str | None:
    """The current namespace: a tag every listed run must have (None: every run)."""
    return f"user:{username()}" if _namespace is _UNSET else _namespace


def namespace(ns: str | None) -> str | None:
    """Switch to namespace `ns` (a tag, such as `user:alice` or `project:x`; None: all)."""
    global _namespace
    _namespace = ns
    return ns


#: The store `metadata(PATH)` chose for this process's client (None: the usual search).
#: Never put in the environment: a Runner's or a child's runs keep their own store, as
#: Metaflow's `metadata()` switches its client only.
_metadata_root: Path | None = None


def get_metadata() -> str:
    """Metaflow's "which metadata provider": here always the local store, `local@<root>`
    (the one `metadata()` chose, else the running script's: `$FLOWDECK_HOME`, else
    `.flowdeck/` beside it)."""
    root = _metadata_root or default_root(getattr(__import__("__main__"), "__file__", None))
    return f"local@{root}"


def metadata(ms: str) -> str:
    """Metaflow's switch of metadata provider, for this process's client. Flowdeck has
    one, the local store: `local` is the usual one, and a folder or `local@FOLDER` picks
    the store there (FOLDER's `.flowdeck/`, as Metaflow's is its `.metaflow/`, or FOLDER
    itself). A service (`service`, `service@URL`, an http URL) is refused with what to
    use instead, and a folder that does not exist is refused. Returns `get_metadata()`."""
    global _metadata_root
    provider, sep, info = ms.partition("@")
    if not sep:  # Metaflow's rule: a provider's name, else an http URL (service) or a path
        provider, info = (ms, "") if ms in ("local", "service") else (
            "service" if ms.startswith(("http://", "https://")) else "local", ms)
    if provider != "local":
        raise ClientError(f"metadata({ms!r}): Flowdeck reads runs from a local store only "
                          "(no metadata service). Give a store folder, or read the runs "
                          "with Metaflow's client where the service is.")
    if not info:
        _metadata_root = None
        return get_metadata()
    root = Path(info).expanduser().resolve()
    if not root.is_dir():
        raise ClientError(f"metadata({ms!r}): there is no folder {root}. Give the folder "
                          f"that holds a {DEFAULT_DIRNAME} store, or the store itself.")
    inside = root / DEFAULT_DIRNAME
    _metadata_root = inside if inside.is_dir() else root
    return get_metadata()


def default_metadata() -> str:
    """Metaflow's return to the default provider: the usual local store again (undoes
    `metadata(PATH)`). Returns `get_metadata()`."""
    global _metadata_root
    _metadata_root = None
    return get_metadata()


def _in_namespace(tags: frozenset[str] | None, ns: str | None) -> bool:
    return ns is None or tags is None or ns in tags


def _check_tag(tag: Any) -> str:
    """A valid tag as str; MetaflowTaggingError (saying why) otherwise (Metaflow's rules)."""
    if isinstance(tag, bytes):
        try:
            tag = tag.decode("utf-8")
        except UnicodeDecodeError:
            raise MetaflowTaggingError("Tags must be UTF-8 text; these bytes are not.") from None
    if not isinstance(tag, str):
        raise MetaflowTaggingError(f"Tags must be strings, not {type(tag).__name__} ({tag!r}).")
    if not tag:
        raise MetaflowTaggingError("Tags must not be empty strings.")
    if len(tag) > MAX_TAG_SIZE:
        raise MetaflowTaggingError(f"Tag is too long ({len(tag)} characters); the limit is "
                                   f"{MAX_TAG_SIZE}.")
    try:
        tag.encode("utf-8")
    except UnicodeEncodeError:
        raise MetaflowTaggingError(f"Tag {tag!r} cannot be encoded as UTF-8.") from None
    return tag


def check_tags(tags: Iterable[Any]) -> list[str]:
    """Every tag checked (see `_check_tag`), in order, without repeats."""
    out: list[str] = []
    for tag in tags:
        checked = _check_tag(tag)
        if checked not in out:
            out.append(checked)
    return out


def _tag_list(tags: Any) -> list[Any]:
    """A tag or (Metaflow's deprecated form) a list of tags, as a list."""
    return list(tags) if isinstance(tags, (list, tuple, set, frozenset)) else [tags]


def _restore(kind: str, pathspec: str, root: str) -> Any:
    """Unpickle a client object (an artifact such as `current.task`) without a namespace check."""
    return globals()[kind](pathspec, root=root, _namespace_check=False)


def _restore_attempt(pathspec: str, root: str, attempt: int) -> "Task":
    return Task(pathspec, root=root, _namespace_check=False, attempt=attempt)


# -- artifacts ------------------------------------------------------------------------------

class MetaflowData:
    """`task.data.name`: artifacts as attributes, loaded on first access."""

    def __init__(self, task: "Task"):
        self._task = task

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._task[name].data
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __contains__(self, name: str) -> bool:
        return name in self._task.public_artifact_refs

    def __dir__(self) -> list[str]:
        return sorted(self._task.public_artifact_refs)

    def __repr__(self) -> str:  # as Metaflow shows it in a notebook
        return f"<MetaflowData: {', '.join(sorted(self._task.public_artifact_refs))}>"


class DataArtifact:
    """One artifact of a task: name, type name, size in bytes, `.data` (unpickled on access)."""

    def __init__(self, task: "Task | str", name: str | None = None, ref: BlobRef | None = None,
                 root: str | os.PathLike[str] | None = None, _namespace_check: bool = True):
        if isinstance(task, str):  # DataArtifact("Flow/run_id/step/task_id/name"), as Metaflow
            parts = task.split("/")
            if len(parts) != 5 or not all(parts):
                raise InvalidPathspec(f"An artifact's pathspec is Flow/run_id/step/task_id/"
                                      f"name, not {task!r}.")
            owner = Task("/".join(parts[:4]), root=root, _namespace_check=_namespace_check)
            name, ref = parts[4], owner[parts[4]].ref
        else:
            owner = task
        assert name is not None and ref is not None
        self.task: Task = owner
        self.id: str = name
        self.ref: BlobRef = ref

    @property
    def data(self) -> Any:
        try:
            return contents(self.task.run.blobs.get(self.ref.sha))
        except BlobDamagedError:
            self.task.run.require_present()  # its run deleted: its blobs may be gone too
            raise

    @property
    def size(self) -> int:
        return self.ref.size

    @property
    def type(self) -> str:
        return self.ref.type

    @property
    def sha(self) -> str:
        return self.ref.sha

    @property
    def pathspec(self) -> str:
        return f"{self.task.pathspec}/{self.id}"

    @property
    def path_components(self) -> list[str]:
        return self.pathspec.split("/")

    @property
    def tags(self) -> frozenset[str]:
        return self.task.run.tags

    @property
    def parent(self) -> "Task":
        return self.task

    @property
    def created_at(self) -> datetime | None:
        """When its task stored it: the task's end (Metaflow's artifacts are written then)."""
        return self.task.finished_at

    @property
    def finished_at(self) -> datetime | None:
        return self.created_at

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataArtifact) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash(("DataArtifact", self.pathspec))

    def __repr__(self) -> str:
        return f"DataArtifact('{self.pathspec}')"


# -- tasks ----------------------------------------------------------------------------------

class MetaflowArtifacts(tuple[DataArtifact, ...]):
    """A task's artifacts: a tuple of DataArtifacts whose items are also attributes by
    name (`task.artifacts.model`), as Metaflow's namedtuple of them is."""

    @property
    def _fields(self) -> tuple[str, ...]:
        return tuple(a.id for a in self)

    def _asdict(self) -> dict[str, DataArtifact]:
        return {a.id: a for a in self}

    def __getattr__(self, name: str) -> DataArtifact:
        for artifact in self:
            if artifact.id == name:
                return artifact
        raise AttributeError(f"The task has no artifact {name!r}; it has "
                             f"{', '.join(a.id for a in self) or 'none'}.")


def _stamp(seconds: float | None) -> datetime | None:
    """A record's time (seconds since the epoch) as the client's datetime, as Metaflow's."""
    return datetime.fromtimestamp(seconds) if seconds else None


class Metadata(NamedTuple):
    """One metadata entry of a task, as Metaflow's client lists them (`task.metadata`)."""

    name: str
    value: str
    created_at: int
    type: str
    task: "Task"


class MetadataList(list[Metadata]):
    """`task.metadata`: Metaflow's list of Metadata entries.

    Indexed by a string it reads the final attempt's record instead
    (`task.metadata["status"]`), as Flowdeck's client did before it listed
    Metaflow's entries; `task.info` is that record.
    """

    def __init__(self, entries: list[Metadata], record: dict[str, Any]):
        super().__init__(entries)
        self.record = record

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.record[key]
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.record.get(key, default)


class TaskException(Exception):
    """A failed task's exception, as `task.exception` gives it.

    Like Metaflow's wrapper: `type`, `exception` (the message) and `stacktrace`,
    `str()` the stack trace. It is also read like the recorded `error` object
    (`exc["type"]`, `exc["message"]`, `exc.get("traceback")`).
    """

    def __init__(self, error: dict[str, Any]):
        super().__init__(error.get("message", ""))
        self.error = dict(error)
        self.type: str = _qualified_type(str(error.get("type") or ""))
        self.exception: str = str(error.get("message") or "")
        self.stacktrace: str = str(error.get("traceback") or "")

    def __str__(self) -> str:
        return self.stacktrace or f"[no stacktrace]\n{self.type}: {self.exception}"

    def __repr__(self) -> str:  # Metaflow's wrapper shows its stack trace either way
        return str(self)

    def __getitem__(self, key: str) -> Any:
        return self.error[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.error.get(key, default)

    def keys(self) -> Iterable[str]:
        return self.error.keys()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TaskException):
            return self.error == other.error
        return isinstance(other, dict) and self.error == other

    def __hash__(self) -> int:
        return hash((self.type, self.exception))


class _PartOfRun:
    """What a step and a task have of their run, as Metaflow's objects do: its tags."""

    run: "Run"

    def is_in_namespace(self) -> bool:
        """Whether its run is in the current namespace (Metaflow's check of any object)."""
        return self.run.is_in_namespace()

    @property
    def tags(self) -> frozenset[str]:
        return self.run.tags

    @property
    def user_tags(self) -> frozenset[str]:
        return self.run.user_tags

    @property
    def system_tags(self) -> frozenset[str]:
        return self.run.system_tags

    @property
    def environment_info(self) -> None:
        """Metaflow's environment record: a local run keeps none (as Metaflow's)."""
        return None


def _ended(text: str) -> str:
    return text + "\n" if text and not text.endswith("\n") else text


def _qualified_type(name: str) -> str:
    """An exception's type as Metaflow names it: `builtins.KeyError`, `mod.Error` (records
    name a built-in exception without its module)."""
    import builtins
    builtin = "." not in name and isinstance(getattr(builtins, name, None), type)
    return f"builtins.{name}" if builtin else name


class Task(_PartOfRun):
    """One task of a run (its final attempt): `Task("Flow/run_id/step/task_id")`."""

    def __init__(self, pathspec: "str | Run", step: str | None = None,
                 task_id: str | None = None, root: str | os.PathLike[str] | None = None,
                 _namespace_check: bool = True, attempt: int | None = None):
        if isinstance(pathspec, Run):  # Task(run, step, task_id): reached from a run
            run = pathspec
        else:
            parts = str(pathspec).split("/")
            if len(parts) != 4 or not all(parts):
                raise InvalidPathspec(f"A task's pathspec is Flow/run_id/step/task_id, not "
                                  f"{pathspec!r}.")
            run = Run("/".join(parts[:2]), root=root, _namespace_check=_namespace_check)
            step, task_id = parts[2], parts[3]
        assert step is not None and task_id is not None
        self.run = run
        self.step_name = step
        self.id = str(task_id)
        try:
            self.dir = run.layout.task_dir(run.id, step, self.id)
        except InvalidId as exc:
            raise ClientError(f"No task {run.pathspec}/{step}/{task_id}: {exc}") from None
        if not isinstance(pathspec, Run) and not self.dir.is_dir():
            raise ClientError(f"No task {self.pathspec} under {run.layout.root}.")
        self._meta: dict[str, Any] | None = None
        self._record: AttemptRecord | None = None
        #: `Task(pathspec, attempt=N)`: that attempt (its record, logs, data), not the last.
        self._attempt = attempt
        if attempt is not None and attempt not in self.attempts:
            raise ClientError(f"Task {self.pathspec} has no attempt {attempt} (its attempts: "
                              f"{', '.join(map(str, self.attempts)) or 'none yet'}).")

    def __reduce__(self) -> tuple[Any, ...]:
        if self._attempt is not None:
            return _restore_attempt, (self.pathspec, str(self.run.layout.root), self._attempt)
        return _restore, ("Task", self.pathspec, str(self.run.layout.root))

    @property
    def pathspec(self) -> str:
        return f"{self.run.pathspec}/{self.step_name}/{self.id}"

    @property
    def path_components(self) -> list[str]:
        return self.pathspec.split("/")

    @property
    def parent(self) -> "Step":
        return Step(self.run, self.step_name)

    @property
    def attempts(self) -> list[int]:
        return attempts_in(self.dir)

    @property
    def record(self) -> AttemptRecord | None:
        """The final attempt's record; None while the task has not written one."""
        if self._record is None:
            try:
                self._record = final_attempt(self.dir) if self._attempt is None else \
                    AttemptRecord.read(attempt_file(self.dir, self._attempt, "json"))
            except FileNotFoundError:
                self.run.require_present()
                raise
            if self._record is None:  # none yet, or none any more
                self.run.require_present()
        return self._record

    @property
    def metadata(self) -> MetadataList:
        """Metaflow's metadata entries: `attempt` (one per attempt), `attempt_ok`,
        `origin-run-id` / `origin-task-id` in a resumed run, `python_version`, and
        `internal_task_type` for a control task (`is_control_task`)."""
        return MetadataList(_task_metadata(self), self.info)

    @property
    def metadata_dict(self) -> dict[str, str]:
        """The latest value of each metadata entry, by name."""
        return {m.name: m.value for m in self.metadata}

    @property
    def info(self) -> dict[str, Any]:
        """The final attempt's record as JSON (status, times, artifacts, error...)."""
        if self._meta is None:
            record = self.record
            if record is not None:
                self._meta = record.as_json()
            elif self.run.metaflow_pathspec is not None:
                self._meta = self._told_by_events()
            else:
                self._meta = {"status": "running" if self.run.status == "running" else "unknown"}
        return self._meta

    def _told_by_events(self) -> dict[str, Any]:
        """A task of Metaflow's engine: its status, attempt and foreach index from the run's
        events (Metaflow keeps the rest in its own store)."""
        view = self.run._engine_tasks().get(self.id)
        if view is None:
            return {"status": "unknown"}
        frames = [] if view.foreach_index is None else [
            {"kind": "foreach", "index": view.foreach_index}]
        told = {"status": view.status, "attempt": view.attempt, "frames": frames,
                "start": view.start, "end": view.end}
        return {**told, "caught": view.caught} if view.caught else told

    @property
    def status(self) -> str:
        return self.info.get("status", "unknown")

    @property
    def successful(self) -> bool:
        """Metaflow's meaning: the step's code ended without an exception, so a task whose
        exception @catch stored is finished but not successful (a Metaflow-engine task's
        `caught` comes from its events, as it has no record)."""
        return self.status in TASK_DONE and not (self.record and self.record.caught) \
            and not self.info.get("caught")

    @property
    def finished(self) -> bool:
        """Metaflow's meaning: the task completed (@catch's included); a failed or cancelled
        task did not. `status` tells whether it still runs."""
        return self.status in TASK_DONE

    @property
    def attempt(self) -> int:
        return int(self.info.get("attempt", 0))

    @property
    def current_attempt(self) -> int:
        """The latest attempt that started (Metaflow's name for `attempt`)."""
        return self.attempt

    @property
    def created_at(self) -> datetime | None:
        """When the final attempt started (None before it wrote its record)."""
        record = self.record
        return _stamp(record.start) if record else None

    @property
    def finished_at(self) -> datetime | None:
        """When the final attempt ended, successfully or not; None while it runs."""
        record = self.record
        return _stamp(record.end) if record and self.status in TASK_FINAL else None

    @property
    def index(self) -> int | None:
        frames = [f for f in self.info.get("frames", []) if f.get("kind") == "foreach"]
        return frames[-1]["index"] if frames else None

    @property
    def foreach_indices(self) -> tuple[int, ...]:
        """Position in every enclosing foreach, outermost first (sorts tasks as their items)."""
        return tuple(f["index"] for f in self.info.get("frames", [])
                     if f.get("kind") == "foreach")

    @property
    def is_control_task(self) -> bool:
        """Task 0 of a `num_parallel` fan-out (Metaflow's @parallel control task), or the
        control task of an unbounded foreach (a "control" frame; it ran no user code)."""
        every = self.info.get("frames", [])
        if every and every[-1].get("kind") == "control":
            return True
        frames = [f for f in every if f.get("kind") == "foreach"]
        return bool(frames) and frames[-1].get("var") == PARALLEL_VAR and \
            frames[-1].get("index") == 0

    @property
    def exception(self) -> TaskException | None:
        error = self.info.get("error") if self.status == "failed" else None
        return TaskException(error) if isinstance(error, dict) else None

    @property
    def origin(self) -> str | None:
        return self.info.get("origin")

    @property
    def origin_pathspec(self) -> str | None:
        """The task this one was reused from by `resume` (None when it ran here)."""
        origin = self.origin
        return f"{self.run.flow_name}/{origin}" if origin else None

    @property
    def artifact_refs(self) -> dict[str, BlobRef]:
        return {k: BlobRef.from_dict(v) for k, v in (self.info.get("artifacts") or {}).items()}

    @property
    def data(self) -> MetaflowData:
        self._refuse_metaflow_engine()
        return MetaflowData(self)

    @property
    def public_artifact_refs(self) -> dict[str, BlobRef]:
        """The artifacts Metaflow's client lists (`task.data`, `.artifacts`, iteration): a
        name starting with `_` is private there, though `task['_name']` still reads it."""
        return {k: v for k, v in self.artifact_refs.items() if not k.startswith("_")}

    @property
    def artifacts(self) -> MetaflowArtifacts:
        self._refuse_metaflow_engine()
        return MetaflowArtifacts(DataArtifact(self, k, v)
                                 for k, v in self.public_artifact_refs.items())

    def _refuse_metaflow_engine(self) -> None:
        """A run of Metaflow's engine keeps its artifacts in Metaflow's store: say where,
        instead of a task that seems to have none."""
        where = self.run.metaflow_pathspec
        if where is None:
            return
        task = f"{where}/{self.step_name}/{self.id}"
        raise ClientError(
            f"Task {self.pathspec} ran on Metaflow's engine: its artifacts are in Metaflow's "
            f"store, not Flowdeck's. Read them with Metaflow's client, from the flow's folder: "
            f"`from metaflow import Task, namespace; namespace(None); Task('{task}').data` "
            "(or run the flow on Flowdeck's engine: `flowdeck run --engine flowdeck FILE`).")

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(self.artifacts)

    def __contains__(self, name: object) -> bool:
        return name in self.artifact_refs

    def __getitem__(self, name: str) -> DataArtifact:
        self._refuse_metaflow_engine()
        refs = self.artifact_refs
        if name not in refs:
            raise ClientError(f"Task {self.pathspec} has no artifact {name!r}; it has "
                              f"{', '.join(sorted(refs)) or 'none'}.")
        return DataArtifact(self, name, refs[name])

    @property
    def code(self) -> None:
        """Metaflow's code package: a local run has none (as Metaflow's local runs)."""
        return None

    @property
    def input_paths(self) -> list[str]:
        record = self.record
        return list(record.input_paths) if record else []

    @property
    def parent_tasks(self) -> list["Task"]:
        """The tasks whose output this task started from (none for `start`)."""
        out = []
        for path in self.input_paths:
            run_id, step, task_id = path.split("/")
            run = self.run if run_id == self.run.id else Run(
                f"{self.run.flow_name}/{run_id}", root=self.run.layout.root,
                _namespace_check=False)
            out.append(Task(run, step, task_id))
        return out

    @property
    def parent_task_pathspecs(self) -> list[str]:
        return [t.pathspec for t in self.parent_tasks]

    @property
    def child_tasks(self) -> list["Task"]:
        """The tasks that started from this task's output."""
        return list(self.run._children().get(f"{self.run.id}/{self.step_name}/{self.id}", []))

    @property
    def child_task_pathspecs(self) -> list[str]:
        return [t.pathspec for t in self.child_tasks]

    def _log(self, kind: str) -> str:
        return self._log_bytes(kind).decode("utf-8", errors="replace")

    @property
    def stdout_size(self) -> int:
        """The size of what the task printed, in bytes (Metaflow's `stdout_size`)."""
        return len(self._log_bytes("out"))

    @property
    def stderr_size(self) -> int:
        return len(self._log_bytes("err"))

    @property
    def runtime_name(self) -> str:
        """Where the task ran, as Metaflow's metadata names it: a local run is `dev`."""
        return "dev"

    def _log_bytes(self, kind: str) -> bytes:
        record = self.record
        attempt = record.attempt if record else 0
        origin = record.origin if record else None
        paths = self.run.layout.log_paths(self.run.id, self.step_name, self.id, attempt, origin,
                                          record.origin_attempt if record else 0)
        try:
            return paths["stdout" if kind == "out" else "stderr"].read_bytes()
        except FileNotFoundError:
            self.run.require_present()  # not '' for a deleted run's task
            return b""

    @property
    def stdout(self) -> str:
        """What the task printed, every line ended (as Metaflow's logs give it back)."""
        return _ended(self._log("out"))

    @property
    def stderr(self) -> str:
        return _ended(self._log("err"))

    def loglines(self, stream: str, as_unicode: bool = True,
                 meta_dict: dict[str, Any] | None = None) -> Iterator[tuple[datetime, Any]]:
        """(time, line) for each line of `stream` ("stdout" or "stderr"), in order.

        Flowdeck keeps no time per line: every line carries the attempt's start.
        """
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"loglines() reads 'stdout' or 'stderr', not {stream!r}.")
        record = self.record
        when = datetime.fromtimestamp(record.start if record else 0.0)
        text = self._log("out" if stream == "stdout" else "err")
        if not text:
            return
        # A line is what ends with \n (as in Metaflow's logs): a progress bar's \r stays in it.
        for line in (text[:-1] if text.endswith("\n") else text).split("\n"):
            yield when, line if as_unicode else line.encode("utf-8")

    @property
    def duration(self) -> float | None:
        return self.info.get("duration")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash(("Task", self.pathspec))

    def __repr__(self) -> str:
        return f"Task('{self.pathspec}')"


def _task_metadata(task: Task) -> list[Metadata]:
    """The metadata entries of a task (see `Task.metadata`); a reused task repeats those of
    the task it was reused from, plus where it came from, as Metaflow's clones do."""
    record = task.record
    source = task
    if record is not None and record.origin:
        origin_run, step, origin_id = record.origin.split("/")
        try:
            source = Task(Run(f"{task.run.flow_name}/{origin_run}", root=task.run.layout.root,
                              _namespace_check=False), step, origin_id)
        except ClientError:
            source = task
    out = [m._replace(task=task) for m in _attempt_metadata(source)]
    created = int((record.start if record else 0.0) * 1000)
    for name, value in _task_facts(task, record):
        out.append(Metadata(name, value, created, name, task))
    return out


def _attempt_metadata(task: Task) -> list[Metadata]:
    out = []
    for attempt in task.attempts:
        try:
            rec = AttemptRecord.read(attempt_file(task.dir, attempt, "json"))
        except (OSError, DamagedRecord):
            continue
        created = int(rec.start * 1000)
        out.append(Metadata("attempt", str(attempt), created, "attempt", task))
        if rec.status in TASK_FINAL:
            out.append(Metadata("attempt_ok", str(rec.status in TASK_DONE), created,
                                "internal_attempt_status", task))
    if task.is_control_task:
        out.append(Metadata("internal_task_type", "control", out[0].created_at if out else 0,
                            "internal_task_type", task))
    return out


def _task_facts(task: Task, record: AttemptRecord | None) -> list[tuple[str, str]]:
    facts = []
    run = task.run
    if run.origin_run_id:
        facts.append(("origin-run-id", run.origin_run_id))
    if record is not None and record.origin:
        facts.append(("origin-task-id", record.origin.split("/")[-1]))
    version, user = (next((t.split(":", 1)[1] for t in run.system_tags
                           if t.startswith(prefix)), None)
                     for prefix in ("python_version:", "user:"))
    if version:
        facts.append(("python_version", version))
    try:  # what Metaflow's local metadata says of every task, where the run record says it
        recorded = run.record
    except DamagedRecord:
        return facts
    # Metaflow's user (its `user:` tag: $METAFLOW_USER, else the login), as Metaflow's
    # metadata says; the record's `user` is the account that ran it (an older run's only).
    if user or recorded.user:
        facts.append(("user", user or recorded.user or ""))
    if recorded.file:
        facts.append(("script-name", os.path.basename(recorded.file)))
    facts += [("runtime", "dev"), ("ds-type", "local"), ("ds-root", str(run.layout.root))]
    return facts


class Step(_PartOfRun):
    """The tasks of one step in a run: `Step("Flow/run_id/step")`."""

    def __init__(self, run: "str | Run", name: str | None = None,
                 root: str | os.PathLike[str] | None = None, _namespace_check: bool = True):
        if not isinstance(run, Run):
            parts = str(run).split("/")
            if len(parts) != 3 or not all(parts):
                raise InvalidPathspec(f"A step's pathspec is Flow/run_id/step, not {run!r}.")
            name = parts[2]
            run = Run("/".join(parts[:2]), root=root, _namespace_check=_namespace_check)
            if not name.isidentifier() or not (run.dir / name).is_dir():
                raise ClientError(f"Run {run.pathspec} has no step {name!r}.")
        assert name is not None
        self.run = run
        self.id = name
        self.dir = run.layout.step_dir(run.id, name)

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore, ("Step", self.pathspec, str(self.run.layout.root))

    @property
    def pathspec(self) -> str:
        return f"{self.run.pathspec}/{self.id}"

    @property
    def path_components(self) -> list[str]:
        return self.pathspec.split("/")

    @property
    def parent(self) -> "Run":
        return self.run


    @property
    def control_task(self) -> "Task | None":
        """The step's (first) control task; None for a step without one, as in Metaflow."""
        return next(iter(self.control_tasks()), None)

    def tasks(self, *tags: str) -> Listing[Task]:
        """Tasks in foreach order (then task id); none unless the run has every tag given."""
        if not self.run._has_tags(tags):
            return Listing()
        try:
            found = [p.name for p in self.dir.iterdir() if p.is_dir()]
        except FileNotFoundError:
            self.run.require_present()
            return Listing()
        tasks = [Task(self.run, self.id, name) for name in found]
        return Listing(sorted(tasks, key=lambda t: (t.foreach_indices,
                                                    int(t.id) if t.id.isdigit() else 0)))

    def control_tasks(self, *tags: str) -> list[Task]:
        """The control tasks of a `num_parallel` step (task 0 of each fan-out) or of an
        unbounded foreach's step (one per fan-out, beside its workers)."""
        return [t for t in self.tasks(*tags) if t.is_control_task]

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks())

    @property
    def created_at(self) -> datetime | None:
        """When its first task started."""
        starts = [t.created_at for t in self.tasks()]
        return min((s for s in starts if s), default=None)

    @property
    def finished_at(self) -> datetime | None:
        """When its last task ended; None while any of its tasks has not."""
        ends = [t.finished_at for t in self.tasks()]
        return max(ends) if ends and all(ends) else None  # type: ignore[type-var]

    @property
    def task(self) -> Task:
        tasks = self.tasks()
        if not tasks:
            raise ClientError(f"Step {self.pathspec} has no tasks.")
        return tasks[0]

    @property
    def origin_pathspec(self) -> str | None:
        """The step of the run this one resumed, when its task was reused from it."""
        try:
            origin = self.task.origin_pathspec
        except ClientError:
            return None
        return origin.rsplit("/", 1)[0] if origin else None

    @property
    def child_steps(self) -> list["Step"]:
        """The steps that follow this one in the flow's graph (those that ran)."""
        nexts = self.run._graph_next().get(self.id, [])
        return [Step(self.run, n) for n in nexts if (self.run.dir / n).is_dir()]

    @property
    def parent_steps(self) -> list["Step"]:
        return [Step(self.run, n) for n, nexts in self.run._graph_next().items()
                if self.id in nexts and (self.run.dir / n).is_dir()]

    def __getitem__(self, task_id: str) -> Task:
        try:
            task = Task(self.run, self.id, str(task_id))
        except ClientError:
            raise
        if not task.dir.is_dir():
            self.run.require_present()
            raise ClientError(f"No task {task_id} in {self.pathspec}.")
        return task

    def __contains__(self, task_id: object) -> bool:
        """`"3" in run["fit"]`, as in Metaflow: the step has that task."""
        try:
            self[str(task_id)]
        except (ClientError, InvalidId):
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Step) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash(("Step", self.pathspec))

    def __repr__(self) -> str:
        return f"Step('{self.pathspec}')"


class Run:
    """One run of a flow: `Run("TrainFlow/1764000000000")`.

    A run whose `run.json` is damaged still opens: its status is `damaged` and
    `damage` says which file and why; reading its record raises that error.
    """

    def __init__(self, pathspec: str, root: str | os.PathLike[str] | None = None,
                 _entry: RunEntry | None = None, _namespace_check: bool = True):
        flow, _, run_id = pathspec.partition("/")
        if not run_id or "/" in run_id:
            raise InvalidPathspec(f"A run's pathspec is FlowName/run_id, not {pathspec!r}.")
        self.flow_name = flow
        self.id = run_id
        self.layout = RunLayout(_store_root(flow, root), flow)
        try:
            self.dir = self.layout.run_dir(run_id)
        except InvalidId as exc:
            raise ClientError(f"No run {pathspec}: {exc}") from None
        #: The object store's records of this run, fetched into the local cache on first
        #: use (None for a local store).
        self._remote = _read_cache(self.layout.root)
        self._fetched = False
        if _entry is None:
            self._fetch()
        self.blobs = BlobStore(self.layout.root)
        self._entry = _entry
        self._cache: dict[str, Any] = {}
        self._user_tags: frozenset[str] | None = None
        if _entry is None and not self.layout.run_json(run_id).exists():
            raise ClientError(f"No run {pathspec} under {_where(self.layout.root)}.")
        ns = get_namespace() if _namespace_check else None
        if ns is not None and not _in_namespace(self._tags_or_none(), ns):
            raise MetaflowNamespaceMismatch(ns, f"Run {pathspec} is not in namespace '{ns}' "
                                            "(it lacks that tag). Use namespace(None) to see "
                                            "every run, or namespace('user:<name>').")

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore, ("Run", self.pathspec, str(self.layout.root))

    def _fetch(self) -> None:
        """Fetch the run's records from its object store (once; again while it runs)."""
        if self._remote is None or (self._fetched and not self._still_running()):
            return
        self._remote.fetch_run(self.flow_name, self.id)  # ObjectStoreError names URL and operation
        self._fetched = True

    def _still_running(self) -> bool:
        record = self.entry.record
        return record is None or record.status == RUNNING

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.id}"

    @property
    def path_components(self) -> list[str]:
        return [self.flow_name, self.id]

    @property
    def parent(self) -> "Flow":
        return Flow(self.flow_name, root=self.layout.root, _namespace_check=False)

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
            self.require_present()
            raise ClientError(entry.damage or f"{self.pathspec} has no readable run.json")
        return entry.record

    @property
    def info(self) -> dict[str, Any]:
        return self.record.as_json()

    @property
    def status(self) -> str:
        """succeeded, failed, cancelled, running, crashed (its process died mid-run) or damaged."""
        entry = self.entry
        if entry.record is None:
            self.require_present()  # deleted, not damaged
        return entry.status

    @property
    def successful(self) -> bool:
        return self.status == "succeeded"

    @property
    def finished(self) -> bool:
        """Metaflow's meaning: the run reached its end step and that task finished (False for
        a run that failed or stopped before it); `status` tells whether it still runs."""
        if self.metaflow_pathspec is not None:  # no task records: only a success got there
            return self.successful
        end = self.end_task
        return end is not None and end.finished

    @property
    def metaflow_pathspec(self) -> str | None:
        """For a run made by Metaflow's engine (`flowdeck run --engine metaflow`, the window):
        its pathspec in Metaflow's own store, where its artifacts are; None for a run of
        Flowdeck's engine. Flowdeck keeps its events and logs, not its artifacts."""
        record = self.entry.record
        if record is None or record.engine != "metaflow":
            return None
        return f"{self.flow_name}/{record.metaflow_run_id or '<its Metaflow run id>'}"

    def _engine_tasks(self) -> dict[str, Any]:
        """A Metaflow-engine run's tasks as its events tell them (it writes no task records),
        by task id; read once, or again while the run goes on."""
        cached = self._cache.get("engine_tasks")
        if cached is None or self.status == RUNNING:
            from flowdeck.observe.fold import RunFold
            fold = RunFold()
            for event in read_events(self.layout.events(self.id)):
                fold.apply(event)
            cached = self._cache["engine_tasks"] = fold.tasks
        return cached

    @property
    def _over(self) -> bool:
        """It runs no more (finished, failed, cancelled, crashed or damaged)."""
        return self.status in RUN_FINAL or self.status == DAMAGED

    @property
    def created_at(self) -> datetime:
        stamp = _stamp(self.entry.start)
        assert stamp is not None  # a run's start is its id's time at worst
        return stamp

    @property
    def finished_at(self) -> datetime | None:
        """When its end step finished, as Metaflow's datetime: None while it runs and for a
        run that did not succeed (Metaflow's definition; `duration` has any run's time)."""
        return _stamp(self.record.end) if self.status == "succeeded" else None

    @property
    def trigger(self) -> None:
        """Metaflow's event that started a deployed run: a local run has none."""
        return None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None while it runs)."""
        end = self.record.end
        return end - self.entry.start if end else None

    @property
    def parameters(self) -> dict[str, Any]:
        return self.record.param_values

    @property
    def origin_run_id(self) -> str | None:
        return self.record.origin_run_id

    @property
    def origin_pathspec(self) -> str | None:
        """The run this one resumed (None when it is not a resume)."""
        origin = self.origin_run_id
        return f"{self.flow_name}/{origin}" if origin else None

    @property
    def step_hashes(self) -> dict[str, str]:
        return dict(self.record.step_hashes)

    @property
    def events(self) -> list[dict[str, Any]]:
        self._fetch()
        return read_events(self.layout.events(self.id))

    # -- tags -------------------------------------------------------------------------

    def is_in_namespace(self) -> bool:
        """Whether the run has the current namespace's tag (always, with namespace(None))."""
        return _in_namespace(self._tags_or_none(), get_namespace())

    def _tags_or_none(self) -> frozenset[str] | None:
        """Every tag, or None for a run recorded before tags existed (in every namespace)."""
        record = self.entry.record
        if record is None:
            return None
        user = self._mutated_user_tags()
        if record.tags is None and record.system_tags is None and user is None:
            return None
        return frozenset((user if user is not None else record.tags or [])
                         + (record.system_tags or []))

    def _mutated_user_tags(self) -> list[str] | None:
        try:
            with open(self.layout.tags(self.id), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        tags = data.get("user_tags") if isinstance(data, dict) else None
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else None

    @property
    def code(self) -> None:
        """Metaflow's code package: a local run has none (as Metaflow's local runs)."""
        return None

    @property
    def user_tags(self) -> frozenset[str]:
        """Tags given with `--tag` or added since (`add_tag`).

        As in Metaflow, read once per Run object and then kept up to date by that
        object's own changes, so `run.add_tag(t)` is followed by `t in run.user_tags`
        even while another task changes the same run's tags.
        """
        if self._user_tags is None:
            self._user_tags = self._stored_user_tags()
        return self._user_tags

    def _stored_user_tags(self) -> frozenset[str]:
        mutated = self._mutated_user_tags()
        if mutated is not None:
            return frozenset(mutated)
        record = self.entry.record
        return frozenset(record.tags or []) if record else frozenset()

    @property
    def system_tags(self) -> frozenset[str]:
        """Tags the engine set: `user:<name>`, `runtime:dev`, `python_version:...`, project."""
        record = self.entry.record
        return frozenset(record.system_tags or []) if record else frozenset()

    @property
    def tags(self) -> frozenset[str]:
        return self.user_tags | self.system_tags

    def _has_tags(self, tags: Iterable[str]) -> bool:
        mine = self.tags
        return all(t in mine for t in tags)

    def add_tag(self, tag: Any) -> None:
        """Add a user tag (a list of tags is accepted too, as in Metaflow)."""
        self.add_tags(_tag_list(tag))

    def add_tags(self, tags: Iterable[Any]) -> None:
        self._mutate_tags(add=check_tags(tags), remove=[])

    def remove_tag(self, tag: Any) -> None:
        self.remove_tags(_tag_list(tag))

    def remove_tags(self, tags: Iterable[Any]) -> None:
        """Remove user tags; removing a system tag is an error and removes nothing."""
        self._mutate_tags(add=[], remove=check_tags(tags))

    def replace_tag(self, tag_to_remove: Any, tag_to_add: Any) -> None:
        self.replace_tags(_tag_list(tag_to_remove), _tag_list(tag_to_add))

    def replace_tags(self, tags_to_remove: Iterable[Any], tags_to_add: Iterable[Any]) -> None:
        """Remove, then add, in one change."""
        remove, add = check_tags(tags_to_remove), check_tags(tags_to_add)
        if not remove and not add:
            raise MetaflowTaggingError("replace_tags() needs at least one tag to remove or "
                                       "to add.")
        self._mutate_tags(add=add, remove=remove)

    def _mutate_tags(self, add: list[str], remove: list[str]) -> None:
        """Change the user tags under a lock, so concurrent changes are not lost."""
        system = self.system_tags
        refused = sorted(set(remove) & system)
        if refused:
            raise MetaflowTaggingError(f"Cannot remove system tag(s) {refused} of run "
                                       f"{self.pathspec}; only user tags can be removed.")
        lock_path = self.layout.tags_lock(self.id)
        with open(lock_path, "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = sorted(self._stored_user_tags())
            new = [t for t in current if t not in remove]
            new += [t for t in add if t not in new and t not in system]
            if len(new) > MAX_USER_TAGS and len(new) > len(current):
                raise MetaflowTaggingError(f"A run has at most {MAX_USER_TAGS} user tags; "
                                           f"{self.pathspec} would have {len(new)}.")
            if set(new) != set(current):
                atomic_write_json(self.layout.tags(self.id), {"user_tags": new})
            self._user_tags = frozenset(new)

    # -- steps --------------------------------------------------------------------------

    def steps(self, *tags: str) -> Listing[Step]:
        """The steps that ran, the latest in the flow first (`end` first, `start` last), as
        Metaflow lists them; none unless the run has every tag given."""
        if not self._has_tags(tags):
            return Listing()
        self._fetch()
        try:
            ran = {p.name for p in self.dir.iterdir() if p.is_dir()}
        except FileNotFoundError:
            raise self._deleted() from None
        order = [name for name in self._graph_order() if name in ran]
        order += sorted(ran - set(order))
        return Listing(Step(self, name) for name in reversed(order))

    def _graph_order(self) -> list[str]:
        """The flow's steps from `start`, each after every step that leads to it (as far as
        the graph allows: a loop's return edge is not followed), and branches in the order
        `self.next()` starts them: the order they begin, which Metaflow lists by."""
        nexts = self._graph_next()
        postorder: list[str] = []  # depth first, without recursion (a flow may be long)
        seen: set[str] = set()
        for root in ["start", *sorted(nexts)]:
            if root in seen or root not in nexts:
                continue
            seen.add(root)
            stack = [(root, iter(nexts[root][::-1]))]  # reversed: reverse postorder
            while stack:
                name, children = stack[-1]
                child = next((c for c in children if c not in seen), None)
                if child is None:
                    postorder.append(name)
                    stack.pop()
                else:
                    seen.add(child)
                    stack.append((child, iter(nexts.get(child, [])[::-1])))
        return postorder[::-1]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps())

    def __getitem__(self, step: str) -> Step:
        self._fetch()
        if not step.isidentifier() or not (self.dir / step).is_dir():
            self.require_present()
            raise ClientError(f"Run {self.pathspec} has no step {step!r} (it may not have "
                              "run yet).")
        return Step(self, step)

    def __contains__(self, step: object) -> bool:
        self._fetch()
        if isinstance(step, str) and step.isidentifier() and (self.dir / step).is_dir():
            return True
        self.require_present()
        return False

    def require_present(self) -> None:
        """Raise RunDeleted when the run's folder is gone: what is missing from a deleted
        run is not "not run yet" (no step, no data, empty logs)."""
        if not self.dir.is_dir():
            raise self._deleted()

    def _deleted(self) -> RunDeleted:
        return RunDeleted(f"Run {self.pathspec} was deleted while it was being read (by "
                          f"`flowdeck gc` or the window's Delete): {self.dir} is gone. List "
                          f"the runs again (`Flow('{self.flow_name}').runs()`) and read one "
                          "that is kept (`flowdeck gc` never deletes a run pinned in the "
                          "window's History).")

    def _graph_next(self) -> dict[str, list[str]]:
        """step -> the steps after it, from the graph the run recorded when it started."""
        found = self._cache.get("graph_next")
        if found is None:
            found = {}
            for event in self.events[:5]:
                if event.get("type") == "run_started":
                    nodes = (event.get("graph") or {}).get("graph") or {}
                    found = {name: list(node.get("next") or []) for name, node in nodes.items()}
                    break
            self._cache["graph_next"] = found
        return found

    def _children(self) -> dict[str, list[Task]]:
        """Task path -> the tasks that started from it (rebuilt while the run is running)."""
        found = self._cache.get("children")
        if found is None or not self._over:
            found = {}
            for step in self.steps():
                for task in step.tasks():
                    for path in task.input_paths:
                        found.setdefault(path, []).append(task)
            self._cache["children"] = found
        return found

    @property
    def end_task(self) -> Task | None:
        try:
            return self["end"].task
        except RunDeleted:
            raise
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
            (t.exception.error for s in self.steps() for t in s.tasks() if t.exception), None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash(("Run", self.pathspec))

    def __repr__(self) -> str:
        return f"Run('{self.pathspec}')"


def _flow_folders(store: Path) -> list[str]:
    """The folders of a local store that hold runs (none when it cannot be read)."""
    try:
        return sorted(p.name for p in store.iterdir() if (p / "runs").is_dir())
    except OSError:
        return []


class Metaflow:
    """Every flow the client can read here (Metaflow's `Metaflow().flows`): those of the
    stores in reach (`stores_in_reach`) with a run in the current namespace."""

    def __init__(self, root: str | os.PathLike[str] | None = None):
        #: The object store read (`root=` or $FLOWDECK_DATASTORE a URL), else None.
        self.url = store_url_of(root)
        self.roots = stores_in_reach(root)

    @property
    def flows(self) -> list["Flow"]:
        """The flows with a run in the current namespace; in an object store, those it
        lists (ObjectStoreError, naming the URL, when it cannot be read)."""
        if self.url is not None:
            from flowdeck.store.objectstore import ReadCache
            cache = ReadCache(self.roots[0], self.url)
            return self._readable([(self.url, sorted(cache.flow_names()))])
        return self._readable([(store, _flow_folders(store)) for store in self.roots])

    @staticmethod
    def _readable(stores: list[tuple[str | Path, list[str]]]) -> list["Flow"]:
        """A Flow of each name that has runs in reach, from the nearest store holding it."""
        found: dict[str, Flow] = {}
        for store, names in stores:
            for name in names:
                if name in found:  # a nearer store has it
                    continue
                try:
                    found[name] = Flow(name, root=store)
                except (ClientError, MetaflowNamespaceMismatch):
                    continue
        return list(found.values())

    def __iter__(self) -> Iterator["Flow"]:
        return iter(self.flows)

    def __repr__(self) -> str:
        return "Metaflow()"


class Flow:
    """All runs of one flow, newest first (those in the current namespace)."""

    def __init__(self, name: str, root: str | os.PathLike[str] | None = None,
                 _namespace_check: bool = True):
        self.id = name
        self.layout = RunLayout(_store_root(name, root), name)
        self.index = RunIndex(self.layout)
        remote = _read_cache(self.layout.root)
        if remote is not None:
            remote.fetch_runs(name)  # ObjectStoreError names the URL and the operation
        try:
            stored = self.layout.runs_dir.is_dir()
        except InvalidId as exc:
            raise ClientError(f"No flow {name!r}: {exc}") from None
        entries = self.index.runs() if stored else []
        if not entries:  # (a first run's folder not made yet counts as none)
            raise ClientError(f"Flow('{name}') does not exist: no run of it is stored under "
                              f"{_where(self.layout.root)}. Run the flow first, or read from "
                              "the folder that holds its .flowdeck store (or pass root=, or "
                              "set $FLOWDECK_HOME).")
        ns = get_namespace()
        if _namespace_check and ns is not None and not any(
                _in_namespace(Run(f"{name}/{entry.run_id}", root=self.layout.root,
                                  _entry=entry, _namespace_check=False)._tags_or_none(), ns)
                for entry in entries):
            raise MetaflowNamespaceMismatch(ns, f"Flow('{name}') has no run in namespace "
                                                f"'{ns}'. Call namespace(None) to read every "
                                                "run, or namespace('user:NAME') for one "
                                                "user's.")

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore, ("Flow", self.id, str(self.layout.root))

    @property
    def pathspec(self) -> str:
        return self.id

    @property
    def tags(self) -> frozenset[str]:
        """A flow has no tags of its own (its runs do)."""
        return frozenset()

    user_tags = system_tags = tags

    @property
    def parent(self) -> None:
        """A flow is the top of the hierarchy (Metaflow's `Flow.parent` is None)."""
        return None

    @property
    def origin_pathspec(self) -> None:
        """Only a resumed run or task has an origin (None for a flow, as in Metaflow)."""
        return None

    def is_in_namespace(self) -> bool:
        """Whether any run of the flow is in the current namespace."""
        return get_namespace() is None or bool(self.runs())

    @property
    def created_at(self) -> datetime | None:
        """When its first run (of those kept) started."""
        entries = self.index.runs()
        return _stamp(min(e.start for e in entries)) if entries else None

    def runs(self, *tags: str) -> Listing[Run]:
        """Every run in the current namespace with all the given tags, newest first; a
        damaged run is listed with status `damaged`."""
        ns = get_namespace()
        out = []
        for entry in self.index.runs():
            run = Run(f"{self.id}/{entry.run_id}", root=self.layout.root, _entry=entry,
                      _namespace_check=False)
            run_tags = run._tags_or_none()
            if _in_namespace(run_tags, ns) and (not tags or (run_tags is not None and all(
                    t in run_tags for t in tags))):
                out.append(run)
        return Listing(out)

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs())

    def __getitem__(self, run_id: str) -> Run:
        return Run(f"{self.id}/{run_id}", root=self.layout.root)

    def __contains__(self, run_id: object) -> bool:
        """`run.id in Flow("X")`, as in Metaflow: the flow has that run in this store."""
        try:
            return self.layout.run_dir(str(run_id)).is_dir()
        except (InvalidId, ValueError):
            return False

    @property
    def latest_run(self) -> Run | None:
        runs = [r for r in self.runs() if r.entry.record is not None]
        return runs[0] if runs else None

    @property
    def latest_successful_run(self) -> Run | None:
        return next((r for r in self.runs() if r.status == "succeeded"), None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Flow) and other.id == self.id

    def __hash__(self) -> int:
        return hash(("Flow", self.id))

    def __repr__(self) -> str:
        return f"Flow('{self.id}')"
