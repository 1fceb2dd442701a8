"""Content-addressed artifact values (`blobs/ab/ab12...`), and atomic file writes.

Paths of runs and their records belong to `store.layout` and `store.records`; this
module knows only the blob folder. Every file is written atomically (temporary
file, then rename), so a run killed at any moment leaves only complete files.

A blob's name is a digest of its bytes. Up to one leaf (4 MiB), which is
nearly every artifact: BLAKE2b (40 hex digits) from the standard library,
which costs under a microsecond to start and nothing to import. Larger: plain
BLAKE3 (64 hex digits, the `blake3` package, the digest `b3sum` prints): 100 MB
in 24 ms on one core, against 62 ms for the BLAKE2 tree on two. A blob is named
on write and checked on every read, so that is the cost of a large artifact.
One thread on purpose: blake3's own threads come from a process-wide pool that
a forked task inherits without its threads, and hashing there hangs. An
interpreter without blake3 (the app's bundled core in a Python of another
version) names a large blob as before, by a two-level BLAKE2 tree of 4 MiB
leaves hashed in threads; it reads a BLAKE3-named blob unchecked (saying so
once) and never reuses one blind on resume. One value named both ways is one
value (`BlobStore.same_bytes`). Either way the digest depends on the bytes
alone. Reading a blob checks it against its name, so a damaged file raises
`BlobDamagedError` (naming the file) instead of returning a wrong value.

The bytes live in the blob folder, or in an object store when the root is the
working copy of one (`BlobBackend`; `store.objectstore`, loaded only then).

Older stores keep working: blobs are read by whatever name they have. A
32-digit name is xxh3-128 (older Flowdeck, with xxhash installed): checked
when xxhash is importable, read unchecked otherwise. A 40-digit name of a
blob larger than a leaf is the BLAKE2 tree (older Flowdeck, or no blake3) or,
older still, plain sequential BLAKE2b: both still checked.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import pickle
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.layout import datastore_of

try:  # hashlib's own BLAKE2, without importing OpenSSL on every task's start-up path
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - an interpreter that only offers it through hashlib
    from hashlib import blake2b as _blake2b

MAGIC = b"FDB1"
_HEADER = struct.Struct("<4sI")
_LENGTH = struct.Struct("<Q")  # the length table of a blob without out-of-band buffers

DIGEST_SIZE = 20  # 40 hex digits: never mistaken for an older xxh3-128 name (32)
LARGE_DIGEST_SIZE = 32  # BLAKE3's own output: 64 hex digits
LEAF_SIZE = 4 * 1024 * 1024  # part of the digest's definition: never change it
_INNER_SIZE = 32
MAX_HASH_THREADS = 8
_COMPARE_STEP = 4 * 1024 * 1024


class ArtifactPickleError(Exception):
    """An artifact could not be serialised; the message names it and its type."""

    #: What @catch's `type` and the client call it: Metaflow's name for the same failure.
    metaflow_name = "metaflow.datastore.exceptions.UnpicklableArtifactException"


class InvalidDigest(ValueError):
    """A blob name from a record that is not a digest (`../../etc/hostname`, upper case, ...).

    Names come from metadata files, which anyone who hands you a datastore
    wrote; joined into a path unchecked, one would read (and unpickle) any file.
    """

    def __init__(self, sha: object, where: str = "an artifact reference"):
        super().__init__(
            f"{where}: the blob name {sha!r} is not a blob digest ({DIGEST_LENGTHS_TEXT} "
            "lowercase hex digits), so no file is opened for it. The record was damaged or "
            "edited: rerun the step that produced it.")
        self.sha = sha


#: xxh3-128 (older stores), BLAKE2b (blobs up to a leaf; larger ones without blake3), BLAKE3
_DIGEST_LENGTHS = (32, 2 * DIGEST_SIZE, 2 * LARGE_DIGEST_SIZE)
DIGEST_LENGTHS_TEXT = f"{', '.join(map(str, _DIGEST_LENGTHS[:-1]))} or {_DIGEST_LENGTHS[-1]}"
_HEX = frozenset("0123456789abcdef")


def is_digest(sha: object) -> bool:
    """True for a blob name this store can hold: lowercase hex of a known digest's length."""
    return isinstance(sha, str) and len(sha) in _DIGEST_LENGTHS and _HEX.issuperset(sha)


def check_digest(sha: object, where: str = "an artifact reference") -> str:
    """`sha` itself when it is a digest; InvalidDigest (saying `where` it came from) if not."""
    if isinstance(sha, str) and is_digest(sha):
        return sha
    raise InvalidDigest(sha, where)


class BlobDamagedError(ValueError):
    """A blob that is missing, truncated or whose bytes no longer match its name.

    Never a value: a damaged blob would otherwise unpickle into a wrong
    value, or fail deep inside numpy with a message that names no file.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str):
        super().__init__(
            f"Artifact blob {path} {problem}. Its value cannot be trusted, so it is not "
            "returned. Rerun the step that produced it: `python <flow file> resume <step>` "
            "reruns every task whose artifacts are damaged or missing.")
        self.path = str(path)


# -- hashing --------------------------------------------------------------------

def blob_digest(chunks: Sequence[Any]) -> str:
    """The name of the blob made of `chunks` (bytes-like, concatenated).

    Up to one leaf: plain BLAKE2b. Larger: BLAKE3, or without the blake3
    package a BLAKE2 tree of `LEAF_SIZE` leaves hashed in threads (BLAKE2's own
    tree parameters keep leaves, root and plain hashes apart); neither depends
    on the thread count.
    """
    if len(chunks) == 2 and type(chunks[0]) is bytes and type(chunks[1]) is bytes \
            and len(chunks[0]) + len(chunks[1]) <= LEAF_SIZE:  # most artifacts: header, pickle
        return _sequential_digest(chunks)
    views = [_byte_view(c) for c in chunks]
    if sum(v.nbytes for v in views) <= LEAF_SIZE:
        return _sequential_digest(views)
    blake3 = _blake3()
    if blake3 is None:
        return _tree_digest(views)
    digest = blake3()  # one thread: see the module's docstring
    for view in views:
        digest.update(view)  # releases the GIL
    return digest.hexdigest()


def _blake2_digest(views: Sequence[memoryview]) -> str:
    """The BLAKE2 name of a blob: plain up to a leaf, the tree above."""
    if sum(v.nbytes for v in views) <= LEAF_SIZE:
        return _sequential_digest(views)
    return _tree_digest(views)


def _tree_digest(views: Sequence[memoryview]) -> str:
    leaves = _split_leaves(views, LEAF_SIZE)
    jobs = [(i, parts, i == len(leaves) - 1) for i, parts in enumerate(leaves)]
    workers = min(len(jobs), _usable_cpus(), MAX_HASH_THREADS)
    if workers < 2:
        digests = [_leaf_digest(job) for job in jobs]
    else:  # a pool per call: a long-lived one would not survive the orchestrator's fork
        from concurrent.futures import ThreadPoolExecutor  # only large blobs pay its import
        with ThreadPoolExecutor(workers, thread_name_prefix="flowdeck-hash") as pool:
            digests = list(pool.map(_leaf_digest, jobs))
    root = _tree_node(DIGEST_SIZE, offset=0, depth=1, last=True)
    for digest in digests:
        root.update(digest)
    return root.hexdigest()


_NOT_LOADED: Any = object()
_BLAKE3: Any = _NOT_LOADED


def _blake3() -> Callable[..., Any] | None:
    """blake3's hasher, imported on the first large blob (3 ms: small runs never pay it);
    None where the package is missing."""
    global _BLAKE3
    if _BLAKE3 is _NOT_LOADED:
        hasher: Callable[..., Any] | None
        try:
            import blake3
            hasher = blake3.blake3
        except ImportError:
            hasher = None
        _BLAKE3 = hasher
    loaded: Callable[..., Any] | None = _BLAKE3
    return loaded


def warm_large_hashing(refs: Iterable[BlobRef]) -> None:
    """In a process that forks tasks, once one of them stored a blob larger than a leaf:
    import the hasher of large blobs, which every later task then inherits instead of
    importing it again (3 ms each, as much as hashing 12 MB)."""
    if _BLAKE3 is _NOT_LOADED and any(ref.size > LEAF_SIZE for ref in refs):
        _blake3()


def _sequential_digest(views: Sequence[memoryview | bytes]) -> str:
    digest = _blake2b(digest_size=DIGEST_SIZE)
    for view in views:
        digest.update(view)
    return digest.hexdigest()


def _tree_node(size: int, offset: int, depth: int, last: bool) -> Any:
    """A BLAKE2b hasher for one node of the tree: unlimited fanout, two levels."""
    return _blake2b(digest_size=size, fanout=0, depth=2, leaf_size=LEAF_SIZE,
                    inner_size=_INNER_SIZE, node_offset=offset, node_depth=depth,
                    last_node=last)


def _leaf_digest(job: tuple[int, list[memoryview], bool]) -> bytes:
    index, parts, last = job
    digest = _tree_node(_INNER_SIZE, offset=index, depth=0, last=last)
    for part in parts:
        digest.update(part)
    return digest.digest()


def _split_leaves(views: Sequence[memoryview], size: int) -> list[list[memoryview]]:
    """Cut the concatenation of `views` into leaves of `size` bytes (the last may be short)."""
    leaves: list[list[memoryview]] = []
    current: list[memoryview] = []
    room = size
    for view in views:
        while view.nbytes:
            part = view[:room]
            current.append(part)
            room -= part.nbytes
            view = view[part.nbytes:]
            if room == 0:
                leaves.append(current)
                current, room = [], size
    if current:
        leaves.append(current)
    return leaves


def _byte_view(chunk: Any) -> memoryview:
    view = memoryview(chunk)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _legacy_xxh3() -> Callable[[Any], Any] | None:
    """xxh3-128, which named blobs before BLAKE2 did; only needed to check those."""
    try:
        from xxhash import xxh3_128
    except ImportError:
        return None
    return xxh3_128


def _verify(path: str | os.PathLike[str], sha: str, view: memoryview) -> bool:
    """Raise BlobDamagedError unless `view` hashes to `sha`; False if the name is not checkable."""
    matches = _name_matches([view], sha)
    if matches is None:
        return False
    if not matches:
        raise BlobDamagedError(path, "is damaged: its bytes no longer match its "
                                     f"{_scheme_name(sha)} name")
    return True


def _name_matches(views: Sequence[memoryview], sha: str) -> bool | None:
    """Whether the bytes `views` are named `sha` in the digest scheme of its length; None
    where that scheme's package is missing."""
    if len(sha) == 2 * DIGEST_SIZE:
        if _blake2_digest(views) == sha:
            return True
        # written by a bare interpreter before tree hashing
        return sum(v.nbytes for v in views) > LEAF_SIZE and _sequential_digest(views) == sha
    optional = _PACKAGE_HASHES.get(len(sha))
    hasher = optional.load() if optional is not None else None
    if hasher is None:
        return None
    digest = hasher()
    for view in views:
        digest.update(view)
    return bool(digest.hexdigest() == sha)


def _scheme_name(sha: str) -> str:
    optional = _PACKAGE_HASHES.get(len(sha))
    return "BLAKE2b" if optional is None else optional.name


def _unchecked_because(sha: str) -> str:
    """Why a blob named `sha` could not be checked (`_verify` returned False)."""
    optional = _PACKAGE_HASHES.get(len(sha))
    if optional is None:
        return "its name is no digest this store knows"
    return f"its {optional.name} name cannot be checked without the {optional.package} package"


_SAID_UNCHECKED: set[int] = set()


def _say_unchecked(path: str | os.PathLike[str], sha: str) -> None:
    """Once per process and digest scheme: a blob is returned without its check."""
    if len(sha) in _SAID_UNCHECKED:
        return
    _SAID_UNCHECKED.add(len(sha))
    optional = _PACKAGE_HASHES.get(len(sha))
    fix = f" (`pip install {optional.package}` into this Python checks it)" if optional else ""
    print(f"[flowdeck] {path} is read unchecked: {_unchecked_because(sha)}{fix}.",
          file=sys.stderr)


class _PackageHash(NamedTuple):
    """A digest that names blobs and comes from a package rather than the standard library:
    where the package is missing, those blobs are read unchecked."""

    name: str
    package: str
    load: Callable[[], Callable[..., Any] | None]


#: By the length of the names they give.
_PACKAGE_HASHES = {2 * LARGE_DIGEST_SIZE: _PackageHash("BLAKE3", "blake3", _blake3),
                   32: _PackageHash("xxh3", "xxhash", _legacy_xxh3)}


@dataclass(frozen=True)
class BlobRef:
    """A stored artifact value: its content hash, size in bytes and type name, and for a
    small number, flag or short string its text (`short_text`), so that views which
    must not load values (run comparison) can still say 0.0033 against 1.30."""

    sha: str
    size: int
    type: str
    short: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.short is None:
            return {"sha": self.sha, "size": self.size, "type": self.type}
        return {"sha": self.sha, "size": self.size, "type": self.type, "short": self.short}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "an artifact reference") -> "BlobRef":
        """The reference in a record; InvalidDigest (naming `where`) for a name that is no digest."""
        short = d.get("short")
        return cls(check_digest(d.get("sha"), where), int(d.get("size", 0)),
                   d.get("type", "object"),
                   short if isinstance(short, str) and len(short) <= SHORT_TEXT_MAX else None)


#: The longest text a reference keeps of its value (`short_text`).
SHORT_TEXT_MAX = 80
_INT_TEXT_LIMIT = 10**18  # larger ints are shown by type and size, as any other value


def short_text(value: Any) -> str | None:
    """The text of a small scalar value as Python shows it (`repr`): an int, float, bool
    or complex (numpy's scalars too) or a string whose repr is at most SHORT_TEXT_MAX
    characters; None for anything else. Exact types only: a subclass's repr is its own
    code, and this runs in every task for every artifact it stores (a type check, then
    one repr)."""
    kind = type(value)
    if kind is float or kind is bool or kind is complex:
        return repr(value)
    if kind is int:
        return repr(value) if -_INT_TEXT_LIMIT < value < _INT_TEXT_LIMIT else None
    if kind is str:  # its repr within the limit readers keep ("\x00" * 60 is 242 long)
        text = repr(value) if len(value) <= SHORT_TEXT_MAX else ""
        return text if 0 < len(text) <= SHORT_TEXT_MAX else None
    if kind.__module__ == "numpy" and getattr(value, "shape", None) == ():
        try:
            return short_text(value.item())  # np.float64(0.5) reads 0.5
        except Exception:  # noqa: BLE001 (a numpy scalar of an odd dtype)
            return None
    return None


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
        with open(fd, "wb") as handle:  # os.fdopen's own Python code does just this
            if isinstance(data, (bytes, bytearray, memoryview)):
                handle.write(data)
            else:
                for chunk in data:
                    handle.write(chunk)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write names no file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


#: `json.dumps(obj, default=str, separators=(",", ":"))`, without a new encoder per call
#: (a task worker writes its record with the one it inherited).
_JSON = json.JSONEncoder(default=str, separators=(",", ":"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write(path, _JSON.encode(obj).encode())


@dataclass
class EncodedBlob:
    """A value pickled into a blob's bytes, not yet named or written."""

    chunks: list[Any]  # header, pickle stream, out-of-band buffers
    size: int
    type: str
    short: str | None = None  # `short_text` of the value

    @cached_property
    def sha(self) -> str:
        return blob_digest(self.chunks)


#: Globals a stored value names, read as something else: (module, name) -> object. The
#: engine fills it (`engine.task.track_script_classes`: the script's classes keep their
#: methods as the script defines them); empty, values load with `pickle.loads` as written.
LOAD_OVERRIDES: dict[tuple[str, str], Any] = {}


def _names_an_override(view: memoryview, main: memoryview) -> bool:
    """Whether a pickle stream may name a global of LOAD_OVERRIDES. The overriding
    unpickler reads through a copy of the stream (BytesIO), so a value that cannot need it
    (most: no class of the script) keeps `pickle.loads`' zero-copy read of a mapped blob.
    A large stream is searched where it lies (bytes or the blob's mapping: `find`, no
    copy); a name found anywhere in the blob only costs the slower path."""
    names = [name.encode() for _, name in LOAD_OVERRIDES]
    if main.nbytes <= 1 << 20:
        data = main.tobytes()
        return any(name in data for name in names)
    finder = getattr(view.obj, "find", None)
    return finder is None or any(finder(name) >= 0 for name in names)


class _OverridingUnpickler(pickle.Unpickler):
    """`pickle.loads`, with LOAD_OVERRIDES in place of the globals they name."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 (pickle's hook)
        override = LOAD_OVERRIDES.get((module, name))
        return override if override is not None else super().find_class(module, name)


class BlobStore:
    """Content-addressed store of pickled values; each distinct value is written once.

    Values are pickled with protocol 5 and out-of-band buffers, so a large
    numpy array is hashed and written straight from its memory without a
    copy and without compression (which costs more than it saves on
    floating-point data). Reads check the bytes against the name.
    """

    def __init__(self, root: Path, datastore: str | None = None):
        root = Path(root)
        self.dir = root / "blobs"
        self._intact: set[str] = set()  # checked by `damage` in this process
        #: Where the bytes live: this folder, or an object store (`objectstore.ObjectBlobs`,
        #: imported only then): `datastore` (a worker on another machine), or the one
        #: whose working copy `root` is (`layout.datastore_of`).
        self.backend: BlobBackend = _LOCAL
        if datastore is None:
            mark = datastore_of(root)
            datastore = mark.url if mark is not None else None
        if datastore is not None:
            from flowdeck.store.objectstore import ObjectBlobs
            self.backend = ObjectBlobs(root, datastore)

        #: The blob folder, or its object store's URL (for messages).
        self.where = self.backend.name(self.dir)
        self._dir_text = str(self.dir)

    def path(self, sha: str) -> Path:
        """Where the blob `sha` lives; InvalidDigest for anything but a digest (never a path)."""
        return Path(self.path_text(sha))

    def path_text(self, sha: str) -> str:
        """`path` as a plain string: pathlib's ~40 Python calls per blob cost every task
        worker pages copied on write, and a join of 1,000 inputs a third of its time."""
        check_digest(sha, f"A blob of {self.where} was asked for")
        return self._shard_path(sha)

    def _shard_path(self, sha: str) -> str:
        """The one formula of a blob's place: `blobs/<first two>/<digest>`."""
        return f"{self._dir_text}{os.sep}{sha[:2]}{os.sep}{sha}"

    def put(self, name: str, value: Any) -> BlobRef:
        return self.write(self.encode(name, value))

    def encode(self, name: str, value: Any) -> EncodedBlob:
        """Pickle `value` (the artifact `name`) into a blob's bytes."""
        try:
            main, raws = _dumps(value)
        except Exception as exc:  # pickling runs arbitrary __reduce__ code
            raise ArtifactPickleError(
                f"Artifact `{name}` of type {type(value).__module__}.{type(value).__qualname__} "
                f"cannot be pickled ({type(exc).__name__}: {exc}). Store a picklable value, "
                f"or remove it with `del self.{name}` before the step ends.") from None
        if not raws:  # most values: the same bytes, without two generators' code per task
            header = _HEADER.pack(MAGIC, 0) + _LENGTH.pack(len(main))
            return EncodedBlob([header, main], len(header) + len(main), _type_name(value),
                               short_text(value))
        header = _HEADER.pack(MAGIC, len(raws)) + struct.pack(
            f"<{len(raws) + 1}Q", len(main), *(r.nbytes for r in raws))
        size = len(header) + len(main) + sum(r.nbytes for r in raws)
        return EncodedBlob([header, main, *raws], size, _type_name(value), short_text(value))

    def write(self, blob: EncodedBlob) -> BlobRef:
        """Store `blob` under its hash, unless a file of that name holding exactly these
        bytes is already there.

        Any other file under that name is a damaged copy: it is replaced. (Trusting a file
        of the right size let a rerun reference a blob with a flipped byte, which the next
        step then failed to read; found by reliability/corrupt_store.py. Comparing the
        bytes costs a read, and only when the value was stored before.)
        """
        if self.backend is _LOCAL:
            # No digest check (`path_text`'s): `blob.sha` is one we computed.
            sha = blob.sha
            local = self._shard_path(sha)
            if not _LOCAL.holds_bytes(local, blob):
                _LOCAL.write(local, blob.chunks)
            return BlobRef(sha, blob.size, blob.type, blob.short)
        target = self.path(blob.sha)
        if not self.backend.holds_bytes(target, blob):
            self.backend.write(target, blob.chunks)
        return BlobRef(blob.sha, blob.size, blob.type, blob.short)

    def holds(self, ref: BlobRef, blob: EncodedBlob) -> bool:
        """True when the stored blob of `ref` has exactly the bytes of `blob`.

        Comparing bytes with the file (about 7 GB/s) costs less than hashing them
        (BLAKE2 about 1 GB/s per core, BLAKE3 4.5 GB/s), so a task uses it to find
        artifacts it read but did not change, and keeps their references instead of
        writing them.
        """
        if self.backend.remote:  # fetching the blob to compare costs more than hashing
            if len(blob.sha) == len(ref.sha):
                return blob.sha == ref.sha
            # the ref is named in another scheme (BLAKE2 by an older Flowdeck, BLAKE3 by an
            # interpreter with blake3): the bytes are hashed in that one
            return _name_matches([_byte_view(c) for c in blob.chunks], ref.sha) is True
        return _LOCAL.holds_bytes(self.path_text(ref.sha), blob)

    def same_bytes(self, a: BlobRef, b: BlobRef) -> bool:
        """True when the blobs of `a` and `b` hold the same bytes: the same name, or names
        of two digest schemes for one value (a large value named by BLAKE2 in an older
        store, or by an interpreter without blake3, and by BLAKE3 in this one). Then `b`'s
        bytes, checked against its own name, are hashed in `a`'s scheme. False when that
        cannot tell (a missing or damaged blob, a scheme without its package)."""
        if a.sha == b.sha:
            return True
        if len(a.sha) == len(b.sha) or (a.size and b.size and a.size != b.size):
            return False
        try:
            view = self.backend.read(self.path(b.sha))
        except OSError:
            return False
        return _name_matches([view], b.sha) is True and _name_matches([view], a.sha) is True

    def get(self, sha: str) -> Any:
        """The value stored under `sha`; BlobDamagedError if the file is missing or damaged."""
        view, path = self._read(sha)
        _check_magic(path, view)
        checked = _verify(path, sha, view)
        if not checked:
            _say_unchecked(path, sha)
        main, buffers = _split(path, view)
        try:
            if LOAD_OVERRIDES and _names_an_override(view, main):
                return _OverridingUnpickler(io.BytesIO(main), buffers=buffers).load()
            return pickle.loads(main, buffers=buffers)
        except (pickle.UnpicklingError, EOFError, ValueError, IndexError, struct.error) as exc:
            if checked:  # the bytes are the ones written: a genuine error, not damage
                raise
            raise BlobDamagedError(path, f"cannot be unpickled ({type(exc).__name__}: {exc}) "
                                         f"and {_unchecked_because(sha)}, so it is probably "
                                         "damaged") from None

    def _read(self, sha: str) -> tuple[memoryview, str]:
        """The bytes of blob `sha` and its name for messages (its file, or its URL)."""
        if self.backend is _LOCAL:
            path = self.path_text(sha)
            try:
                return _read_blob(path), path
            except FileNotFoundError:
                raise BlobDamagedError(path, "is missing") from None
        name = self.backend.name(self.path(sha))
        try:
            return self.backend.read(self.path(sha)), name
        except FileNotFoundError:
            raise BlobDamagedError(name, "is missing") from None

    def damage(self, ref: BlobRef) -> str | None:
        """What is wrong with the stored blob of `ref` (missing, wrong size, damaged), or None.

        Resume calls this before reusing a task, so it hashes each blob at most
        once per process. A damaged file is set aside (renamed `<name>.damaged`)
        so that rerunning the step that produced it writes a good copy.
        """
        if ref.sha in self._intact:
            return None
        path = self.path(ref.sha)
        if self.backend.remote:
            return self._remote_damage(ref, path)
        try:
            view = _read_blob(path)
        except FileNotFoundError:
            return f"{path} is missing"
        try:
            if ref.size and view.nbytes != ref.size:
                raise BlobDamagedError(path, f"has {view.nbytes} bytes instead of {ref.size}")
            _check_magic(path, view)
            checked = _verify(path, ref.sha, view)
            _split(path, view)
        except BlobDamagedError as exc:
            _set_aside(path)
            return f"{exc.path} is damaged"
        if not checked:  # not reused blind: the task runs again and names its value anew
            return f"{path} cannot be checked: {_unchecked_because(ref.sha)}"
        self._intact.add(ref.sha)
        return None

    def _remote_damage(self, ref: BlobRef, path: Path) -> str | None:
        """`damage` in an object store: present with its size, without fetching it.

        A blob there was written in one request to its content-addressed key, so it
        is whole or absent, and the store checksums what it keeps; reading checks
        the hash anyway. A blob of another size is deleted (the rerun writes it).
        """
        name = self.backend.name(path)
        try:
            size = self.backend.size(path)
        except OSError as exc:
            return f"{name} cannot be checked ({exc})"
        if size is None:
            return f"{name} is missing"
        if ref.size and size != ref.size:
            try:
                self.backend.set_aside(path)
            except OSError:
                pass
            return f"{name} is damaged (it has {size} bytes instead of {ref.size})"
        self._intact.add(ref.sha)
        return None


class BlobBackend(Protocol):
    """Where a BlobStore's bytes live: a folder (`LocalBlobs`) or an object store
    (`objectstore.ObjectBlobs`). Paths are the blob folder's; a backend maps them."""

    #: True when reading a blob means fetching it over the network.
    remote: bool

    def name(self, path: Path) -> str:
        """The blob's path or URL, for messages."""
        ...

    def read(self, path: Path) -> memoryview:
        """The blob's bytes (writable); FileNotFoundError when it is absent."""
        ...

    def size(self, path: Path) -> int | None:
        """The stored blob's size; None when it is absent."""
        ...

    def holds_bytes(self, path: Path, blob: EncodedBlob) -> bool:
        """True when the blob stored at `path` has exactly `blob`'s bytes."""
        ...

    def write(self, path: Path, chunks: list[Any]) -> None:
        """Store `chunks` at `path`, so that readers see all of them or nothing."""
        ...

    def set_aside(self, path: Path) -> None:
        """Move a damaged blob out of the way (so that it is written again)."""
        ...


class LocalBlobs:
    """Blobs as files: written to a temporary file and renamed, mapped when read."""

    remote = False

    def name(self, path: Path) -> str:
        return str(path)

    def read(self, path: Path) -> memoryview:
        return _read_blob(path)

    def size(self, path: Path) -> int | None:
        try:
            return os.stat(path).st_size
        except OSError:
            return None

    def holds_bytes(self, path: str | os.PathLike[str], blob: EncodedBlob) -> bool:
        """Byte for byte: any other file under the name is a damaged copy (a file of the
        right size with a flipped byte once let a rerun reference it)."""
        if not os.access(path, os.F_OK):  # a new value: no exception raised and caught
            return False
        try:
            with open(path, "rb", buffering=0) as handle:
                if os.fstat(handle.fileno()).st_size != blob.size:
                    return False
                return all(_file_continues_with(handle, _byte_view(c)) for c in blob.chunks)
        except OSError:
            return False

    def write(self, path: str | os.PathLike[str], chunks: list[Any]) -> None:
        try:  # the shard folder (`ab/`) is there but for the first blobs of a store
            atomic_write(path, chunks)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, chunks)

    def set_aside(self, path: Path) -> None:
        _set_aside(path)


_LOCAL = LocalBlobs()


def _file_continues_with(handle: Any, view: memoryview) -> bool:
    """True when the next bytes of the open file are exactly `view`."""
    buffer = bytearray(min(_COMPARE_STEP, view.nbytes))
    for start in range(0, view.nbytes, _COMPARE_STEP):
        part = view[start:start + _COMPARE_STEP]
        if part.nbytes != len(buffer):
            buffer = bytearray(part.nbytes)
        got = handle.readinto(buffer)
        if got != part.nbytes or buffer != part:  # bytearray == buffer: one memcmp
            return False
    return True


def _set_aside(path: Path) -> None:
    try:
        os.replace(path, path.with_name(path.name + ".damaged"))
    except OSError:
        pass


def _check_magic(path: str | os.PathLike[str], view: memoryview) -> None:
    if view.nbytes < _HEADER.size or bytes(view[:len(MAGIC)]) != MAGIC:
        raise BlobDamagedError(path, "is not a Flowdeck artifact blob (damaged or overwritten)")


def _split(path: str | os.PathLike[str], view: memoryview) -> tuple[memoryview, list[memoryview]]:
    """The pickle stream and out-of-band buffers of a blob, with every length checked."""
    _, count = _HEADER.unpack_from(view, 0)
    table_end = _HEADER.size + 8 * (count + 1)
    if table_end > view.nbytes:
        raise BlobDamagedError(path, "is truncated or damaged (its header is incomplete)")
    lengths = struct.unpack_from(f"<{count + 1}Q", view, _HEADER.size)
    if table_end + sum(lengths) != view.nbytes:
        raise BlobDamagedError(path, f"is truncated or damaged (its header describes "
                                     f"{table_end + sum(lengths)} bytes, the file has "
                                     f"{view.nbytes})")
    offset = table_end
    parts = []
    for length in lengths:
        parts.append(view[offset:offset + length])
        offset += length
    return parts[0], parts[1:]


def _read_blob(path: str | os.PathLike[str]) -> memoryview:
    """A blob's bytes, writable. Large blobs are mapped copy-on-write instead of read.

    Arrays unpickled from out-of-band buffers then point into the mapping: checking
    the hash reads every page once (mapping the page cache, not copying it), and
    writes stay private to this process. Blobs are never modified in place (a
    damaged copy is replaced by rename, a new file), so the mapping cannot change.
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
            return main, [b.raw() for b in buffers] if buffers else []
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

