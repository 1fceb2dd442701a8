"""The Artifacts pane's viewers, on real values from a real run (tests/flows/viewer_values.py).

The pane runs the real helper process (the flow's interpreter: here ours) for the
list, each preview and each export; nothing is unpickled in this process. Every wait
is for a condition, with a generous limit. With FLOWDECK_SCREENSHOTS=DIR set, each
viewer is also saved as DIR/artifact-<kind>.png (the README's pictures).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import FLOWS, child_env, run_flow
from PySide6.QtCore import QProcess, Qt
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import QApplication

from flowdeck.client import Run
from flowdeck.engines.load_limits import PATIENCE_ENV
from flowdeck.store.layout import RunLayout
from flowdeck_desktop.views.artifacts import ArtifactsPane
from flowdeck_desktop.views.artifacts.viewers import (
    ImageViewer,
    PlotViewer,
    ReprViewer,
    TableViewer,
    TextViewer,
    TreeViewer,
)

FLOW = "ViewerValuesFlow"
WAIT = 60000


def _finished_run(folder: Path, flow_file: str = "viewer_values.py",
                  flow: str = FLOW) -> dict:
    """A finished run of a test flow: where it is, and its start task's listing."""
    file = folder / flow_file
    shutil.copy(FLOWS / flow_file, file)
    done = run_flow(file, "run", env=child_env(), timeout=180)
    assert done.returncode == 0, done.stderr
    layout = RunLayout.for_file(file, flow)
    [run_id] = layout.run_ids()
    [task] = list(Run(f"{flow}/{run_id}", root=str(layout.root), _namespace_check=False)["start"])
    listed = [{"name": a.id, "type": a.type, "size": a.size} for a in task.artifacts]
    return {"root": str(layout.root), "flow": flow, "run_id": run_id, "task_id": task.id,
            "listed": listed}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The run most viewers read: every kind of value (viewer_values.py)."""
    return _finished_run(tmp_path_factory.mktemp("viewer-run"))


@pytest.fixture(scope="module")
def stuck_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run of hanging_value.py: `count`, and `stuck`, whose unpickling never returns."""
    return _finished_run(tmp_path_factory.mktemp("hanging-run"), "hanging_value.py",
                         "HangingValueFlow")


def _pane(qtbot, run: dict) -> ArtifactsPane:
    widget = ArtifactsPane()
    qtbot.addWidget(widget)
    widget.list_limit_s = max(widget.list_limit_s, WAIT / 1000)  # the test's own guard
    widget.resize(1100, 480)
    widget.show()
    with qtbot.waitSignal(widget.loaded, timeout=WAIT):
        widget.show_task(os.sys.executable, run["root"], run["flow"], run["run_id"],
                         "start", run["task_id"], True, listed=run["listed"])
    return widget


@pytest.fixture
def pane(qtbot, finished_run: dict) -> ArtifactsPane:
    """The pane showing the start task, its list answered by the helper."""
    return _pane(qtbot, finished_run)


@pytest.fixture
def stuck_pane(qtbot, stuck_run: dict, monkeypatch: pytest.MonkeyPatch) -> ArtifactsPane:
    """The pane showing the start task of the run with `stuck`, at the usual limits (the
    suite's own are longer): its list waits out `stuck`'s 2 s summary limit, and a
    preview's 8 s in the helper."""
    monkeypatch.setenv(PATIENCE_ENV, "1")
    return _pane(qtbot, stuck_run)


def show(qtbot, pane: ArtifactsPane, name: str, kind: str, shot: bool = True):
    """Select an artifact as a click would and wait for its viewer."""
    shown: list[tuple[str, str]] = []
    pane.preview_shown.connect(lambda n, k: shown.append((n, k)))
    assert pane.select(name)
    qtbot.waitUntil(lambda: (name, kind) in shown or (name, "message") in shown, timeout=WAIT)
    assert (name, kind) in shown, pane.message.text()
    assert pane.current_viewer.kind == kind
    if shot:
        snap(pane, kind)
    return pane.current_viewer


def snap(pane: ArtifactsPane, kind: str) -> None:
    folder = os.environ.get("FLOWDECK_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        QApplication.processEvents()  # the layout follows the last change first
        pane.grab().save(str(Path(folder) / f"artifact-{kind}.png"))


def test_names_types_and_sizes_show_before_any_helper_answers(qtbot,
                                                              finished_run: dict) -> None:
    widget = ArtifactsPane()
    qtbot.addWidget(widget)
    widget.show_task(os.sys.executable, finished_run["root"], FLOW, finished_run["run_id"],
                     "start", finished_run["task_id"], True, listed=finished_run["listed"])
    names = [widget.table.item(r, 0).text() for r in range(widget.table.rowCount())]
    assert {"frame", "picture", "grudge"} <= set(names)  # at once, from the listing
    assert widget._list_call is not None and not widget._list_call.done  # none answered
    assert widget.table.item(names.index("picture"), 2).text().endswith("MB")
    with qtbot.waitSignal(widget.loaded, timeout=WAIT):
        pass
    rows = {r["name"]: r for r in widget.rows}
    assert rows["count"]["preview"] == "7" and rows["picture"].get("deferred")


def test_the_list_keeps_its_width_as_artifacts_of_every_kind_are_shown(
        qtbot, finished_run: dict) -> None:
    """Only the user moves the splitter between the list and the viewer. At the width the
    Artifacts tab has in a 1280x720 window, each viewer's title (name, type, size) set
    its side's minimum width, so the list went 174, 169, 249, 227 px wide as the user
    clicked a table, an image, a tree, a plot."""
    widget = _pane(qtbot, finished_run)
    widget.resize(600, 250)
    QApplication.processEvents()
    sizes = widget.splitter.sizes()
    for name, kind in [("frame", "table"), ("picture", "image"), ("nested", "tree"),
                       ("signal", "plot"), ("essay", "text"), ("frame", "table")]:
        show(qtbot, widget, name, kind, shot=False)
        QApplication.sendPostedEvents()  # the layout requests a new title makes
        QApplication.processEvents()
        assert widget.splitter.sizes() == sizes, name
    title = widget.viewer_title
    assert title.toolTip().startswith("frame · ")  # cut to its room, whole in the tooltip
    assert title.geometry().right() < widget.plot_button.geometry().left()


def test_a_data_frame_shows_in_a_sortable_table_with_shape_and_dtypes(qtbot, pane) -> None:
    viewer = show(qtbot, pane, "frame", "table")
    assert isinstance(viewer, TableViewer) and viewer.model is not None
    assert "500 rows × 4 columns" in viewer.info.text()
    assert "showing the first 200 rows" in viewer.info.text()
    assert "score float64" in viewer.dtypes.text()
    model = viewer.model
    assert (model.rowCount(), model.columnCount()) == (200, 4)
    viewer.view.sortByColumn(1, Qt.SortOrder.DescendingOrder)
    scores = [model.value(r, 1) for r in range(model.rowCount())]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(99.999, abs=0.01)
    viewer.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # numbers sort as numbers
    assert [model.value(r, 0) for r in range(3)] == [0, 1, 2]
    assert model.headerData(1, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole) == \
        "score: float64"


def test_a_wide_array_shows_its_first_columns(qtbot, pane) -> None:
    viewer = show(qtbot, pane, "matrix", "table")
    assert isinstance(viewer, TableViewer) and viewer.model is not None
    assert viewer.model.columnCount() == 50 and "300 rows × 60 columns" in viewer.info.text()
    assert viewer.dtypes.text() == "dtype: float64"


def test_numbers_show_as_a_line_or_a_histogram(qtbot, pane) -> None:
    losses = show(qtbot, pane, "losses", "plot")
    assert isinstance(losses, PlotViewer) and losses.values[:2] == [1.0, 0.5]
    # Values read as they are (no "(x0.001)" that a narrow plot cut off), positions whole.
    assert not losses.plot.getAxis("left").autoSIPrefix
    for low, high in ((0.0, 1.0), (-0.3, 1.3), (0.0, 7.0)):
        ticks = [v for _, values in losses.plot.getAxis("bottom").tickValues(low, high, 300)
                 for v in values]
        assert ticks and all(float(v).is_integer() for v in ticks), (low, high, ticks)
    viewer = show(qtbot, pane, "signal", "plot")
    assert isinstance(viewer, PlotViewer)
    assert len(viewer.values) == 10_000 and "50,000 values" in viewer.info.text()
    assert "one value in 5" in viewer.info.text()
    [line] = viewer.plot.getPlotItem().listDataItems()
    assert len(line.xData) == 10_000 and line.xData[1] == 5  # x is the index in the whole array
    viewer.set_mode(PlotViewer.HISTOGRAM)
    [bars] = viewer.plot.getPlotItem().listDataItems()
    assert sum(bars.yData) == 10_000
    snap(pane, "plot-histogram")
    viewer.set_mode(PlotViewer.LINE)


def test_gaps_in_numbers_show_as_points_and_are_counted(qtbot, pane) -> None:
    """A value with NaN on both sides has no line segment: it shows as a point; NaN and
    inf are left out of the statistics and said, not silently dropped."""
    gappy = show(qtbot, pane, "gappy", "plot")
    assert isinstance(gappy, PlotViewer)
    assert "not plotted: 4 nan, 1 +inf" in gappy.info.text()
    line, points = gappy.plot.getPlotItem().listDataItems()
    assert list(points.xData) == [0, 2, 4] and list(points.yData) == [0.9, 0.7, 0.5]
    diverged = show(qtbot, pane, "diverged", "plot")
    assert "max 0.5" in diverged.info.text() and "2 nan, 1 +inf" in diverged.info.text()


def test_images_show_as_pictures(qtbot, pane) -> None:
    pixels = show(qtbot, pane, "pixels", "image")
    assert isinstance(pixels, ImageViewer)
    assert pixels.picture.source.toImage().pixelColor(5, 5).name() == "#ff0000"
    png = show(qtbot, pane, "png", "image")
    assert isinstance(png, ImageViewer) and png.picture.source.width() == 48
    viewer = show(qtbot, pane, "picture", "image")
    assert isinstance(viewer, ImageViewer)
    assert viewer.picture.source.width() == 1024 and viewer.picture.source.height() == 614
    assert "1,500 × 900 px" in viewer.info.text() and "downscaled" in viewer.info.text()
    shown = viewer.picture.pixmap()
    assert not shown.isNull() and shown.width() <= viewer.picture.width()
    assert _value_cell(pane, "picture") == "picture 1500 × 900 px RGB"  # the row says it now


def test_a_nested_dict_shows_as_a_collapsible_tree(qtbot, pane) -> None:
    viewer = show(qtbot, pane, "nested", "tree")
    assert isinstance(viewer, TreeViewer)
    tree = viewer.tree
    top = {tree.topLevelItem(i).text(0): tree.topLevelItem(i)
           for i in range(tree.topLevelItemCount())}
    assert set(top) == {"model", "metrics", "history", "tags"}
    history = top["history"]
    assert history.childCount() == 101 and history.child(100).text(2) == "150 more not shown"
    model = top["model"]
    values = {model.child(i).text(0): model.child(i).text(2) for i in range(model.childCount())}
    assert values["alpha"] == "0.5" and values["layers"] == "3 items"
    tree.collapseItem(model)
    assert not model.isExpanded()


def test_a_long_string_shows_as_text_with_search(qtbot, pane) -> None:
    viewer = show(qtbot, pane, "essay", "text")
    assert isinstance(viewer, TextViewer)
    assert "showing the first 200,000" in viewer.info.text()
    viewer.search.setText("01000 The quick")
    assert viewer.found == 1 and viewer.text.textCursor().selectedText() == "01000 The quick"
    viewer.search.setText("lazy dog. The quick")
    snap(pane, "text")
    viewer.search.setText("lazy dog")
    assert viewer.found == 2000  # highlighted up to the cap
    assert viewer.matches.text() == "2000+ found"
    viewer.search.setText("no such words")
    assert viewer.found == 0 and viewer.matches.text() == "not found"


def test_a_long_unbroken_sequence_wraps_anywhere_and_prose_at_words(qtbot, pane) -> None:
    """Qt's word wrapping of a line with no break (a 200,000-letter DNA sequence) froze the
    window for seconds: such text wraps anywhere, prose still at its words."""
    essay = show(qtbot, pane, "essay", "text")
    assert essay.text.wordWrapMode() == QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere
    viewer = TextViewer()
    qtbot.addWidget(viewer)
    sequence = "ACGT" * 50_000
    viewer.show_preview({"text": sequence, "length": len(sequence)})
    assert viewer.text.wordWrapMode() == QTextOption.WrapMode.WrapAnywhere
    assert viewer.text.toPlainText() == sequence  # shown whole, not cut into lines
    viewer.show_preview({"text": "short words " * 100, "length": 1200})
    assert viewer.text.wordWrapMode() == QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere


def test_anything_else_shows_its_repr(qtbot, pane) -> None:
    viewer = show(qtbot, pane, "count", "repr")
    assert isinstance(viewer, ReprViewer) and viewer.text.toPlainText() == "7"


def _value_cell(pane: ArtifactsPane, name: str) -> str:
    row = next(i for i, r in enumerate(pane.rows) if r["name"] == name)
    return pane.table.item(row, 3).text()


def test_values_that_cannot_load_say_why_in_their_rows(qtbot, pane) -> None:
    assert "needs the module 'flowdeck_vanished_module'" in _value_cell(pane, "vanished")
    assert "pip install flowdeck_vanished_module" in _value_cell(pane, "vanished")
    assert "Grudge refuses to be unpickled" in _value_cell(pane, "grudge")
    assert "class Ghost is no longer in module json" in _value_cell(pane, "ghost")
    show(qtbot, pane, "grudge", "message")
    assert pane.message.failed and "grudge cannot be shown" in pane.message.text()
    assert not pane.export_button.isEnabled()


def test_a_preview_that_hangs_is_killed_past_the_limit_and_says_so(qtbot, stuck_pane) -> None:
    pane = stuck_pane
    assert pane.preview_limit_s == 10  # the usual limit...
    pane.preview_limit_s = 3  # ...shortened: the helper waits 8 s, the window's kill is first
    show(qtbot, pane, "stuck", "message", shot=False)
    assert "stopped after 3 s" in _value_cell(pane, "stuck")
    assert "stopped after 3 s" in pane.message.text()
    assert all(p.state() == QProcess.ProcessState.NotRunning
               for p in pane.findChildren(QProcess))


def test_a_new_selection_cancels_the_preview_under_way(qtbot, stuck_pane) -> None:
    pane = stuck_pane
    pane.preview_limit_s = 600
    pane.select("stuck")
    qtbot.waitUntil(lambda: pane._preview_call is not None, timeout=WAIT)
    stuck_call = pane._preview_call
    assert stuck_call is not None
    qtbot.waitUntil(lambda: stuck_call.proc.state() == QProcess.ProcessState.Running,
                    timeout=WAIT)
    stuck_proc = stuck_call.proc
    viewer = show(qtbot, pane, "count", "repr", shot=False)
    assert viewer.text.toPlainText() == "7"
    assert stuck_call.done  # killed and never answers
    qtbot.waitUntil(lambda: not _alive(stuck_proc), timeout=WAIT)
    assert "stopped after" not in _value_cell(pane, "stuck")


def _alive(proc: QProcess) -> bool:
    import shiboken6
    return shiboken6.isValid(proc) and proc.state() != QProcess.ProcessState.NotRunning


def test_export_writes_the_whole_value_through_the_helper(qtbot, pane, tmp_path: Path) -> None:
    show(qtbot, pane, "frame", "table")
    assert pane.export_button.isEnabled()
    target = tmp_path / "frame.csv"
    with qtbot.waitSignal(pane.exported, timeout=WAIT) as signal:
        pane.export_to("frame", str(target))
    assert signal.args == ["frame", str(target)]
    assert pd.read_csv(target, index_col=0).shape == (500, 4)  # all rows, not the preview's
    assert "Wrote frame" in pane.status.text()
    with qtbot.waitSignal(pane.exported, timeout=WAIT) as signal:
        pane.export_to("frame", str(tmp_path / "frame.png"))
    assert signal.args == ["frame", ""] and "can be exported as .csv, .pkl" in pane.status.text()


def test_a_foreign_run_starts_no_helper_for_a_selection(qtbot, finished_run: dict) -> None:
    widget = ArtifactsPane()
    qtbot.addWidget(widget)
    widget.show_task(os.sys.executable, finished_run["root"], FLOW, finished_run["run_id"],
                     "start", finished_run["task_id"], True, made_by="mallory",
                     listed=finished_run["listed"])
    assert widget.select("frame")
    assert widget.findChildren(QProcess) == []
    assert "Load values" in widget.message.text()
    shown: list[tuple[str, str]] = []
    widget.preview_shown.connect(lambda n, k: shown.append((n, k)))
    with qtbot.waitSignal(widget.loaded, timeout=WAIT):
        widget.load_button.click()
    qtbot.waitUntil(lambda: ("frame", "table") in shown, timeout=WAIT)


def test_a_count_of_one_is_one_item() -> None:
    from flowdeck_desktop.views.artifacts.viewers import items_text
    assert (items_text(1), items_text(0), items_text(2000)) == ("1 item", "0 items",
                                                                "2,000 items")


def test_a_metaflow_engine_run_offers_no_plot_across_runs_and_says_why(qtbot) -> None:
    """Plots across runs read Flowdeck's store: for a run of Metaflow's engine the button
    was enabled and opened empty axes, every run "not plotted" (review)."""
    import sys
    pane = ArtifactsPane()
    qtbot.addWidget(pane)
    listed = [{"name": "acc", "type": "float", "size": 40}]
    for plots in (True, False):  # made_by: no helper starts, the listed rows stand
        pane.show_task(sys.executable, "/nonexistent", "TrainFlow", "1", "train", "2", False,
                       made_by="someone else", listed=listed, plots=plots)
        assert pane.plottable("acc") is plots
        menu = pane.row_menu_for("acc")
        plot = next(a for a in menu.actions() if a.text() == "Plot Across Runs…")
        assert plot.isEnabled() is plots
        assert ("Metaflow's datastore" in pane.plot_button.toolTip()) is not plots
        menu.deleteLater()
