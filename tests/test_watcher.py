"""The folder watcher with a real watchdog observer and real file operations.

Every save pattern editors use must arrive as exactly one change for the file.
"Exactly one" is proved with a barrier: after the operation, a new marker flow
is written and its diff awaited; inotify delivers events in order, so every
diff the operation caused has arrived before the marker's. No test sleeps to
synchronise; waits are on conditions, with timeouts.

`start()` returns at once and the watcher's thread scans: tests take the first
scan's diff (`first_scan`) before they change files, so a change is not folded
into that scan.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CORE, child_env
from discovery_helpers import Collector, flow_source, names, threads_named, write_atomic

from flowdeck.discovery.catalog import CatalogDiff, FlowCatalog
from flowdeck.discovery.watcher import FolderWatcher, filesystem_type, is_network_filesystem

QUIET = 0.2

# watchdog's recursive inotify watch warns when `mkdir -p` races its own walk of
# the new folders; it handles the race, and the events arrive (tested below).
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "flows"
    path.mkdir()
    (path / "flow.py").write_text(flow_source("WatchedFlow", note="v0"))
    return path


@pytest.fixture
def collector() -> Collector:
    return Collector()


def first_scan(collector: Collector, *roots: Path) -> CatalogDiff:
    """The diff of the watcher's first scan (taken, so later waits see only changes)."""
    (diff,) = collector.wait_diffs(1)
    assert diff.roots_added == tuple(str(r) for r in roots)
    assert diff.snapshot is not None and set(diff.roots_added) <= set(diff.snapshot.roots)
    return diff


@pytest.fixture
def watcher(folder: Path, collector: Collector) -> Iterator[FolderWatcher]:
    watch = FolderWatcher([folder], collector.on_change, collector.on_status,
                          quiet_period=QUIET, rescan_interval=3600)
    watch.start()
    assert names(first_scan(collector, folder).added) == ["WatchedFlow"]
    assert watch.mode(folder) == "native"
    yield watch
    watch.stop()


def changed_once(collector: Collector, folder: Path, name: str = "WatchedFlow") -> None:
    """Exactly one diff before the barrier, and it says `name` changed (not removed/added)."""
    before = collector.barrier(folder)
    assert len(before) == 1, [d.as_dict() for d in before]
    (diff,) = before
    assert (names(diff.changed), diff.added, diff.removed) == ([name], (), ())


# -- editors' save patterns ------------------------------------------------------------

def test_plain_write(watcher: FolderWatcher, folder: Path, collector: Collector) -> None:
    (folder / "flow.py").write_text(flow_source("WatchedFlow", note="v1"))
    changed_once(collector, folder)
    assert "v1" in watcher.snapshot.entries[0].flow.doc


def test_truncate_then_write(watcher: FolderWatcher, folder: Path,
                             collector: Collector) -> None:
    with open(folder / "flow.py", "r+") as fh:
        fh.truncate(0)
        fh.flush()
        os.fsync(fh.fileno())
        fh.write(flow_source("WatchedFlow", note="v1"))
    changed_once(collector, folder)


def test_write_temp_then_rename(watcher: FolderWatcher, folder: Path,
                                collector: Collector) -> None:
    write_atomic(folder / "flow.py", flow_source("WatchedFlow", note="v1"))
    changed_once(collector, folder)


def test_vim_backup_rename_dance(watcher: FolderWatcher, folder: Path,
                                 collector: Collector) -> None:
    """vim: probe file 4913, rename to flow.py~, write a new flow.py, delete the backup."""
    probe = folder / "4913"
    probe.write_text("")
    probe.unlink()
    (folder / "flow.py").rename(folder / "flow.py~")
    (folder / "flow.py").write_text(flow_source("WatchedFlow", note="v1"))
    (folder / "flow.py~").unlink()
    (folder / ".flow.py.swp").write_bytes(b"\x00swap")
    changed_once(collector, folder)


def test_jetbrains_safe_write(watcher: FolderWatcher, folder: Path,
                              collector: Collector) -> None:
    tmp = folder / "flow.py___jb_tmp___"
    tmp.write_text(flow_source("WatchedFlow", note="v1"))
    (folder / "flow.py").rename(folder / "flow.py___jb_old___")
    tmp.rename(folder / "flow.py")
    (folder / "flow.py___jb_old___").unlink()
    changed_once(collector, folder)


def test_delete_and_recreate(watcher: FolderWatcher, folder: Path,
                             collector: Collector) -> None:
    (folder / "flow.py").unlink()
    (folder / "flow.py").write_text(flow_source("WatchedFlow", note="v1"))
    changed_once(collector, folder)


def test_burst_of_twenty_writes(watcher: FolderWatcher, folder: Path,
                                collector: Collector) -> None:
    for i in range(20):
        (folder / "flow.py").write_text(flow_source("WatchedFlow", note=f"burst {i}"))
    changed_once(collector, folder)
    assert "burst 19" in watcher.snapshot.entries[0].flow.doc
    batches = [b for b in watcher.recent_batches if str(folder / "flow.py") in b]
    assert len(batches) == 1  # the file was looked at once, after the burst


def test_save_without_change_is_not_a_change(watcher: FolderWatcher, folder: Path,
                                             collector: Collector) -> None:
    refreshes = watcher.refreshes
    (folder / "flow.py").write_text(flow_source("WatchedFlow", note="v0"))
    assert watcher.wait_for_refreshes(refreshes + 1, timeout=10)
    assert collector.barrier(folder) == []


def test_editor_droppings_and_git_churn_change_nothing(watcher: FolderWatcher, folder: Path,
                                                      collector: Collector) -> None:
    (folder / ".git" / "objects").mkdir(parents=True)
    for name in (".#flow.py", "flow.py~", "4913", ".goutputstream-X1", ".subl1.tmp"):
        (folder / name).write_text(flow_source("JunkFlow"))
    (folder / ".git" / "objects" / "x.py").write_text(flow_source("GitFlow"))
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "flow.cpython-311.py").write_text(flow_source("CacheFlow"))
    assert collector.barrier(folder) == []


# -- adds, moves and deletes ------------------------------------------------------------------

def test_new_file_moves_and_deletes(watcher: FolderWatcher, folder: Path,
                                    collector: Collector, tmp_path: Path) -> None:
    (folder / "new.py").write_text(flow_source("NewFlow"))
    (diff,) = collector.wait_diffs(1)
    assert names(diff.added) == ["NewFlow"]
    (folder / "new.py").rename(folder / "renamed.py")
    (diff,) = collector.barrier(folder)  # both ends of the move in one diff
    assert [e.file for e in diff.removed] == [str(folder / "new.py")]
    assert [e.file for e in diff.added] == [str(folder / "renamed.py")]
    (folder / "renamed.py").rename(tmp_path / "moved_out.py")
    (diff,) = collector.barrier(folder)
    assert names(diff.removed) == ["NewFlow"] and not diff.added
    (folder / "flow.py").unlink()
    (diff,) = collector.barrier(folder)
    assert names(diff.removed) == ["WatchedFlow"]


def test_folders_moved_in_and_out(watcher: FolderWatcher, folder: Path,
                                  collector: Collector, tmp_path: Path) -> None:
    package = tmp_path / "package"
    (package / "deep").mkdir(parents=True)
    (package / "a.py").write_text(flow_source("AFlow"))
    (package / "deep" / "b.py").write_text(flow_source("BFlow"))
    package.rename(folder / "package")
    (diff,) = collector.barrier(folder)
    assert names(diff.added) == ["AFlow", "BFlow"]
    (folder / "package").rename(tmp_path / "gone")
    (diff,) = collector.barrier(folder)
    assert names(diff.removed) == ["AFlow", "BFlow"]


def test_new_subfolder_then_files_in_it(watcher: FolderWatcher, folder: Path,
                                        collector: Collector) -> None:
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "sub" / "deeper" / "c.py").write_text(flow_source("CFlow"))
    diffs = collector.barrier(folder)
    assert [names(d.added) for d in diffs] == [["CFlow"]]


# -- the watched folder itself ---------------------------------------------------------------------

def test_deleted_folder_is_noticed_and_watching_resumes(watcher: FolderWatcher, folder: Path,
                                                        collector: Collector) -> None:
    shutil.rmtree(folder)
    status = collector.wait_status("folder-missing")
    assert status.path == str(folder) and "removed from the list" in status.message
    assert collector.wait_for(lambda: any(names(d.removed) == ["WatchedFlow"]
                                          for d in collector.diffs))
    assert watcher.snapshot.missing_roots == (str(folder),)
    folder.mkdir()
    (folder / "back.py").write_text(flow_source("BackFlow"))
    collector.wait_status("folder-restored")
    assert collector.wait_for(lambda: any(names(d.added) == ["BackFlow"]
                                          for d in collector.diffs))
    # Watching really resumed: a later edit arrives as an event.
    collector.diffs.clear()
    (folder / "back.py").write_text(flow_source("BackFlow", note="edited"))
    changed_once(collector, folder, "BackFlow")


def test_folder_missing_at_start_is_picked_up_when_created(tmp_path: Path,
                                                           collector: Collector) -> None:
    folder = tmp_path / "later"
    with FolderWatcher([folder], collector.on_change, collector.on_status,
                       quiet_period=QUIET, rescan_interval=3600) as watcher:
        assert first_scan(collector, folder).snapshot.missing_roots == (str(folder),)
        assert collector.statuses[0].kind == "folder-missing"
        assert watcher.mode(folder) == "none"
        folder.mkdir()
        (folder / "f.py").write_text(flow_source("LateFlow"))
        collector.wait_status("folder-restored")
        assert collector.wait_for(lambda: any(names(d.added) == ["LateFlow"]
                                              for d in collector.diffs))


def test_a_single_watched_file(tmp_path: Path, collector: Collector) -> None:
    path = tmp_path / "solo.py"
    path.write_text(flow_source("SoloFlow"))
    (tmp_path / "neighbour.py").write_text(flow_source("NeighbourFlow"))
    with FolderWatcher([path], collector.on_change, collector.on_status,
                       quiet_period=QUIET, rescan_interval=3600) as watcher:
        assert names(first_scan(collector, path).added) == ["SoloFlow"]
        assert names(watcher.snapshot.entries) == ["SoloFlow"]
        path.rename(tmp_path / "solo.py~")  # vim's dance on the watched file
        path.write_text(flow_source("SoloFlow", note="v1"))
        (tmp_path / "solo.py~").unlink()
        (tmp_path / "neighbour.py").write_text(flow_source("NeighbourFlow", note="x"))
        (diff,) = collector.wait_diffs(1)
        assert names(diff.changed) == ["SoloFlow"]
        path.unlink()
        collector.wait_status("folder-missing")
        assert collector.wait_for(lambda: watcher.snapshot.entries == ())


# -- safety nets ------------------------------------------------------------------------------------

def test_periodic_rescan_catches_changes_without_events(tmp_path: Path,
                                                        collector: Collector) -> None:
    """Symlinked folders are not watched (loops); the periodic rescan sees them."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.py").write_text(flow_source("LinkedFlow"))
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "linked").symlink_to(outside)
    with FolderWatcher([folder], collector.on_change, collector.on_status,
                       quiet_period=QUIET, rescan_interval=0.3):
        first_scan(collector, folder)
        (outside / "x.py").write_text(flow_source("LinkedFlow", note="edited outside"))
        (diff,) = collector.wait_diffs(1)
        assert names(diff.changed) == ["LinkedFlow"]


def test_forced_polling_sees_changes(folder: Path, collector: Collector) -> None:
    with FolderWatcher([folder], collector.on_change, collector.on_status, quiet_period=QUIET,
                       rescan_interval=3600, force_polling=True, poll_interval=0.1) as watcher:
        first_scan(collector, folder)
        assert watcher.mode(folder) == "polling"
        (folder / "flow.py").write_text(flow_source("WatchedFlow", note="polled"))
        (diff,) = collector.wait_diffs(1)
        assert names(diff.changed) == ["WatchedFlow"]


def test_network_filesystem_falls_back_to_polling(folder: Path, collector: Collector,
                                                  tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\n"
                      f"server:/export {folder} nfs4 rw,relatime 0 0\n")
    with FolderWatcher([folder], collector.on_change, collector.on_status, quiet_period=QUIET,
                       rescan_interval=3600, poll_interval=0.1,
                       mounts_file=str(mounts)) as watcher:
        first_scan(collector, folder)
        status = collector.wait_status("polling")
        assert "network filesystem (nfs4)" in status.message
        assert watcher.mode(folder) == "polling"
        (folder / "new.py").write_text(flow_source("PolledFlow"))
        assert collector.wait_for(lambda: any(names(d.added) == ["PolledFlow"]
                                              for d in collector.diffs))


def test_filesystem_type_from_mounts(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/vda / ext4 rw 0 0\n"
                      "host:/share /mnt/my\\040share nfs rw 0 0\n"
                      "sshfs#me@h: /mnt/my\\040share/ssh fuse.sshfs rw 0 0\n")
    assert filesystem_type("/mnt/my share/x/y.py", str(mounts)) == "nfs"
    assert filesystem_type("/mnt/my share/ssh/z", str(mounts)) == "fuse.sshfs"
    assert filesystem_type("/home/me", str(mounts)) == "ext4"
    assert filesystem_type("/x", str(tmp_path / "no-such-mounts")) is None
    assert is_network_filesystem("nfs4") and is_network_filesystem("fuse.sshfs")
    assert not is_network_filesystem("ext4") and not is_network_filesystem(None)


EXHAUST_INOTIFY = textwrap.dedent(r"""
    import ctypes, json, os, sys, threading
    sys.path.insert(0, sys.argv[1])
    from flowdeck.discovery.watcher import FolderWatcher
    folder, uid = sys.argv[2], int(sys.argv[3])
    libc = ctypes.CDLL(None, use_errno=True)
    # inotify instances are counted per user: take them all for a user of our own,
    # so no other process on the machine is affected.
    os.seteuid(uid)
    fds = []
    while len(fds) < 100000:
        fd = libc.inotify_init1(os.O_CLOEXEC)
        if fd < 0:
            break
        fds.append(fd)
    statuses, changed = [], threading.Event()
    def on_change(diff):
        if any(e.name == "WatchedFlow" for e in diff.changed):
            changed.set()
    watcher = FolderWatcher([folder], on_change, statuses.append, quiet_period=0.1,
                            rescan_interval=3600, poll_interval=0.1)
    watcher.start()
    watcher.wait_idle(20)  # the watcher's thread makes its inotify instance as that user
    os.seteuid(0)
    mode = watcher.mode(folder)
    path = os.path.join(folder, "flow.py")
    with open(path) as fh:
        text = fh.read()
    with open(path, "w") as fh:
        fh.write(text.replace("WatchedFlow: v0", "WatchedFlow: edited while polling"))
    ok = changed.wait(20)
    watcher.stop()
    for fd in fds:
        os.close(fd)
    print(json.dumps({"held": len(fds), "mode": mode, "changed": ok,
                      "statuses": [s.as_dict() for s in statuses]}))
""")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a spare user id to exhaust inotify "
                    "instances without starving the user's own programs")
def test_inotify_refused_falls_back_to_polling() -> None:
    """The real kernel limit: every inotify instance of a user in use, then a watcher.

    The child process takes all inotify instances of a spare user id (limits
    are per user, so nothing else on the machine is affected), starts a
    watcher as that user, and checks that a change still arrives, by polling.
    """
    top = Path(tempfile.mkdtemp(prefix="flowdeck-inotify-"))  # /tmp: reachable by that user
    try:
        folder = top / "flows"
        folder.mkdir()
        (folder / "flow.py").write_text(flow_source("WatchedFlow", note="v0"))
        for path in (top, folder):
            path.chmod(0o755)
        result = subprocess.run([sys.executable, "-c", EXHAUST_INOTIFY, str(CORE),
                                 str(folder), "54321"], env=child_env(), capture_output=True,
                                text=True, timeout=60)
    finally:
        shutil.rmtree(top)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["held"] > 0
    assert report["mode"] == "polling" and report["changed"] is True
    (status,) = [s for s in report["statuses"] if s["kind"] == "polling"]
    assert "refused a new file watcher" in status["message"]
    assert "max_user_instances" in status["message"]


# -- robustness and lifecycle -------------------------------------------------------------------

def test_a_failing_callback_does_not_stop_the_watcher(folder: Path) -> None:
    first, second = threading.Event(), threading.Event()

    def on_change(diff) -> None:
        if not first.is_set():
            first.set()
            raise RuntimeError("listener bug")
        second.set()

    with FolderWatcher([folder], on_change, quiet_period=QUIET, rescan_interval=3600):
        (folder / "a.py").write_text(flow_source("AFlow"))
        assert first.wait(10)
        (folder / "b.py").write_text(flow_source("BFlow"))
        assert second.wait(10)


def test_stop_joins_every_thread(folder: Path, collector: Collector) -> None:
    before = set(threading.enumerate())
    watcher = FolderWatcher([folder], collector.on_change, collector.on_status,
                            quiet_period=QUIET, rescan_interval=3600, force_polling=False)
    watcher.start()
    polled = FolderWatcher([folder], collector.on_change, force_polling=True,
                           poll_interval=0.1, rescan_interval=3600)
    polled.start()
    assert threads_named("flowdeck-watcher")
    watcher.stop()
    polled.stop()
    watcher.stop()  # idempotent
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leftover == []


def test_watcher_accepts_an_existing_catalog(folder: Path, collector: Collector) -> None:
    catalog = FlowCatalog([folder])
    with FolderWatcher(catalog, collector.on_change, quiet_period=QUIET) as watcher:
        assert watcher.catalog is catalog
        assert names(first_scan(collector, folder).added) == ["WatchedFlow"]
        assert names(catalog.snapshot.entries) == ["WatchedFlow"]


# -- roots on a running watcher ----------------------------------------------------------------

def test_start_and_add_root_scan_on_the_watchers_thread(folder: Path, tmp_path: Path,
                                                        collector: Collector) -> None:
    """start() returns while the watcher's thread is still inside the first scan."""
    caller = threading.get_ident()
    readers: list[int] = []
    inside, release = threading.Event(), threading.Event()

    def before_read(path: str) -> None:
        readers.append(threading.get_ident())
        if threading.get_ident() != caller:  # never hold the caller (it would be the test)
            inside.set()
            release.wait(30)

    watcher = FolderWatcher(FlowCatalog([folder], before_read=before_read), collector.on_change,
                            collector.on_status, quiet_period=QUIET, rescan_interval=3600)
    try:
        watcher.start()
        assert inside.wait(10), "start() scanned on the calling thread"
        assert collector.diffs == []
        release.set()
        first_scan(collector, folder)
        other = tmp_path / "other"
        other.mkdir()
        (other / "o.py").write_text(flow_source("OtherFlow"))
        watcher.add_root(other)
        assert names(first_scan(collector, other).added) == ["OtherFlow"]
        assert readers and caller not in readers
    finally:
        release.set()
        watcher.stop()


def test_roots_come_and_go_on_a_running_watcher(folder: Path, tmp_path: Path,
                                                collector: Collector) -> None:
    reads: list[str] = []
    watcher = FolderWatcher(FlowCatalog([folder], before_read=reads.append), collector.on_change,
                            collector.on_status, quiet_period=QUIET, rescan_interval=3600)
    with watcher:
        first_scan(collector, folder)
        other = tmp_path / "other"
        other.mkdir()
        (other / "o.py").write_text(flow_source("OtherFlow"))
        reads.clear()
        watcher.add_root(other)
        diff = first_scan(collector, other)
        assert names(diff.added) == ["OtherFlow"] and diff.snapshot.roots == (str(folder),
                                                                               str(other))
        # flow.py was written less than 2 s ago, so any rescan of `folder` would re-read it.
        assert reads == [str(other / "o.py")]

        downloads = tmp_path / "downloads"
        downloads.mkdir()
        solo = downloads / "solo.py"
        solo.write_text(flow_source("SoloFlow"))
        (downloads / "sibling.py").write_text(flow_source("SiblingFlow"))
        watcher.add_file(solo)
        assert names(first_scan(collector, solo).added) == ["SoloFlow"]
        assert watcher.mode(solo) == "native"
        (downloads / "late.py").write_text(flow_source("LateFlow"))
        solo.write_text(flow_source("SoloFlow", note="v1"))
        (diff,) = collector.barrier(folder)  # the folder beside it is not listed
        assert names(diff.changed) == ["SoloFlow"] and not diff.added

        watcher.remove_root(other)
        (diff,) = collector.wait_diffs(1)
        assert names(diff.removed) == ["OtherFlow"] and diff.roots_removed == (str(other),)
        assert watcher.mode(other) == "none"
        (other / "p.py").write_text(flow_source("UnwatchedFlow"))
        assert collector.barrier(folder) == []
        shown = set(names(watcher.snapshot.entries))
        assert {"WatchedFlow", "SoloFlow"} <= shown
        assert not shown & {"OtherFlow", "UnwatchedFlow", "SiblingFlow", "LateFlow"}


def test_removing_a_single_file_root_keeps_its_neighbour_watched(tmp_path: Path,
                                                                 collector: Collector) -> None:
    """Two files of one folder share the folder's watch: removing one must not unschedule it."""
    x, y = tmp_path / "x.py", tmp_path / "y.py"
    x.write_text(flow_source("XFlow"))
    y.write_text(flow_source("YFlow"))
    with FolderWatcher([], collector.on_change, collector.on_status, quiet_period=QUIET,
                       rescan_interval=3600) as watcher:
        watcher.add_file(x)
        first_scan(collector, x)
        watcher.add_file(y)
        first_scan(collector, y)
        watcher.remove_root(x)
        (diff,) = collector.wait_diffs(1)
        assert names(diff.removed) == ["XFlow"] and diff.roots_removed == (str(x),)
        y.write_text(flow_source("YFlow", note="v1"))
        (diff,) = collector.wait_diffs(1)
        assert names(diff.changed) == ["YFlow"]


def test_add_file_refuses_a_folder(folder: Path, collector: Collector) -> None:
    watcher = FolderWatcher([], collector.on_change)
    with pytest.raises(ValueError, match="is a folder"):
        watcher.add_file(folder)
    assert watcher.wait_idle(1)  # nothing was queued
