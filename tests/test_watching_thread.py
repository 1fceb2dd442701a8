"""The window never scans: roots are added one at a time and scanned on the watcher's thread.

Scans are observed with a recording subclass of `FlowCatalog` put in place of
the one the watcher builds: it notes which thread ran each scan and which
roots it read, and can hold a root's scan (with the catalog's lock taken, as a
real slow scan holds it) until the test lets it go. It never changes what a
scan does. Waits are on conditions (qtbot.waitUntil), never sleeps.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from discovery_helpers import flow_source
from PySide6.QtCore import QSettings

from flowdeck.discovery import watcher as watcher_module
from flowdeck.discovery.catalog import FlowCatalog
from flowdeck.discovery.watcher import FolderWatcher
from flowdeck_desktop.app import build
from flowdeck_desktop.control.controller import FlowdeckController
from flowdeck_desktop.models.catalog_model import ROOTS_ROLE

WAIT = 10000  # ms; generous for a loaded machine, never a measurement


@dataclass(frozen=True)
class Scan:
    """One call into the catalog that reads the disk."""

    kind: str  # scan | refresh | add_root
    paths: tuple[str, ...]  # the roots (scan) or paths (refresh, add_root) it reads
    thread: int


@dataclass
class ScanLog:
    """What the recording catalog saw, and a gate that can hold one root's scan."""

    calls: list[Scan] = field(default_factory=list)
    gated_root: str | None = None
    release: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    gated_on_gui_thread: bool = False
    gate_timed_out: bool = False

    def touching(self, root: Path) -> list[Scan]:
        """Calls that read `root` itself (a scan of it, its first scan, or a rescan of it)."""
        return [c for c in self.calls if str(root) in c.paths]

    def hold(self, kind: str, paths: tuple[str, ...], lock: threading.RLock) -> None:
        """Block a scan of the gated root, holding the catalog's lock as a slow scan would."""
        if self.gated_root is None or self.gated_root not in paths:
            return
        if threading.current_thread() is threading.main_thread():
            self.gated_on_gui_thread = True  # old behaviour: never block the test's own thread
            return
        with lock:
            self.entered.set()
            if not self.release.wait(30):
                self.gate_timed_out = True


@pytest.fixture
def scan_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScanLog]:
    """Every catalog the watcher builds records its scans here; no periodic rescans."""
    log = ScanLog()

    class RecordingCatalog(FlowCatalog):
        def _note(self, kind: str, paths: tuple[str, ...]) -> None:
            log.calls.append(Scan(kind, paths, threading.get_ident()))
            log.hold(kind, paths, self._lock)

        def scan(self):  # type: ignore[no-untyped-def]
            self._note("scan", tuple(self.roots))
            return super().scan()

        def refresh(self, paths):  # type: ignore[no-untyped-def]
            paths = [os.path.abspath(p) for p in paths]
            self._note("refresh", tuple(paths))
            return super().refresh(paths)

        def add_root(self, path):  # type: ignore[no-untyped-def]
            self._note("add_root", (os.path.abspath(path),))
            return super().add_root(path)

    monkeypatch.setattr(watcher_module, "FlowCatalog", RecordingCatalog)
    # The 30 s safety-net rescan reads every root by design; keep it out of the counts.
    monkeypatch.setitem(FolderWatcher.__init__.__kwdefaults__, "rescan_interval", 3600.0)
    yield log
    log.release.set()


@pytest.fixture
def controller(qtbot, settings: QSettings, scan_log: ScanLog) -> Iterator[FlowdeckController]:
    """A controller whose watcher's catalog records its scans (built after the patch)."""
    ctl = FlowdeckController(settings)
    yield ctl
    ctl.shutdown()


def folder_of_flows(path: Path, *names: str) -> Path:
    path.mkdir(parents=True)
    for name in names:
        (path / f"{name.lower()}.py").write_text(flow_source(name))
    return path


def listed(controller: FlowdeckController) -> list[str]:
    return sorted(e.name for e in controller.model.entries())


def root_rows(controller: FlowdeckController) -> list[str]:
    """The roots the flow list's top-level rows list, row by row (a folder's row lists the
    folder; the row of files opened on their own lists each of them)."""
    model = controller.model
    return [root for row in range(model.rowCount()) for root in model.item(row).data(ROOTS_ROLE)]


# -- no scan on the GUI thread -----------------------------------------------------------------

def test_no_scan_runs_on_the_gui_thread(qtbot, controller: FlowdeckController,
                                        scan_log: ScanLog, tmp_path: Path) -> None:
    gui = threading.get_ident()
    folders = [folder_of_flows(tmp_path / f"f{i}", f"Flow{i}A", f"Flow{i}B") for i in range(3)]
    single = folder_of_flows(tmp_path / "downloads", "SoloFlow") / "soloflow.py"
    for folder in folders:
        controller.add_paths([str(folder)])
    controller.add_paths([str(single)])
    qtbot.waitUntil(lambda: len(listed(controller)) == 7, timeout=WAIT)
    on_gui = [c for c in scan_log.calls if c.thread == gui]
    assert on_gui == [], f"scanned on the GUI thread: {on_gui}"
    for root in [*folders, single]:
        assert scan_log.touching(root), f"{root} was listed without a recorded scan"


def test_adding_a_second_root_does_not_rescan_the_first(qtbot, controller: FlowdeckController,
                                                        scan_log: ScanLog,
                                                        tmp_path: Path) -> None:
    first = folder_of_flows(tmp_path / "first", "FirstFlow")
    second = folder_of_flows(tmp_path / "second", "SecondFlow")
    controller.add_paths([str(first)])
    qtbot.waitUntil(lambda: listed(controller) == ["FirstFlow"], timeout=WAIT)
    calls_before = len(scan_log.calls)
    controller.add_paths([str(second)])
    qtbot.waitUntil(lambda: listed(controller) == ["FirstFlow", "SecondFlow"], timeout=WAIT)
    later = scan_log.calls[calls_before:]
    assert [c for c in later if str(first) in c.paths] == []
    assert len(scan_log.touching(first)) == 1  # its own first scan, nothing since
    assert len(scan_log.touching(second)) == 1


# -- the GUI never waits for the catalog's lock ---------------------------------------------------

def test_the_list_updates_while_another_root_is_still_scanning(
        qtbot, controller: FlowdeckController, scan_log: ScanLog, tmp_path: Path) -> None:
    """A's diff (with its snapshot) reaches the model while B's scan holds the catalog lock."""
    quick = folder_of_flows(tmp_path / "quick", "QuickFlow")
    slow = folder_of_flows(tmp_path / "slow", "SlowFlow")
    scan_log.gated_root = str(slow)
    controller.add_paths([str(quick), str(slow)])
    assert not scan_log.gated_on_gui_thread, "the slow folder was scanned on the GUI thread"
    qtbot.waitUntil(scan_log.entered.is_set, timeout=WAIT)
    qtbot.waitUntil(lambda: listed(controller) == ["QuickFlow"], timeout=WAIT)
    assert not scan_log.release.is_set() and controller.scanning()  # still inside slow's scan
    assert controller.roots == [str(quick), str(slow)]
    scan_log.release.set()
    qtbot.waitUntil(lambda: listed(controller) == ["QuickFlow", "SlowFlow"], timeout=WAIT)
    assert not scan_log.gate_timed_out  # nothing on the GUI side ever waited for the lock
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT)


def test_a_snapshot_is_readable_while_a_scan_holds_the_lock(tmp_path: Path) -> None:
    folder = folder_of_flows(tmp_path / "flows", "HeldFlow")
    inside, release = threading.Event(), threading.Event()

    def hold(path: str) -> None:
        inside.set()
        release.wait(30)

    catalog = FlowCatalog([folder], before_read=hold)
    scanner = threading.Thread(target=catalog.scan)
    scanner.start()
    try:
        assert inside.wait(10)
        read: list[object] = []
        reader = threading.Thread(target=lambda: read.append(catalog.snapshot))
        reader.start()
        reader.join(10)
        assert read, "reading the snapshot waited for the scan"
        assert not release.is_set()
    finally:
        release.set()
        scanner.join(10)
    assert [e.name for e in catalog.snapshot.entries] == ["HeldFlow"]


# -- dropped files -----------------------------------------------------------------------------

def test_a_dropped_file_is_listed_alone_and_its_folder_is_not_watched(
        qtbot, settings: QSettings, tmp_path: Path) -> None:
    settings.setValue("prefs/run_on_drop", False)
    downloads = folder_of_flows(tmp_path / "Downloads", "HelloFlow", "SiblingFlow")
    hello = downloads / "helloflow.py"
    controller, window = build(settings)
    qtbot.addWidget(window)
    try:
        window.handle_dropped([str(hello)])
        qtbot.waitUntil(lambda: "HelloFlow" in listed(controller), timeout=WAIT)
        assert listed(controller) == ["HelloFlow"]  # not SiblingFlow
        assert controller.roots == [str(hello)]
        assert root_rows(controller) == [str(hello)]
        assert controller.model.entry(window.selected_key or "").name == "HelloFlow"
        assert "Watch Folder of Opened File" in window.last_message[1]  # the offer
        # New flows beside it stay out too: a change to the dropped file comes
        # through (events arrive in order), the new neighbour does not.
        (downloads / "later.py").write_text(flow_source("LaterFlow"))
        hello.write_text(flow_source("HelloFlow", note="edited"))
        qtbot.waitUntil(lambda: "edited" in (controller.model.entries()[0].flow.doc or ""),
                        timeout=WAIT)
        assert listed(controller) == ["HelloFlow"]
    finally:
        window.close()
        controller.shutdown()


def test_watch_folder_of_a_dropped_file_lists_its_neighbours(qtbot, controller, tmp_path: Path,
                                                             settings: QSettings) -> None:
    downloads = folder_of_flows(tmp_path / "Downloads", "HelloFlow", "SiblingFlow")
    hello = downloads / "helloflow.py"
    controller.add_paths([str(hello)])
    qtbot.waitUntil(lambda: "HelloFlow" in listed(controller), timeout=WAIT)
    assert listed(controller) == ["HelloFlow"]
    key = controller.model.entries()[0].key
    removed: list[str] = []
    controller.model.flow_removed.connect(removed.append)
    assert controller.watch_folder_of() == str(downloads)
    qtbot.waitUntil(lambda: root_rows(controller) == [str(downloads)], timeout=WAIT)
    qtbot.waitUntil(lambda: listed(controller) == ["HelloFlow", "SiblingFlow"], timeout=WAIT)
    assert controller.roots == [str(downloads)]
    assert controller.model.entry(key) is not None and removed == []  # moved, not removed
    assert _as_list(settings.value("folders")) == [str(downloads)]
    assert _as_list(settings.value("files")) == []


# -- removing roots, remembering single files ---------------------------------------------------

def test_remove_root_drops_its_flows_only(qtbot, controller: FlowdeckController,
                                          scan_log: ScanLog, settings: QSettings,
                                          tmp_path: Path) -> None:
    keep = folder_of_flows(tmp_path / "keep", "KeepFlow")
    drop = folder_of_flows(tmp_path / "drop", "DropFlow")
    controller.add_paths([str(keep), str(drop)])
    qtbot.waitUntil(lambda: listed(controller) == ["DropFlow", "KeepFlow"], timeout=WAIT)
    scans_of_keep = len(scan_log.touching(keep))
    with qtbot.waitSignal(controller.roots_changed, timeout=WAIT):
        controller.remove_root(str(drop))
    assert controller.roots == [str(keep)]
    assert _as_list(settings.value("folders")) == [str(keep)]
    qtbot.waitUntil(lambda: listed(controller) == ["KeepFlow"], timeout=WAIT)
    qtbot.waitUntil(lambda: root_rows(controller) == [str(keep)], timeout=WAIT)
    assert len(scan_log.touching(keep)) == scans_of_keep
    (drop / "new.py").write_text(flow_source("NewFlow"))
    (keep / "marker.py").write_text(flow_source("MarkerFlow"))  # events arrive in order
    qtbot.waitUntil(lambda: "MarkerFlow" in listed(controller), timeout=WAIT)
    assert "NewFlow" not in listed(controller)


def test_single_file_roots_are_remembered(qtbot, settings: QSettings, tmp_path: Path) -> None:
    folder = folder_of_flows(tmp_path / "flows", "FolderFlow")
    solo = folder_of_flows(tmp_path / "elsewhere", "SoloFlow", "OtherFlow") / "soloflow.py"
    controller, window = build(settings, [str(folder), str(solo)])
    qtbot.addWidget(window)
    try:
        assert _as_list(settings.value("folders")) == [str(folder)]  # as before: folders only
        assert _as_list(settings.value("files")) == [str(solo)]
        qtbot.waitUntil(lambda: listed(controller) == ["FolderFlow", "SoloFlow"], timeout=WAIT)
    finally:
        window.close()
        controller.shutdown()
    again, window2 = build(settings)
    qtbot.addWidget(window2)
    try:
        assert again.roots == [str(folder), str(solo)]
        qtbot.waitUntil(lambda: listed(again) == ["FolderFlow", "SoloFlow"], timeout=WAIT)
        qtbot.waitUntil(lambda: window2.selected_key is not None, timeout=WAIT)
    finally:
        window2.close()
        again.shutdown()


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]  # type: ignore[union-attr]
