"""The records a run leaves on disk, typed: `run.json` (RunRecord) and attempt records.

One reader and one writer per record, used by the orchestrator, the Metaflow
bridge, the client, resume and the window alike. Readers never trust the
file: anything missing or of the wrong type raises `DamagedRecord`, which
names the file and what is wrong, so one damaged run never hides the others.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, field
from pathlib import Path
from typing import Any

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.blobs import DIGEST_LENGTHS_TEXT, atomic_write_json, is_digest
from flowdeck.store.layout import attempt_file, attempts_in, datastore_of
from flowdeck.store.status import RUNNING, run_status, task_status

#: Key of an attempt's `error`: the step raised what is not an Exception (sys.exit, its own
#: KeyboardInterrupt). Metaflow's @catch catches Exception only, and its task process dies
#: of the rest, so such a failure gets @catch's last attempt, as a crash does.
ESCAPES_CATCH = "escapes_catch"


class DamagedRecord(ValueError):
    """A record file that cannot be read; the message names it and says why."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        super().__init__(f"{path} is damaged ({reason}). Delete that run's folder, or "
                         "restore the file from a backup.")
        self.path = str(path)
        self.reason = reason


def read_json_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON object from a file; DamagedRecord for bad JSON or a non-object.

    OSError (the file is missing or unreadable) passes through: the caller
    knows whether a missing record means "not yet" or "gone".
    """
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedRecord(path, f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DamagedRecord(path, f"a JSON {type(value).__name__}, not an object")
    return value


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str,
         default: Any = None) -> Any:
    value = d.get(key, default)
    if value is None or isinstance(value, kind):
        return value
    raise DamagedRecord(path, f"`{key}` is a {type(value).__name__}")


def hostname() -> str:
    """This machine's name (as `socket.gethostname()`; `socket` is not worth its import
    on every run's start)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket
    return socket.gethostname()


@functools.cache
def account_name() -> str | None:
    """The name of the account running this process (None where there is no passwd
    entry). Read once per process: a task forked later inherits it instead of reading
    /etc/passwd again."""
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        return None


def current_user() -> str | None:
    """The account running this process: what a run record names as the run's maker.

    The account itself, not `$USER` or Metaflow's user setting (which a flow may set
    to anything): whoever reads the record asks "did I make this run?".
    """
    return account_name() or os.environ.get("USERNAME") or os.environ.get("USER")


@dataclass(frozen=True)
class ParamRecord:
    """One parameter of a run, as given: enough to show it and to pass it again.

    `name` is what the command line takes (`--learning_rate`), `attr` the flow's
    attribute (`lr`), `value` a JSON form for display, `cli` the exact string
    that gives the same value back on a command line (JSON text for JSONType), or None
    when the parameter had no value (`unset_cli`): a rerun leaves it unset.
    """

    name: str
    attr: str
    value: Any
    cli: str | None
    #: `Parameter(multiple=True)`: `cli` holds its values shell-quoted, one `--name` each.
    multiple: bool = False

    def __post_init__(self) -> None:
        # Every maker of a record (the engine, the Metaflow bridge's defaults, a record
        # read from disk, written before this rule) gets the one rule for "no value".
        object.__setattr__(self, "cli", unset_cli(self.value, self.cli))

    @classmethod
    def from_json(cls, d: Any, path: str) -> "ParamRecord":
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise DamagedRecord(path, "a parameter entry has no name")
        cli = d.get("cli", "")
        return cls(d["name"], str(d.get("attr") or d["name"]), d.get("value"),
                   None if cli is None else str(cli), bool(d.get("multiple", False)))

    def arguments(self) -> list[str]:
        """The arguments that give a rerun this value: none for a parameter that had none."""
        if self.cli is None:
            return []
        return parameter_arguments(self.name, self.cli, self.multiple)


def unset_cli(value: Any, cli: str | None) -> str | None:
    """A record's `cli` for `value`, given the text its parameter's rule made of it: None
    (no value) for a value of None written `None`. No command line gives a parameter the
    value None (`--label None` gives the text 'None', `--n None` is refused for an int):
    only leaving it out does, so a rerun of a run whose optional parameter had no value
    must leave it out too. JSON's `null` does give None back, and stays."""
    return None if value is None and cli in (None, "None") else cli


def engine_run_id(run_id: str, metaflow_run_id: str | None) -> str:
    """The id a run's engine's client opens (`Flow/<this>`): Metaflow's run id for a run of
    Metaflow's engine once Metaflow has said it, else ours. Our id of a bridge run names
    nothing to Metaflow's client (a record and the window's live state both ask here)."""
    return metaflow_run_id or run_id


def multiple_text(values: Iterable[str]) -> str:
    """A `multiple` parameter's values as one line (a record's `cli`, the window's field):
    shell-quoted, so `parameter_arguments` splits them back as they were."""
    import shlex
    return shlex.join(values)


def parameter_arguments(name: str, text: str, multiple: bool) -> list[str]:
    """The command-line arguments that give parameter `name` the value `text` (as the
    window's form and a run's record hold it): `--name text`, or for a `multiple`
    parameter one `--name value` per value of the text, split as a shell splits it
    (quotes keep a value with spaces whole; unbalanced ones: split at white space)."""
    if not multiple:
        return [f"--{name}", text]
    import shlex
    try:
        values = shlex.split(text)
    except ValueError:
        values = text.split()
    return [arg for value in values for arg in (f"--{name}", value)]


@dataclass
class RunRecord:
    """`run.json`: who ran what, with which parameters, and how it ended."""

    flow: str
    run_id: str
    file: str
    status: str = RUNNING
    start: float = 0.0
    end: float | None = None
    pid: int | None = None
    #: The start of process `pid` (`store.liveness.process_start`), which tells it from a
    #: later process given the same pid; None where unknown (not Linux, older records).
    process_start: str | None = None
    host: str = ""
    user: str | None = None
    engine: str = "flowdeck"
    params: list[ParamRecord] = field(default_factory=list)
    param_refs: dict[str, dict[str, Any]] = field(default_factory=dict)
    step_hashes: dict[str, str] = field(default_factory=dict)
    outside_hash: str | None = None
    origin_run_id: str | None = None
    max_workers: int | None = None
    exit_code: int | None = None
    error: dict[str, Any] | None = None
    metaflow_run_id: str | None = None
    #: Metaflow-style tags: `tags` given with `--tag`, `system_tags` set by the engine
    #: (`user:<name>`, `project:...`). None in records written before tags existed.
    tags: list[str] | None = None
    system_tags: list[str] | None = None

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write `run.json`. In an object store's working copy, the record of a run that
        starts goes to the object store too (the run is listed, and can be resumed, from
        there while it goes); the final one is put there last by `objectstore.publish_run`,
        after everything it names."""
        obj = self.as_json()
        if self.status == RUNNING:
            root = Path(path).parents[3]  # <root>/<Flow>/runs/<run_id>/run.json
            mark = datastore_of(root)
            if mark is not None and mark.role == "run":
                from flowdeck.store.objectstore import write_record
                write_record(root, mark.url, path, obj, "write run record")
        atomic_write_json(path, obj)

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["params"] = [asdict(p) for p in self.params]
        return d

    @property
    def engine_run_id(self) -> str:
        return engine_run_id(self.run_id, self.metaflow_run_id)

    @property
    def param_values(self) -> dict[str, Any]:
        """Parameter values by attribute, as recorded for display."""
        return {p.attr: p.value for p in self.params}

    def cli_args(self) -> list[str]:
        """`--name value` pairs that give a rerun the same parameters."""
        return [arg for p in self.params for arg in p.arguments()]

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> "RunRecord":
        """Read `run.json`; OSError if missing, DamagedRecord if unreadable."""
        return cls.from_json(read_json_file(path), str(path))

    @classmethod
    def from_json(cls, d: dict[str, Any], path: str = "run.json") -> "RunRecord":
        for key in ("flow", "run_id"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise DamagedRecord(path, f"`{key}` is missing")
        start = _get(d, "start", (int, float), path, 0.0)
        end = _get(d, "end", (int, float), path)
        return cls(
            flow=d["flow"], run_id=d["run_id"], file=str(_get(d, "file", str, path, "")),
            status=run_status(d.get("status")), start=float(start or 0.0),
            end=float(end) if end is not None else None,
            pid=_get(d, "pid", int, path), process_start=_get(d, "process_start", str, path),
            host=str(_get(d, "host", str, path, "") or ""),
            user=_get(d, "user", str, path), engine=str(_get(d, "engine", str, path,
                                                             "flowdeck") or "flowdeck"),
            params=_params(d.get("params"), path),
            param_refs=_blob_refs(_get(d, "param_refs", dict, path, {}) or {}, path,
                                  "parameter"),
            step_hashes=dict(_get(d, "step_hashes", dict, path, {}) or {}),
            outside_hash=_get(d, "outside_hash", str, path),
            origin_run_id=_get(d, "origin_run_id", str, path),
            max_workers=_get(d, "max_workers", int, path),
            exit_code=_get(d, "exit_code", int, path),
            error=_get(d, "error", dict, path),
            metaflow_run_id=_opt_str(d.get("metaflow_run_id")),
            tags=_str_list(d.get("tags"), "tags", path),
            system_tags=_str_list(d.get("system_tags"), "system_tags", path),
        )


def _str_list(value: Any, key: str, path: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DamagedRecord(path, f"`{key}` is not a list of strings")
    return list(value)


def _blob_refs(refs: dict[str, Any], path: str, kind: str) -> dict[str, dict[str, Any]]:
    """Blob references of a record, each with a digest for a name (never a path).

    A name like `../../etc/hostname` would otherwise be joined into the blob
    folder's path and that file read, and unpickled if it looks like a blob.
    """
    for name, ref in refs.items():
        sha = ref.get("sha") if isinstance(ref, dict) else None
        if not isinstance(sha, str):
            raise DamagedRecord(path, f"the {kind} `{name}` has no blob digest")
        if not is_digest(sha):
            raise DamagedRecord(path, f"the {kind} `{name}` names the blob {sha!r}, which is "
                                      f"not a digest ({DIGEST_LENGTHS_TEXT} lowercase hex "
                                      "digits)")
    return dict(refs)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _params(value: Any, path: str) -> list[ParamRecord]:
    """Parameters: the list form, or the older `{attr: value}` form (read, never written)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [ParamRecord.from_json(p, path) for p in value]
    if isinstance(value, dict):
        return [ParamRecord(k, k, v, v if isinstance(v, str) or v is None else json.dumps(v))
                for k, v in value.items()]
    raise DamagedRecord(path, f"`params` is a {type(value).__name__}")


@dataclass
class AttemptRecord:
    """`attempt-N.json`: one attempt of one task, as its worker (or the orchestrator) wrote it."""

    step: str
    task_id: str
    attempt: int = 0
    status: str = "failed"
    run_id: str = ""
    start: float = 0.0
    end: float | None = None
    duration: float = 0.0
    pid: int | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)
    signature: str = ""
    source_hash: str = ""
    input_paths: list[str] = field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    next: list[str] = field(default_factory=list)
    foreach_splits: int | None = None
    #: True for a foreach over an unbounded input (Metaflow's UnboundedForeachInput): its
    #: items run beside a control task (see `engine.runtime`).
    foreach_unbounded: bool | None = None
    error: dict[str, Any] | None = None
    caught: dict[str, Any] | None = None
    origin: str | None = None
    origin_attempt: int = 0
    exit_code: int | None = None

    def write(self, path: str | os.PathLike[str]) -> None:
        atomic_write_json(path, self.as_json())

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "reused")

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> "AttemptRecord":
        return cls.from_json(read_json_file(path), str(path))

    @classmethod
    def from_json(cls, d: dict[str, Any], path: str = "attempt.json") -> "AttemptRecord":
        if not isinstance(d.get("step"), str) or d.get("task_id") is None:
            raise DamagedRecord(path, "`step` or `task_id` is missing")
        frames = _get(d, "frames", list, path, []) or []
        if not all(isinstance(f, dict) for f in frames):
            raise DamagedRecord(path, "`frames` holds a non-object")
        artifacts = _blob_refs(_get(d, "artifacts", dict, path, {}) or {}, path, "artifact")
        splits = _get(d, "foreach_splits", int, path)
        return cls(
            step=d["step"], task_id=str(d["task_id"]),
            attempt=int(_get(d, "attempt", int, path, 0) or 0),
            status=task_status(d.get("status")), run_id=str(d.get("run_id") or ""),
            start=float(_get(d, "start", (int, float), path, 0.0) or 0.0),
            end=_get(d, "end", (int, float), path),
            duration=float(_get(d, "duration", (int, float), path, 0.0) or 0.0),
            pid=_get(d, "pid", int, path), frames=list(frames),
            signature=str(d.get("signature") or ""), source_hash=str(d.get("source_hash") or ""),
            input_paths=[str(p) for p in (_get(d, "input_paths", list, path, []) or [])],
            artifacts=dict(artifacts),
            next=[str(n) for n in (_get(d, "next", list, path, []) or [])],
            foreach_splits=splits,
            foreach_unbounded=_get(d, "foreach_unbounded", bool, path),
            error=_get(d, "error", dict, path),
            caught=_get(d, "caught", dict, path), origin=_get(d, "origin", str, path),
            origin_attempt=int(_get(d, "origin_attempt", int, path, 0) or 0),
            exit_code=_get(d, "exit_code", int, path),
        )


def write_attempt_record(root: str | os.PathLike[str], path: str | os.PathLike[str],
                         record: dict[str, Any], datastore: str | None = None) -> None:
    """Write a task's attempt record: the manifest of its artifacts, written after all
    their blobs. For an object store (`datastore`, or the one whose working copy `root`
    is) it goes there first (ObjectStoreError, naming the URL, if it cannot), so a task
    that dies before this leaves no record there and its blobs are no artifact.
    `datastore=""`: the caller knows `root` is a plain local store (no look)."""
    if datastore is None:
        mark = datastore_of(root)
        datastore = mark.url if mark is not None and mark.role == "run" else None
    if datastore:
        from flowdeck.store.objectstore import write_record
        write_record(Path(root), datastore, path, record, "write attempt record")
    atomic_write_json(path, record)


def final_attempt(task_dir: str | os.PathLike[str]) -> AttemptRecord | None:
    """The record of a task's last attempt, or None when it has none yet."""
    attempts = attempts_in(task_dir)
    if not attempts:
        return None
    return AttemptRecord.read(attempt_file(task_dir, attempts[-1], "json"))
