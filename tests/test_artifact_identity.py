"""An artifact is the same artifact whatever process or interpreter handles it.

Reading an inherited artifact must not give it a new identity: a join would
then see two values where there is one, and `resume` would fail where the
fresh run succeeded (a set pickles in hash-seed order; a bare interpreter
used to hash blobs with another function).
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest
from conftest import CORE, child_env, run_flow

from flowdeck import Flow

WORDS = '{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}'

READ_ONLY_FLOW = f'''
from flowdeck import FlowSpec, step

class SetFlow(FlowSpec):
    @step
    def start(self):
        self.common = {WORDS}
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = 1
        self.next(self.join)

    @step
    def right(self):
        print(sorted(self.common))
        self.side = 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs, exclude=["side"])
        self.next(self.end)

    @step
    def end(self):
        print("merged", len(self.common))

if __name__ == "__main__":
    SetFlow()
'''

ASSIGNED_FLOW = f'''
from flowdeck import FlowSpec, step

class AssignFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.left, self.right)

    @step
    def left(self):
        self.tags = {WORDS}
        self.next(self.join)

    @step
    def right(self):
        self.tags = {WORDS}
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    AssignFlow()
'''

MUTATING_FLOW = '''
from flowdeck import FlowSpec, step

class MutateFlow(FlowSpec):
    @step
    def start(self):
        self.kept = {"a": [1, 2], "b": {3, 4}}
        self.grown = [1, 2, 3]
        self.replaced = "old"
        self.next(self.middle)

    @step
    def middle(self):
        print(self.kept["a"], sorted(self.kept["b"]))
        self.grown.append(4)
        print(self.replaced)
        self.replaced = "new"
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    MutateFlow()
'''


def _write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(source)
    return path


def _seeded(seed: int) -> dict[str, str]:
    return child_env(PYTHONHASHSEED=str(seed))


def test_a_branch_that_only_reads_a_set_resumes_into_a_clean_merge(tmp_path: Path) -> None:
    path = _write(tmp_path, "setflow.py", READ_ONLY_FLOW)
    first = run_flow(path, env=_seeded(1))
    assert first.returncode == 0, first.stderr
    flow = Flow("SetFlow", root=tmp_path / ".flowdeck")
    origin = flow.latest_run
    for seed in (2, 3, 4):  # each resume under another hash seed than the run it resumes
        result = run_flow(path, "resume", "right", "--origin-run-id", origin.id,
                          env=_seeded(seed))
        assert result.returncode == 0, result.stderr
        run = flow.latest_run
        assert run.successful and run.data.common == eval(WORDS)
        assert run["right"].task.metadata["status"] == "succeeded"  # it ran again
        start_ref = run["start"].task["common"].sha
        assert run["right"].task["common"].sha == start_ref  # read only: not re-stored


def test_equal_values_assigned_in_both_branches_merge_on_every_resume(tmp_path: Path) -> None:
    path = _write(tmp_path, "assignflow.py", ASSIGNED_FLOW)
    assert run_flow(path, env=_seeded(1)).returncode == 0
    flow = Flow("AssignFlow", root=tmp_path / ".flowdeck")
    origin = flow.latest_run
    for seed in (2, 3, 4):
        result = run_flow(path, "resume", "right", "--origin-run-id", origin.id,
                          env=_seeded(seed))
        assert result.returncode == 0, result.stderr
        assert flow.latest_run.data.tags == eval(WORDS)


def test_values_changed_in_place_or_reassigned_are_stored_and_read_ones_are_not(
        tmp_path: Path) -> None:
    path = _write(tmp_path, "mutateflow.py", MUTATING_FLOW)
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    run = Flow("MutateFlow", root=tmp_path / ".flowdeck").latest_run
    start, middle = run["start"].task, run["middle"].task
    assert middle["kept"].sha == start["kept"].sha
    assert middle["grown"].sha != start["grown"].sha
    assert (start.data.grown, middle.data.grown) == ([1, 2, 3], [1, 2, 3, 4])
    assert (start.data.replaced, middle.data.replaced) == ("old", "new")
    assert run.data.grown == [1, 2, 3, 4] and run.data.kept == {"a": [1, 2], "b": {3, 4}}


def test_an_array_read_keeps_its_blob_and_one_changed_in_place_gets_a_new_one(
        tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    path = _write(tmp_path, "arrays.py", (
        "import numpy as np\n"
        "from flowdeck import FlowSpec, step\n"
        "class ArrayFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.read = np.arange(1_000_000, dtype=np.float64)\n"
        "        self.changed = np.zeros(1_000_000)\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        print(float(self.read.sum()))\n"
        "        self.changed[5] = 7.0\n"
        "if __name__ == '__main__':\n"
        "    ArrayFlow()\n"))
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    run = Flow("ArrayFlow", root=tmp_path / ".flowdeck").latest_run
    start, end = run["start"].task, run["end"].task
    assert end["read"].sha == start["read"].sha
    assert end["changed"].sha != start["changed"].sha
    assert end.data.changed[5] == 7.0 and start.data.changed[5] == 0.0
    assert np.array_equal(end.data.read, np.arange(1_000_000, dtype=np.float64))


def _bare_python(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A venv without pip, xxhash, blake3 or numpy, with only our core on its path (as the
    window does)."""
    env_dir = tmp_path / "bare-venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in child_env().items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(CORE)
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; "
                            "print([m for m in ('xxhash', 'blake3', 'numpy') if u.find_spec(m)])"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stderr
    return python, env


DIGEST_PROBE = '''
import sys
from pathlib import Path
from flowdeck.store.blobs import BlobStore
store = BlobStore(Path(sys.argv[1]))
values = [{"a": 1, "b": [1, 2]}, "text", bytes(range(256)) * 16_000, list(range(100_000)),
          bytes(range(256)) * 40_000]
print(" ".join(store.put("v", v).sha for v in values))
'''


def test_blob_names_do_not_depend_on_the_interpreters_packages(tmp_path: Path) -> None:
    """Up to 4 MiB (nearly every artifact) a name is BLAKE2b from the standard library.
    A larger blob is named by BLAKE3 where the blake3 package is installed (a dependency of
    flowdeck), and by the BLAKE2 tree where it is not (the app's core on the path of a
    Python of another version): two names for one value, each checked when read."""
    python, env = _bare_python(tmp_path)
    probe = tmp_path / "probe.py"
    probe.write_text(DIGEST_PROBE)
    bare = subprocess.run([str(python), str(probe), str(tmp_path / "bare-store")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode == 0, bare.stderr
    full = subprocess.run([sys.executable, str(probe), str(tmp_path / "full-store")],
                          env=child_env(), capture_output=True, text=True, timeout=60)
    assert full.returncode == 0, full.stderr
    *bare_small, bare_large = bare.stdout.split()
    *full_small, full_large = full.stdout.split()
    assert bare_small == full_small
    assert (len(bare_large), len(full_large)) == (40, 64)


def test_a_resume_under_an_interpreter_without_xxhash_merges_cleanly(tmp_path: Path) -> None:
    python, env = _bare_python(tmp_path)
    path = _write(tmp_path, "setflow.py", READ_ONLY_FLOW)
    assert run_flow(path).returncode == 0
    flow = Flow("SetFlow", root=tmp_path / ".flowdeck")
    origin = flow.latest_run
    result = subprocess.run([str(python), str(path), "resume", "right", "--origin-run-id",
                             origin.id], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    run = flow.latest_run
    assert run.id != origin.id and run.successful
    assert run.data.common == eval(WORDS)
