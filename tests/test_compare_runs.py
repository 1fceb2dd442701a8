"""Compare two runs (issue 13): the comparison read from real runs' records (equal values
by content hash, nothing unpickled), the compare window's highlights (where the runs
differ and only there), and History's two-run selection, Compare button and menu entry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import FLOWS, answer_box, child_env, close_window, flow_key, run_flow
from PySide6.QtCore import QItemSelectionModel, QSettings, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox

from flowdeck.observe.compare import compare_runs, place_of, read_side
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout
from flowdeck_desktop.app import build
from flowdeck_desktop.views.compare_view import (
    CHANGE,
    DIFFERS_ROLE,
    LEFT,
    NAME,
    RIGHT,
    CompareView,
    diff_color,
)

WAIT_MS = 60000
FLOW = "MetricRunsFlow"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Real runs of tests/flows/metric_runs.py, by name: two with rate 0.1 (identical
    values), one with rate 0.2, one with a narrower foreach, one of an edited `end` step."""
    folder = tmp_path_factory.mktemp("compare") / "flows"
    folder.mkdir()
    flow = folder / "metric_runs.py"
    shutil.copy(FLOWS / "metric_runs.py", flow)
    made: dict[str, str] = {}
    for name, args in (("a", ["--rate", "0.1"]), ("a_again", ["--rate", "0.1"]),
                       ("b", ["--rate", "0.2"]), ("narrow", ["--rate", "0.1", "--width", "19"])):
        result = run_flow(flow, "run", *args, "--run-id", f"run-{name}", env=child_env())
        assert result.returncode == 0, result.stderr
        made[name] = f"run-{name}"
    edited = folder / "metric_runs_edited.py"
    edited.write_text(flow.read_text().replace('self.summary = f"loss {self.loss}"',
                                               'self.summary = f"the loss is {self.loss}"'))
    result = run_flow(edited, "run", "--rate", "0.1", "--run-id", "run-edited", env=child_env())
    assert result.returncode == 0, result.stderr
    made["edited"] = "run-edited"
    made["root"] = str(folder / ".flowdeck")
    made["folder"] = str(folder)
    return made


def layout_of(store: dict[str, str]) -> RunLayout:
    return RunLayout(Path(store["root"]), FLOW)


def differing(comparison) -> set[tuple[str, str]]:
    return {(a.step, a.name) for a in comparison.artifacts if a.differs}


# -- the comparison, from records ---------------------------------------------------------

def test_different_rate_differs_in_rate_and_what_depends_on_it(store) -> None:
    comparison = compare_runs(layout_of(store), store["a"], store["b"])
    assert [(p.name, p.left, p.right) for p in comparison.params if p.differs] == \
        [("rate", "0.1", "0.2")]
    assert not any(p.differs for p in comparison.params if p.name != "rate")
    # Parameters are compared once, not again as every step's artifacts.
    assert not {a.name for a in comparison.artifacts} & {"rate", "seed", "width", "label"}
    assert differing(comparison) == {("fit", "score"), ("end", "loss"), ("end", "summary")}
    # Per foreach item: 1 - (p - 0.1)^2 equals 1 - (p - 0.2)^2 only at p = 0.15 (item 3).
    score = next(a for a in comparison.artifacts if (a.step, a.name) == ("fit", "score"))
    assert len(score.tasks) == 20 and score.differing == 19
    assert [t.place for t in score.tasks if not t.differs] == ["grid[3]"]
    assert [t.place for t in score.tasks][:2] == ["grid[0]", "grid[1]"]
    steps = {s.step: s for s in comparison.steps}
    assert list(steps) == ["start", "fit", "join", "end"]
    assert steps["fit"].left is not None and steps["fit"].left.tasks == 20
    assert not any(s.differs for s in comparison.steps)
    assert comparison.summary().startswith("1 of 4 parameters, 0 of 4 steps")


def test_equal_runs_have_no_difference(store) -> None:
    comparison = compare_runs(layout_of(store), store["a"], store["a_again"])
    assert not any(p.differs for p in comparison.params)
    assert not any(s.differs for s in comparison.steps)
    assert differing(comparison) == set()
    assert comparison.problems == []


def test_a_narrower_foreach_differs_in_task_counts_and_the_missing_item(store) -> None:
    comparison = compare_runs(layout_of(store), store["a"], store["narrow"])
    fit = next(s for s in comparison.steps if s.step == "fit")
    assert fit.counts_differ and fit.differs and not fit.code_changed
    assert fit.left is not None and fit.right is not None
    assert (fit.left.tasks, fit.right.tasks) == (20, 19)
    point = next(a for a in comparison.artifacts if (a.step, a.name) == ("fit", "point"))
    missing = [t for t in point.tasks if t.right is None]
    assert [t.place for t in missing] == ["grid[19]"] and point.differing == 1
    # Missing is said as missing, in the task's row and the step's (it said "differs").
    assert missing[0].change == "only in A" and point.change == "only in A (1 of 20 tasks)"
    # Artifacts count once by name, however many steps carry them (`grid` and `rate` are
    # carried by every step; the count was per step).
    names = {a.name for a in comparison.artifacts}
    changed = {a.name for a in comparison.artifacts if a.differs}
    assert comparison.summary().endswith(f"{len(changed)} of {len(names)} artifacts differ")
    assert len(changed) < sum(a.differs for a in comparison.artifacts)
    # The grid list itself is one artifact with another hash: it differs once per task.
    grid = next(a for a in comparison.artifacts if (a.step, a.name) == ("start", "grid"))
    assert grid.differs and grid.single


def test_an_edited_step_is_changed_code(store) -> None:
    comparison = compare_runs(layout_of(store), store["a"], store["edited"])
    changed = {s.step for s in comparison.steps if s.code_changed}
    assert changed == {"end"}
    assert differing(comparison) == {("end", "summary")}


def test_a_damaged_attempt_record_is_named_not_fatal(store, tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(store["root"], root)
    layout = RunLayout(root, FLOW)
    join_task = next(a for a in RunIndex(layout).final_attempts(store["b"])[0]
                     if a.step == "join")
    record = layout.attempt(store["b"], "join", join_task.task_id, join_task.attempt, "json")
    record.write_text("{not json")
    comparison = compare_runs(layout, store["a"], store["b"])
    assert any(str(record) in p for p in comparison.problems)
    join = next(s for s in comparison.steps if s.step == "join")
    assert join.right is None and join.differs  # what could be read is still compared
    assert ("end", "loss") in differing(comparison)


def test_places_name_the_foreach_item(store) -> None:
    side = read_side(layout_of(store), store["a"])
    places = sorted(place_of(a) for a in side.attempts if a.step == "fit")
    assert len(places) == 20 and "grid[7]" in places
    assert {place_of(a) for a in side.attempts if a.step != "fit"} == {""}


def test_an_invalid_run_id_is_a_value_error(store) -> None:
    with pytest.raises(ValueError, match="not valid"):
        compare_runs(layout_of(store), store["a"], "../etc")


# -- the compare window -------------------------------------------------------------------

def open_view(qtbot, store, left: str, right: str) -> CompareView:
    view = CompareView(layout_of(store), left, right)
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.loaded, timeout=WAIT_MS):
        view.show()
    return view


def highlighted(view: CompareView) -> list[str]:
    """Rows whose A and B cells carry the difference colour (checked against the role)."""
    color = diff_color(view.tree.palette())
    out = []
    for item in view.items():
        marked = [item.background(c).color() == color and
                  item.background(c).style() != Qt.BrushStyle.NoBrush for c in (LEFT, RIGHT, CHANGE)]
        assert all(marked) or not any(marked), item.text(NAME)
        assert bool(item.data(NAME, DIFFERS_ROLE)) == all(marked), item.text(NAME)
        if all(marked):
            parent = item.parent()
            out.append(f"{parent.text(NAME)}/{item.text(NAME)}" if parent else item.text(NAME))
    return out


def test_compare_view_highlights_differences_and_only_them(qtbot, store) -> None:
    view = open_view(qtbot, store, store["a"], store["b"])
    marked = highlighted(view)
    expected = {"Parameters/rate", "fit/score", "end/loss", "end/summary"} | \
        {f"score/grid[{i}]" for i in range(20) if i != 3}
    assert set(marked) == expected and len(marked) == len(expected)
    rows = {(i.parent().text(NAME) if i.parent() else "", i.text(NAME)): i for i in view.items()}
    rate = rows[("Parameters", "rate")]
    assert (rate.text(LEFT), rate.text(RIGHT)) == ("0.1", "0.2")
    score = rows[("fit", "score")]
    assert score.text(CHANGE) == "19 of 20 tasks differ"
    # A small number or a short text shows its value, from the record (nothing loaded).
    loss = rows[("end", "loss")]
    assert (loss.text(LEFT), loss.text(RIGHT)) == ("0.919091 · float", "0.843333 · float")
    assert rows[("end", "summary")].text(RIGHT) == "'loss 0.843333' · str"
    assert rows[("start", "grid")].text(LEFT).startswith("list · ")  # a list: its hash
    assert score.childCount() == 20
    fit = rows[("Steps", "fit")]
    assert fit.text(LEFT).startswith("20 tasks") and "median" in fit.text(LEFT)
    assert store["a"] in view.tree.headerItem().text(LEFT)
    assert "1 of 4 parameters" in view.summary.text()

    view.only_diffs.setChecked(True)
    shown = [i for i in view.items() if not i.isHidden()]
    assert {i.text(NAME) for i in shown if i.parent() and i.parent().text(NAME) == "Parameters"} \
        == {"rate"}
    assert rows[("end", "best")].isHidden()  # equal in both runs
    assert rows[("join", "best")].isHidden()
    assert not rows[("end", "loss")].isHidden()

    view.swap()
    assert view.left_id == store["b"]
    rate = {(i.parent().text(NAME) if i.parent() else "", i.text(NAME)): i
            for i in view.items()}[("Parameters", "rate")]
    assert (rate.text(LEFT), rate.text(RIGHT)) == ("0.2", "0.1")


def test_compare_view_of_equal_runs_highlights_nothing(qtbot, store) -> None:
    view = open_view(qtbot, store, store["a"], store["a_again"])
    assert highlighted(view) == []
    assert "0 of 4 parameters, 0 of 4 steps and 0 of" in view.summary.text()


def test_compare_view_marks_task_counts_and_changed_code(qtbot, store) -> None:
    view = open_view(qtbot, store, store["a"], store["narrow"])
    assert "Steps/fit" in highlighted(view)
    view = open_view(qtbot, store, store["a"], store["edited"])
    marked = highlighted(view)
    assert "Steps/end" in marked and "Steps/fit" not in marked
    end = next(i for i in view.items() if i.text(NAME) == "end" and i.parent().text(NAME) == "Steps")
    assert "code changed" in end.text(CHANGE)


# -- History: two selected, Compare -------------------------------------------------------

@pytest.fixture
def window(qtbot, settings: QSettings, store):
    controller, window = build(settings, [store["folder"]])
    window.show()
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    window.select_flow(flow_key(controller, FLOW))
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 5, timeout=WAIT_MS)
    yield window
    close_window(controller, window)


def select_rows(window, rows: list[int]) -> None:
    table = window.history.table
    table.selectRow(rows[0])
    for row in rows[1:]:
        table.selectionModel().select(table.model().index(row, 0),
                                      QItemSelectionModel.SelectionFlag.Select
                                      | QItemSelectionModel.SelectionFlag.Rows)


def menu_actions(window, row: int) -> list[tuple[str, bool]]:
    """Right-click a History row; the menu's actions and whether they are enabled."""
    seen: list[list[tuple[str, bool]]] = []
    table = window.history.table

    def poll() -> None:
        menu = QApplication.activePopupWidget()
        if not isinstance(menu, QMenu):
            QTimer.singleShot(10, poll)
            return
        seen.append([(a.text(), a.isEnabled()) for a in menu.actions() if a.text()])
        QTest.keyClick(menu, Qt.Key.Key_Escape)
    QTimer.singleShot(0, poll)
    table.customContextMenuRequested.emit(table.visualRect(table.model().index(row, 1)).center())
    return seen[0]


def test_history_compares_two_selected_runs(qtbot, window, store) -> None:
    history = window.history
    shown: list[str] = []
    history.run_selected.connect(lambda run: shown.append(run.run_id))
    select_rows(window, [0])
    assert history.rerun.isEnabled() and not history.compare.isEnabled()
    assert shown and shown[-1] == history.runs[0].run_id
    assert dict(menu_actions(window, 0))["Compare Selected Runs"] is False

    by_id = {r.run_id: row for row, r in enumerate(history.runs)}
    select_rows(window, [by_id[store["b"]], by_id[store["a"]]])
    assert history.selected() is None and len(history.selected_runs()) == 2
    assert history.compare.isEnabled() and not history.rerun.isEnabled()
    count = len(shown)
    actions = dict(menu_actions(window, by_id[store["a"]]))  # inside the selection: kept
    assert actions["Compare Selected Runs"] is True
    assert actions["Rerun with These Parameters"] is True  # the clicked run's own entries
    assert len(history.selected_runs()) == 2 and len(shown) == count

    asked: list[str] = []
    answer_box(QMessageBox.StandardButton.No, asked)
    QTest.keyClick(history.table, Qt.Key.Key_Delete)  # two selected: asked once, for both
    assert asked and asked[-1].startswith("Delete 2 runs?")
    assert history.table.rowCount() == 5 and len(history.selected_runs()) == 2

    with qtbot.waitSignal(history.compare_requested, timeout=WAIT_MS) as signal:
        history.compare.click()
    older, newer = signal.args
    assert (older.run_id, newer.run_id) == (store["a"], store["b"])  # older on the left
    views = [w for w in QApplication.topLevelWidgets() if isinstance(w, CompareView)]
    assert len(views) == 1
    view = views[0]
    qtbot.waitUntil(lambda: view.comparison is not None, timeout=WAIT_MS)
    assert "Parameters/rate" in highlighted(view)
    view.close()

    history.set_runs(list(history.runs))  # a re-listing keeps both selected
    history._render()
    assert {r.run_id for r in history.selected_runs()} == {store["a"], store["b"]}

    other = by_id[store["edited"]]  # a right-click outside the selection selects that run
    assert dict(menu_actions(window, other))["Compare Selected Runs"] is False
    assert [r.run_id for r in history.selected_runs()] == [store["edited"]]
    assert history.rerun.isEnabled() and shown[-1] == store["edited"]


@pytest.mark.parametrize("close_with", ["escape", "ctrl+w"])
def test_the_compare_window_closes_from_the_keyboard(qtbot, store, close_with: str) -> None:
    """A window without a close button (no window manager, a tiling one): Escape and the
    platform's Close shortcut (Ctrl+W) close it, wherever the focus is in it."""
    from PySide6.QtGui import QKeySequence
    from PySide6.QtTest import QTest
    view = open_view(qtbot, store, store["a"], store["b"])
    view.activateWindow()
    view.tree.setFocus()
    if close_with == "escape":
        QTest.keyClick(view.tree, Qt.Key.Key_Escape)
    else:
        QTest.keySequence(view.tree, QKeySequence(QKeySequence.StandardKey.Close))
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=WAIT_MS)


def test_runs_of_metaflow_s_engine_say_their_steps_are_not_compared(store, tmp_path) -> None:
    """Two runs Metaflow's engine made read "0 of 0 steps and 0 of 0 artifacts differ":
    their tasks are in Metaflow's datastore, which the comparison does not read (review).
    (The run's record as the bridge writes it: engine "metaflow", no task records.)"""
    import json
    import shutil as sh
    layout = layout_of(store)
    root = Path(store["root"]) / "MetricRunsFlow" / "runs"
    for new in ("run-mf-1", "run-mf-2"):
        sh.copytree(root / store["a"], root / new)
        record = json.loads((root / new / "run.json").read_text())
        record.update(run_id=new, engine="metaflow")
        (root / new / "run.json").write_text(json.dumps(record))
        for step in ("start", "fit", "join", "end"):
            sh.rmtree(root / new / step, ignore_errors=True)
    try:
        comparison = compare_runs(layout, "run-mf-1", "run-mf-2")
        assert comparison.engines_unread == ["metaflow"]
        assert comparison.summary() == (
            "0 of 4 parameters differ; steps and artifacts are not compared for a run of "
            "Metaflow's engine, whose tasks are in its own datastore (select the run in "
            "History to see them)")
        assert compare_runs(layout, store["a"], store["b"]).engines_unread == []
        mixed = compare_runs(layout, store["a"], "run-mf-1")  # one of each engine
        assert mixed.engines_unread == ["metaflow"]
        assert mixed.steps == [] and mixed.artifacts == []  # not all listed as differing
    finally:
        for new in ("run-mf-1", "run-mf-2"):
            sh.rmtree(root / new, ignore_errors=True)
