"""The bundled examples open from the user's own copy, so their runs land where the user
may write: a root-owned bundle's examples ran into "Permission denied", and run as root
the bundle wrote runs into itself.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, WAIT_MS, close_window, flow_key
from PySide6.QtCore import QSettings

from flowdeck_desktop.app import build
from flowdeck_desktop.system import user_examples
from flowdeck_desktop.system.user_examples import MANIFEST, sync_copy


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """Examples as a bundle ships them, with a checkout's runs that must not come along."""
    folder = tmp_path / "bundle" / "examples"
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLES / "train.py", folder)
    (folder / "notes.txt").write_text("v1\n")
    (folder / ".flowdeck").mkdir()
    (folder / ".flowdeck" / "stray").write_text("a run")
    return folder


def test_the_first_use_copies_the_examples(shipped: Path, tmp_path: Path) -> None:
    copy = tmp_path / "data" / "flowdeck" / "examples"
    assert sync_copy(shipped, copy) == []
    assert (copy / "train.py").read_bytes() == (shipped / "train.py").read_bytes()
    assert (copy / "notes.txt").read_text() == "v1\n"
    assert not (copy / ".flowdeck").exists() and (copy / MANIFEST).is_file()


def test_an_unchanged_shipment_leaves_the_copy_alone(shipped: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    sync_copy(shipped, copy)
    (copy / "notes.txt").write_text("mine\n")
    (copy / "train.py").unlink()
    assert sync_copy(shipped, copy) == []
    assert (copy / "notes.txt").read_text() == "mine\n" and not (copy / "train.py").exists()


def test_a_new_shipment_refreshes_what_the_user_left_alone(shipped: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    sync_copy(shipped, copy)
    (shipped / "notes.txt").write_text("v2\n")
    (shipped / "added.txt").write_text("new example\n")
    (copy / "mine.py").write_text("# the user's own\n")
    assert sync_copy(shipped, copy) == []
    assert (copy / "notes.txt").read_text() == "v2\n"
    assert (copy / "added.txt").read_text() == "new example\n"
    assert (copy / "mine.py").read_text() == "# the user's own\n"


def test_a_new_shipment_never_overwrites_the_users_edits(shipped: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    sync_copy(shipped, copy)
    (copy / "notes.txt").write_text("my edit\n")
    (shipped / "notes.txt").write_text("v2\n")
    notes = sync_copy(shipped, copy)
    assert (copy / "notes.txt").read_text() == "my edit\n"
    assert (copy / "notes.txt.new").read_text() == "v2\n"
    assert len(notes) == 1 and str(copy / "notes.txt") in notes[0] and "notes.txt.new" in notes[0]
    assert sync_copy(shipped, copy) == []  # said once


def test_a_checkout_opens_its_own_examples(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert user_examples.examples_for_window().folder == str(EXAMPLES)
    assert not (tmp_path / "data").exists()


def test_an_unwritable_data_folder_opens_the_shipped_examples_and_says_so(
        shipped: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "_MEIPASS", str(shipped.parent), raising=False)
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    seen = user_examples.examples_for_window()
    assert seen.folder == str(shipped)
    assert len(seen.notes) == 1 and "Check that" in seen.notes[0] and str(blocker) in seen.notes[0]


def test_the_window_runs_a_bundled_example_in_the_users_copy(
        qtbot, settings: QSettings, shipped: Path, monkeypatch, tmp_path: Path) -> None:
    """As in a bundle (`sys._MEIPASS`) whose examples may not be written: "Open the bundled
    examples" opens the copy in the user's data folder, and the run lands there."""
    monkeypatch.setattr(sys, "_MEIPASS", str(shipped.parent), raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    shutil.rmtree(shipped / ".flowdeck")
    shipped.chmod(0o555)  # as a root-owned install is to its users (root writes all the same)
    copy = tmp_path / "data" / "flowdeck" / "examples"
    controller, window = build(settings)
    window.show()
    try:
        assert window.examples_dir == str(copy)
        window.open_paths([window.examples_dir])
        qtbot.waitUntil(lambda: any(e.name == "TrainFlow" for e in controller.model.entries()),
                        timeout=WAIT_MS)
        window.select_flow(flow_key(controller, "TrainFlow"))
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
            window.run_selected()
        assert ended.args[1] == "succeeded", window.last_message
    finally:
        close_window(controller, window)
        shipped.chmod(0o755)
    assert list(copy.glob(".flowdeck/TrainFlow/runs/*/events.jsonl"))
    assert not (shipped / ".flowdeck").exists()
