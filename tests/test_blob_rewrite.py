"""Storing a value again repairs its blob when the stored copy is damaged (found by
reliability/corrupt_store.py: a resumed run referenced a blob with a flipped byte, because
a file of the right size was trusted, and its next step failed to read it)."""

from __future__ import annotations

from pathlib import Path

from flowdeck.store.blobs import BlobStore


def test_a_damaged_blob_of_the_same_size_is_replaced_when_the_value_is_stored_again(
        tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    value = {"total": 14, "numbers": list(range(1000))}
    ref = store.put("value", value)
    path = store.path(ref.sha)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    assert store.put("value", value) == ref
    assert BlobStore(tmp_path).get(ref.sha) == value


def test_an_intact_blob_is_not_rewritten(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = store.put("value", list(range(1000)))
    before = store.path(ref.sha).stat()
    store.put("value", list(range(1000)))
    after = store.path(ref.sha).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
