"""The native watcher puts no inotify watch inside `.flowdeck/`, `.git/` or a virtualenv."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from flowdeck.discovery.watcher import FolderWatcher

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux")


def watched_paths(watcher: FolderWatcher) -> set[str]:
    paths: set[str] = set()
    observer = watcher._native
    assert observer is not None
    for emitter in observer.emitters:
        group = emitter._inotify
        if group is not None:
            paths |= {os.fsdecode(p) for p in group._active_callbacks_by_path}
    return paths


def test_skipped_folders_get_no_watch_now_or_later(tmp_path: Path) -> None:
    for folder in (".flowdeck/Flow/runs/1/start/1", ".git/objects", "venv/lib", "sub/deeper"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    changed = threading.Event()
    watcher = FolderWatcher([tmp_path], on_change=lambda diff: changed.set(),
                            quiet_period=0.05)
    watcher.start()
    try:
        assert watcher.wait_idle(10)  # the watcher's thread arms and scans
        changed.clear()  # the first scan's diff
        paths = watched_paths(watcher)
        assert str(tmp_path) in paths and str(tmp_path / "sub" / "deeper") in paths
        assert not [p for p in paths if "/.flowdeck" in p or "/.git" in p or "/venv" in p]
        (tmp_path / ".flowdeck" / "Flow" / "runs" / "2" / "end" / "9").mkdir(parents=True)
        (tmp_path / "sub" / "new").mkdir()
        (tmp_path / "sub" / "new" / "flow.py").write_text(
            "from flowdeck import FlowSpec, step\n"
            "class NewFlow(FlowSpec):\n"
            "    @step\n"
            "    def start(self):\n"
            "        self.next(self.end)\n"
            "    @step\n"
            "    def end(self):\n"
            "        pass\n")
        assert changed.wait(10)
        paths = watched_paths(watcher)
        assert str(tmp_path / "sub" / "new") in paths
        assert not [p for p in paths if "/.flowdeck" in p]
        assert [e.name for e in watcher.snapshot.entries] == ["NewFlow"]
    finally:
        watcher.stop()
