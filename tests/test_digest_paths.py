"""A blob name from a record is a digest, never a path: `../../etc/hostname` opens nothing.

Records come with a datastore from whoever made it. Before, an artifact's
`sha` was joined into the blob folder's path as it was: resume opened
`/etc/hostname` as a blob, and a file starting with the blob magic would
have been unpickled (running its code).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_flow

from flowdeck.client import Run
from flowdeck.store.blobs import BlobRef, BlobStore, InvalidDigest
from flowdeck.store.layout import RunLayout
from flowdeck.store.records import AttemptRecord, DamagedRecord, RunRecord

HOSTNAME = "../../../../etc/hostname"
GOOD = "0123456789abcdef0123456789abcdef01234567"

FLOW = '''import os
from flowdeck import FlowSpec, step


class DigestFlow(FlowSpec):
    @step
    def start(self):
        self.value = 41
        self.next(self.middle)

    @step
    def middle(self):
        self.result = self.value + 1
        print("result", self.result)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DigestFlow().run()
'''


class Trap:
    """A blob planted outside the store: unpickling it creates the file `marker`."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "a"))


@pytest.mark.parametrize("sha", [HOSTNAME, "/etc/hostname", GOOD.upper(), GOOD[:-1],
                                 GOOD + "0", "ab/" + GOOD[3:], "", 40 * "g"])
def test_only_digests_name_blobs(tmp_path: Path, sha: str) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(InvalidDigest, match="not a blob digest"):
        store.path(sha)
    with pytest.raises(InvalidDigest, match="attempt-0.json"):
        BlobRef.from_dict({"sha": sha, "size": 1}, "attempt-0.json")
    assert store.path(GOOD) == tmp_path / "blobs" / GOOD[:2] / GOOD
    assert store.path(GOOD[:32]).name == GOOD[:32]  # an older xxh3 name


def test_records_with_a_path_for_a_digest_are_damaged() -> None:
    attempt = {"step": "start", "task_id": "1", "status": "succeeded",
               "artifacts": {"value": {"sha": HOSTNAME, "size": 5, "type": "int"}}}
    with pytest.raises(DamagedRecord, match=r"runs/1/start/1/attempt-0\.json is damaged "
                                            r"\(the artifact `value` names the blob"):
        AttemptRecord.from_json(attempt, "runs/1/start/1/attempt-0.json")
    run = {"flow": "F", "run_id": "1", "param_refs": {"alpha": {"sha": HOSTNAME}}}
    with pytest.raises(DamagedRecord, match=r"run\.json is damaged \(the parameter `alpha`"):
        RunRecord.from_json(run, "run.json")


@pytest.fixture
def finished_run(tmp_path: Path) -> tuple[Path, str, Path]:
    """A successful DigestFlow run: (flow file, run id, the start task's attempt record)."""
    flow = tmp_path / "digest.py"
    flow.write_text(FLOW)
    done = run_flow(flow, "run")
    assert done.returncode == 0, done.stderr
    layout = RunLayout.for_file(flow, "DigestFlow")
    [run_id] = layout.run_ids()
    [record] = layout.step_dir(run_id, "start").glob("*/attempt-0.json")
    return flow, run_id, record


def _set_digest(record: Path, sha: str, size: int | None = None) -> None:
    data = json.loads(record.read_text())
    data["artifacts"]["value"]["sha"] = sha
    if size is not None:
        data["artifacts"]["value"]["size"] = size
    record.write_text(json.dumps(data))


def test_the_client_names_the_damaged_record(finished_run: tuple[Path, str, Path]) -> None:
    flow, run_id, record = finished_run
    _set_digest(record, HOSTNAME)
    run = Run(f"DigestFlow/{run_id}", root=str(flow.parent / ".flowdeck"))
    with pytest.raises(DamagedRecord) as raised:
        [task.data.value for task in run["start"]]
    assert raised.value.path == str(record) and "not a digest" in str(raised.value)


def test_resume_reruns_a_task_whose_record_names_a_path(
        finished_run: tuple[Path, str, Path], tmp_path: Path) -> None:
    flow, run_id, record = finished_run
    layout = RunLayout.for_file(flow, "DigestFlow")
    marker = tmp_path / "planted-blob-ran"
    planted = tmp_path / "elsewhere" / "hostname"  # stands for /etc/hostname, with blob magic
    planted.parent.mkdir()
    blob = BlobStore(tmp_path).encode("value", Trap(str(marker)))
    planted.write_bytes(b"".join(bytes(chunk) for chunk in blob.chunks))
    # blobs/<sha[:2]>/<sha>: sha[:2] is "..", then sha climbs the rest of the way to tmp_path
    ups = len(layout.blobs_dir.relative_to(tmp_path).parts) - 1
    sha = "../" * ups + "elsewhere/hostname"
    assert os.path.samefile(layout.blobs_dir / sha[:2] / sha, planted)
    _set_digest(record, sha, planted.stat().st_size)  # as its maker would: every check passes

    resumed = run_flow(flow, "resume", "middle", "--origin-run-id", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert "result 42" in resumed.stdout
    assert not marker.exists(), "the planted file was unpickled"
    new_run = next(r for r in layout.run_ids() if r != run_id)
    [again] = layout.step_dir(new_run, "start").glob("*/attempt-0.json")
    rerun = AttemptRecord.read(again)
    assert rerun.status == "succeeded" and rerun.origin is None  # run again, not reused
