"""Files and folders dropped on the window: a file that defines no flow leaves no row,
files of one folder share one row, and a drop's message replaces the previous drop's in
the banner. The real window, real folders, the watcher's real scans."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import FLOWS, WAIT_MS, close_window, opened_window


@pytest.fixture
def window_on(qtbot, settings, tmp_path: Path):
    """The window on a folder of one flow, with dropped flows not run (nothing here needs
    a run, and a run's own messages would share the banner)."""
    watched = tmp_path / "watched"
    watched.mkdir()
    shutil.copy(FLOWS / "failing.py", watched)
    with opened_window(qtbot, settings, [watched]) as (controller, window):
        window.act_run_on_drop.setChecked(False)
        yield controller, window


def top_rows(model) -> dict[str, list[str]]:
    """Each top-level row's text and its children's, in order."""
    rows: dict[str, list[str]] = {}
    for row in range(model.rowCount()):
        item = model.item(row)
        rows.setdefault(item.text(), []).extend(
            item.child(r).text() for r in range(item.rowCount()))
    return rows


def top_row_count(model, text: str) -> int:
    return sum(1 for row in range(model.rowCount()) if model.item(row).text() == text)


@pytest.fixture
def dropped(tmp_path: Path) -> Path:
    """A downloads folder: a helper module with no flow and two flow files."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "notaflow.py").write_text("def helper():\n    return 1\n")
    shutil.copy(FLOWS / "branches.py", folder / "first.py")
    shutil.copy(FLOWS / "sleepy.py", folder / "second.py")
    return folder


def test_a_dropped_file_without_a_flow_leaves_no_row(qtbot, window_on, dropped: Path) -> None:
    """The warning says it defines no flow; no bare folder row stays, and the file is not
    watched (nor remembered for the next start)."""
    controller, window = window_on
    window.handle_dropped([str(dropped / "notaflow.py")])
    qtbot.waitUntil(lambda: "defines no flow" in window.last_message[1], timeout=WAIT_MS)
    assert window.banner.text == window.last_message[1]  # the warning stays
    qtbot.waitUntil(lambda: top_row_count(controller.model, str(dropped)) == 0,
                    timeout=WAIT_MS)
    assert str(dropped / "notaflow.py") not in controller.roots


def test_a_dropped_file_gets_one_message_the_true_one(qtbot, window_on, dropped: Path) -> None:
    """A file of no flow was first said to be listed alone ("Listing only notaflow.py: its
    folder is not watched"), then not listed: the first message was sent before the scan
    knew. Now each drop says one thing, once its file is listed."""
    controller, window = window_on
    said: list[str] = []
    window.message_shown.connect(lambda _level, text: said.append(text))
    window.handle_dropped([str(dropped / "notaflow.py")])
    qtbot.waitUntil(lambda: any("defines no flow" in t for t in said), timeout=WAIT_MS)
    assert said == [f"{dropped / 'notaflow.py'} defines no flow (a class deriving from "
                    "FlowSpec of flowdeck or metaflow), so it is not listed."]
    said.clear()
    window.handle_dropped([str(dropped / "first.py")])
    qtbot.waitUntil(lambda: any(e.file == str(dropped / "first.py")
                                for e in controller.model.entries()), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: any(t.startswith("Listing only first.py") for t in said),
                    timeout=WAIT_MS)
    assert len([t for t in said if "first.py" in t]) == 1


def test_files_dropped_from_one_folder_share_its_row(qtbot, window_on, dropped: Path) -> None:
    """One row per folder however many of its files are dropped one by one (its tooltip
    names them), until the last of them is no longer watched."""
    controller, window = window_on
    model = controller.model
    for name in ("first.py", "second.py"):
        window.handle_dropped([str(dropped / name)])
        qtbot.waitUntil(lambda n=name: any(e.file == str(dropped / n)
                                           for e in model.entries()), timeout=WAIT_MS)
    assert top_row_count(model, str(dropped)) == 1
    assert top_rows(model)[str(dropped)] == ["first.py", "second.py"]
    row = next(model.item(r) for r in range(model.rowCount())
               if model.item(r).text() == str(dropped))
    assert "first.py, second.py" in row.toolTip()
    # Stopping one file's watch leaves the other under the same row; the row's menu
    # stops watching the files it lists.
    controller.remove_root(str(dropped / "first.py"))
    qtbot.waitUntil(lambda: top_rows(model).get(str(dropped)) == ["second.py"],
                    timeout=WAIT_MS)
    assert top_row_count(model, str(dropped)) == 1
    window.handle_dropped([str(dropped / "first.py")])
    qtbot.waitUntil(lambda: len(top_rows(model).get(str(dropped), [])) == 2, timeout=WAIT_MS)
    menu = window.tree_menu_for(window.proxy.mapFromSource(model.indexFromItem(row)))
    stop = next(a for a in menu.actions() if a.text().startswith("Stop Watching"))
    assert stop.text() == "Stop Watching These 2 Files"
    stop.trigger()
    menu.deleteLater()
    qtbot.waitUntil(lambda: top_row_count(model, str(dropped)) == 0, timeout=WAIT_MS)
    assert not any(str(dropped) in root for root in controller.roots)


def test_a_drop_replaces_the_previous_drops_message_in_the_banner(
        qtbot, window_on, tmp_path: Path) -> None:
    controller, window = window_on
    notes = tmp_path / "readme.txt"
    notes.write_text("hello")
    window.handle_dropped([str(notes)])
    assert "readme.txt is not a Python file" in window.banner.text
    assert not window.banner.isHidden()
    folder = tmp_path / "more"
    folder.mkdir()
    shutil.copy(FLOWS / "branches.py", folder)
    window.handle_dropped([str(folder)])
    qtbot.waitUntil(lambda: any(e.file == str(folder / "branches.py")
                                for e in controller.model.entries()), timeout=WAIT_MS)
    assert window.banner.isHidden()  # the folder drop said nothing; the old drop's note went
    assert any("readme.txt" in n.text for n in window.notifications.notices)  # kept there
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "util.py").write_text("x = 1\n")
    window.handle_dropped([str(plain / "util.py")])
    qtbot.waitUntil(lambda: "util.py defines no flow" in window.banner.text, timeout=WAIT_MS)
    window.handle_dropped([str(notes)])
    assert "readme.txt is not a Python file" in window.banner.text


FLOWLESS_LATER = '''from flowdeck import FlowSpec, step


class Exp(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
'''


def test_a_remembered_file_survives_a_start_while_it_defines_no_flow(qtbot, settings,
                                                                     tmp_path: Path) -> None:
    """A file watched on its own that, at the next start, defines no flow for now (being
    rewritten) stays watched: forgotten, it was gone for good (a drop's rule)."""
    from flowdeck_desktop.app import build
    path = tmp_path / "proj" / "exp.py"
    path.parent.mkdir()
    path.write_text(FLOWLESS_LATER)
    controller, window = build(settings, [str(path)])  # opened on its own, remembered
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: any(e.name == "Exp" for e in controller.model.entries()),
                    timeout=WAIT_MS)
    close_window(controller, window)
    settings.sync()
    path.write_text("# being rewritten: the class moves below shortly\n")
    controller, window = build(settings)  # the next start restores what was watched
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: any("defines no flow" in n.text
                                    for n in window.notifications.notices), timeout=WAIT_MS)
        assert str(path) in controller.roots  # kept, though it lists no flow for now
        assert not any("so it is not listed" in n.text for n in window.notifications.notices)
        path.write_text(FLOWLESS_LATER)  # the file defines its flow again
        qtbot.waitUntil(lambda: any(e.name == "Exp" for e in controller.model.entries()),
                        timeout=WAIT_MS)
    finally:
        close_window(controller, window)


def test_paths_from_the_command_line_follow_the_drop_rule(qtbot, window_on,
                                                          tmp_path: Path) -> None:
    """A README given by "Open with" (or on the command line) was parsed as Python ("Fix
    the code at line 8") and remembered for every start; a missing folder given with a
    trailing slash was named by an empty name, and as "not a Python file"."""
    controller, window = window_on
    notes = tmp_path / "events.md"
    notes.write_text("# Events\n\nSome `text` that is no Python.\n")
    window.open_paths([str(notes), str(tmp_path / "gone") + "/"])
    notices = [n.text for n in window.notifications.notices]
    assert any(t.startswith("events.md is not a Python file") for t in notices), notices
    assert any(t == f"{tmp_path / 'gone'}/: no such file or folder." for t in notices), notices
    assert not any(str(notes) in root for root in controller.roots)
    assert not any("line" in t for t in notices)
