"""History's pin, unpin and delete, and the window's garbage collection after a run, driven
through the real window: context menu, Delete key, confirmation boxes, real runs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from conftest import WAIT_MS, answer_box, child_env, close_window, flow_key, run_flow
from PySide6.QtCore import QItemSelectionModel, QSettings, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox

from flowdeck.store.gc import GcReport
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout
from flowdeck_desktop.app import build
from flowdeck_desktop.views.panes import list_runs

GATED_FLOW = '''
import os
import time
from pathlib import Path

from flowdeck import FlowSpec, Parameter, step


class GatedFlow(FlowSpec):
    label = Parameter("label", default="a")

    @step
    def start(self):
        self.big = [self.label] * 100
        self.next(self.hold)

    @step
    def hold(self):
        if os.environ.get("GATE"):  # wait until the test opens the gate
            gate = Path(os.environ["GATE"])
            Path(str(gate) + ".waiting").write_text("")
            while not gate.exists():
                time.sleep(0.02)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GatedFlow().run()
'''


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with GatedFlow and three finished runs of it."""
    target = tmp_path / "flows"
    target.mkdir()
    flow = target / "gated.py"
    flow.write_text(GATED_FLOW)
    for tag in ("a", "b", "c"):
        assert run_flow(flow, "run", "--label", tag, env=child_env()).returncode == 0
    return target


@pytest.fixture
def app(qtbot, settings: QSettings, folder: Path):
    controller, window = build(settings, [str(folder)])
    window.show()
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    window.select_flow(flow_key(controller, "GatedFlow"))
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 3)
    yield controller, window
    close_window(controller, window)


def layout_of(folder: Path) -> RunLayout:
    return RunLayout(folder / ".flowdeck", "GatedFlow")


def choose_from_menu(window, row: int, text: str | None,
                     seen: list[list[tuple[str, bool]]]) -> None:
    """Right-click a history row and choose `text` from its menu (None: Escape), noting
    the menu's actions and whether they are enabled."""
    table = window.history.table

    def poll() -> None:
        menu = QApplication.activePopupWidget()
        if not isinstance(menu, QMenu):
            QTimer.singleShot(10, poll)
            return
        seen.append([(a.text(), a.isEnabled()) for a in menu.actions()])
        if text is None:
            QTest.keyClick(menu, Qt.Key.Key_Escape)
            return
        menu.setActiveAction(next(a for a in menu.actions() if a.text() == text))
        QTest.keyClick(menu, Qt.Key.Key_Return)
    QTimer.singleShot(0, poll)
    table.customContextMenuRequested.emit(table.visualRect(table.model().index(row, 1)).center())


def press_delete(window, row: int) -> None:
    window.history.table.selectRow(row)
    QTest.keyClick(window.history.table, Qt.Key.Key_Delete)


def test_history_pins_unpins_and_deletes_runs(qtbot, app, folder: Path) -> None:
    controller, window = app
    history, index = window.history, RunIndex(layout_of(folder))
    oldest = history._runs[2].run_id
    menus: list[list[tuple[str, bool]]] = []

    choose_from_menu(window, 2, "Pin run", menus)
    qtbot.waitUntil(lambda: history.table.item(2, 1).text() == oldest
                    and not history.table.item(2, 1).icon().isNull())
    assert history.table.item(2, 1).data(Qt.ItemDataRole.AccessibleDescriptionRole) == "pinned"
    assert menus[-1][-2:] == [("Pin run", True), ("Delete run…", True)]
    assert index.is_pinned(oldest) and history._runs[2].pinned

    boxes: list[str] = []
    answer_box(QMessageBox.StandardButton.Ok, boxes)
    press_delete(window, 2)
    assert "pinned" in boxes[-1] and "Unpin it first" in boxes[-1]
    assert oldest in {e.run_id for e in index.runs()}

    choose_from_menu(window, 2, "Unpin run", menus)
    qtbot.waitUntil(lambda: history.table.item(2, 1).icon().isNull())
    assert history.table.item(2, 1).text() == oldest
    assert not index.is_pinned(oldest)

    answer_box(QMessageBox.StandardButton.No, boxes)
    press_delete(window, 2)
    assert boxes[-1].startswith(f"Delete run {oldest}? Its folder and log are removed")
    assert history.table.rowCount() == 3 and index.read(oldest).record is not None

    answer_box(QMessageBox.StandardButton.Yes, boxes)
    choose_from_menu(window, 2, "Delete run…", menus)
    qtbot.waitUntil(lambda: history.table.rowCount() == 2)
    assert oldest not in {e.run_id for e in index.runs()}
    assert not layout_of(folder).run_dir(oldest).exists()
    assert oldest not in {r.run_id for r in history._runs}


def test_history_sorts_deletes_several_and_reruns_on_enter(qtbot, app, folder: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    """A header click sorts (again: the other way); Delete on two selected runs asks once
    for both, a pinned one among them stays; Enter reruns the selected run."""
    controller, window = app
    history, index = window.history, RunIndex(layout_of(folder))
    labels = [r.params["label"] for r in history.runs]
    assert labels == ["c", "b", "a"]  # newest first
    params = history.table.horizontalHeader()
    params.sectionClicked.emit(4)
    assert [history.table.item(r, 4).text() for r in range(3)] == [
        "label=a", "label=b", "label=c"]
    params.sectionClicked.emit(4)
    assert [history.table.item(r, 4).text() for r in range(3)] == [
        "label=c", "label=b", "label=a"]
    params.sectionClicked.emit(3)
    params.sectionClicked.emit(3)  # durations descending: a run with none would stay last
    assert len({history._shown[r].run_id for r in range(3)}) == 3
    params.sectionClicked.emit(4)  # another column before: ascending, the oldest "a" first
    history.table.selectRow(0)
    assert history.selected().params["label"] == "a"  # the row shown, not the listed order

    history.table.setFocus()
    QTest.keyClick(history.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: controller.is_running(window.selected_key), timeout=WAIT_MS)
    assert controller.saved_params(window.selected_key)["label"] == "a"
    qtbot.waitUntil(lambda: not controller.is_running(window.selected_key), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: history.table.rowCount() == 4, timeout=WAIT_MS)

    pinned = next(r for r in history.runs if r.params["label"] == "b")
    index.pin(pinned.run_id)
    history.table.clearSelection()
    wanted = [r for r in history.runs if r.params["label"] in ("a", "b")]
    qtbot.waitUntil(lambda: any(r.pinned for r in history.runs), timeout=WAIT_MS)
    for row in range(history.table.rowCount()):
        if history._shown[row].params["label"] in ("a", "b"):
            history.table.selectionModel().select(
                history.table.model().index(row, 0),
                QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
    assert len(history.selected_runs()) == len(wanted) == 3
    boxes: list[str] = []
    said: list[str] = []
    controller.message.connect(lambda _level, text: said.append(text))
    listed: list[int] = []
    real_set_runs = history.set_runs
    monkeypatch.setattr(history, "set_runs", lambda runs: (listed.append(len(runs)),
                                                           real_set_runs(runs)))
    answer_box(QMessageBox.StandardButton.Yes, boxes)
    QTest.keyClick(history.table, Qt.Key.Key_Delete)
    assert boxes[-1].startswith("Delete 2 runs?") and "1 selected run(s) stay" in boxes[-1]
    qtbot.waitUntil(lambda: history.table.rowCount() == 2, timeout=WAIT_MS)
    # Deleted together: one message, and History never listed between two deletions
    # (a listing per run redrew 100 tables for 100 runs).
    assert [t for t in said if t.startswith("Deleted")] == [
        next(t for t in said if t.startswith("Deleted 2 runs of GatedFlow ("))]
    assert listed and set(listed) == {2}
    assert {r.params["label"] for r in history.runs} == {"b", "c"}
    assert pinned.run_id in {e.run_id for e in index.runs()}


def test_a_running_run_cannot_be_deleted_and_gc_follows_the_run_off_the_gui_thread(
        qtbot, app, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    controller, window = app
    layout = layout_of(folder)
    (layout.root / "settings.json").write_text(json.dumps({"keep_runs": 1}))
    gate = tmp_path / "gate"
    monkeypatch.setenv("GATE", str(gate))  # the window's run inherits it
    window.run_selected()
    qtbot.waitUntil(Path(str(gate) + ".waiting").exists, timeout=WAIT_MS)
    window.history.set_runs(list_runs(layout))  # as a refresh would show it now
    live = window.history._runs[0]
    assert live.status == "running"

    menus: list[list[tuple[str, bool]]] = []
    boxes: list[str] = []
    choose_from_menu(window, 0, None, menus)
    assert menus[-1][-2:] == [("Pin run", True), ("Delete run…", False)]
    answer_box(QMessageBox.StandardButton.Ok, boxes)
    press_delete(window, 0)
    assert "running" in boxes[-1] and "stop it" in boxes[-1]
    with qtbot.waitSignal(controller.message, timeout=1000,
                          check_params_cb=lambda level, text: "is running" in text):
        assert not controller.delete_run(layout, live.run_id)  # the store refuses too

    workers: list[threading.Thread] = []
    controller._gc_relay.done.connect(lambda *_: workers.append(threading.current_thread()),
                                      Qt.ConnectionType.DirectConnection)
    receivers: list[threading.Thread] = []
    controller.garbage_collected.connect(lambda *_: receivers.append(threading.current_thread()))
    with qtbot.waitSignal(controller.garbage_collected, timeout=WAIT_MS) as collected:
        gate.touch()  # the run ends; the controller collects its store
    root, report = collected.args
    assert Path(root) == layout.root and isinstance(report, GcReport)
    assert len(report.runs_removed) == 3 and not report.errors
    # The relay's direct receiver runs in the pool's thread, which may wait for the GIL
    # while the GUI thread already handles the queued copy of the same signal.
    qtbot.waitUntil(lambda: bool(workers), timeout=WAIT_MS)
    assert workers[0] is not threading.main_thread()
    assert receivers == [threading.main_thread()]
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1)
    assert window.history._runs[0].run_id == live.run_id
    assert window.history._runs[0].status == "succeeded"
    assert not controller.collect_garbage(root)  # at most once per interval...
    with qtbot.waitSignal(controller.garbage_collected, timeout=WAIT_MS):
        assert controller.collect_garbage(root, force=True)  # ...unless asked


def test_the_windows_collection_drops_no_run_unless_retention_was_chosen(
        qtbot, app, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs made in a terminal (a sweep of hundreds) are the user's: with no keep setting
    chosen, the window's background collection removes none of them, even past the
    default `flowdeck gc` applies (lowered to 1 here, as if the sweep had 51 runs); it
    still sweeps what no run refers to. `flowdeck gc` applies the default when asked."""
    from flowdeck.store import gc as store_gc
    monkeypatch.setattr(store_gc, "DEFAULT_KEEP", 1)
    controller, window = app
    layout = layout_of(folder)
    with qtbot.waitSignal(controller.garbage_collected, timeout=WAIT_MS) as collected:
        assert controller.collect_garbage(str(layout.root), force=True)
    report = collected.args[1]
    assert isinstance(report, GcReport) and report.keep is None
    assert report.runs_removed == [] and len(list(RunIndex(layout).runs())) == 3
    asked = store_gc.collect(layout.root)  # what `flowdeck gc` does
    assert asked.keep == 1 and len(asked.runs_removed) == 2


def test_the_run_shown_deleted_outside_the_window_gives_way_to_the_newest(
        qtbot, app, folder: Path) -> None:
    """`flowdeck gc` or another window deletes the run the window shows: History drops it
    and the window shows the flow's newest run left, saying why (it kept showing a run
    that no longer existed, whose steps' logs and artifacts could not be read)."""
    from flowdeck.store.gc import delete_run
    controller, window = app
    runs = RunIndex(layout_of(folder)).runs()
    newest, second = runs[0].run_id, runs[1].run_id
    assert window.shown_state.run_id == newest
    delete_run(layout_of(folder), newest)  # as another process would
    qtbot.waitUntil(lambda: window.shown_state.run_id == second, timeout=WAIT_MS)
    assert window.history.table.rowCount() == 2
    assert f"Run {newest} was deleted outside this window" in window.statusBar().currentMessage()
    assert window.shown_state.status == "succeeded"


def test_a_pin_made_elsewhere_is_seen_by_the_follower(qtbot, folder: Path) -> None:
    """History follows a flow's runs by its runs folder's mtime; a pin (or unpin) from a
    terminal or another window wrote a marker inside a run's folder only, so it showed
    whenever something else changed next, or never (CI waited 60 s for it once)."""
    from flowdeck_desktop.views.panes import HistoryFollower
    layout, index = layout_of(folder), RunIndex(layout_of(folder))
    follower = HistoryFollower()
    try:
        follower.follow(layout)
        follower.note_listed(list_runs(layout))
        assert not follower.changed()
        run_id = index.runs()[0].run_id
        index.pin(run_id)
        assert follower.changed()
        follower.follow(layout)
        assert not follower.changed()
        index.unpin(run_id)
        assert follower.changed()
    finally:
        follower.stop()


def test_a_start_shown_as_a_time_gets_its_date_after_midnight(
        qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    """History shows today's starts as a time alone: past midnight, with no new run to
    list, yesterday's kept their time and read as today's (found in review)."""
    import time as real_time
    import types

    import flowdeck_desktop.views.panes as panes
    from flowdeck_desktop.views.panes import HistoryPane, RunSummary
    clock = {"now": real_time.mktime((2026, 12, 4, 23, 50, 0, 0, 0, -1))}
    fake = types.SimpleNamespace(**{n: getattr(real_time, n) for n in dir(real_time)
                                    if not n.startswith("__")})
    fake.localtime = lambda t=None: real_time.localtime(clock["now"] if t is None else t)
    monkeypatch.setattr(panes, "time", fake)
    pane = HistoryPane()
    qtbot.addWidget(pane)
    runs = [RunSummary("1796443119700-a4d6f2", "succeeded", clock["now"] - 600, 1.0, {},
                       None, "")]
    pane.set_runs(runs)
    assert pane.table.item(0, 2).text() == "23:40:00"
    assert pane._new_day.isActive() and pane._new_day.interval() == 601_000  # at midnight
    clock["now"] += 3600  # 00:50 the next day
    pane._new_day.timeout.emit()  # what the timer does at midnight
    assert pane.table.item(0, 2).text() == "12-04 23:40"
    clock["now"] += 86400
    pane.set_runs(list(runs))  # the same runs listed again on another day
    assert pane.table.item(0, 2).text() == "12-04 23:40"


OPTIONAL_FLOW = '''
from flowdeck import FlowSpec, Parameter, step


class OptionalFlow(FlowSpec):
    label = Parameter("label", help="optional, no default")
    n = Parameter("n", type=int, help="optional, no default")

    @step
    def start(self):
        self.seen = (self.label, self.n)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    OptionalFlow()
'''


def test_a_rerun_leaves_a_parameter_that_had_no_value_unset(qtbot, settings: QSettings,
                                                           tmp_path: Path) -> None:
    """A run given no `label` (a str) nor `n` (an int), neither with a default, recorded
    them as the text 'None': History's rerun then ran with label 'None' (a different value,
    said nowhere) and refused `--n None` as no int; the form kept 'None'."""
    flow = tmp_path / "optional.py"
    flow.write_text(OPTIONAL_FLOW)
    assert run_flow(flow, "run", env=child_env()).returncode == 0
    layout = RunLayout(tmp_path / ".flowdeck", "OptionalFlow")
    first = RunIndex(layout).runs()[0].record
    assert [(p.name, p.value, p.cli, p.arguments()) for p in first.params] == [
        ("label", None, None, []), ("n", None, None, [])]
    controller, window = build(settings, [str(flow)])
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        key = flow_key(controller, "OptionalFlow")
        window.select_flow(key)
        qtbot.waitUntil(lambda: window.history.table.rowCount() == 1, timeout=WAIT_MS)
        window.history.table.selectRow(0)
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
            window.history.rerun.click()
        assert ended.args[1] == "succeeded"
        assert controller.saved_params(key) == {}  # blank fields: not passed
        newest = RunIndex(layout).runs()[0]
        assert newest.run_id != first.run_id and newest.record is not None
        assert newest.record.param_values == {"label": None, "n": None}
    finally:
        close_window(controller, window)


def test_a_record_written_with_none_as_text_reruns_unset() -> None:
    """Records on disk from before (and the Metaflow bridge's default of `default=None`)
    hold the value None with the text 'None': a rerun leaves the parameter unset; JSON's
    `null` gives None back, and is passed."""
    from flowdeck.store.records import ParamRecord
    old = ParamRecord.from_json({"name": "label", "value": None, "cli": "None"}, "run.json")
    assert old.cli is None and old.arguments() == []
    given = ParamRecord.from_json({"name": "cfg", "value": None, "cli": "null"}, "run.json")
    assert given.arguments() == ["--cfg", "null"]
    text = ParamRecord.from_json({"name": "label", "value": "None", "cli": "None"}, "run.json")
    assert text.arguments() == ["--label", "None"]  # the text 'None', given


def test_a_deletion_made_in_the_window_is_not_said_to_be_made_outside(qtbot, app) -> None:
    """Deleting the run shown, from History: the window said "Run X was deleted outside
    this window" beside its own "Deleted run ..."."""
    controller, window = app
    said: list[str] = []
    window.message_shown.connect(lambda _level, text: said.append(text))
    newest = window.history.runs[0].run_id
    assert window.shown_state.run_id == newest
    boxes: list[str] = []
    answer_box(QMessageBox.StandardButton.Yes, boxes)
    press_delete(window, 0)
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 2, timeout=WAIT_MS)
    assert window.shown_state.run_id == window.history.runs[0].run_id != newest
    assert any(t.startswith(f"Deleted run GatedFlow/{newest} (") for t in said), said
    assert not [t for t in said if "outside this window" in t]


def test_rerun_and_compare_follow_a_selection_that_a_deletion_empties(qtbot, app) -> None:
    """The selected run deleted: Rerun stayed enabled and did nothing; two selected, one
    deleted: Compare stayed enabled."""
    controller, window = app
    history = window.history
    history.table.selectRow(0)
    assert history.rerun.isEnabled()
    boxes: list[str] = []
    answer_box(QMessageBox.StandardButton.Yes, boxes)
    QTest.keyClick(history.table, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: history.table.rowCount() == 2, timeout=WAIT_MS)
    assert not history.selected_runs() and not history.rerun.isEnabled()

    history.table.selectAll()
    assert history.compare.isEnabled()
    window._delete_past([history.selected_runs()[0]])  # as the context menu's Delete does
    qtbot.waitUntil(lambda: history.table.rowCount() == 1, timeout=WAIT_MS)
    assert len(history.selected_runs()) == 1
    assert not history.compare.isEnabled() and history.rerun.isEnabled()


def test_after_a_failed_start_deleting_every_run_leaves_the_flow_ready(qtbot, app) -> None:
    """A start refused before its run began keeps the mark of the newest run on disk;
    deleting every run then left "succeeded" on the flow's row."""
    from flowdeck_desktop.models.catalog_model import STATUS_ROLE
    controller, window = app
    key = window.selected_key
    item = controller.model.itemFromIndex(controller.model.index_of(key))
    assert item.data(STATUS_ROLE) == "succeeded"
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
        controller.start_run(key, ["--no_such_parameter", "x"])  # refused by the flow
    assert controller.session(key).start_failure is not None
    assert item.data(STATUS_ROLE) == "succeeded"  # no run was made: the newest's mark
    window._delete_past(window.history.runs)
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 0, timeout=WAIT_MS)
    assert item.data(STATUS_ROLE) == "ready"
