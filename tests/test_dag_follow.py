"""The DAG goes where the run is: a long graph scrolls, so the view follows the running steps
(until the user pans or zooms) and brings a failed step into view at a readable zoom.

Geometry is compared with the viewport's own visible rectangle, never with pixel sizes of
fonts; waits are `waitSignal` / `waitUntil`, and the held step waits for a file the test
creates, never for a clock.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import FLOWS, WAIT_MS, close_window, flow_key
from PySide6.QtCore import QPoint, QPointF, QRectF, QSettings, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from flowdeck.analysis.flowfile import analyze_file
from flowdeck.observe.fold import StepSummary
from flowdeck_desktop.app import build
from flowdeck_desktop.views.dag_view import DagView

CHAIN = ["start", *(f"step_{i:02d}" for i in range(1, 25)), "end"]


def chain_graph() -> dict[str, Any]:
    return analyze_file(FLOWS / "long_chain.py").flows[0].graph.as_dict()


def in_view(view: DagView, step: str) -> bool:
    """Whether `step`'s whole box is inside the part of the scene the viewport shows."""
    item = view.item_for(step)
    assert item is not None
    return visible_rect(view).contains(item.sceneBoundingRect())


def visible_rect(view: DagView) -> QRectF:
    return view.mapToScene(view.viewport().rect()).boundingRect()


def settle() -> None:
    for _ in range(3):
        QApplication.sendPostedEvents()
        QApplication.processEvents()


@pytest.fixture
def chain_view(qtbot) -> DagView:
    """The 26-step chain in a view that shows a few of its steps at a readable size."""
    view = DagView()
    qtbot.addWidget(view)
    view.resize(500, 360)
    view.dag_scene().set_graph(chain_graph())
    view.show()
    qtbot.waitExposed(view)
    settle()
    assert in_view(view, "start") and not in_view(view, "step_20")
    return view


def advance(view: DagView, upto: int, status: str) -> None:
    """Steps before `CHAIN[upto]` succeeded, that one has `status` (as a run's states arrive)."""
    scene = view.dag_scene()
    for step in CHAIN[:upto]:
        scene.set_step_state(step, StepSummary(status="succeeded", done=1, total=1))
    scene.set_step_state(CHAIN[upto], StepSummary(status=status, total=1))


def scroll_by_wheel(view: DagView) -> None:
    """The user turns the wheel over the canvas (a plain wheel scrolls)."""
    pos = QPointF(view.viewport().rect().center())
    wheel = QWheelEvent(pos, QPointF(view.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0),
                        QPoint(0, 120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), wheel)


# --------------------------------------------------------------------------- the view


def test_a_failed_step_off_screen_is_centred_at_a_readable_zoom(chain_view: DagView) -> None:
    view = chain_view
    view.fit_all()  # the user's overview: names too small to read
    assert view.zoom() < view.legible_zoom()
    view.follow_run()  # a run starts
    advance(view, 20, "failed")
    assert in_view(view, "step_20")
    assert view.zoom() >= view.legible_zoom()
    centre = view.item_for("step_20").sceneBoundingRect().center()
    assert visible_rect(view).center().y() == pytest.approx(centre.y(), abs=1.0)
    view.verticalScrollBar().triggerAction(view.verticalScrollBar().SliderAction.SliderToMinimum)
    assert not in_view(view, "step_20")
    view.fit()  # Fit: the default view is where the run is
    assert in_view(view, "step_20") and view.zoom() >= view.legible_zoom()
    view.resize(520, 300)  # the banner above appears: the failed step stays in view
    settle()
    assert in_view(view, "step_20")


def test_the_view_follows_running_steps_until_the_user_scrolls(chain_view: DagView) -> None:
    view = chain_view
    view.follow_run()
    advance(view, 10, "running")
    assert in_view(view, "step_10") and view.is_following()
    scroll_by_wheel(view)  # the user looks elsewhere: their view stays
    place = visible_rect(view)
    assert not view.is_following()
    advance(view, 16, "running")
    assert visible_rect(view) == place and not in_view(view, "step_16")
    view.follow_run()  # the next run is followed again
    advance(view, 22, "running")
    assert in_view(view, "step_22")


def test_a_click_on_a_step_does_not_stop_the_following(chain_view: DagView, qtbot) -> None:
    from PySide6.QtTest import QTest
    view = chain_view
    view.follow_run()
    advance(view, 3, "running")
    item = view.item_for("step_02")
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view.mapFromScene(item.sceneBoundingRect().center()))
    assert view.is_following()
    advance(view, 18, "running")
    assert in_view(view, "step_18")


# --------------------------------------------------------------------------- the window


@pytest.fixture
def chain_window(qtbot, settings: QSettings, tmp_path: Path):
    """The real window at a laptop size on a folder with the long chain, its flow selected."""
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(FLOWS / "long_chain.py", folder)
    controller, window = build(settings, [str(folder)])
    window.resize(1280, 720)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    window.select_flow(flow_key(controller, "LongChainFlow"))
    settle()
    assert not in_view(window.dag, "step_20")  # the graph is taller than its pane
    try:
        yield controller, window
    finally:
        close_window(controller, window)


def set_param(window, name: str, value: str) -> None:
    editor = window.params._editors[name]
    editor.setText(value)
    editor.textEdited.emit(value)


def test_a_run_that_fails_late_shows_its_failed_step(qtbot, chain_window) -> None:
    controller, window = chain_window
    set_param(window, "fail_at", "20")
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
        window.run_selected()
    assert ended.args[1] == "failed"
    settle()
    assert window.scene.step_state("step_20").status == "failed"
    assert in_view(window.dag, "step_20")
    assert window.dag.zoom() >= window.dag.legible_zoom()
    window.act_fit.trigger()
    assert in_view(window.dag, "step_20")


def test_a_running_step_is_followed_and_the_header_counts_steps(qtbot, chain_window,
                                                                tmp_path: Path) -> None:
    controller, window = chain_window
    gate = tmp_path / "gate"
    set_param(window, "hold_at", "14")
    set_param(window, "gate", str(gate))
    window.run_selected()
    qtbot.waitUntil(lambda: window.scene.step_state("step_14").status == "running",
                    timeout=WAIT_MS)
    settle()
    assert in_view(window.dag, "step_14")
    assert "14/26 steps done" in window.flow_title.text()  # start and step_01..step_13
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
        gate.write_text("go")
    assert ended.args[1] == "succeeded"
    assert "steps done" not in window.flow_title.text()
