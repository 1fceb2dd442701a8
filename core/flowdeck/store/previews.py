"""Previews of large artifacts, kept beside their blobs (`<sha>.preview.json`).

The window shows an artifact without unpickling it: a helper process in the flow's
interpreter loads the value and sends a bounded preview. For a large value (a 100 MB
DataFrame) that costs the value's whole load, about a second, on every click. The
task that made the value has it in memory already, so when it writes a blob of
`PREVIEW_MIN_BYTES` or more it also writes the value's preview here (content-addressed
like the blob: the same value has the same preview), and the window reads this small
JSON file instead: no helper, no unpickling. Written atomically, best effort: a task
never fails for its preview, and a missing or unreadable preview only means the
window asks the helper, as for any other value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowdeck.store.blobs import BlobStore, atomic_write, is_digest
from flowdeck.store.layout import InvalidId, RunLayout, attempts_in
from flowdeck.store.records import AttemptRecord, DamagedRecord

#: Blobs from this size up get a preview written by their task.
PREVIEW_MIN_BYTES = 1_000_000
#: A preview file larger than this is not read (previews are bounded to about 1 MB).
PREVIEW_MAX_BYTES = 2_000_000
_SUFFIX = ".preview.json"


def preview_path(store: BlobStore, sha: str) -> Path | None:
    """Where the preview of blob `sha` lives; None for anything but a digest of a local
    store (an object store keeps no previews)."""
    if not is_digest(sha) or store.backend.remote:
        return None
    blob = store.path(sha)
    return blob.with_name(blob.name + _SUFFIX)


def previewed_blob(file_name: str) -> str:
    """The blob a file of the blob folders belongs to: a preview's blob, else the file's own
    name (so collection keeps a kept blob's preview and drops a dropped one's)."""
    return file_name[:-len(_SUFFIX)] if file_name.endswith(_SUFFIX) else file_name


def write_preview(store: BlobStore, sha: str,
                  build: Callable[[], dict[str, Any] | None]) -> None:
    """Store a blob's preview (bounded by its builder, `engines.preview`), built only when
    the blob has none yet: a rerun that stores the same 100 MB array skips the 9 ms."""
    path = preview_path(store, sha)
    if path is None or path.exists():
        return
    preview = build()
    if preview is not None:
        atomic_write(path, json.dumps(preview, default=str).encode("utf-8"))


def read_preview(root: str | Path, sha: str) -> dict[str, Any] | None:
    """The stored preview of blob `sha` of the store at `root`, or None (none written,
    unreadable, too large)."""
    path = preview_path(BlobStore(Path(root)), sha)
    try:
        if path is None or path.stat().st_size > PREVIEW_MAX_BYTES:
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("kind"), str) else None


def task_preview(layout: RunLayout, run_id: str, step: str, task_id: str, name: str
                 ) -> dict[str, Any] | None:
    """The stored preview of artifact `name` of a task (its last attempt's record says which
    blob), or None. Reads two small files: the window calls it on a click."""
    try:
        task_dir = layout.task_dir(run_id, step, task_id)
    except InvalidId:
        return None
    attempts = attempts_in(task_dir)
    if not attempts:
        return None
    try:
        record = AttemptRecord.read(layout.attempt(run_id, step, task_id, attempts[-1], "json"))
    except (OSError, DamagedRecord):
        return None
    sha = (record.artifacts.get(name) or {}).get("sha")
    return read_preview(layout.root, sha) if isinstance(sha, str) else None
