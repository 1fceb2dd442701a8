"""Artifacts and records in an object store (`s3://`, `gs://`, `az://`), through fsspec.

The only module that imports fsspec (and, through it, s3fs, gcsfs or adlfs), and
only when a store's root is an object-store URL: a local run never loads them.

The object store has the local store's layout under its prefix (`store.layout`
owns it; `layout.object_key` maps a working copy's file to its key). A run
works in a local *working copy* (`layout.working_root`), where the orchestrator
writes the events and logs the window follows; the object store receives

- every blob, written by the task that made it, straight to its content-addressed
  key (no rename exists there: one PUT, or a multipart upload, appears whole or
  not at all, so a task killed mid-upload leaves no object, or an unfinished
  multipart upload that no listing or GET shows);
- every task's attempt record, written by the task after all its blobs (the
  manifest: a blob no record names is no artifact);
- the run record when the run starts (so the run is listed, and resumable, while
  it goes), and at the end (`publish_run`) the records the orchestrator wrote
  itself (reused tasks, tasks that died), logs, cards, `events.jsonl`, then the
  final run record last.

A reader (`Flow("X", root="s3://...")`) fetches records into a per-user cache
(`ReadCache`, `layout.cache_root`) and reads blobs from the object store. Every
failure is an `ObjectStoreError` that names the URL, the operation and what to
do; docs/scale-out.md ("Store") has the reasoning.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.layout import (
    DATASTORE_FILE,
    FETCHED,
    RUN_JSON,
    RunLayout,
    datastore_of,
    is_id,
    mark_datastore,
    normal_url,
    object_key,
)

#: The fsspec package each scheme needs, for the message when it is missing.
PACKAGES = {"s3": "s3fs (pip install 'flowdeck[s3]')", "s3a": "s3fs (pip install 'flowdeck[s3]')",
            "gs": "gcsfs (pip install gcsfs)", "gcs": "gcsfs (pip install gcsfs)",
            "az": "adlfs (pip install adlfs)", "abfs": "adlfs (pip install adlfs)",
            "abfss": "adlfs (pip install adlfs)"}
#: The reason of an ObjectStoreError whose endpoint did not answer (its start).
UNREACHABLE = "the store cannot be reached"
#: A small object written when a run starts: proves the bucket exists and takes writes.
STORE_MARKER = ".flowdeck-store"


class ObjectStoreError(OSError):
    """An object-store operation that failed; the message names the URL, the operation
    and what to do. An OSError, so code that handles a refused write handles this too."""

    def __init__(self, url: str, operation: str, reason: str, advice: str):
        self.message = f"Cannot {operation} {url}: {reason}. {advice}"
        super().__init__(errno.EIO, self.message, url)
        self.url = url
        self.operation = operation
        self.reason = reason  # (apart, for a worker's task to say where it happened)
        self.advice = advice

    def __str__(self) -> str:
        return self.message


def _explain(exc: BaseException, url: str) -> tuple[str, str]:
    """(reason, advice) for an exception from fsspec or the cloud SDK under it."""
    text = str(exc) or type(exc).__name__
    name = type(exc).__name__
    scheme = url.split("://", 1)[0]
    bucket = url.split("://", 1)[1].split("/", 1)[0]
    if "NoCredentials" in name or "Unable to locate credentials" in text:
        return ("no credentials were found", _credentials_advice(scheme))
    if "bucket does not exist" in text.lower() or "NoSuchBucket" in text:
        return (f"the bucket `{bucket}` does not exist",
                "Create it, or fix the URL given with --datastore (or $FLOWDECK_DATASTORE).")
    if isinstance(exc, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return (f"access denied ({text})", _credentials_advice(scheme))
    if isinstance(exc, FileNotFoundError):
        return ("it does not exist", "It was never written, or was deleted from the store.")
    lowered = text.lower()
    if any(w in lowered for w in ("connect", "timeout", "timed out", "name or service",
                                  "endpoint")) or isinstance(exc, (ConnectionError, TimeoutError)):
        return (f"{UNREACHABLE} ({text})",
                f"Check the network and the endpoint{endpoint_in_use(scheme)}.")
    if re.search(r"\b5\d\d\b", text) or any(w in text for w in (
            "SlowDown", "Throttl", "reduce your request rate", "InternalError",
            "ServiceUnavailable", "RequestLimitExceeded")):
        return (f"the store kept refusing after fsspec's retries ({text})",
                "It is overloaded or throttling: try again later, or run fewer tasks at "
                "once (--max-workers).")
    return (f"{name}: {text}", "Check the URL, the credentials and the network, then try again.")


#: The variables that give s3fs an S3-compatible server's endpoint, in the order read.
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL")


def endpoint_in_use(scheme: str) -> str:
    """For an S3 URL, which endpoint this process used and where it comes from: the
    variable that set it, or AWS's own when none is set (a worker started without
    $AWS_ENDPOINT_URL tried amazonaws.com while this machine's endpoint worked)."""
    if scheme not in ("s3", "s3a"):
        return ""
    named = " or ".join(f"${name}" for name in ENDPOINT_VARIABLES)
    for name in ENDPOINT_VARIABLES:
        if os.environ.get(name):
            return (f": this process used ${name}={os.environ[name]} (an S3-compatible "
                    f"server's endpoint is set with {named})")
    return (f": this process used AWS's own, as none of {named} is set; set one to an "
            "S3-compatible server's endpoint")


def _credentials_advice(scheme: str) -> str:
    if scheme in ("s3", "s3a"):
        return ("Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to keys "
                "allowed to read and write the bucket, on this machine and on every worker.")
    if scheme in ("gs", "gcs"):
        return ("Set GOOGLE_APPLICATION_CREDENTIALS (or run `gcloud auth application-default "
                "login`) on this machine and on every worker.")
    return "Give this machine and every worker credentials allowed to read and write it."


_STORES: dict[tuple[int, str], "ObjectStore"] = {}


def open_store(url: str) -> "ObjectStore":
    """The ObjectStore of `url`, one per process (a forked task makes its own: the
    fsspec client of the orchestrator holds sockets and a loop thread it cannot share)."""
    url = normal_url(url)
    key = (os.getpid(), url)
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = ObjectStore(url)
    return store


class ObjectStore:
    """One object-store root (`s3://bucket/prefix`): keys are relative to it."""

    def __init__(self, url: str):
        self.url = normal_url(url)
        self._fs: Any = None
        self._base = ""

    @property
    def fs(self) -> Any:
        """The fsspec file system (imported and built on first use)."""
        if self._fs is None:
            scheme = self.url.split("://", 1)[0]
            try:
                from fsspec.core import url_to_fs
                self._fs, self._base = url_to_fs(self.url, skip_instance_cache=True)
            except ImportError as exc:
                package = PACKAGES.get(scheme, f"the fsspec package for {scheme}://")
                raise ObjectStoreError(self.url, "open the object store", f"{exc}",
                                       f"Install {package}.") from None
            except ValueError as exc:  # "Protocol not known"
                raise ObjectStoreError(self.url, "open the object store", str(exc),
                                       "Use s3://, gs:// or az:// with its fsspec package "
                                       "installed.") from None
            self._base = self._base.rstrip("/")
        return self._fs

    def path(self, key: str) -> str:
        """The file system's path of `key` (no scheme)."""
        _ = self.fs
        return f"{self._base}/{key}" if key else self._base

    def url_of(self, key: str) -> str:
        return f"{self.url}/{key}" if key else self.url

    def _fail(self, exc: BaseException, operation: str, key: str) -> ObjectStoreError:
        if isinstance(exc, ObjectStoreError):
            return exc
        url = self.url_of(key)
        reason, advice = _explain(exc, url)
        return ObjectStoreError(url, operation, reason, advice)

    # -- single objects --------------------------------------------------------

    def put(self, key: str, data: bytes, operation: str = "write") -> None:
        """Write one object. A single PUT (or a multipart upload completed only after
        every part arrived): readers see all of it or nothing."""
        try:
            self.fs.pipe_file(self.path(key), data)
        except Exception as exc:
            raise self._fail(exc, operation, key) from None

    def put_json(self, key: str, obj: Any, operation: str = "write record") -> None:
        self.put(key, json.dumps(obj, default=str, separators=(",", ":")).encode(), operation)

    def get(self, key: str, operation: str = "read") -> bytes:
        """One object's bytes; FileNotFoundError when it does not exist."""
        try:
            return bytes(self.fs.cat_file(self.path(key)))
        except FileNotFoundError:
            self._check_bucket(operation, key)
            raise
        except Exception as exc:
            raise self._fail(exc, operation, key) from None

    def size(self, key: str, operation: str = "look up") -> int | None:
        """An object's size in bytes; None when it does not exist.

        On S3 one HEAD request: fsspec's `info` lists the prefix as well after a 404
        (to find a "directory"), a second request for every new blob.
        """
        fs = self.fs
        try:
            if hasattr(fs, "call_s3") and hasattr(fs, "split_path"):
                bucket, name, _ = fs.split_path(self.path(key))
                head = fs.call_s3("head_object", Bucket=bucket, Key=name)
                return int(head["ContentLength"])
            info = fs.info(self.path(key))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise self._fail(exc, operation, key) from None
        return int(info.get("size") or 0) if info.get("type", "file") == "file" else None

    def remove(self, key: str, operation: str = "delete") -> None:
        try:
            self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._fail(exc, operation, key) from None

    def _check_bucket(self, operation: str, key: str) -> None:
        """After a listing found nothing: an ObjectStoreError if the bucket itself is missing
        (an empty answer would read as "no runs")."""
        if not self._bucket_exists(key):
            raise self._fail(FileNotFoundError("The specified bucket does not exist"),
                             operation, key)

    def _bucket_exists(self, key: str) -> bool:
        bucket = self.path(key).split("/", 1)[0]
        try:
            return bool(self.fs.exists(bucket))
        except Exception:
            return True  # cannot tell: report the key as missing

    def check_writable(self) -> None:
        """Before a run: the bucket exists, the credentials work and may write (one small
        PUT), so a wrong URL fails in a second, naming it, instead of in every task."""
        key = STORE_MARKER
        self.put_json(key, {"flowdeck_store": 1}, "write the store marker")

    # -- listings and many files ----------------------------------------------------

    def files(self, key: str, operation: str = "list") -> dict[str, int]:
        """Every object under `key/` (its key from the store's root -> its size); empty
        when there is none."""
        base = self.path(key)
        try:
            self.fs.invalidate_cache(base)
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            self._check_bucket(operation, key)
            return {}
        except Exception as exc:
            raise self._fail(exc, operation, key) from None
        prefix = self._base + "/"
        return {path[len(prefix):]: int(info.get("size") or 0) for path, info in found.items()
                if path.startswith(prefix) and info.get("type", "file") == "file"}

    def folders(self, key: str, operation: str = "list") -> list[str]:
        """Names of the folders (common prefixes) right under `key/`."""
        base = self.path(key)
        try:
            self.fs.invalidate_cache(base)
            entries = self.fs.ls(base, detail=True)
        except FileNotFoundError:
            self._check_bucket(operation, key)
            return []
        except Exception as exc:
            raise self._fail(exc, operation, key) from None
        return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries
                      if e.get("type") == "directory")

    def get_many(self, keys: list[str], operation: str = "read") -> dict[str, bytes]:
        """The objects of `keys` that exist (fetched concurrently), by key."""
        if not keys:
            return {}
        paths = {self.path(k): k for k in keys}
        try:
            got = self.fs.cat(list(paths), on_error="omit")
        except Exception as exc:
            raise self._fail(exc, operation, keys[0]) from None
        if isinstance(got, (bytes, bytearray)):  # a single path gives its bytes
            got = {next(iter(paths)): got}
        return {paths[p]: bytes(v) for p, v in got.items()
                if p in paths and isinstance(v, (bytes, bytearray))}

    def put_files(self, pairs: list[tuple[str, str]], operation: str = "upload") -> None:
        """Upload local files (local path, key), concurrently."""
        if not pairs:
            return
        try:
            self.fs.put([p for p, _ in pairs], [self.path(k) for _, k in pairs])
        except Exception as exc:
            raise self._fail(exc, operation, pairs[0][1]) from None


# -- blobs --------------------------------------------------------------------------

class ObjectBlobs:
    """The object-store side of `blobs.BlobStore` (its backend seam): blob `path`s are the
    working copy's paths, mapped to keys. No temporary object, no rename: a blob is
    written to its content-addressed key in one request, and a reader checks the hash."""

    remote = True

    def __init__(self, root: Path, url: str):
        self.root = root
        self.store = open_store(url)

    def key(self, path: Path) -> str:
        return object_key(self.root, path)

    def name(self, path: Path) -> str:
        return self.store.url_of(self.key(path))

    def read(self, path: Path) -> memoryview:
        """The blob's bytes, writable (arrays unpickled from it must be); FileNotFoundError
        when it is absent."""
        data = self.store.get(self.key(path), f"read blob {path.name} from")
        return memoryview(bytearray(data))

    def size(self, path: Path) -> int | None:
        return self.store.size(self.key(path), f"look up blob {path.name} in")

    def holds_bytes(self, path: Path, blob: Any) -> bool:
        """True when the key already holds an object of the blob's size: its name is the
        hash of its bytes and it was written whole, so it is this blob (written once; a
        read still checks the hash). Fetching it to compare would cost a download."""
        return self.store.size(self.key(path), f"write blob {path.name} to") == blob.size

    def write(self, path: Path, chunks: list[Any]) -> None:
        data = b"".join(chunks)  # one copy: a PUT body is one buffer (join takes any buffer)
        self.store.put(self.key(path), data, f"write blob {path.name} to")

    def set_aside(self, path: Path) -> None:
        """A damaged blob goes (the rerun writes a good copy under the same key); a store
        with versioning keeps the old version."""
        self.store.remove(self.key(path), f"delete damaged blob {path.name} from")


# -- records ------------------------------------------------------------------------

def write_record(root: Path, url: str, path: str | os.PathLike[str], obj: Any,
                 operation: str = "write record") -> None:
    """Put a record of the working copy `root` into its object store (before the local
    copy is written: the object store's copy is the one another machine trusts)."""
    key = object_key(root, path)
    open_store(url).put_json(key, obj, f"{operation} {key} to")


# -- a run's working copy -----------------------------------------------------------

def attach(root: Path, url: str) -> None:
    """Make `root` the working copy of `url` for runs of this machine, after checking that
    the object store takes writes (ObjectStoreError, naming the URL, if not)."""
    open_store(url).check_writable()
    mark_datastore(root, url, "run")


_SKIP = (".tmp-", ".space-reserve", ".tags.json.lock", FETCHED, DATASTORE_FILE)


def publish_run(layout: RunLayout, run_id: str) -> None:
    """Copy to the object store what of a finished run it lacks: records the orchestrator
    wrote (reused tasks, tasks that died), logs, cards and events; `run.json` last, so a
    reader that sees the final run record finds everything it names."""
    mark = datastore_of(layout.root)
    if mark is None:
        return
    store = open_store(mark.url)
    run_dir = layout.run_dir(run_id)
    run_key = object_key(layout.root, run_dir)
    there = store.files(run_key, "list the run's records in")
    pairs = []
    for folder, _dirs, names in os.walk(run_dir):
        for name in names:
            if name == RUN_JSON and folder == str(run_dir):
                continue
            if name.startswith(_SKIP):
                continue
            path = os.path.join(folder, name)
            key = object_key(layout.root, path)
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            if there.get(key) != size:
                pairs.append((path, key))
    store.put_files(pairs, f"upload the records and logs of run {run_id} to")
    record = layout.run_json(run_id)
    key = object_key(layout.root, record)
    store.put(key, record.read_bytes(), f"write run record {key} to")


# -- reading --------------------------------------------------------------------------

@dataclass
class ReadCache:
    """The local copy of an object store's records, for the client and resume.

    In a reader's cache (`layout.cache_root`) the object store is the truth: a file
    that differs is fetched again, a run that is gone is dropped. In a run's working
    copy only files missing locally are fetched (its own files are the newer ones).
    """

    root: Path
    url: str
    role: str = "cache"

    @classmethod
    def of(cls, root: Path, url: str | None = None) -> "ReadCache | None":
        """The cache of `root` (made one for `url`), or None for a plain local store."""
        if url is not None:
            mark_datastore(root, url, "cache")
        mark = datastore_of(root)
        return None if mark is None else cls(root, mark.url, mark.role)

    @property
    def store(self) -> ObjectStore:
        return open_store(self.url)

    def fetch_runs(self, flow: str,
                   fetched: Callable[[RunLayout, str], bool] | None = None) -> None:
        """Every run record of `flow` (the run list), and tags changed after the runs; a run
        the store no longer has is dropped: any in a reader's cache, and in a working copy
        those that `fetched(layout, run_id)` says came from the store (never one made here:
        it may not be uploaded yet). In a working copy a run's record fetched for the first
        time is preceded by its `fetched_marker`."""
        layout = RunLayout(self.root, flow)
        runs_key = object_key(self.root, layout.runs_dir)
        run_ids = [r for r in self.store.folders(runs_key, "list the runs of " + flow + " in")
                   if not r.startswith(".")]
        wanted = []
        records: dict[str, str] = {}  # run.json's key -> its run
        for run_id in run_ids:
            try:
                for path in (layout.run_json(run_id), layout.tags(run_id),
                             layout.pin_marker(run_id)):
                    wanted.append(object_key(self.root, path))
                records[object_key(self.root, layout.run_json(run_id))] = run_id
            except ValueError:
                continue  # an id that is no valid path component: not a run of ours
        got = self.store.get_many(wanted, "read the run records of " + flow + " in")
        for key, data in got.items():
            fetching = records.get(key)
            if self.role != "cache" and fetching is not None and \
                    not layout.run_json(fetching).exists():
                layout.run_dir(fetching).mkdir(parents=True, exist_ok=True)
                layout.fetched_marker(fetching).touch()
            self._save(key, data)
        if self.role == "cache" and layout.runs_dir.is_dir():
            import shutil  # not at import: task workers load this module for its error type
            for stale in set(os.listdir(layout.runs_dir)) - set(run_ids):
                shutil.rmtree(layout.runs_dir / stale, ignore_errors=True)
        elif fetched is not None:
            for stale in sorted(set(layout.run_ids()) - set(run_ids)):
                if fetched(layout, stale):
                    _drop_run(layout, stale)

    def flow_names(self) -> list[str]:
        """The names of the folders at the store's root that may be flows (ids; `blobs`
        and the like too: the caller keeps those that have runs)."""
        return [name for name in self.store.folders("", "list the flows in") if is_id(name)]

    def fetch_run(self, flow: str, run_id: str) -> None:
        """Every record, log and event file of one run (what differs from the local copy)."""
        layout = RunLayout(self.root, flow)
        run_key = object_key(self.root, layout.run_dir(run_id))
        there = self.store.files(run_key, f"list the records of run {flow}/{run_id} in")
        wanted = []
        for key, size in there.items():
            local = self.root / key
            try:
                have = local.stat().st_size
            except OSError:
                have = None
            if have is None or (self.role == "cache" and have != size):
                wanted.append(key)
        for key, data in self.store.get_many(wanted, f"read run {flow}/{run_id} from").items():
            self._save(key, data)

    def _save(self, key: str, data: bytes) -> None:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            return  # a listed key that would climb out of the cache: never a record of ours
        path = self.root / key
        if self.role != "cache" and path.exists():
            return
        try:
            if path.read_bytes() == data:
                return
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        tmp.write_bytes(data)
        os.replace(tmp, path)


def _drop_run(layout: RunLayout, run_id: str) -> None:
    """Remove a run the store no longer has: renamed out of every listing first (a removal
    cut short leaves no half run listed; the garbage collector finishes it)."""
    import shutil  # not at import: task workers load this module for its error type
    staged = layout.deleting_dir(run_id)
    try:
        os.rename(layout.run_dir(run_id), staged)
    except OSError:
        return  # gone meanwhile (another fetch, a delete): nothing left to drop
    shutil.rmtree(staged, ignore_errors=True)


def preload(url: str | None) -> None:
    """Import the fsspec file system of `url`'s scheme (s3fs, gcsfs, adlfs) in a process
    that forks tasks, so that each task inherits the import instead of paying it (s3fs:
    0.36 s per task on a Dask worker). Modules only: no file system instance, event loop
    or connection, none of which survive a fork (fsspec's loop thread and aiohttp's
    sockets are the child's own to make). Quiet when it cannot: the task says why."""
    if not url or "://" not in url:
        return
    try:
        from fsspec.registry import get_filesystem_class
        get_filesystem_class(url.split("://", 1)[0])
    except (ImportError, ValueError):
        pass
