"""Artifact blobs are checked against their name (a hash) when read.

A damaged blob never turns into a wrong value: reading it raises an error
that names the file and says what to do, and `resume` runs the task that
produced it again instead of reusing it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import blake3
import pytest
from conftest import child_env, run_flow

from flowdeck import Flow
from flowdeck.store.blobs import LEAF_SIZE, BlobDamagedError, BlobRef, BlobStore, blob_digest

FLOW = '''
from flowdeck import FlowSpec, step

class NumbersFlow(FlowSpec):
    @step
    def start(self):
        self.numbers = list(range(10))
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.numbers)
        print("total", self.total)

if __name__ == "__main__":
    NumbersFlow()
'''


def _finished_run(tmp_path: Path):
    path = tmp_path / "numbers.py"
    path.write_text(FLOW)
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    return path, Flow("NumbersFlow", root=tmp_path / ".flowdeck")


def _flip_the_seven(blob: Path) -> None:
    """Turn the pickled int 7 into 99: a wrong value that still unpickles."""
    data = bytearray(blob.read_bytes())
    at = data.index(b"K\x07")
    data[at + 1] = 99
    blob.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_a_damaged_blob_is_an_error_naming_it_and_resume_reruns_its_step(
        tmp_path: Path, damage: str) -> None:
    path, flow = _finished_run(tmp_path)
    origin = flow.latest_run
    artifact = origin["start"].task["numbers"]
    blob = BlobStore(tmp_path / ".flowdeck").path(artifact.sha)
    if damage == "flip":
        _flip_the_seven(blob)
    else:
        blob.unlink()
    with pytest.raises(BlobDamagedError) as caught:
        _ = artifact.data
    message = str(caught.value)
    assert str(blob) in message and "resume" in message
    assert ("is damaged" if damage == "flip" else "is missing") in message

    result = run_flow(path, "resume", "end")
    assert result.returncode == 0, result.stderr
    assert "Not reusing" in result.stderr and str(blob) in result.stderr
    run = flow.latest_run
    assert run.id != origin.id and run.successful
    start = run["start"].task
    assert start.status == "succeeded" and start.origin is None  # ran again, not reused
    assert run.data.total == 45 and start.data.numbers == list(range(10))
    assert origin["start"].task.data.numbers == list(range(10))  # the blob is whole again
    if damage == "flip":
        assert blob.with_name(blob.name + ".damaged").exists()  # set aside, not destroyed


def test_resume_reuses_tasks_whose_blobs_are_intact(tmp_path: Path) -> None:
    path, flow = _finished_run(tmp_path)
    result = run_flow(path, "resume", "end")
    assert result.returncode == 0, result.stderr
    assert "Not reusing" not in result.stderr
    assert flow.latest_run["start"].task.origin is not None


def _large_array_blob(store: BlobStore):
    np = pytest.importorskip("numpy")
    value = np.arange(LEAF_SIZE // 8 + 12_345, dtype=np.float64)  # above the mapping threshold
    ref = store.put("arr", value)
    assert np.array_equal(store.get(ref.sha), value)
    return ref, value


@pytest.mark.parametrize("damage", ["body", "length table", "truncated", "extended", "empty"])
def test_damage_anywhere_in_a_large_blob_names_the_file(tmp_path: Path, damage: str) -> None:
    """Never numpy's "cannot reshape" or struct's "unpack_from requires": always the path."""
    store = BlobStore(tmp_path)
    ref, _ = _large_array_blob(store)
    path = store.path(ref.sha)
    data = bytearray(path.read_bytes())
    if damage == "body":
        data[-3] ^= 0x10
    elif damage == "length table":
        data[12] ^= 0x01
    elif damage == "truncated":
        del data[-100:]
    elif damage == "extended":
        data += b"\0" * 8
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(BlobDamagedError) as caught:
        store.get(ref.sha)
    assert str(path) in str(caught.value)
    assert store.damage(ref) is not None and not path.exists()  # resume sets it aside


def test_a_blob_of_the_wrong_size_is_written_again(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = store.put("x", list(range(1000)))
    path = store.path(ref.sha)
    path.write_bytes(path.read_bytes()[:-10])
    assert store.put("x", list(range(1000))) == ref
    assert store.get(ref.sha) == list(range(1000))


def _reference_tree_digest(data: bytes) -> str:
    """The digest's definition, computed in one thread: BLAKE2b tree of LEAF_SIZE leaves."""
    tree = {"fanout": 0, "depth": 2, "leaf_size": LEAF_SIZE, "inner_size": 32}
    leaves = [data[i:i + LEAF_SIZE] for i in range(0, len(data), LEAF_SIZE)]
    root = hashlib.blake2b(digest_size=20, node_depth=1, last_node=True, **tree)
    for i, leaf in enumerate(leaves):
        root.update(hashlib.blake2b(leaf, digest_size=32, node_offset=i,
                                    last_node=i == len(leaves) - 1, **tree).digest())
    return root.hexdigest()


def test_the_digest_is_defined_by_the_bytes_alone() -> None:
    small = b"flowdeck" * 1000
    assert blob_digest([small]) == hashlib.blake2b(small, digest_size=20).hexdigest()
    large = os.urandom(3 * LEAF_SIZE + 5)
    cut = [large[:7], memoryview(large)[7:LEAF_SIZE + 11], large[LEAF_SIZE + 11:]]
    assert blob_digest(cut) == blob_digest([large]) == blake3.blake3(large).hexdigest()


def test_a_large_blob_is_named_by_the_blake3_of_its_file(tmp_path: Path) -> None:
    """What `b3sum` prints for the file: a user can check a blob without Flowdeck."""
    store = BlobStore(tmp_path)
    ref, _ = _large_array_blob(store)
    assert len(ref.sha) == 64
    assert blake3.blake3(store.path(ref.sha).read_bytes()).hexdigest() == ref.sha


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, text=True,
                          capture_output=True, timeout=120)


def test_a_forked_task_hashes_a_large_blob_after_its_parent_did(tmp_path: Path) -> None:
    """blake3's own threads live in a process-wide pool that a fork copies without its
    threads: hashing in the child with them hangs. The store hashes in one thread."""
    result = _python('''
        import os
        from flowdeck.store.blobs import blob_digest
        data = os.urandom(64 << 20)
        parent = blob_digest([data])
        pid = os.fork()
        if pid == 0:
            os._exit(0 if blob_digest([data]) == parent else 3)
        print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    ''', tmp_path)
    assert result.stdout.strip() == "child 0", result.stderr


def test_without_blake3_large_blobs_are_named_by_the_blake2_tree(tmp_path: Path) -> None:
    """The app's bundled core in a Python of another version has no blake3: it names a
    large value by the BLAKE2 tree (checked when read, anywhere), and reads a BLAKE3-named
    blob unchecked rather than refusing a run made with blake3."""
    np = pytest.importorskip("numpy")
    value = np.arange(LEAF_SIZE // 8 + 12_345, dtype=np.float64)
    with_blake3 = BlobStore(tmp_path).put("arr", value)
    np.save(tmp_path / "value.npy", value)
    result = _python(f'''
        import sys
        sys.modules["blake3"] = None  # as if it were not installed
        from pathlib import Path
        import numpy as np
        from flowdeck.store.blobs import BlobRef, BlobStore
        store = BlobStore(Path({str(tmp_path)!r}))
        value = np.load({str(tmp_path / "value.npy")!r})
        ref = store.put("arr", value)
        assert np.array_equal(store.get(ref.sha), value)
        assert np.array_equal(store.get({with_blake3.sha!r}), value)
        assert np.array_equal(store.get({with_blake3.sha!r}), value)
        print(store.damage(BlobRef({with_blake3.sha!r}, {with_blake3.size}, "ndarray")))
        print(ref.sha)
    ''', tmp_path)
    assert result.returncode == 0, result.stderr
    reason, tree_sha = result.stdout.strip().splitlines()
    # read, said once; never reused blind by a resume (its task runs again)
    assert result.stderr.count("is read unchecked: its BLAKE3 name cannot be checked without "
                               "the blake3 package") == 1, result.stderr
    assert reason.endswith("cannot be checked: its BLAKE3 name cannot be checked without the "
                           "blake3 package")
    assert BlobStore(tmp_path).path(with_blake3.sha).exists()  # not set aside: not damaged
    data = BlobStore(tmp_path).path(tree_sha).read_bytes()
    assert tree_sha == _reference_tree_digest(data)
    store = BlobStore(tmp_path)
    assert np.array_equal(store.get(tree_sha), value)  # checked with blake3 installed too
    damaged = bytearray(data)
    damaged[-3] ^= 0x10
    store.path(tree_sha).write_bytes(bytes(damaged))
    with pytest.raises(BlobDamagedError, match="BLAKE2b"):
        store.get(tree_sha)


def _legacy_blob(store: BlobStore, value, name_of) -> tuple[str, Path]:
    """Write `value` as an older Flowdeck did: the same bytes under another hash's name."""
    blob = store.encode("v", value)
    data = b"".join(bytes(c) for c in blob.chunks)
    sha = name_of(data)
    path = store.path(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha, path


def test_blobs_of_older_stores_are_still_read_and_checked(tmp_path: Path) -> None:
    xxhash = pytest.importorskip("xxhash")
    store = BlobStore(tmp_path)
    value = {"a": list(range(100))}
    sha, path = _legacy_blob(store, value, lambda d: xxhash.xxh3_128(d).hexdigest())
    assert len(sha) == 32 and store.get(sha) == value
    big = bytes(range(256)) * (LEAF_SIZE // 256 + 10)  # sequential BLAKE2b, before tree hashing
    big_sha, _ = _legacy_blob(store, big, lambda d: hashlib.blake2b(d, digest_size=20).hexdigest())
    assert store.get(big_sha) == big
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x02
    path.write_bytes(bytes(data))
    with pytest.raises(BlobDamagedError, match=re.escape(str(path))):
        store.get(sha)


LARGE_FAN_OUT = '''
import sys
import numpy as np
from flowdeck import FlowSpec, step

class LargeFanFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.inherited = "blake3" in sys.modules  # before this task hashes anything
        self.arr = np.full(600_000, float(self.input))  # 4.8 MB: named by BLAKE3
        self.next(self.join)

    @step
    def join(self, inputs):
        self.inherited = [i.inherited for i in sorted(inputs, key=lambda i: i.index)]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LargeFanFlow()
'''


def test_tasks_after_a_large_blob_inherit_its_hasher(tmp_path: Path) -> None:
    """Once a task stored a blob larger than a leaf, the run imports blake3 before its
    next forks, so each later task inherits it instead of importing it (3 ms a task)."""
    pytest.importorskip("numpy")
    path = tmp_path / "large_fan.py"
    path.write_text(LARGE_FAN_OUT)
    result = run_flow(path, "run", "--max-workers", "1")
    assert result.returncode == 0, result.stderr
    run = Flow("LargeFanFlow", root=tmp_path / ".flowdeck").latest_run
    assert run["join"].task.data.inherited == [False, True, True]


def test_one_value_named_in_two_schemes_is_the_same_value(tmp_path: Path) -> None:
    """A large value named by BLAKE2 (an older store, a Python without blake3) and by BLAKE3
    is one value: a join merges it, and an unchanged artifact keeps its older name."""
    np = pytest.importorskip("numpy")
    store = BlobStore(tmp_path)
    value = np.arange(LEAF_SIZE // 8 + 12_345, dtype=np.float64)
    new = store.put("arr", value)
    old_sha, _ = _legacy_blob(store, value, _reference_tree_digest)
    old = BlobRef(old_sha, new.size, new.type)
    other = store.put("arr", value + 1)
    assert store.same_bytes(old, new) and store.same_bytes(new, old)
    assert not store.same_bytes(old, other) and not store.same_bytes(new, other)
    assert store.holds(old, store.encode("arr", value))


TWO_SCHEMES = '''
import os
import numpy as np
from flowdeck import FlowSpec, step

class TwoSchemesFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.big = np.arange(700_000, dtype=np.float64)
        self.next(self.join)

    @step
    def b(self):
        if os.environ.get("FAIL_B"):
            raise RuntimeError("b fails the first time")
        self.big = np.arange(700_000, dtype=np.float64)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        print("merged", float(self.big.sum()))

if __name__ == "__main__":
    TwoSchemesFlow()
'''


def test_a_resume_merges_a_large_value_named_by_an_older_scheme(tmp_path: Path) -> None:
    """The first run in a Python without blake3 (its `a` names `big` by the BLAKE2 tree);
    the resume reruns `b` with blake3 (BLAKE3): the join merges the one value."""
    pytest.importorskip("numpy")
    path = tmp_path / "two.py"
    path.write_text(TWO_SCHEMES)
    without = f"import sys, runpy; sys.modules['blake3'] = None; sys.argv = [{str(path)!r}, " \
              f"'run']; runpy.run_path({str(path)!r}, run_name='__main__')"
    first = subprocess.run([sys.executable, "-c", without], cwd=tmp_path, text=True,
                           capture_output=True, timeout=120, env=child_env(FAIL_B="1"))
    assert first.returncode != 0 and "b fails the first time" in first.stderr, first.stderr
    resumed = run_flow(path, "resume", "b", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "merged 244999650000.0" in resumed.stdout
    run = Flow("TwoSchemesFlow", root=tmp_path / ".flowdeck").latest_run
    assert len(run["a"].task["big"].sha) == 40  # reused, named by the first run
    assert len(run["b"].task["big"].sha) == 64
