"""Plots across runs (issue 13): the values helper (`flowdeck.engines.inspect_values`) on
10 real runs of a metric and a foreach of 20, and the window's plot: one point per run
(per task for a foreach), hover naming the run id and parameters, a helper that hangs
killed, and History's "Plot Artifact Across Runs…" end to end."""

from __future__ import annotations

import decimal
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CORE, FLOWS, child_env, close_window, flow_key, run_flow
from PySide6.QtCore import QPoint, QSettings, Qt, QTimer
from PySide6.QtGui import QImage, QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu

from flowdeck.engines import inspect_values as iv
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout
from flowdeck_desktop.app import build
from flowdeck_desktop.views.runs_plot import (
    X_FOREACH_INPUT,
    X_RUN_NUMBER,
    X_RUN_START,
    ArtifactChooser,
    PlotRequest,
    RunsPlot,
    RunsPlotWindow,
    artifact_choices,
)

WAIT_MS = 60000
FLOW = "MetricRunsFlow"
RATES = [round(0.1 * k, 1) for k in range(1, 11)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """10 real runs of tests/flows/metric_runs.py: rate 0.1 .. 1.0, seed 0, 1, 2, 0, ..."""
    folder = tmp_path_factory.mktemp("plots") / "flows"
    folder.mkdir()
    flow = folder / "metric_runs.py"
    shutil.copy(FLOWS / "metric_runs.py", flow)
    for k, rate in enumerate(RATES):
        result = run_flow(flow, "run", "--rate", str(rate), "--seed", str(k % 3),
                          "--run-id", f"run-{k:02d}", env=child_env())
        assert result.returncode == 0, result.stderr
    layout = RunLayout(folder / ".flowdeck", FLOW)
    runs = [e for e in RunIndex(layout).runs()]
    assert len(runs) == 10
    return {"folder": folder, "layout": layout, "runs": runs}


def expected_loss(rate: float, seed: int) -> float:
    return round(1.0 / (1.0 + rate) + 0.01 * seed, 6)


def helper(store: dict, step: str, name: str, *run_ids: str) -> dict:
    """Run the values helper as the window does: a process of its own."""
    layout = store["layout"]
    ids = list(run_ids) or [e.run_id for e in store["runs"]]
    result = subprocess.run(iv.argv(sys.executable, str(layout.root), FLOW, step, name, ids),
                            env=child_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- the helper --------------------------------------------------------------------------

def test_helper_gives_each_runs_value(store) -> None:
    answer = helper(store, "end", "loss")
    assert [r["error"] for r in answer["runs"]] == [None] * 10
    got = {r["run_id"]: r["points"][0]["value"] for r in answer["runs"]}
    assert got == {f"run-{k:02d}": expected_loss(rate, k % 3) for k, rate in enumerate(RATES)}
    assert all(r["points"][0]["index"] is None for r in answer["runs"])
    assert answer["truncated"] is False


def test_helper_loads_each_distinct_hash_once(store) -> None:
    answer = helper(store, "end", "seed")  # 10 runs, 3 distinct seeds
    assert sorted(r["points"][0]["value"] for r in answer["runs"]) == \
        sorted(float(k % 3) for k in range(10))
    assert answer["blobs_loaded"] == 3
    assert helper(store, "end", "label")["blobs_loaded"] == 1  # the same in every run


def test_helper_gives_one_point_per_foreach_task_with_its_item(store) -> None:
    answer = helper(store, "fit", "score", "run-02")
    points = answer["runs"][0]["points"]
    assert len(points) == 20
    assert [p["index"] for p in points] == list(range(20))
    assert [p["input"] for p in points] == [round(0.05 * i, 2) for i in range(20)]
    assert [p["value"] for p in points] == \
        [round(1.0 - (round(0.05 * i, 2) - 0.3) ** 2, 6) for i in range(20)]


def test_helper_says_what_is_not_a_number_and_what_is_missing(store) -> None:
    answer = helper(store, "end", "summary", "run-00", "no-such-run", "bad id")
    first, missing, invalid = answer["runs"]
    assert first["points"][0]["value"] is None
    assert first["points"][0]["error"] == "a str, not a number"
    assert "No run MetricRunsFlow/no-such-run" in missing["error"]
    assert "not valid" in invalid["error"]
    assert "has an artifact nope" in helper(store, "end", "nope", "run-00")["runs"][0]["error"]
    assert "has no step 'nostep'" in helper(store, "nostep", "x", "run-00")["runs"][0]["error"]


def test_helper_output_is_bounded(store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iv, "MAX_POINTS", 25)
    answer = iv.inspect_values(str(store["layout"].root), FLOW, "fit", "score",
                               [e.run_id for e in store["runs"]])
    assert answer["truncated"] is True
    assert sum(len(r["points"]) for r in answer["runs"]) == 25


def test_as_number() -> None:
    assert iv.as_number(np.float32(0.5)) == 0.5
    assert iv.as_number(np.array(2.5)) == 2.5 and iv.as_number(np.array([3])) == 3.0
    assert iv.as_number(decimal.Decimal("1.25")) == 1.25 and iv.as_number(7) == 7.0
    assert iv.as_number(True) == "a bool, not a number"
    assert iv.as_number("1.0") == "a str, not a number"
    assert iv.as_number(np.zeros(3)) == "a numpy.ndarray, not a number"
    assert iv.as_number(math.nan) == "not a finite number (nan)"
    assert iv.as_number(10**400) == "too large for a float"
    assert iv.as_number(decimal.Decimal("1e400")) == "not a finite number (inf)"


def test_helper_usage() -> None:
    result = subprocess.run([sys.executable, "-m", "flowdeck.engines.inspect_values", "x"],
                            env=child_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("usage:")


# -- the plot ----------------------------------------------------------------------------

def request(store: dict, step: str, name: str, runs=None) -> PlotRequest:
    return PlotRequest.of(sys.executable, True, store["layout"], step, name,
                          [_Row(e) for e in (runs or store["runs"])])


class _Row:
    """A History row as the plot reads it (run id, start, parameters)."""

    def __init__(self, entry):
        self.run_id, self.start = entry.run_id, entry.start
        self.params = entry.record.param_values


def plotted(qtbot, store, step: str, name: str, runs=None) -> RunsPlot:
    plot = RunsPlot()
    qtbot.addWidget(plot)
    plot.resize(900, 560)
    plot.show()
    with qtbot.waitSignal(plot.loaded, timeout=WAIT_MS):
        plot.start(request(store, step, name, runs))
    assert not plot.busy
    return plot


def test_plot_has_one_point_per_run_and_hover_names_run_and_parameters(qtbot, store) -> None:
    plot = plotted(qtbot, store, "end", "loss")
    assert plot.error is None and plot.data.problems == []
    assert len(plot.data.points) == 10
    assert plot.scatter is not None and len(plot.scatter.points()) == 10
    assert plot.x_mode == X_RUN_NUMBER
    xs, ys = plot.scatter.getData()
    by_number = sorted(zip(xs, ys))
    assert [x for x, _ in by_number] == list(range(1, 11))  # oldest run is #1
    assert [y for _, y in by_number] == [expected_loss(r, k % 3) for k, r in enumerate(RATES)]
    text = plot.point_text(3)
    point = plot.data.points[3]
    assert point.run.run_id in text and "rate=" in text and "seed=" in text
    assert f"rate={point.run.params['rate']}" in text

    # A real hover: the mouse over a point's place on screen (placed again until the view
    # has settled its range, which pyqtgraph applies lazily).
    view = plot.plot
    box = plot.plot.getPlotItem().getViewBox()
    spot = plot.scatter.points()[5]
    hovered = plot.data.points[int(spot.data())]
    nudge = [0]

    def hover() -> bool:
        target = view.mapFromScene(box.mapViewToScene(spot.pos()))
        nudge[0] = 1 - nudge[0]  # a move must move
        QTest.mouseMove(view.viewport(), QPoint(target.x() + nudge[0], target.y()))
        return hovered.run.run_id in plot.info.text()

    qtbot.waitUntil(hover, timeout=WAIT_MS)
    assert f"rate={hovered.run.params['rate']}" in plot.info.text()
    assert hovered.run.run_id in box.toolTip()

    plot.x_choice.setCurrentText(X_RUN_START)
    xs, _ = plot.scatter.getData()
    assert sorted(xs) == sorted(e.start for e in store["runs"])
    assert_left_ticks_read_the_values(qtbot, plot)
    plot.x_choice.setCurrentText(X_RUN_NUMBER)
    assert_left_ticks_read_the_values(qtbot, plot)


def left_tick_texts(plot: RunsPlot) -> list[float]:
    """The numbers the left axis draws, as pyqtgraph lays them out to paint them."""
    axis = plot.plot.getPlotItem().getAxis("left")
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        specs = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [float(text.replace("\u2212", "-")) for _, _, text in specs[2]] if specs else []


def assert_left_ticks_read_the_values(qtbot, plot: RunsPlot) -> None:
    """The losses lie between 0.47 and 0.93: the ticks span about that, not 1000 times it
    (after a redraw the ticks once read 500 to 900 under the plain label "loss")."""
    values = plot.scatter.getData()[1]
    qtbot.waitUntil(lambda: bool(left_tick_texts(plot)), timeout=WAIT_MS)
    ticks = left_tick_texts(plot)
    assert min(values) - 0.5 <= min(ticks) and max(ticks) <= max(values) + 0.5, ticks


def test_plot_of_a_foreach_has_a_point_per_task_at_its_item(qtbot, store) -> None:
    one = [e for e in store["runs"] if e.run_id == "run-04"]
    plot = plotted(qtbot, store, "fit", "score", one)
    assert len(plot.data.points) == 20 and plot.data.foreach
    assert plot.x_mode == X_FOREACH_INPUT
    xs, ys = plot.scatter.getData()
    assert sorted(xs) == [round(0.05 * i, 2) for i in range(20)]
    assert max(ys) == 1.0  # at the item equal to the rate, 0.5
    assert "item 7 = 0.35" in plot.point_text(7)

    every = plotted(qtbot, store, "fit", "score")
    assert len(every.data.points) == 200 and len(every.scatter.points()) == 200
    assert len({p.run.run_id for p in every.data.points}) == 10
    # A line per run, named beside the plot by number and the parameters that vary.
    assert every.legend.isVisible() and every.legend.count() == 10
    assert every.legend.item(0).text() == "#1  rate=0.1, seed=0"
    every.x_choice.setCurrentText(X_RUN_NUMBER)
    xs, _ = every.scatter.getData()
    assert sorted(set(xs)) == list(range(1, 11))
    assert not every.legend.isVisible()


def test_plot_of_a_non_number_says_so(qtbot, store) -> None:
    plot = plotted(qtbot, store, "end", "summary")
    assert plot.data.points == [] and len(plot.data.problems) == 10
    assert "not a number" in plot.problems.text() and "and 7 more" in plot.problems.text()
    # Named as the axis numbers runs, with the id: "#1 (run run-00) task 7: a str, ..."
    assert plot.data.problems[0].startswith("#1 (run run-00) task ")
    assert "0 of 10 runs" in plot.title.text()


SLOW_FLOW = '''
import time

from flowdeck import FlowSpec, step


class Sleeper:
    """Unpickling it sleeps for ten minutes."""

    def __reduce__(self):
        return (time.sleep, (600,))


class SlowFlow(FlowSpec):
    @step
    def start(self):
        self.score = Sleeper()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SlowFlow()
'''


def test_a_helper_past_its_time_limit_is_killed(qtbot, tmp_path: Path) -> None:
    flow = tmp_path / "slow.py"
    flow.write_text(SLOW_FLOW)
    assert run_flow(flow, "run", env=child_env()).returncode == 0
    layout = RunLayout(tmp_path / ".flowdeck", "SlowFlow")
    entry = RunIndex(layout).runs()[0]
    plot = RunsPlot()
    qtbot.addWidget(plot)
    plot.limit_s = 1.5
    with qtbot.waitSignal(plot.loaded, timeout=WAIT_MS):
        plot.start(PlotRequest.of(sys.executable, True, layout, "start", "score", [_Row(entry)]))
    assert not plot.busy and plot.data.points == []
    assert plot.error is not None and "was stopped" in plot.error
    assert "was stopped" in plot.title.text()


def test_artifact_choices_come_from_the_records(store) -> None:
    choices, damaged = artifact_choices(store["layout"], "run-00")
    assert damaged == []
    found = {(c.step, c.name): c for c in choices}
    assert found[("end", "loss")].numeric and found[("fit", "score")].tasks == 20
    assert not found[("end", "summary")].numeric
    steps = list(dict.fromkeys(c.step for c in choices))
    assert steps == ["start", "fit", "join", "end"]


# -- from History, end to end ------------------------------------------------------------

@pytest.fixture
def window(qtbot, settings: QSettings, store):
    controller, window = build(settings, [str(store["folder"])])
    window.show()
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    window.select_flow(flow_key(controller, FLOW))
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 10, timeout=WAIT_MS)
    yield window
    close_window(controller, window)


def test_history_plots_an_artifact_across_runs(qtbot, window, store) -> None:
    history = window.history
    table = history.table
    chosen: list[str] = []

    def answer_chooser() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ArtifactChooser):
            QTimer.singleShot(10, answer_chooser)
            return
        end = next(dialog.tree.topLevelItem(i) for i in range(dialog.tree.topLevelItemCount())
                   if dialog.tree.topLevelItem(i).text(0) == "end")
        loss = next(end.child(i) for i in range(end.childCount()) if end.child(i).text(0) == "loss")
        dialog.tree.setCurrentItem(loss)
        chosen.append(str(dialog.chosen()))
        dialog.accept()

    def choose_plot() -> None:
        menu = QApplication.activePopupWidget()
        if not isinstance(menu, QMenu):
            QTimer.singleShot(10, choose_plot)
            return
        action = next(a for a in menu.actions() if a.text() == "Plot Artifact Across Runs…")
        QTimer.singleShot(0, answer_chooser)
        menu.setActiveAction(action)
        QTest.keyClick(menu, Qt.Key.Key_Return)

    QTimer.singleShot(0, choose_plot)
    table.customContextMenuRequested.emit(table.visualRect(table.model().index(0, 1)).center())
    qtbot.waitUntil(lambda: any(isinstance(w, RunsPlotWindow)
                                for w in QApplication.topLevelWidgets()), timeout=WAIT_MS)
    assert chosen == ["('end', 'loss')"]
    plot_window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, RunsPlotWindow))
    qtbot.waitUntil(lambda: not plot_window.view.busy, timeout=WAIT_MS)
    assert plot_window.view.error is None
    assert len(plot_window.view.data.points) == 10
    assert "end.loss" in plot_window.windowTitle()
    plot_window.close()


def test_core_needs_no_qt_for_values() -> None:
    """The helper runs in the flow's interpreter, which may have no Qt at all."""
    code = ("import sys, flowdeck.engines.inspect_values as m; "
            "assert not any(k.startswith(('PySide6', 'pyqtgraph')) for k in sys.modules)")
    env = child_env()
    env["PYTHONPATH"] = str(CORE)
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0
