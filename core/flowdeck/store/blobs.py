"""Where runs live on disk: content-addressed artifact blobs, run and task metadata.

Layout under the root (by default `.flowdeck/` beside the flow file)::

    blobs/ab/ab12...            one cloudpickle blob per distinct value, written once
    <Flow>/runs/<run_id>/run.json           parameters, step hashes, status
    <Flow>/runs/<run_id>/events.jsonl       the event stream (see docs/events.md)
    <Flow>/runs/<run_id>/<step>/<task_id>/attempt-<n>.json   task metadata
    <Flow>/runs/<run_id>/<step>/<task_id>/attempt-<n>.out    stdout (and .err)

Every file is written atomically (temporary file, then rename), so a run
killed at any moment leaves only complete files behind.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # ~20 GB/s; a flow's own interpreter may lack it, then BLAKE2 (about 1 GB/s) serves
    from xxhash import xxh3_128 as _blob_hash
except ImportError:  # pragma: no cover - depends on the flow's interpreter
    from _blake2 import blake2b as _blake2b

    def _blob_hash(data: bytes = b"") -> Any:
        return _blake2b(data, digest_size=20)  # 40 hex digits: never mistaken for xxh3's 32

MAGIC = b"FDB1"
_HEADER = struct.Struct("<4sI")
ROOT_ENV = "FLOWDECK_HOME"
DEFAULT_DIRNAME = ".flowdeck"


class ArtifactPickleError(Exception):
    """An artifact could not be serialised; the message names it and its type."""


@dataclass(frozen=True)
class BlobRef:
    """A stored artifact value: its content hash, size in bytes and type name."""

    sha: str
    size: int
    type: str

    def as_dict(self) -> dict[str, Any]:
        return {"sha": self.sha, "size": self.size, "type": self.type}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BlobRef":
        return cls(d["sha"], int(d.get("size", 0)), d.get("type", "object"))


def default_root(flow_file: str | os.PathLike[str] | None) -> Path:
    """`FLOWDECK_HOME` if set, else `.flowdeck/` beside the flow file (not the cwd)."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    base = Path(flow_file).resolve().parent if flow_file else Path.cwd()
    return base / DEFAULT_DIRNAME


_TMP_COUNTER = itertools.count()
LARGE_BLOB = 4 * 1024 * 1024  # above this a blob is mapped (copy-on-write), not read


def _temporary_path(path: str | os.PathLike[str]) -> tuple[int, str]:
    """A fresh `.tmp-*` file beside `path`: pid + counter, created exclusively."""
    folder = os.path.dirname(path)
    while True:
        tmp = os.path.join(folder, f".tmp-{os.getpid()}-{next(_TMP_COUNTER)}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), tmp
        except FileExistsError:
            continue


def atomic_write(path: str | os.PathLike[str], data: bytes | list[Any]) -> None:
    """Write `data` (bytes, or a list of buffers) to `path` via a temporary file and rename."""
    fd, tmp = _temporary_path(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, (bytes, bytearray, memoryview)):
                handle.write(data)
            else:
                for chunk in data:
                    handle.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write(path, json.dumps(obj, default=str, separators=(",", ":")).encode())


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, "rb") as handle:
        return json.loads(handle.read())


class BlobStore:
    """Content-addressed store of pickled values; each distinct value is written once.

    Values are pickled with protocol 5 and out-of-band buffers, so a large
    numpy array is hashed and written straight from its memory without a
    copy and without compression (which costs more than it saves on
    floating-point data).
    """

    def __init__(self, root: Path):
        self.dir = root / "blobs"

    def path(self, sha: str) -> Path:
        return self.dir / sha[:2] / sha

    def put(self, name: str, value: Any) -> BlobRef:
        try:
            main, raws = _dumps(value)
        except Exception as exc:  # pickling runs arbitrary __reduce__ code
            raise ArtifactPickleError(
                f"Artifact `{name}` of type {type(value).__module__}.{type(value).__qualname__} "
                f"cannot be pickled ({type(exc).__name__}: {exc}). Store a picklable value, "
                f"or remove it with `del self.{name}` before the step ends.") from None
        header = _HEADER.pack(MAGIC, len(raws)) + struct.pack(
            f"<{len(raws) + 1}Q", len(main), *(r.nbytes for r in raws))
        size = len(header) + len(main) + sum(r.nbytes for r in raws)
        digest = _blob_hash(header)
        digest.update(main)
        for raw in raws:
            digest.update(raw)
        sha = digest.hexdigest()
        target = self.path(sha)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, [header, main, *raws])
        return BlobRef(sha, size, _type_name(value))

    def get(self, sha: str) -> Any:
        path = self.path(sha)
        view = _read_blob(path)
        magic, count = _HEADER.unpack_from(view, 0)
        if magic != MAGIC:
            raise ValueError(f"{path} is not a Flowdeck artifact blob")
        lengths = struct.unpack_from(f"<{count + 1}Q", view, _HEADER.size)
        offset = _HEADER.size + 8 * (count + 1)
        main = view[offset:offset + lengths[0]]
        offset += lengths[0]
        buffers = []
        for length in lengths[1:]:
            buffers.append(view[offset:offset + length])
            offset += length
        return pickle.loads(main, buffers=buffers)


def _read_blob(path: Path) -> memoryview:
    """A blob's bytes, writable. Large blobs are mapped copy-on-write instead of read.

    Arrays unpickled from out-of-band buffers then point into the mapping: pages
    load as they are touched, and writes stay private to this process (blobs are
    immutable and never rewritten, so the mapping cannot change under us).
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > LARGE_BLOB:
            import mmap
            return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY))
        data = bytearray(size)
        view = memoryview(data)
        got = 0
        while got < size:
            n = handle.readinto(view[got:])
            if not n:
                break
            got += n
        return view


def _dumps(value: Any) -> tuple[bytes, list[memoryview]]:
    """Pickle with protocol 5 and out-of-band buffers; cloudpickle only when it matters.

    Plain pickle stores classes and functions by reference. That is right for
    importable modules, but a reader in another process cannot import the
    script's `__main__`, and lambdas or local classes do not pickle at all:
    those go through cloudpickle, which stores them by value. Loading
    cloudpickle only then keeps it off the start-up path of most runs.
    """
    buffers: list[pickle.PickleBuffer] = []
    try:
        main = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        if b"__main__" not in main:
            return main, [b.raw() for b in buffers]
    except (pickle.PicklingError, AttributeError, TypeError):
        pass
    import cloudpickle
    buffers = []
    main = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return main, [b.raw() for b in buffers]


def _type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class FlowDatastore:
    """Paths and metadata of one flow's runs under one root."""

    def __init__(self, root: Path, flow_name: str):
        self.root = Path(root)
        self.flow_name = flow_name
        self.blobs = BlobStore(self.root)
        self.runs_dir = self.root / flow_name / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def task_dir(self, run_id: str, step: str, task_id: str) -> Path:
        return self.runs_dir / run_id / step / task_id

    def create_run_dir(self, run_id: str) -> Path:
        """Create a new run's directory; fails if that run id already exists."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir(run_id)
        path.mkdir()
        return path

    def list_run_ids(self) -> list[str]:
        try:
            return [p.name for p in self.runs_dir.iterdir()
                    if p.is_dir() and (p / "run.json").exists()]
        except FileNotFoundError:
            return []


def attempt_file(task_dir: str | os.PathLike[str], attempt: int, kind: str) -> str:
    """Path of an attempt's metadata ('json') or log ('out', 'err'); strings, for the hot path."""
    return os.path.join(task_dir, f"attempt-{attempt}.{kind}")
