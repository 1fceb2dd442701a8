"""Plot one numeric artifact (a score, a loss) across every run in History.

The values need unpickling, which the window never does: a helper process in the
flow's own interpreter (`python -m flowdeck.engines.inspect_values`) loads them, each
distinct content hash once, and answers with bounded JSON; it is killed past a time
limit, so a value that hangs while loading never freezes the window. The plot is
pyqtgraph's: x is the run's number or start time (a toggle), or for a foreach step the
item each task got (or its index), one point per task; hovering a point names its run,
the run's parameters and the task.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any, Protocol

import shiboken6
from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QColor, QIcon, QKeySequence, QPalette, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engines.inspect_values import argv as values_argv
from flowdeck.engines.launching import child_env
from flowdeck.engines.load_limits import window_load_limits
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import InvalidId, RunLayout
from flowdeck_desktop.control.run_process import core_path
from flowdeck_desktop.views.theme import palette_is_dark

#: Type names an artifact plots as a number (others may still be, e.g. a 1-element array;
#: the helper decides, and says why a value is not a number).
NUMERIC_TYPE = re.compile(r"^(int|float|decimal\.Decimal|fractions\.Fraction|"
                          r"numpy\.(u?int\d*|float\d*|double|longdouble|half|single))$")

X_RUN_NUMBER = "Run number"
X_RUN_START = "Run start time"
X_FOREACH_INPUT = "Foreach item"
X_FOREACH_INDEX = "Foreach index"

if TYPE_CHECKING:
    import pyqtgraph


#: Why a run of another engine does not plot: the values are read from Flowdeck's store.
NOT_PLOTTED_ENGINE = ("Plots across runs read Flowdeck's store; Metaflow's engine made this "
                      "run, and its values are in Metaflow's datastore.")


def plots_runs_of(engine: str) -> bool:
    """Whether runs made by `engine` (a run record's) plot across runs: Flowdeck's only
    (a Metaflow run's plot opened empty axes, every run "not plotted")."""
    return engine == "flowdeck"


def plotting_problem() -> str | None:
    """Why this window cannot draw plots (None: it can). The double-clickable bundle
    leaves pyqtgraph and numpy out to stay small."""
    try:
        import pyqtgraph  # noqa: F401
    except ImportError as exc:
        return (f"Plots need pyqtgraph and numpy, which this Flowdeck lacks ({exc}). "
                "Install them where Flowdeck runs (python -m pip install 'flowdeck[desktop]'); "
                "the app bundle leaves them out to stay small.")
    return None


def _pg() -> Any:
    """pyqtgraph, imported when a plot is first drawn (about 0.3 s, and numpy): the window
    starts without it."""
    import pyqtgraph
    return pyqtgraph


#: Distinct colours for the runs of a foreach plot, readable on light and dark (Tableau 10).
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#17becf")


def run_color(index: int, count: int) -> QColor:
    """The colour of the `index`-th of `count` runs: the fixed ten, then a hue wheel."""
    if count <= len(RUN_COLORS):
        return QColor(RUN_COLORS[index])
    return QColor(_pg().intColor(index, hues=count, values=1, maxValue=220))


def varying_params(runs: Sequence["PlotRun"]) -> list[str]:
    """The parameters whose values differ between `runs` (what tells them apart)."""
    names = list(dict.fromkeys(k for r in runs for k in r.params))
    return [k for k in names if len({json.dumps(r.params.get(k), sort_keys=True, default=str)
                                      for r in runs}) > 1]


class RunLike(Protocol):
    """What the plot needs of a History row (panes.RunSummary has it)."""

    @property
    def run_id(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def params(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PlotRun:
    """One run of History as the plot names it."""

    run_id: str
    start: float
    params: dict[str, Any]
    number: int  # 1 for the oldest run plotted

    @property
    def params_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items()) or "no parameters"

    @property
    def label(self) -> str:
        """As the plot's axis and legend number it, with its id: "#4 (run 1796…)"."""
        return f"#{self.number} (run {self.run_id})"


@dataclass(frozen=True)
class PlotRequest:
    """What to plot and with which interpreter: the artifact `name` of `step`, in `runs`."""

    interpreter: str
    add_core: bool  # put our core on the helper's path (the interpreter lacks flowdeck)
    layout: RunLayout
    step: str
    name: str
    runs: tuple[PlotRun, ...]

    @classmethod
    def of(cls, interpreter: str, add_core: bool, layout: RunLayout, step: str, name: str,
           runs: Sequence[RunLike]) -> "PlotRequest":
        """Number the runs by start, oldest first (History lists them newest first)."""
        ordered = sorted(runs, key=lambda r: (r.start, r.run_id))
        return cls(interpreter, add_core, layout, step, name,
                   tuple(PlotRun(r.run_id, r.start, dict(r.params), i + 1)
                         for i, r in enumerate(ordered)))

    @property
    def title(self) -> str:
        return f"{self.layout.flow} · {self.step}.{self.name}"


@dataclass(frozen=True)
class PlotPoint:
    """One plotted value: a run's (or a foreach task's) artifact."""

    run: PlotRun
    value: float
    task_id: str
    index: int | None = None
    item: float | None = None
    item_label: str | None = None

    def x(self, mode: str) -> float:
        if mode == X_RUN_START:
            return self.run.start
        if mode == X_FOREACH_INPUT and self.item is not None:
            return self.item
        if mode in (X_FOREACH_INPUT, X_FOREACH_INDEX) and self.index is not None:
            return float(self.index)
        return float(self.run.number)

    def describe(self, name: str) -> str:
        """The hover text: value, run id and number, start, parameters, task."""
        lines = [f"{name} = {self.value:.6g}",
                 f"run {self.run.run_id} (#{self.run.number}, started "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.run.start))})",
                 f"parameters: {self.run.params_text}"]
        if self.index is not None:
            lines.append(f"task {self.task_id}: item {self.index}"
                         + (f" = {self.item_label}" if self.item_label else ""))
        return "\n".join(lines)


@dataclass
class PlotData:
    """The helper's answer, turned into points and the reasons some runs have none."""

    points: list[PlotPoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "run X: why", "run X task T: why"
    truncated: bool = False

    @property
    def foreach(self) -> bool:
        return any(p.index is not None for p in self.points)

    @property
    def numeric_items(self) -> bool:
        return bool(self.points) and all(p.item is not None for p in self.points)


def parse_answer(answer: dict[str, Any], runs: Sequence[PlotRun]) -> PlotData:
    """Points from `inspect_values`' JSON; anything malformed is a problem, never a crash."""
    by_id = {r.run_id: r for r in runs}
    data = PlotData(truncated=bool(answer.get("truncated")))
    for entry in answer.get("runs") or []:
        if not isinstance(entry, dict) or entry.get("run_id") not in by_id:
            continue
        run = by_id[entry["run_id"]]
        if entry.get("error"):
            data.problems.append(f"{run.label}: {entry['error']}")
            continue
        for point in entry.get("points") or []:
            if not isinstance(point, dict):
                continue
            value = point.get("value")
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                data.problems.append(f"{run.label} task {point.get('task_id')}: "
                                     f"{point.get('error') or 'no value'}")
                continue
            index, item = point.get("index"), point.get("input")
            data.points.append(PlotPoint(
                run, float(value), str(point.get("task_id", "")),
                index if isinstance(index, int) else None,
                float(item) if isinstance(item, (int, float)) else None,
                str(point["input_label"]) if point.get("input_label") else None))
    return data


def _plain_numbers(axis: Any) -> None:
    """Ticks read the values themselves: a loss of 0.6 reads 0.6, not "600 (x0.001)".

    pyqtgraph's `enableAutoSIPrefix(False)` still computes a scale from the axis's range
    at that moment and keeps it for the ticks (0.13 and 0.14): after a redraw, with the
    previous plot's range, every tick read 1000 times its value under a label without
    a unit. So the scale is put back to one here, after turning the prefix off."""
    axis.enableAutoSIPrefix(False)
    axis.autoSIPrefixScale = 1.0
    axis.labelUnitPrefix = ""
    axis.picture = None  # drawn again with the scale of one
    axis.update()


class RunsPlot(QWidget):
    """The plot, its x-axis choice, and what could not be plotted (a widget, so a window,
    a tab or a test can hold it)."""

    loaded = Signal()  # the helper answered (or failed, or was killed): nothing is pending

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.request: PlotRequest | None = None
        self.data = PlotData()
        self.error: str | None = None
        #: How long the helper may take to load every run's value before it is killed.
        self.limit_s = window_load_limits().plot_wait
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.x_choice = QComboBox()
        self.x_choice.setToolTip("What the horizontal axis shows.")
        self.x_choice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.x_choice.currentTextChanged.connect(lambda _text: self._draw())
        self.plot = _pg().PlotWidget()
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMenuEnabled(True)
        self.scatter: pyqtgraph.ScatterPlotItem | None = None
        self.info = QLabel("Hover a point to see its run and parameters; click one to keep "
                           "it here.")
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems = QLabel("")
        self.problems.setWordWrap(True)
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(QLabel("x:"))
        top.addWidget(self.x_choice)
        self.legend = QListWidget()
        self.legend.setToolTip("The runs' colours")
        self.legend.setVisible(False)
        middle = QHBoxLayout()
        middle.addWidget(self.plot, 1)
        middle.addWidget(self.legend)
        box = QVBoxLayout(self)
        box.addLayout(top)
        box.addLayout(middle, 1)
        box.addWidget(self.info)
        box.addWidget(self.problems)
        self._proc: QProcess | None = None
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._time_out)
        self._pinned: PlotPoint | None = None
        self._apply_palette()

    # -- the helper --------------------------------------------------------------------

    def start(self, request: PlotRequest) -> None:
        """Ask the helper for every run's value; the plot draws when it answers."""
        self.stop()
        self.request, self.data, self.error, self._pinned = request, PlotData(), None, None
        self.title.setText(f"<b>{request.title}</b> across {len(request.runs)} runs "
                           "(loading values in the flow's interpreter…)")
        self.problems.setText("")
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        for key, value in child_env(core_path() if request.add_core else None).items():
            env.insert(key, value)
        proc.setProcessEnvironment(env)
        proc.finished.connect(lambda code, _status, p=proc: self._on_done(p, code))
        proc.errorOccurred.connect(lambda error, p=proc: self._on_error(p, error))
        program, *args = values_argv(request.interpreter, str(request.layout.root),
                                     request.layout.flow, request.step, request.name,
                                     [r.run_id for r in request.runs])
        self._proc = proc
        self._draw()
        proc.start(program, args)
        self._kill_timer.start(int(self.limit_s * 1000))

    @property
    def busy(self) -> bool:
        return self._proc is not None

    def stop(self) -> None:
        """Kill the helper if it still runs (a new plot, the window closing)."""
        self._kill_timer.stop()
        proc, self._proc = self._proc, None
        if proc is not None and shiboken6.isValid(proc):
            proc.kill()
            proc.waitForFinished(2000)
            proc.deleteLater()

    def _time_out(self) -> None:
        if self._proc is None:
            return
        self.stop()
        self._finish(f"the helper took more than {self.limit_s:g} s to load the "
                     "values and was stopped. A value may be very large or hang while "
                     "unpickling; plot fewer runs (delete old ones) or a smaller artifact.")

    def _on_error(self, proc: QProcess, error: QProcess.ProcessError) -> None:
        if proc is not self._proc or error != QProcess.ProcessError.FailedToStart:
            return
        assert self.request is not None
        self.stop()
        self._finish(f"the interpreter {self.request.interpreter} could not be started "
                     f"({proc.errorString()}). Choose another one (Flow ▸ Interpreter…).")

    def _on_done(self, proc: QProcess, code: int) -> None:
        if proc is not self._proc or not shiboken6.isValid(proc) or not shiboken6.isValid(self):
            return
        self._kill_timer.stop()
        self._proc = None
        out = bytes(proc.readAllStandardOutput().data()).decode("utf-8", "replace")
        err = bytes(proc.readAllStandardError().data()).decode("utf-8", "replace").strip()
        proc.deleteLater()
        if code != 0:
            last = err.splitlines()[-1] if err else f"exit code {code}"
            self._finish(f"the helper failed: {last}")
            return
        try:
            answer = json.loads(out)
        except ValueError:
            self._finish(f"unreadable answer from the helper: {out[:200]!r}")
            return
        assert self.request is not None
        self.data = parse_answer(answer if isinstance(answer, dict) else {},
                                 self.request.runs)
        self._finish(None)

    def _finish(self, error: str | None) -> None:
        self.error = error
        self._offer_axes()
        self._draw()
        self.loaded.emit()

    # -- drawing -----------------------------------------------------------------------

    def _offer_axes(self) -> None:
        choices = [X_RUN_NUMBER, X_RUN_START]
        if self.data.foreach:
            choices = [X_FOREACH_INPUT if self.data.numeric_items else X_FOREACH_INDEX,
                       *choices]
        self.x_choice.blockSignals(True)
        self.x_choice.clear()
        self.x_choice.addItems(choices)
        self.x_choice.blockSignals(False)

    @property
    def x_mode(self) -> str:
        return self.x_choice.currentText() or X_RUN_NUMBER

    def _apply_palette(self) -> None:
        palette = self.palette()
        self.plot.setBackground(palette.color(QPalette.ColorRole.Base))
        text = palette.color(QPalette.ColorRole.Text)
        for side in ("left", "bottom"):
            axis = self.plot.getAxis(side)
            axis.setPen(_pg().mkPen(text))
            axis.setTextPen(_pg().mkPen(text))
            _plain_numbers(axis)

    def _draw(self) -> None:
        item = self.plot.getPlotItem()
        item.clear()
        self.scatter = None
        request = self.request
        if request is None:
            return
        mode = self.x_mode
        item.setAxisItems({"bottom": _pg().DateAxisItem() if mode == X_RUN_START
                           else _pg().AxisItem("bottom")})
        self._apply_palette()
        item.setLabel("left", request.name)
        item.setLabel("bottom", {X_FOREACH_INPUT: f"item of {request.step}'s foreach",
                                 X_FOREACH_INDEX: f"index in {request.step}'s foreach"}
                      .get(mode, mode.lower()))
        points = self.data.points
        self._summarise()
        if not points:
            return
        dark = palette_is_dark(self.palette())
        per_run = self.data.foreach and mode in (X_FOREACH_INPUT, X_FOREACH_INDEX)
        runs = sorted({p.run.number for p in points})
        colors = {n: run_color(i, len(runs)) for i, n in enumerate(runs)} if per_run else {}
        single = QColor("#42a5f5" if dark else "#2f80ed")
        brushes = [_pg().mkBrush(colors.get(p.run.number, single)) for p in points]
        # Lines first, so the points sit on top: one line per run along its items, or
        # one line through the runs in x order.
        groups: dict[int, list[PlotPoint]] = {}
        for point in points:
            groups.setdefault(point.run.number if per_run else 0, []).append(point)
        for number, group in groups.items():
            ordered = sorted(group, key=lambda p: p.x(mode))
            color = QColor(colors.get(number, QColor(120, 140, 170)))
            color.setAlpha(150)
            if len(ordered) > 1 and (per_run or not self.data.foreach):
                item.plot([p.x(mode) for p in ordered], [p.value for p in ordered],
                          pen=_pg().mkPen(color, width=1.5))
        self._fill_legend(groups if per_run else {}, colors)
        self.scatter = _pg().ScatterPlotItem(
            x=[p.x(mode) for p in points], y=[p.value for p in points],
            data=list(range(len(points))), brush=brushes, size=9,
            pen=_pg().mkPen(self.palette().color(QPalette.ColorRole.Base), width=1),
            hoverable=True, hoverSize=13, tip=self._tip)
        self.scatter.sigHovered.connect(self._on_hover)
        self.scatter.sigClicked.connect(self._on_click)
        item.addItem(self.scatter)
        item.enableAutoRange()

    def _fill_legend(self, groups: dict[int, list[PlotPoint]], colors: dict[int, QColor]
                     ) -> None:
        """Beside a foreach plot (a line per run): each run's colour, number and the
        parameters that tell the runs apart; beside the plot, so it hides no point."""
        self.legend.clear()
        self.legend.setVisible(bool(groups))
        varying = varying_params([g[0].run for g in groups.values()])
        for number in sorted(groups):
            run = groups[number][0].run
            shown = ", ".join(f"{k}={run.params.get(k)}" for k in varying)
            entry = QListWidgetItem(f"#{number}" + (f"  {shown}" if shown else ""))
            swatch = QPixmap(12, 12)
            swatch.fill(colors[number])
            entry.setIcon(QIcon(swatch))
            entry.setToolTip(f"run {run.run_id}\nparameters: {run.params_text}")
            self.legend.addItem(entry)
        self.legend.setFixedWidth(min(320, max(140, self.legend.sizeHintForColumn(0) + 30)))

    def _summarise(self) -> None:
        request = self.request
        if request is None:
            return
        plotted = len({p.run.run_id for p in self.data.points})
        head = f"<b>{request.title}</b>: "
        if self.error:
            head += f"nothing plotted: {self.error}"
        elif self._proc is not None:
            head += f"loading {len(request.runs)} runs in the flow's interpreter…"
        else:
            per_task = f", {len(self.data.points)} tasks" if self.data.foreach else ""
            head += f"{plotted} of {len(request.runs)} runs{per_task}"
            if self.data.truncated:
                head += " (the answer was cut short: too many points)"
        self.title.setText(head)
        problems = self.data.problems
        if problems:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more"
                                               if len(problems) > 3 else "")
            self.problems.setText(f"Not plotted: {shown}")
            self.problems.setToolTip("\n".join(problems[:200]))
        else:
            self.problems.setText("")
            self.problems.setToolTip("")

    def point_text(self, index: int) -> str:
        """What hovering point `index` shows (its run id, parameters, task)."""
        assert self.request is not None
        return self.data.points[index].describe(self.request.name)

    def _tip(self, x: float, y: float, data: Any) -> str:
        return self.point_text(int(data))

    def _on_hover(self, _item: Any, points: Any, _event: Any) -> None:
        if len(points):
            self.info.setText(self.point_text(int(points[0].data())).replace("\n", " · "))
        elif self._pinned is not None and self.request is not None:
            self.info.setText(self._pinned.describe(self.request.name).replace("\n", " · "))

    def _on_click(self, _item: Any, points: Any, _event: Any) -> None:
        if len(points):
            self._pinned = self.data.points[int(points[0].data())]
            self._on_hover(None, points, None)

    def changeEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        super().changeEvent(event)
        if hasattr(self, "scatter") and event.type() in (event.Type.PaletteChange, event.Type.ApplicationPaletteChange):
            self._draw()


class RunsPlotWindow(QDialog):
    """A plot across runs in a window of its own (several can be open, beside the app)."""

    def __init__(self, request: PlotRequest, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setSizeGripEnabled(True)
        self.setWindowTitle(f"{request.title} across runs")
        self.view = RunsPlot(self)
        box = QVBoxLayout(self)
        box.addWidget(self.view)
        self.resize(900, 560)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Close), self, self.close)  # and Escape
        self.view.start(request)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.view.stop()
        super().closeEvent(event)


# -- choosing what to plot ---------------------------------------------------------------

@dataclass(frozen=True)
class ArtifactChoice:
    """An artifact a run's records name: where, what type, whether it plots as a number."""

    step: str
    name: str
    type: str
    tasks: int

    @property
    def numeric(self) -> bool:
        return bool(NUMERIC_TYPE.match(self.type))


def artifact_choices(layout: RunLayout, run_id: str) -> tuple[list[ArtifactChoice], list[str]]:
    """The artifacts of a run's steps, from its attempt records (nothing unpickled), and
    the messages of records that could not be read."""
    try:
        attempts, damaged = RunIndex(layout).final_attempts(run_id)
    except InvalidId as exc:
        return [], [str(exc)]
    found: dict[tuple[str, str], tuple[str, int]] = {}
    starts: dict[str, float] = {}
    for attempt in attempts:
        starts[attempt.step] = min(starts.get(attempt.step, attempt.start), attempt.start)
        for name, ref in attempt.artifacts.items():
            kind, count = found.get((attempt.step, name), (str(ref.get("type", "")), 0))
            found[(attempt.step, name)] = (kind, count + 1)
    choices = [ArtifactChoice(step, name, kind, count)
               for (step, name), (kind, count) in found.items()]
    choices.sort(key=lambda c: (starts.get(c.step, 0.0), c.step, not c.numeric, c.name))
    return choices, damaged


class ArtifactChooser(QDialog):
    """Pick the step and artifact to plot, from a run's records; numbers come first."""

    def __init__(self, layout: RunLayout, run_id: str, parent: QWidget | None = None,
                 preselect: tuple[str, str] | None = None):
        super().__init__(parent)
        self.setWindowTitle("Plot artifact across runs")
        choices, damaged = artifact_choices(layout, run_id)
        intro = QLabel(f"Artifacts of {layout.flow}/{run_id}. Choose one whose value is a "
                       "number; its value in every run in History is plotted.")
        intro.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Step / artifact", "Type", "Tasks"])
        self.tree.setRootIsDecorated(True)
        steps: dict[str, QTreeWidgetItem] = {}
        first: QTreeWidgetItem | None = None
        muted = self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        for choice in choices:
            parent_item = steps.get(choice.step)
            if parent_item is None:
                parent_item = QTreeWidgetItem(self.tree, [choice.step])
                parent_item.setFlags(Qt.ItemFlag.ItemIsEnabled)
                parent_item.setExpanded(True)
                steps[choice.step] = parent_item
            item = QTreeWidgetItem(parent_item, [choice.name, choice.type, str(choice.tasks)])
            item.setData(0, Qt.ItemDataRole.UserRole, (choice.step, choice.name))
            if not choice.numeric:
                for column in range(3):
                    item.setForeground(column, muted)
                item.setToolTip(0, f"{choice.type}: probably not a number (the plot says "
                                "which values are not)")
            if (preselect == (choice.step, choice.name)) or (preselect is None and first is None
                                                              and choice.numeric):
                first = item
        if first is not None:
            self.tree.setCurrentItem(first)
        for column in range(3):
            self.tree.resizeColumnToContents(column)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Plot")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.tree.itemDoubleClicked.connect(lambda item, _c: self.accept()
                                            if self.chosen() else None)
        box = QVBoxLayout(self)
        box.addWidget(intro)
        box.addWidget(self.tree)
        if damaged:
            note = QLabel(f"{len(damaged)} task record(s) could not be read: {damaged[0]}")
            note.setWordWrap(True)
            box.addWidget(note)
        box.addWidget(buttons)
        self.resize(520, 480)

    def chosen(self) -> tuple[str, str] | None:
        item = self.tree.currentItem()
        value = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        return (str(value[0]), str(value[1])) if value else None


def plot_across_runs(parent: QWidget, interpreter: str, add_core: bool, layout: RunLayout,
                     step: str, name: str, runs: Sequence[RunLike],
                     made_by: Callable[[str], str | None] | None = None) -> RunsPlotWindow | None:
    """Open a plot of `step`'s artifact `name` across `runs` (History's runs).

    Loading values runs code from the artifacts, so runs made by another user
    (`made_by(run_id)` names who) are left out unless the user agrees to include them.
    """
    from PySide6.QtWidgets import QMessageBox
    chosen = list(runs)
    if made_by is not None:
        foreign = {r.run_id: who for r in chosen if (who := made_by(r.run_id))}
        if foreign:
            box = QMessageBox(QMessageBox.Icon.Question, "Plot across runs",
                              f"{len(foreign)} of these runs were made by another user "
                              f"({', '.join(sorted(set(foreign.values())))}). Include them?",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                              parent)
            box.setInformativeText("Loading their values unpickles their artifacts, which "
                                   "runs code chosen by whoever made them. No plots only "
                                   "your own runs.")
            box.setDefaultButton(QMessageBox.StandardButton.No)
            if box.exec() != QMessageBox.StandardButton.Yes:
                chosen = [r for r in chosen if r.run_id not in foreign]
    if not chosen:
        return None
    window = RunsPlotWindow(PlotRequest.of(interpreter, add_core, layout, step, name, chosen),
                            parent)
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    window.show()
    return window
