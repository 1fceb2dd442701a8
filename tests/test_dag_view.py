"""DAG scene and view: one item per step, cheap state updates, real mouse input, fit, shared animation.

Real graphs from tests/flows through the same AST analysis the app uses;
real mouse events through QTest on the viewport; waits are `waitSignal` /
`waitUntil`, never sleeps.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import FLOWS
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from test_dag_layout import graph_from_structure, sixty_steps

from flowdeck.analysis.flowfile import analyze_file
from flowdeck.observe.fold import StepSummary
from flowdeck_desktop.views.dag_view import (
    MAX_BOX_WIDTH,
    DagScene,
    DagView,
    EdgeItem,
    StepItem,
    format_duration,
    type_hint,
    wrap_name,
)


def graph_of(name: str) -> dict[str, Any]:
    return analyze_file(FLOWS / name).flows[0].graph.as_dict()


@pytest.fixture
def view(qtbot) -> DagView:
    """A shown view on the branches flow (static split, nested foreach)."""
    v = DagView()
    qtbot.addWidget(v)
    v.resize(600, 900)
    v.dag_scene().set_graph(graph_of("branches.py"))
    v.show()
    qtbot.waitExposed(v)
    return v


def center_of(view: DagView, step: str) -> QPoint:
    """Where a step's box appears on the viewport, for real mouse events."""
    item = view.item_for(step)
    assert item is not None
    return view.mapFromScene(item.sceneBoundingRect().center())


def step_items(scene: DagScene) -> list[StepItem]:
    return [i for i in scene.items() if isinstance(i, StepItem)]


def painted(qtbot, item: StepItem) -> None:
    """Wait until the item has been painted at least once (the view is really drawing it)."""
    qtbot.waitUntil(lambda: item.paint_count > 0)


def settle() -> None:
    """Deliver every pending event (paints included) without waiting on a clock."""
    for _ in range(3):
        QApplication.processEvents()


# --------------------------------------------------------------------------- items


def test_one_item_per_step_and_one_edge_item_per_edge(view: DagView) -> None:
    graph = graph_of("branches.py")
    scene = view.dag_scene()
    items = step_items(scene)
    assert sorted(i.name for i in items) == sorted(graph["graph"])
    edges = [i for i in scene.items() if isinstance(i, EdgeItem)]
    expected = sorted((u, v) for u, node in graph["graph"].items() for v in node["next"])
    assert sorted((e.route.source, e.route.target) for e in edges) == expected


def test_foreach_body_is_drawn_once_even_with_a_thousand_tasks(view: DagView, qtbot) -> None:
    scene = view.dag_scene()
    before = len(scene.items())
    assert scene.set_step_state("inner_each", StepSummary("running", 437, 1000, 3.0))
    assert len(scene.items()) == before
    assert [i.name for i in step_items(scene)].count("inner_each") == 1
    item = view.item_for("inner_each")
    assert item.foreach_body and item.shows_progress()
    assert "437/1000" in item.text()
    assert not view.item_for("left").foreach_body  # a static branch gets no counter


def test_item_text_shows_name_hint_counter_and_duration(view: DagView) -> None:
    scene = view.dag_scene()
    assert view.item_for("fan_out").text() == "fan_out\nforeach outer"
    assert view.item_for("join_sides").text() == "join_sides\njoin"
    assert view.item_for("start").text().startswith("start\nsplit")
    scene.set_step_state("right", StepSummary("failed", 1, 1, 1.23, attempt=2))
    assert view.item_for("right").text() == "right\nretry 2  1.2 s"
    scene.set_step_state("outer_each", StepSummary("succeeded", 2, 2, 65.0))
    assert view.item_for("outer_each").text() == "outer_each\nforeach inner  2/2  1 m 05 s"


def test_a_parallel_fan_out_says_its_task_count() -> None:
    """Under a `split-parallel` step: "parallel ×N" (it said "foreach _parallel_ubf_iter",
    Flowdeck's internal artifact, when the graph called it a foreach)."""
    node = analyze_file(FLOWS / "output_raw" / "parallel_fanout.py").flows[0].graph.as_dict()
    assert type_hint(node["graph"]["start"]) == "parallel \u00d72"
    assert type_hint({"type": "split-parallel", "num_parallel": None}) == "parallel"


def test_format_duration() -> None:
    assert format_duration(None) == ""
    assert format_duration(1.23) == "1.2 s"
    assert format_duration(59.94) == "59.9 s"
    assert format_duration(125) == "2 m 05 s"
    assert format_duration(3 * 3600 + 120) == "3 h 02 m"


def test_unknown_status_draws_as_pending_but_keeps_its_word(view: DagView) -> None:
    scene = view.dag_scene()
    pending_fill = view.item_for("left").brush().color()
    assert scene.set_step_state("left", StepSummary("skipped"))
    item = view.item_for("left")
    assert item.brush().color() == pending_fill
    assert "skipped" in item.toolTip()
    assert not scene.is_animating()


# --------------------------------------------------------------------------- state updates


def test_state_change_recolours_and_repaints_only_that_item(view: DagView, qtbot) -> None:
    scene = view.dag_scene()
    item, other = view.item_for("left"), view.item_for("right")
    painted(qtbot, item)
    painted(qtbot, other)
    settle()
    pending_color = item.brush().color()
    before, other_before = item.paint_count, other.paint_count
    with qtbot.waitSignal(scene.step_state_changed) as changed:
        assert scene.set_step_state("left", StepSummary("succeeded", 1, 1, 1.2))
    assert changed.args == ["left"]
    assert item.brush().color() != pending_color
    assert "1.2 s" in item.text()
    qtbot.waitUntil(lambda: item.paint_count > before)
    failed = StepSummary("failed", 1, 1, 1.2)
    scene.set_step_state("left", failed)
    assert item.brush().color() not in (pending_color, other.brush().color())
    settle()
    assert other.paint_count == other_before


def test_unchanged_state_is_a_no_op(view: DagView, qtbot) -> None:
    scene = view.dag_scene()
    item = view.item_for("left")
    scene.set_step_state("left", StepSummary("succeeded", 1, 1, 1.2))
    qtbot.waitUntil(lambda: item.paint_count > 0)
    settle()
    paints, changes = item.paint_count, item.change_count
    with qtbot.assertNotEmitted(scene.step_state_changed):
        assert not scene.set_step_state("left", StepSummary("succeeded", 1, 1, 1.2))
        assert not scene.set_step_state("no_such_step", StepSummary("running"))
        settle()
    assert item.change_count == changes
    assert item.paint_count == paints


def test_clear_states_resets_only_changed_steps(view: DagView, qtbot) -> None:
    scene = view.dag_scene()
    scene.set_step_state("left", StepSummary("succeeded", 1, 1, 1.0))
    scene.set_step_state("right", StepSummary("running"))
    emitted: list[str] = []
    scene.step_state_changed.connect(emitted.append)
    scene.clear_states()
    assert sorted(emitted) == ["left", "right"]
    assert all(scene.step_state(s) == StepSummary() for s in scene.steps())
    assert not scene.is_animating()


def test_set_graph_with_an_equal_graph_keeps_items_and_states(view: DagView) -> None:
    scene = view.dag_scene()
    scene.set_step_state("left", StepSummary("succeeded"))
    item = view.item_for("left")
    assert not scene.set_graph(graph_of("branches.py"))
    assert view.item_for("left") is item and scene.step_state("left").status == "succeeded"
    assert scene.set_graph(graph_of("sleepy.py"))
    assert sorted(scene.steps()) == sorted(graph_of("sleepy.py")["graph"])


# --------------------------------------------------------------------------- mouse


def test_click_emits_step_clicked_and_selects(view: DagView, qtbot) -> None:
    scene = view.dag_scene()
    with qtbot.waitSignal(scene.step_clicked, timeout=2000) as clicked:
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         center_of(view, "right"))
    assert clicked.args == ["right"]
    assert scene.selected_step() == "right"
    touching = [e for e in scene.edge_items() if "right" in (e.route.source, e.route.target)]
    assert touching and all(e.highlighted for e in touching)
    assert not any(e.highlighted for e in scene.edge_items() if e not in touching)


def test_click_on_empty_space_emits_nothing(view: DagView, qtbot) -> None:
    scene = view.dag_scene()
    with qtbot.assertNotEmitted(scene.step_clicked):
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         QPoint(3, 3))
    assert scene.selected_step() is None


def test_double_click_emits_step_double_clicked(view: DagView, qtbot) -> None:
    scene = view.dag_scene()
    with qtbot.waitSignal(scene.step_double_clicked, timeout=2000) as double:
        QTest.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                          center_of(view, "inner_each"))
    assert double.args == ["inner_each"]


# --------------------------------------------------------------------------- view


def visible_scene_rect(view: DagView):
    return view.mapToScene(view.viewport().rect()).boundingRect()


@pytest.fixture
def small_sixty(qtbot) -> DagView:
    """The 60-step graph in a view far too small for it at a readable size."""
    view = DagView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.dag_scene().set_graph(sixty_steps())
    view.show()
    qtbot.waitExposed(view)
    return view


def test_fit_all_shows_the_whole_scene_on_request(small_sixty: DagView) -> None:
    view = small_sixty
    view.set_zoom(2.0)
    assert not visible_scene_rect(view).contains(view.sceneRect())
    view.fit_all()
    settle()  # scroll bars that are no longer needed hide on the next layout pass
    assert visible_scene_rect(view).contains(view.sceneRect())
    assert view.zoom() < 1 and view.fit_mode() == "all"


def test_default_fit_keeps_text_readable_and_scrolls_from_the_top(small_sixty: DagView) -> None:
    view = small_sixty
    view.set_zoom(0.3)
    view.fit()
    assert view.zoom() >= view.legible_zoom() >= 1.0  # names at (at least) the UI font size
    assert view.verticalScrollBar().maximum() > 0 and view.horizontalScrollBar().maximum() > 0
    assert visible_scene_rect(view).contains(view.item_for("start").sceneBoundingRect())


def test_users_zoom_is_kept_across_resizes_until_fit(small_sixty: DagView) -> None:
    view = small_sixty
    view.zoom_by(0.5)
    zoom = view.zoom()
    view.resize(500, 420)
    assert view.zoom() == pytest.approx(zoom) and view.fit_mode() == "manual"
    view.fit()
    assert view.zoom() == pytest.approx(view.fit_zoom()) and view.fit_mode() == "fit"


def test_plain_wheel_scrolls_ctrl_wheel_zooms_end_and_home_jump(small_sixty: DagView) -> None:
    from PySide6.QtGui import QWheelEvent
    view = small_sixty
    zoom, bar = view.zoom(), view.verticalScrollBar()
    pos = QPointF(view.viewport().rect().center())
    wheel = QWheelEvent(pos, QPointF(view.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0),
                        QPoint(0, -120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), wheel)
    assert view.zoom() == zoom and bar.value() > bar.minimum()
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_End)
    assert visible_scene_rect(view).contains(view.item_for("end").sceneBoundingRect())
    QTest.keyClick(view, Qt.Key.Key_Home)
    assert visible_scene_rect(view).contains(view.item_for("start").sceneBoundingRect())


def test_fit_never_blows_a_small_graph_up(qtbot) -> None:
    view = DagView()
    qtbot.addWidget(view)
    view.resize(1200, 1200)
    view.dag_scene().set_graph(graph_of("failing.py"))
    view.show()
    qtbot.waitExposed(view)
    view.fit()
    assert view.zoom() == pytest.approx(1.0)
    assert visible_scene_rect(view).contains(view.sceneRect())


def test_keyboard_and_wheel_zoom_are_clamped(view: DagView, qtbot) -> None:
    view.setFocus()
    start = view.zoom()
    QTest.keyClick(view, Qt.Key.Key_Plus)
    assert view.zoom() == pytest.approx(start * view.ZOOM_STEP)
    QTest.keyClick(view, Qt.Key.Key_Minus)
    QTest.keyClick(view, Qt.Key.Key_Minus)
    assert view.zoom() == pytest.approx(start / view.ZOOM_STEP)
    for _ in range(60):
        view.zoom_by(2)
    assert view.zoom() == pytest.approx(view.MAX_ZOOM)
    for _ in range(60):
        view.zoom_by(0.5)
    assert view.zoom() == pytest.approx(view.MIN_ZOOM)
    QTest.keyClick(view, Qt.Key.Key_0)
    assert visible_scene_rect(view).contains(view.sceneRect())


def test_wheel_zooms(view: DagView, qtbot) -> None:
    from PySide6.QtGui import QWheelEvent
    start = view.zoom()
    pos = QPointF(center_of(view, "fan_out"))
    event = QWheelEvent(pos, QPointF(view.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0),
                        QPoint(0, 120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), event)
    assert view.zoom() == pytest.approx(start * view.ZOOM_STEP)


def test_view_is_antialiased_and_pans_by_dragging(view: DagView) -> None:
    from PySide6.QtGui import QPainter
    from PySide6.QtWidgets import QGraphicsView
    assert view.renderHints() & QPainter.RenderHint.Antialiasing
    assert view.dragMode() == QGraphicsView.DragMode.ScrollHandDrag


# --------------------------------------------------------------------------- animation


def test_one_shared_animation_runs_only_while_a_step_runs(view: DagView, qtbot) -> None:
    scene = view.dag_scene()
    assert not scene.is_animating()
    a, b = view.item_for("left"), view.item_for("right")
    scene.set_step_state("left", StepSummary("running"))
    scene.set_step_state("right", StepSummary("running"))
    assert scene.is_animating()
    from PySide6.QtCore import QAbstractAnimation, QTimer
    timers = scene.findChildren(QTimer)
    assert len(timers) == 1 and timers[0].isActive()  # one timer for all running steps
    assert scene.findChildren(QAbstractAnimation) == []
    idle = view.item_for("end")
    painted(qtbot, idle)
    settle()
    idle_paints, a_paints, b_paints = idle.paint_count, a.paint_count, b.paint_count
    qtbot.waitUntil(lambda: a.paint_count > a_paints + 2 and b.paint_count > b_paints + 2)
    assert idle.paint_count == idle_paints  # ticks repaint running steps only
    scene.set_step_state("left", StepSummary("succeeded"))
    assert scene.is_animating()
    scene.set_step_state("right", StepSummary("failed"))
    assert not scene.is_animating()
    assert not timers[0].isActive()


def test_view_follows_a_replaced_scene(view: DagView, qtbot) -> None:
    other = DagScene(view)
    view.setScene(other)
    view.set_zoom(3.0)
    other.set_graph(graph_of("sleepy.py"))  # graph_changed -> the view fits the new graph
    assert visible_scene_rect(view).contains(view.sceneRect())


# --------------------------------------------------------------------------- palette


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, color in ((QPalette.ColorRole.Window, "#202124"), (QPalette.ColorRole.WindowText, "#e8eaed"),
                        (QPalette.ColorRole.Base, "#181818"), (QPalette.ColorRole.Text, "#e8eaed"),
                        (QPalette.ColorRole.Highlight, "#4c8dff")):
        palette.setColor(role, QColor(color))
    return palette


def test_colours_follow_the_palette(view: DagView) -> None:
    scene = view.dag_scene()
    scene.set_step_state("left", StepSummary("succeeded"))
    light_fill = view.item_for("left").brush().color()
    view.setPalette(dark_palette())
    assert scene.theme.dark
    assert scene.theme.text.lightnessF() > 0.7
    dark_fill = view.item_for("left").brush().color()
    assert dark_fill.lightnessF() < 0.4 < light_fill.lightnessF()
    assert dark_fill.green() > dark_fill.red()  # still reads as "succeeded"


def test_sixty_step_graph_builds_one_item_each(qtbot) -> None:
    view = DagView()
    qtbot.addWidget(view)
    graph = sixty_steps()
    view.dag_scene().set_graph(graph)
    assert len(step_items(view.dag_scene())) == len(graph["graph"])
    deep = graph_from_structure(["start", [["a", [["b"], ["c"]], "j1"]], "j2", "end"])
    view.dag_scene().set_graph(deep)
    assert sorted(view.dag_scene().steps()) == sorted(deep["graph"])


def test_malformed_graph_does_not_break_the_scene(qtbot) -> None:
    scene = DagScene()
    cycle = {"graph": {"start": {"type": "start", "next": ["a"]}, "a": {"type": "linear", "next": ["start", "x"]}}}
    assert scene.set_graph(cycle)
    assert sorted(scene.steps()) == ["a", "start"]
    assert scene.set_graph(None) and scene.steps() == []
    assert scene.set_graph({"graph": "junk"}) and scene.steps() == []
    odd = {"graph": {"start": {"type": "split-static", "next": "end", "doc": 3}, "end": {"next": [None]}}}
    assert scene.set_graph(odd) and sorted(scene.steps()) == ["end", "start"]
    assert scene.item_for("start").text() == "start\nsplit"


def test_long_step_names_are_capped_not_overflowing(qtbot) -> None:
    scene = DagScene()
    long_name = "a_really_long_step_name_that_someone_wrote_" * 3
    scene.set_graph(graph_from_structure(["start", long_name, "end"]))
    item = scene.item_for(long_name)
    assert scene.dag_layout.nodes[long_name].width <= MAX_BOX_WIDTH
    assert item.text().startswith(long_name)
    assert scene.name_rows == 2
    lines = item.name_lines()  # two rows, and too long even for them: cut at the end
    assert len(lines) == 2 and lines[1].endswith("\u2026") and long_name.startswith(lines[0])


#: Step names as people write them in real pipelines: over 40 characters each.
LONG_NAMES = ["load_customer_transactions_from_warehouse", "compute_rolling_features_for_accounts",
              "train_gradient_boosted_churn_model", "join_everything_into_final_report"]


def test_long_step_names_wrap_onto_two_rows_whole(qtbot) -> None:
    """A name wider than a box is wrapped at its underscores, not cut: every step of a
    wide graph can be read on its box, and the boxes are no wider than that needs."""
    scene = DagScene()
    graph = {"graph": {
        "start": {"type": "split-static", "next": LONG_NAMES[:3]},
        **{name: {"type": "linear", "next": [LONG_NAMES[3]]} for name in LONG_NAMES[:3]},
        LONG_NAMES[3]: {"type": "join", "next": ["end"]},
        "end": {"type": "end", "next": []}}}
    scene.set_graph(graph)
    assert scene.name_rows == 2
    for name in LONG_NAMES:
        lines = scene.item_for(name).name_lines()
        assert "".join(lines) == name and len(lines) == 2, lines
        assert lines[0].endswith("_")  # broken after a word
    assert scene.item_for("start").name_lines() == ["start"]
    widths = {place.width for place in scene.dag_layout.nodes.values()}
    assert len(widths) == 1 and widths.pop() < MAX_BOX_WIDTH  # narrower than one-row names need
    one_row = DagScene()
    one_row.set_graph(graph_from_structure(["start", "train", "end"]))
    assert one_row.name_rows == 1
    # The second name row is real room: taller boxes than a one-row graph's.
    assert scene.dag_layout.nodes["start"].height > one_row.dag_layout.nodes["start"].height


def test_wrap_name_breaks_at_words_then_capitals_then_anywhere(qtbot) -> None:
    metrics = DagScene().fonts.name_metrics
    def room(text: str) -> float:
        return metrics.horizontalAdvance(text) + 1
    assert wrap_name("short", metrics, room("short")) == ["short"]
    assert wrap_name("load_the_data", metrics, room("load_the_d")) == ["load_the_", "data"]
    assert wrap_name("LoadTheData", metrics, room("LoadTheD")) == ["LoadThe", "Data"]
    assert wrap_name("abcdefghij", metrics, room("abcde")) == ["abcde", "fghij"]
    cut = wrap_name("abcdefghijklmnop", metrics, room("abcde"))
    assert cut[0] == "abcde" and cut[1].endswith("\u2026") and len(cut) == 2
    assert wrap_name("abcdefghij", metrics, room("abcde"), rows=1)[0].endswith("\u2026")


def test_a_switch_name_stays_whole_when_boxes_narrow_for_wrapped_names(qtbot) -> None:
    """Boxes narrow to fit wrapped names; a diamond's name has one row, so they never
    narrow below what it needs."""
    scene = DagScene()
    scene.set_graph({"graph": {
        "start": {"type": "linear", "next": ["choose_the_model_kind"]},
        "choose_the_model_kind": {"type": "split-switch", "condition": "kind",
                                  "next": ["small", "large"]},
        "small": {"type": "linear", "next": ["join_everything_into_the_final_quarterly_report"]},
        "large": {"type": "linear", "next": ["join_everything_into_the_final_quarterly_report"]},
        "join_everything_into_the_final_quarterly_report": {"type": "linear", "next": ["end"]},
        "end": {"type": "end", "next": []}}})
    assert scene.name_rows == 2
    width = scene.dag_layout.nodes["choose_the_model_kind"].width
    assert scene._node_width("choose_the_model_kind",
                             {"type": "split-switch", "condition": "kind"}) <= width
