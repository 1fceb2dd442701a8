"""The DAG in the real window: readable text at laptop sizes, panes that stay put, a legend, drops.

Text sizes are measured as rendered: font pixel size x view scale x device
pixel ratio, compared with the application's own fonts (never a family
name, so the installed fonts do not matter). Waits are `waitSignal` /
`waitUntil` and event processing, never sleeps or wall-clock thresholds.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, FLOWS, WAIT_MS, close_window
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QFontInfo,
    QImage,
    QPalette,
)
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from test_dag_layout import sixty_steps

from flowdeck.observe.fold import StepSummary
from flowdeck_desktop.app import build
from flowdeck_desktop.views.dag_view import DagView
from flowdeck_desktop.views.theme import STATUSES, status_color

# --------------------------------------------------------------------------- helpers


def flow_source(graph: dict[str, Any], name: str = "SixtyStepFlow") -> str:
    """A runnable flow file with exactly `graph`'s steps and edges (discovery reads it back)."""
    lines = ["from flowdeck import FlowSpec, step", "", "", f"class {name}(FlowSpec):"]
    for step, node in graph["graph"].items():
        args = "self, inputs" if node["type"] == "join" else "self"
        body = []
        if node["type"] == "split-foreach":
            body = ["self.items = [1, 2]", f'self.next(self.{node["next"][0]}, foreach="items")']
        elif node["next"]:
            body = ["self.next(" + ", ".join(f"self.{n}" for n in node["next"]) + ")"]
        else:
            body = ["pass"]
        lines += ["    @step", f"    def {step}({args}):", *(f"        {b}" for b in body), ""]
    lines += ["", 'if __name__ == "__main__":', f"    {name}().run()", ""]
    return "\n".join(lines)


def settle() -> None:
    """Deliver pending events (layout requests included) without waiting on a clock."""
    for _ in range(3):
        QApplication.sendPostedEvents()
        QApplication.processEvents()


def small_reference_font(base: QFont) -> QFont:
    """The test's own idea of the small UI font: 2 pt below `base`, not under 8 pt."""
    size = QFontInfo(base).pointSizeF()
    font = QFont(base)
    font.setPointSizeF(min(size, max(8.0, size - 2.0)))
    return font


def rendered_px(view: DagView, font: QFont) -> float:
    """Device pixels a font drawn on the canvas ends up at in the current view."""
    return QFontInfo(font).pixelSize() * view.transform().m11() * view.devicePixelRatioF()


def open_window(qtbot, settings: QSettings, folder: Path, size: tuple[int, int]):
    """The real window on `folder`, resized like a user's screen, shown, its flow's DAG built."""
    controller, window = build(settings, [str(folder)])
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: not controller.scanning() and bool(window.scene.steps()), timeout=WAIT_MS)
    settle()
    return controller, window


def close_when_idle(qtbot, controller, window) -> None:
    """Close only after off-thread listing is done: a scan in flight must not outlive the window."""
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    close_window(controller, window)


@pytest.fixture
def features_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "features"
    folder.mkdir()
    shutil.copy(EXAMPLES / "features.py", folder)
    return folder


@pytest.fixture
def sixty_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "sixty"
    folder.mkdir()
    (folder / "sixty.py").write_text(flow_source(sixty_steps()))
    return folder


# --------------------------------------------------------------------------- legibility


@pytest.mark.parametrize("which, size", [("features", (1280, 700)), ("sixty", (1280, 700)),
                                         ("sixty", (1920, 1080))])
def test_step_text_is_never_below_the_ui_fonts_at_the_default_view(
        qtbot, settings: QSettings, request: pytest.FixtureRequest, which: str,
        size: tuple[int, int]) -> None:
    folder = request.getfixturevalue(f"{which}_folder")
    controller, window = open_window(qtbot, settings, folder, size)
    try:
        scene, view = window.scene, window.dag
        steps = 10 if which == "features" else len(sixty_steps()["graph"])
        qtbot.waitUntil(lambda: len(scene.steps()) == steps)  # discovered and shown
        settle()
        app_font = QApplication.font()
        dpr = view.devicePixelRatioF()
        assert rendered_px(view, scene.fonts.name) >= QFontInfo(app_font).pixelSize() * dpr
        assert rendered_px(view, scene.fonts.detail) >= \
            QFontInfo(small_reference_font(app_font)).pixelSize() * dpr
        if steps >= 60:  # navigable rather than shrunk: it scrolls, from the top
            assert view.verticalScrollBar().maximum() > 0
            visible = view.mapToScene(view.viewport().rect()).boundingRect()
            assert visible.contains(view.item_for("start").sceneBoundingRect())
    finally:
        close_when_idle(qtbot, controller, window)


# --------------------------------------------------------------------------- panes


def test_a_run_keeps_the_pane_sizes_and_the_zoom_the_user_set(qtbot, settings: QSettings,
                                                            tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(FLOWS / "branches.py", folder)  # many tasks: a tall timeline
    controller, window = open_window(qtbot, settings, folder, (1280, 700))
    try:
        qtbot.waitUntil(lambda: window.selected_key is not None and bool(window.scene.steps()))
        window.centre_split.setSizes([430, 180])
        window.dag.zoom_by(0.8)
        settle()
        centre, main, zoom = window.centre_split.sizes(), window.main_split.sizes(), window.dag.zoom()
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
            window.run_selected()
        assert ended.args[1] == "succeeded"
        qtbot.waitUntil(lambda: window.timeline.minimumSizeHint().height() > 180)
        window.bottom.setCurrentIndex(1)  # the timeline tab
        settle()
        assert window.centre_split.sizes() == centre
        assert window.main_split.sizes() == main
        assert window.dag.zoom() == pytest.approx(zoom)
    finally:
        close_when_idle(qtbot, controller, window)


def test_the_dag_pane_takes_the_height_its_graph_wants_until_the_user_sizes_it(
        qtbot, settings: QSettings, tmp_path: Path) -> None:
    """A 2-step graph took 350 of 720 px and the tabs under it about 220 (a DataFrame's
    3 rows, a card 130 px tall): the DAG's pane is as tall as its graph, at most 62 % of
    the centre, until the user drags the handle; their sizes then stay, at later starts too."""
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "two.py").write_text(flow_source(
        {"graph": {"start": {"type": "start", "next": ["end"]},
                   "end": {"type": "end", "next": []}}}, "TwoStepFlow"))
    (folder / "long.py").write_text(flow_source(
        {"graph": {**{f"s{i}": {"type": "linear", "next": [f"s{i + 1}"]} for i in range(12)},
                   "s12": {"type": "linear", "next": ["end"]},
                   "end": {"type": "end", "next": []}}}, "LongChainFlow")
        .replace("def s0(self)", "def start(self)"))
    controller, window = open_window(qtbot, settings, folder, (1280, 720))
    try:
        centre = window.centre_split
        window.select_flow(next(e.key for e in controller.model.entries()
                                if e.name == "TwoStepFlow"))
        qtbot.waitUntil(lambda: len(window.scene.steps()) == 2, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: centre.sizes()[0] < sum(centre.sizes()) * 0.5, timeout=WAIT_MS)
        settle()
        visible = window.dag.mapToScene(window.dag.viewport().rect()).boundingRect()
        for step in window.scene.steps():  # the whole graph still shows
            item = window.scene.item_for(step)
            assert item is not None and visible.contains(item.sceneBoundingRect()), step
        window.select_flow(next(e.key for e in controller.model.entries()
                                if e.name == "LongChainFlow"))
        qtbot.waitUntil(lambda: len(window.scene.steps()) == 14, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: centre.sizes()[0] == int(sum(centre.sizes()) * 0.62),
                        timeout=WAIT_MS)

        handle = centre.handle(1)  # the user drags the handle 60 px up
        start = QPoint(handle.width() // 2, handle.height() // 2)
        QTest.mousePress(handle, Qt.MouseButton.LeftButton, pos=start)
        QTest.mouseMove(handle, start - QPoint(0, 60))
        QTest.mouseRelease(handle, Qt.MouseButton.LeftButton, pos=start - QPoint(0, 60))
        settle()
        dragged = centre.sizes()
        assert dragged[0] < int(sum(dragged) * 0.62)
        window.select_flow(next(e.key for e in controller.model.entries()
                                if e.name == "TwoStepFlow"))
        qtbot.waitUntil(lambda: len(window.scene.steps()) == 2, timeout=WAIT_MS)
        settle()
        assert centre.sizes() == dragged  # theirs now
        window.save_layout()
    finally:
        close_when_idle(qtbot, controller, window)
    controller, window = open_window(qtbot, settings, folder, (1280, 720))
    try:
        settle()
        assert window.centre_split.sizes() == dragged  # and at the next start
    finally:
        close_when_idle(qtbot, controller, window)


# --------------------------------------------------------------------------- drops


def drag_events(mime: QMimeData, pos: QPoint) -> list[QDragEnterEvent | QDragMoveEvent | QDropEvent]:
    """What a real drag sends to the widget under the cursor: enter, move, then drop."""
    args = (Qt.DropAction.CopyAction | Qt.DropAction.MoveAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier)
    return [QDragEnterEvent(pos, *args), QDragMoveEvent(pos, *args), QDropEvent(QPointF(pos), *args)]


def test_a_flow_file_dropped_on_the_dag_canvas_is_accepted_and_added(
        qtbot, settings: QSettings, features_folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "dropped"
    other.mkdir()
    shutil.copy(FLOWS / "branches.py", other)
    controller, window = open_window(qtbot, settings, features_folder, (1280, 700))
    try:
        window.act_run_on_drop.setChecked(False)  # add and select only: no run to wait for
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(other / "branches.py"))])
        canvas = window.dag.viewport()
        for event in drag_events(mime, canvas.rect().center()):
            QApplication.sendEvent(canvas, event)
            assert event.isAccepted(), event.type()
            assert event.dropAction() != Qt.DropAction.IgnoreAction, event.type()
        assert str(other / "branches.py") in controller.roots
        qtbot.waitUntil(lambda: any(e.name == "BranchFlow" for e in controller.model.entries()))
    finally:
        close_when_idle(qtbot, controller, window)


# --------------------------------------------------------------------------- legend and tooltips


def light_palette() -> QPalette:
    palette = QPalette()
    for role, color in ((QPalette.ColorRole.Window, "#efefef"), (QPalette.ColorRole.WindowText, "#202020"),
                        (QPalette.ColorRole.Base, "#ffffff"), (QPalette.ColorRole.Text, "#202020"),
                        (QPalette.ColorRole.Highlight, "#3070e0")):
        palette.setColor(role, QColor(color))
    return palette


def icon_colours(image: QImage, legend: Any, status: str) -> set[int]:
    """Every RGB value painted in a legend entry's icon square."""
    rect = legend.entry_rects()[status]
    icon = legend._icon_size()
    top = rect.top() + (rect.height() - icon) / 2
    ratio = image.devicePixelRatio()
    return {image.pixelColor(int(x * ratio), int(y * ratio)).rgb()
            for x in range(int(rect.left()), int(rect.left() + icon))
            for y in range(int(top), int(top + icon))}


def test_legend_names_every_status_in_the_theme_colours(qtbot, settings: QSettings,
                                                      features_folder: Path) -> None:
    controller, window = open_window(qtbot, settings, features_folder, (1280, 700))
    try:
        view = window.dag
        legend = view.legend
        assert legend.isVisible()
        assert legend.mapTo(view, QPoint(0, 0)).y() < view.viewport().geometry().top()  # above the canvas
        view.setPalette(light_palette())
        assert list(legend.colors()) == list(STATUSES)
        for status, color in legend.colors().items():
            assert color == status_color(status), status  # theme.py's colours, not a copy
        image = legend.grab().toImage()
        for status in ("succeeded", "failed", "cancelled", "reused"):  # filled discs
            assert status_color(status).rgb() in icon_colours(image, legend, status), status
        dark = QPalette(light_palette())
        for role, color in ((QPalette.ColorRole.Window, "#202124"), (QPalette.ColorRole.WindowText, "#e8eaed"),
                            (QPalette.ColorRole.Base, "#181818")):
            dark.setColor(role, QColor(color))
        view.setPalette(dark)
        assert legend.colors() == {s: view.dag_scene().theme.status_color(s) for s in STATUSES}
        assert legend.colors()["succeeded"] != status_color("succeeded")  # it followed the palette
    finally:
        close_when_idle(qtbot, controller, window)


def test_step_tooltip_tells_status_and_counts(qtbot, settings: QSettings,
                                              features_folder: Path) -> None:
    controller, window = open_window(qtbot, settings, features_folder, (1280, 700))
    try:
        scene = window.scene
        assert "status: pending" in scene.item_for("per_day").toolTip()
        scene.set_step_state("per_day", StepSummary("running", 3, 12, 2.0))
        tip = scene.item_for("per_day").toolTip()
        assert "status: running" in tip and "3/12" in tip
    finally:
        close_when_idle(qtbot, controller, window)
