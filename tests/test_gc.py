"""The store's garbage collector, on real runs: retention, blob safety while a run is in
progress, stale temporary files, `flowdeck gc` and its dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import child_env, run_flow

import flowdeck
from flowdeck.cli.main import main as cli_main
from flowdeck.store.blobs import BlobStore
from flowdeck.store.gc import (
    DEFAULT_KEEP,
    KEEP_ENV,
    GcPolicy,
    GcSettingError,
    RunProtected,
    collect,
    delete_run,
    keep_setting,
    plan_retention,
)
from flowdeck.store.index import RunEntry, RunIndex
from flowdeck.store.layout import RunLayout
from flowdeck.store.records import RunRecord, hostname

# A flow whose `hold` step stores a blob of its own (as a task does before its attempt
# record exists), says so, then waits until the test creates the gate file.
GATED_FLOW = '''
import os
import time
from pathlib import Path

from flowdeck import FlowSpec, Parameter, current, step
from flowdeck.store.blobs import BlobStore


class GatedFlow(FlowSpec):
    label = Parameter("label", default="a")

    @step
    def start(self):
        self.big = [self.label] * 1000
        self.next(self.hold)

    @step
    def hold(self):
        gate = Path(os.environ["GATE"])
        ref = BlobStore(Path(os.environ["STORE"])).put("probe", ["unreferenced", self.label])
        self.held = f"held-{self.label}"
        # Written aside and renamed: the test reads the digest as soon as the name exists.
        aside = Path(str(gate) + ".waiting.part")
        aside.write_text(ref.sha)
        aside.rename(str(gate) + ".waiting")
        while not gate.exists():
            time.sleep(0.02)
        self.next(self.end)

    @step
    def end(self):
        self.size = len(self.big)


if __name__ == "__main__":
    GatedFlow().run()
'''


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    """Poll `condition` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def gated(tmp_path: Path) -> Path:
    path = tmp_path / "gated.py"
    path.write_text(GATED_FLOW)
    return path


def store_env(flow: Path, gate: Path) -> dict[str, str]:
    return child_env(GATE=str(gate), STORE=str(flow.parent / ".flowdeck"))


def run_gated(flow: Path, tag: str) -> str:
    """One complete run (the gate open); its run id."""
    gate = flow.parent / "open-gate"
    gate.touch()
    done = run_flow(flow, "run", "--label", tag, env=store_env(flow, gate))
    assert done.returncode == 0, done.stderr
    return RunIndex(layout_of(flow)).runs()[0].run_id


def layout_of(flow: Path) -> RunLayout:
    return RunLayout(flow.parent / ".flowdeck", "GatedFlow")


def age(paths: list[Path], seconds: float) -> None:
    """Make files look `seconds` old (an old store, without waiting for one)."""
    then = time.time() - seconds
    for path in paths:
        os.utime(path, (then, then))


def blob_files(root: Path) -> list[Path]:
    return [p for p in (root / "blobs").glob("*/*") if p.is_file()]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under a store with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- retention -------------------------------------------------------------------------

def entry(run_id: str, start: float, status: str = "succeeded", *, pid: int | None = None,
          host: str = "", origin: str | None = None, pinned: bool = False) -> RunEntry:
    record = RunRecord(flow="F", run_id=run_id, file="f.py", status=status, start=start,
                       pid=pid, host=host or hostname(), origin_run_id=origin)
    return RunEntry(run_id, Path("/nowhere") / run_id / "run.json", record, pinned=pinned)


def test_retention_keeps_newest_pinned_running_and_origin_chains() -> None:
    runs = [  # newest first, as RunIndex lists them
        entry("r10", 10, "failed", origin="r6"),
        entry("r9", 9, "failed"),
        entry("r8", 8, "running", pid=os.getpid()),  # alive: running
        entry("r7", 7, "running", pid=dead_pid()),  # its process is gone: crashed
        entry("r6", 6, "failed", origin="r3"),
        entry("r5", 5, "running", pid=1, host="another-host"),  # cannot be checked: running
        entry("r4", 4, "succeeded"),
        entry("r3", 3, "failed", origin="r1"),
        entry("r2", 2, "failed", pinned=True),
        entry("r1", 1, "failed"),
        entry("r0", 0, "succeeded"),
    ]
    retention = plan_retention(runs, keep=2)
    assert retention.kept == {
        "r10": "newest", "r9": "newest", "r8": "running", "r5": "running",
        "r4": "latest successful", "r2": "pinned",
        "r6": "origin of r10", "r3": "origin of r6", "r1": "origin of r3"}
    assert [e.run_id for e in retention.dropped] == ["r7", "r0"]
    assert [e.run_id for e in plan_retention(runs, keep=0).dropped] == ["r10", "r9", "r7",
                                                                        "r6", "r3", "r1", "r0"]


def test_pinned_runs_survive_and_delete_refuses_them(gated: Path) -> None:
    ids = [run_gated(gated, tag) for tag in ("a", "b", "c")]
    layout = layout_of(gated)
    index = RunIndex(layout)
    index.pin(ids[0])
    assert index.read(ids[0]).pinned and not index.read(ids[1]).pinned
    report = collect(layout.root, GcPolicy(keep=1))
    assert report.runs_removed == [f"GatedFlow/{ids[1]}"]
    assert {e.run_id for e in index.runs()} == {ids[0], ids[2]}
    assert flowdeck.Flow("GatedFlow", root=layout.root)[ids[0]].data.big == ["a"] * 1000
    with pytest.raises(RunProtected, match="unpin it first"):
        delete_run(layout, ids[0])
    index.unpin(ids[0])
    assert delete_run(layout, ids[0]) > 0
    assert [e.run_id for e in index.runs()] == [ids[2]]


def test_keep_setting_flag_then_env_then_store_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / ".flowdeck"
    root.mkdir()
    assert keep_setting(root) == DEFAULT_KEEP
    (root / "settings.json").write_text(json.dumps({"keep_runs": 7}))
    assert keep_setting(root) == 7
    monkeypatch.setenv(KEEP_ENV, "5")
    assert keep_setting(root) == 5
    assert keep_setting(root, explicit=3) == 3
    monkeypatch.setenv(KEEP_ENV, "many")
    with pytest.raises(GcSettingError, match=KEEP_ENV):
        keep_setting(root)
    monkeypatch.delenv(KEEP_ENV)
    (root / "settings.json").write_text(json.dumps({"keep_runs": -1}))
    with pytest.raises(GcSettingError, match="negative"):
        keep_setting(root)


# -- safety while a run is in progress ---------------------------------------------------

def test_gc_during_a_run_keeps_every_blob_it_uses(gated: Path) -> None:
    """Old runs go while a run waits mid-step, and every blob it uses stays: one it shares
    with a dropped run, and one it wrote that nothing refers to yet. That one's value
    equals dropped run `a`'s, so `BlobStore.write` adopted the old file, old time and
    all: a rule on blob times ("younger than the oldest live run") would delete it."""
    old = [run_gated(gated, tag) for tag in ("a", "b", "c")]
    layout = layout_of(gated)
    root = layout.root
    age(blob_files(root), 2 * 3600)
    gate = gated.parent / "gate"
    live = subprocess.Popen([sys.executable, str(gated), "run", "--label", "a"], cwd=gated.parent,
                            env=store_env(gated, gate), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        waiting = Path(str(gate) + ".waiting")
        wait_until(waiting.exists)
        probe = waiting.read_text()
        live_id = next(e.run_id for e in RunIndex(layout).runs() if e.status == "running")
        with pytest.raises(RunProtected, match="running"):
            delete_run(layout, live_id)

        blobs_before = sorted(blob_files(root))
        report = collect(root, GcPolicy(keep=1, blob_grace_s=0))  # no age protection

        assert sorted(report.runs_removed) == sorted(f"GatedFlow/{i}" for i in old[:2])
        assert report.live_runs == 1 and not report.errors
        assert report.blobs_removed == 0 and "in progress" in (report.blobs_skipped or "")
        assert sorted(blob_files(root)) == blobs_before
        store = BlobStore(root)
        assert store.path(probe).exists()  # written by the live task, referenced by nothing
        start = flowdeck.Flow("GatedFlow", root=root)[live_id]["start"].task
        assert start["big"].data == ["a"] * 1000  # the same blob as dropped run `a`'s
        gate.touch()
        out, err = live.communicate(timeout=60)
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()
    assert live.returncode == 0, err
    run = flowdeck.Flow("GatedFlow", root=root)[live_id]
    assert run.successful
    assert (run.data.big, run.data.held, run.data.size) == (["a"] * 1000, "held-a", 1000)
    assert store.get(probe) == ["unreferenced", "a"]

    after = collect(root, GcPolicy(keep=1, blob_grace_s=0))  # nothing live now: it goes
    assert after.live_runs == 0 and after.blobs_removed >= 3  # dropped `b`'s, the probe
    assert not store.path(probe).exists()
    assert flowdeck.Flow("GatedFlow", root=root)[live_id].data.big == ["a"] * 1000


def test_a_run_being_created_defers_blob_removal(gated: Path) -> None:
    run_gated(gated, "a")
    layout = layout_of(gated)
    orphan = BlobStore(layout.root).put("orphan", "nothing refers to me")
    age([BlobStore(layout.root).path(orphan.sha)], 3600)
    creating = layout.create_run_dir("1700000000000-abcdef")  # no run.json yet
    report = collect(layout.root, GcPolicy(keep=1))
    assert report.blobs_removed == 0 and report.live_runs == 1
    age([creating], 2 * 3600)  # a run that died before writing its record, long ago
    assert collect(layout.root, GcPolicy(keep=1)).blobs_removed == 1


def test_young_blobs_are_kept_by_the_grace_period(gated: Path) -> None:
    run_gated(gated, "a")
    root = layout_of(gated).root
    orphan = BlobStore(root).put("orphan", "nothing refers to me")
    young = collect(root, GcPolicy(keep=1))
    assert young.blobs_removed == 0 and young.blobs_recent >= 1  # the orphan, at least
    assert f"{young.blobs_recent} blob" in young.summary() and "no kept run refers to" in \
        young.summary() and "written less than 15 minutes ago" in young.summary()
    assert BlobStore(root).path(orphan.sha).exists()
    age([BlobStore(root).path(orphan.sha)], 3600)
    report = collect(root, GcPolicy(keep=1))
    assert report.blobs_removed == 1 and not BlobStore(root).path(orphan.sha).exists()


def test_an_unreadable_record_of_a_kept_run_stops_blob_removal(gated: Path) -> None:
    first = run_gated(gated, "a")
    second = run_gated(gated, "b")
    layout = layout_of(gated)
    age(blob_files(layout.root), 2 * 3600)
    record = next(layout.run_dir(second).glob("start/*/attempt-0.json"))
    record.write_text("{ not json")
    report = collect(layout.root, GcPolicy(keep=1))
    assert report.runs_removed == [f"GatedFlow/{first}"]
    assert report.blobs_removed == 0 and str(record) in (report.blobs_skipped or "")


def test_an_interrupted_removal_is_finished(gated: Path) -> None:
    run_id = run_gated(gated, "a")
    layout = layout_of(gated)
    layout.run_dir(run_id).rename(layout.deleting_dir(run_id))
    assert RunIndex(layout).runs() == []
    report = collect(layout.root, GcPolicy(keep=5))
    assert not layout.deleting_dir(run_id).exists() and report.bytes_freed > 0


# -- temporary files -----------------------------------------------------------------------

def test_temporary_files_of_dead_writers_go_live_ones_stay(gated: Path) -> None:
    run_id = run_gated(gated, "a")
    layout = layout_of(gated)
    blob_dir = next(p for p in (layout.root / "blobs").iterdir() if p.is_dir())
    task_dir = next(layout.run_dir(run_id).glob("start/*"))
    dead, alive = dead_pid(), os.getpid()
    files = {
        "dead, old": blob_dir / f".tmp-{dead}-0",
        "dead, old, in a run": task_dir / f".tmp-{dead}-1",
        "dead, just written": blob_dir / f".tmp-{dead}-2",
        "alive, old": blob_dir / f".tmp-{alive}-3",
        "alive, very old": layout.root / f".tmp-{alive}-4",
    }
    for path in files.values():
        path.write_bytes(b"partial")
    age([files["dead, old"], files["dead, old, in a run"], files["alive, old"]], 600)
    age([files["alive, very old"]], 2 * 3600)

    report = collect(layout.root, GcPolicy(keep=5))

    gone = {name for name, path in files.items() if not path.exists()}
    assert gone == {"dead, old", "dead, old, in a run", "alive, very old"}
    assert report.temps_removed == 3


# -- the command -----------------------------------------------------------------------------

def test_flowdeck_gc_dry_run_changes_nothing_then_gc_collects(
        gated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gate = gated.parent / "open-gate"
    gate.touch()
    for tag in ("a", "b", "c"):  # headless runs: each leaves logs/<run_id>.log
        done = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", str(gated),
                               "--label", tag], cwd=gated.parent, env=store_env(gated, gate),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    root = layout_of(gated).root
    newest = RunIndex(layout_of(gated)).runs()[0].run_id
    assert len(list((root / "logs").glob("*.log"))) == 3
    age(blob_files(root), 2 * 3600)
    stale = next(p for p in (root / "blobs").iterdir() if p.is_dir()) / f".tmp-{dead_pid()}-9"
    stale.write_bytes(b"partial")
    age([stale], 3600)
    before = snapshot(root)

    assert cli_main(["gc", str(gated.parent), "--keep", "1", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "would remove 2 runs" in printed and "2 logs" in printed, printed
    assert snapshot(root) == before

    assert cli_main(["gc", str(gated.parent), "--keep", "1"]) == 0
    printed = capsys.readouterr().out
    assert "removed 2 runs" in printed and "1 temporary file, 2 logs" in printed, printed
    assert [e.run_id for e in RunIndex(layout_of(gated)).runs()] == [newest]
    assert [p.stem for p in (root / "logs").glob("*.log")] == [newest]
    assert not stale.exists()
    assert flowdeck.Flow("GatedFlow", root=root)[newest].data.big == ["c"] * 1000


def test_flowdeck_gc_finds_stores_and_reports_missing_paths(
        gated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    run_gated(gated, "a")
    assert cli_main(["gc", str(tmp_path / "no-such-folder")]) == 2
    monkeypatch.chdir(tmp_path)
    assert cli_main(["gc", "--dry-run"]) == 0
    assert str(tmp_path / ".flowdeck") in capsys.readouterr().out
    monkeypatch.setenv("FLOWDECK_HOME", str(tmp_path / ".flowdeck"))
    assert cli_main(["gc", "--dry-run"]) == 0
    assert "would remove 0 runs" in capsys.readouterr().out
    monkeypatch.setenv(KEEP_ENV, "-3")
    assert cli_main(["gc"]) == 2


def test_removing_a_run_folder_that_another_remover_took_is_no_error(tmp_path: Path) -> None:
    """A collection finishing interrupted removals and a "Delete run" can remove the same
    staged folder at once; what the other already removed is gone, as wanted."""
    from flowdeck.store.gc import _remove_tree
    staged = tmp_path / ".deleting-1"
    (staged / "start" / "1").mkdir(parents=True)
    (staged / "events.jsonl").write_text("{}\n")
    _remove_tree(staged)
    assert not staged.exists()
    _remove_tree(staged)  # gone already: nothing to do, no error
