"""The bottom and side panes that are tables or text: history, error; who made a run.

History reads only `run.json` files. The Artifacts tab is `views.artifacts`; it asks
`foreign_author` (here, with History's run records) whether a run is someone
else's, whose artifacts it loads only when asked, since unpickling runs code chosen
by whoever made the run.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QObject,
    QPoint,
    QPointF,
    QRunnable,
    Qt,
    QThreadPool,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFontMetrics,
    QIcon,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engines.startup import StartFailure
from flowdeck.store.index import RunIndex, read_run
from flowdeck.store.layout import InvalidId, RunLayout
from flowdeck.store.records import RunRecord
from flowdeck.store.status import CANCELLED, CRASHED, DAMAGED, FAILED, RUNNING, SUCCEEDED
from flowdeck_desktop.views.banner import WrappedText
from flowdeck_desktop.views.runs_plot import NOT_PLOTTED_ENGINE, plots_runs_of
from flowdeck_desktop.views.theme import status_color


@dataclass(frozen=True)
class RunSummary:
    """One past run as the history table shows it (a damaged one has no record)."""

    run_id: str
    status: str
    start: float
    duration: float | None
    params: dict[str, Any]
    origin_run_id: str | None
    events_path: str
    record: RunRecord | None = None
    damage: str | None = None
    pinned: bool = False
    layout: RunLayout | None = None  # where the run lives, to pin or delete it

    @property
    def pathspec(self) -> str:
        """`Flow/run_id`, as the run's engine's client takes it: Metaflow's run id for a run
        of Metaflow's engine (as the main window's Copy Pathspec gives it)."""
        run_id = self.record.engine_run_id if self.record is not None else self.run_id
        return f"{self.layout.flow}/{run_id}" if self.layout is not None else run_id

    @property
    def folder(self) -> str | None:
        """The run's folder on disk (None when the id cannot name one)."""
        try:
            return str(self.layout.run_dir(self.run_id)) if self.layout is not None else None
        except InvalidId:
            return None


def list_runs(layout: RunLayout, limit: int = 200) -> list[RunSummary]:
    """Past runs of a flow, newest first, from their records alone (nothing unpickled)."""
    found = []
    for entry in RunIndex(layout).runs(limit):
        record = entry.record
        duration = (record.end - record.start) if record and record.end else None
        found.append(RunSummary(entry.run_id, entry.status, entry.start, duration,
                                record.param_values if record else {},
                                record.origin_run_id if record else None,
                                str(layout.events(entry.run_id)), record, entry.damage,
                                entry.pinned, layout))
    return found


class _ElideLeft(QStyledItemDelegate):
    """Cuts a run id on its left (`…318445-d700a0`): its end, random, tells runs apart;
    its start is the run's start in milliseconds, which Started shows."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: Any) -> None:  # noqa: N802
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideLeft


def telling_order(runs: list[RunSummary]) -> list[str]:
    """The runs' parameter names, those whose values differ between the runs first: at a
    laptop's width the column shows its first one or two, and a parameter every run gave
    the same value tells none of them apart."""
    names: list[str] = []
    for run in runs:
        names.extend(k for k in run.params if k not in names)
    varying = [k for k in names
               if len({repr(run.params.get(k)) for run in runs}) > 1]
    return varying + [k for k in names if k not in varying]


def params_text(params: dict[str, Any], order: list[str]) -> str:
    """`name=value, ...` in `order` (then any name it lacks)."""
    names = [k for k in order if k in params] + [k for k in params if k not in order]
    return ", ".join(f"{k}={params[k]}" for k in names)


def _ms_to_midnight(now: time.struct_time) -> int:
    """Milliseconds until just past the next local midnight (a second past it)."""
    seconds = 86400 - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec)
    return (seconds + 1) * 1000


def started_text(started: time.struct_time, today: time.struct_time) -> str:
    """A run's start as History shows it, as short as still tells runs apart: the time
    alone today, month and day this year, the date before that (the tooltip has it all).
    The whole date and time took 135 of a laptop's 400 pixels of History, and left the
    parameters, which tell runs apart, about 20."""
    if started[:3] == today[:3]:
        return time.strftime("%H:%M:%S", started)
    if started.tm_year == today.tm_year:
        return time.strftime("%m-%d %H:%M", started)
    return time.strftime("%Y-%m-%d", started)


def _read_only_table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setTabKeyNavigation(False)  # Tab leaves the table (arrows move in it), as in a form
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setStretchLastSection(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table


def pin_icon(color: QColor, size: int = 16) -> QIcon:
    """History's mark of a pinned run, drawn (a pushpin: head, needle), so it shows
    whatever fonts the machine has (an emoji needs a colour-emoji font)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(color, max(1.5, size / 10))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    painter.drawLine(QPointF(size * 0.5, size * 0.55), QPointF(size * 0.5, size * 0.95))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    painter.drawEllipse(QPointF(size * 0.5, size * 0.32), size * 0.27, size * 0.27)
    painter.end()
    return QIcon(pixmap)

#: History's status column: a glyph (its colour and tooltip say the status in full), so
#: the Run and Started columns fit beside it in the side pane.
STATUS_GLYPHS = {SUCCEEDED: "✔", FAILED: "✖", CRASHED: "✖", RUNNING: "▶", CANCELLED: "⊘",
                 DAMAGED: "⚠"}
_GLYPH_COLORS = {CRASHED: "failed", DAMAGED: "failed"}


def reveal(path: str) -> bool:
    """Show a file's folder (or a folder) in the desktop's file manager."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    return QDesktopServices.openUrl(QUrl.fromLocalFile(folder))


def copy_text(text: str) -> None:
    QApplication.clipboard().setText(text)


class HistoryPane(QWidget):
    """Past runs of the selected flow; select one to view it, rerun, pin or delete it;
    select two (Ctrl/Shift-click) to compare them; plot an artifact across all of them.

    Delete asks first (once for all the selected runs), and explains instead when a run
    is running or pinned (pinned runs are the ones the user asked to keep: unpinning first
    is the second thought). Everything else that acts on one run acts only while exactly
    one is selected; Enter reruns it. A click on a column's header sorts by it (again:
    the other way); the runs come newest first.
    """

    COLUMNS = ("", "Run", "Started", "Duration", "Parameters")
    RUN, STARTED, PARAMETERS = 1, 2, 4  # columns
    #: A run id as the Run column shows it when History is narrow (cut on its left).
    RUN_COMPACT = "…318445-d700a0"

    run_selected = Signal(object)  # RunSummary
    rerun_requested = Signal(object)  # RunSummary
    delete_requested = Signal(list)  # [RunSummary], confirmed by the user at once
    pin_requested = Signal(object, bool)  # RunSummary, True to pin, False to unpin
    compare_requested = Signal(object, object)  # RunSummary older, RunSummary newer
    plot_requested = Signal(object)  # RunSummary whose records list the artifacts to offer

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = _read_only_table(list(self.COLUMNS))
        status_header = self.table.horizontalHeaderItem(0)
        if status_header is not None:
            status_header.setToolTip("Status")
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)  # only when unavoidable
        self.table.setWordWrap(False)  # one line a run: a cut id is cut, not wrapped
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        # The parameters take the width left (cut, whole in their tooltip): the table fits
        # its pane, with no sideways scroll bar hiding the last column.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(len(self.COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)  # it keeps at least the default section size
        header.setMinimumSectionSize(8)  # the stretched column may shrink to what is left
        header.setSectionResizeMode(self.RUN, QHeaderView.ResizeMode.Fixed)  # `_fit_run_column`
        self.table.setItemDelegateForColumn(self.RUN, _ElideLeft(self.table))
        self.table.viewport().installEventFilter(self)  # its resizes refit the Run column
        self.rerun = QPushButton("Rerun with these parameters")
        self.rerun.setEnabled(False)
        self.compare = QPushButton("Compare")
        self.compare.setToolTip("Select two runs (Ctrl-click) to compare their parameters, "
                                "step durations and artifacts.")
        self.compare.setEnabled(False)
        self._runs: list[RunSummary] = []  # as listed: newest first
        self._shown: list[RunSummary] = []  # in the table's order (the sort the user chose)
        self._sort: tuple[int, Qt.SortOrder] | None = None
        self._rendered_day: tuple[int, ...] = ()  # (year, month, day) of the last render
        self._new_day = QTimer(self)  # at midnight today's starts become yesterday's
        self._new_day.setSingleShot(True)
        self._new_day.timeout.connect(self._render)
        header.setSectionsClickable(True)
        header.sectionClicked.connect(self._sort_by)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        buttons = QHBoxLayout()
        buttons.addWidget(self.rerun, 1)
        buttons.addWidget(self.compare)
        layout.addLayout(buttons)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.rerun.clicked.connect(self._rerun_clicked)
        self.compare.clicked.connect(self.request_compare)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_menu)
        self.table.installEventFilter(self)  # the Delete key


    def _rerun_clicked(self) -> None:
        run = self.selected()
        if run is not None:
            self.rerun_requested.emit(run)

    @property
    def runs(self) -> list[RunSummary]:
        return list(self._runs)

    def set_runs(self, runs: list[RunSummary]) -> None:
        """Show `runs`; the same runs again are shown again only on a new day (a start
        shown as a time alone is then yesterday's, and gets its date)."""
        if runs == self._runs and time.localtime()[:3] == self._rendered_day:
            return
        self._runs = runs
        self._render()

    def _sort_by(self, column: int) -> None:
        """A header click: sort by that column; the same column again: the other way."""
        ascending = Qt.SortOrder.AscendingOrder
        order = (Qt.SortOrder.DescendingOrder if self._sort == (column, ascending)
                 else ascending)
        self._sort = (column, order)
        self.table.horizontalHeader().setSortIndicatorShown(True)
        self.table.horizontalHeader().setSortIndicator(column, order)
        self._render()

    def _in_order(self) -> list[RunSummary]:
        if self._sort is None:
            return list(self._runs)
        column, order = self._sort
        keys: dict[int, Callable[[RunSummary], Any]] = {
            0: lambda r: r.status,
            1: lambda r: (len(r.run_id), r.run_id),  # Metaflow's numeric ids: 9 before 10
            2: lambda r: (r.start, r.run_id),
            3: lambda r: r.duration or 0.0,
            4: lambda r: params_text(r.params, telling)}
        telling = telling_order(self._runs)
        known = [r for r in self._runs if column != 3 or r.duration is not None]
        unknown = [r for r in self._runs if column == 3 and r.duration is None]
        return sorted(known, key=keys[column],
                      reverse=order == Qt.SortOrder.DescendingOrder) + unknown  # last, both ways

    def _render(self) -> None:
        """Fill the table; every cell's tooltip holds its full text (and the status word)."""
        selected = {run.run_id for run in self.selected_runs()}
        runs = self._shown = self._in_order()
        telling = telling_order(runs)
        dark = self.palette().color(QPalette.ColorRole.Base).lightnessF() < 0.5
        self.table.blockSignals(True)
        self.table.clearSelection()  # rows move when runs come and go: select by run id
        self.table.setRowCount(len(runs))
        today = time.localtime()
        self._rendered_day = today[:3]
        self._new_day.start(_ms_to_midnight(today))
        for row, run in enumerate(runs):
            started = time.localtime(run.start)
            cells = [STATUS_GLYPHS.get(run.status, "?"), run.run_id,
                     started_text(started, today),
                     f"{run.duration:.2f} s" if run.duration is not None else "—",
                     params_text(run.params, telling)]
            tips = [run.status + (f": {run.damage}" if run.damage else ""),
                    f"{run.pathspec}" + ("\nPinned: kept however many runs follow."
                                         if run.pinned else ""),
                    time.strftime("%A %d %B %Y, %H:%M:%S", started),
                    cells[3], "\n".join(f"{k} = {v}" for k, v in run.params.items())]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tips[col])
                if col == 1 and run.pinned:
                    item.setIcon(pin_icon(self.palette().color(QPalette.ColorRole.Highlight)))
                    item.setData(Qt.ItemDataRole.AccessibleDescriptionRole, "pinned")
                if col == 0:
                    item.setData(Qt.ItemDataRole.AccessibleTextRole, run.status)
                    item.setForeground(status_color(_GLYPH_COLORS.get(run.status, run.status),
                                                    dark))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(row, col, item)
            if run.run_id in selected:
                self.table.selectionModel().select(
                    self.table.model().index(row, 0),
                    QItemSelectionModel.SelectionFlag.Select
                    | QItemSelectionModel.SelectionFlag.Rows)
        self.table.blockSignals(False)
        self._enable_actions()  # a selected run may be gone: its buttons with it
        self._fit_run_column()

    def _fit_run_column(self) -> None:
        """The Run column whole when the pane has room for it and for the parameters, else
        cut on its left down to RUN_COMPACT: the parameters tell runs apart, and at a
        laptop's width the whole ids left them about 20 pixels."""
        compact, whole = self._run_widths()
        others = sum(self.table.columnWidth(c) for c in range(len(self.COLUMNS))
                     if c not in (self.RUN, self.PARAMETERS))
        parameters = self.table.sizeHintForColumn(self.PARAMETERS) if self.table.rowCount() else 0
        room = self.table.viewport().width() - others - parameters
        width = max(compact, min(whole, room))
        if self.table.columnWidth(self.RUN) != width:
            self.table.setColumnWidth(self.RUN, width)

    def _run_widths(self) -> tuple[int, int]:
        """The Run column's width cut to RUN_COMPACT, and whole (its widest id)."""
        metrics = QFontMetrics(self.table.font())
        margin = 2 * (self.table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin,
                                                     None, self.table) + 1) + 2
        whole = max(self.table.sizeHintForColumn(self.RUN) if self.table.rowCount() else 0,
                    self.table.horizontalHeader().sectionSizeHint(self.RUN))
        return min(whole, metrics.horizontalAdvance(self.RUN_COMPACT) + margin), whole

    #: What the widest status, run id, start and duration usually look like.
    SAMPLES = ("✔", "1796196862756-6caecf", "12-31 23:59", "9999.99 s")

    def essential_width(self) -> int:
        """Width the pane needs to show status, run, start and duration without clipping
        (measured with the table's own font, on its rows or on typical values); the
        parameters get what the pane has left (their tooltips have them whole)."""
        metrics = QFontMetrics(self.table.font())
        margin = 2 * (self.table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin,
                                                     None, self.table) + 1) + 2
        header = self.table.horizontalHeader()
        columns = 0
        for col, sample in enumerate(self.SAMPLES):
            if col == self.RUN:  # cut to its compact form when the pane is narrow
                columns += max(header.sectionSizeHint(col),
                               metrics.horizontalAdvance(self.RUN_COMPACT) + margin)
                continue
            rows = self.table.sizeHintForColumn(col) if self.table.rowCount() else 0
            columns += max(header.sectionSizeHint(col), rows,
                           metrics.horizontalAdvance(sample) + margin)
        parameters = header.minimumSectionSize()  # what is left goes to it: the DAG first
        return (columns + parameters + 2 * self.table.frameWidth()
                + self.table.verticalScrollBar().sizeHint().width())

    #: The most width the Parameters column asks for (longer lists elide; tooltips).
    PARAMETERS_WANTED_MAX = 420

    def wanted_width(self) -> int:
        """Width that also shows the listed runs' parameters whole (up to
        PARAMETERS_WANTED_MAX): what the pane takes when the window can spare it."""
        header = self.table.horizontalHeader()
        parameters = self.table.sizeHintForColumn(4) if self.table.rowCount() else 0
        extra = min(parameters, self.PARAMETERS_WANTED_MAX) - header.minimumSectionSize()
        compact, whole = self._run_widths()
        return self.essential_width() + max(0, extra) + whole - compact

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._render()  # the status glyphs' colours follow the palette
        super().changeEvent(event)

    def selected_runs(self) -> list[RunSummary]:
        """The selected runs, in the table's order (newest first, or the sort chosen)."""
        rows = sorted(i.row() for i in self.table.selectionModel().selectedRows())
        return [self._shown[row] for row in rows if row < len(self._shown)]

    def selected(self) -> RunSummary | None:
        """The selected run when exactly one is selected (what one-run actions act on)."""
        runs = self.selected_runs()
        return runs[0] if len(runs) == 1 else None

    def compare_pair(self) -> tuple[RunSummary, RunSummary] | None:
        """The two selected runs, older first; None unless exactly two are selected."""
        runs = self.selected_runs()
        if len(runs) != 2:
            return None
        older, newer = sorted(runs, key=lambda r: (r.start, r.run_id))
        return older, newer

    def request_compare(self) -> None:
        pair = self.compare_pair()
        if pair is not None:
            self.compare_requested.emit(*pair)

    def _on_selection(self) -> None:
        run = self._enable_actions()
        if run is not None:
            self.run_selected.emit(run)

    def _enable_actions(self) -> RunSummary | None:
        """Rerun and Compare follow the selection (a user's, or one `_render` keeps with its
        signals blocked: a deleted run's row leaves it); returns the one run selected."""
        run = self.selected()
        self.rerun.setEnabled(run is not None)
        self.compare.setEnabled(self.compare_pair() is not None)
        return run

    def menu_for(self, run: RunSummary) -> QMenu:
        """A run's context menu: rerun it, copy its id or pathspec, show its folder; compare
        the two selected runs, plot an artifact across runs; pin or unpin it; delete it
        (never while it runs)."""
        menu = QMenu(self)
        rerun = menu.addAction("Rerun with These Parameters")
        rerun.setEnabled(run.record is not None)
        rerun.triggered.connect(lambda: self.rerun_requested.emit(run))
        menu.addAction("Copy Run ID").triggered.connect(lambda: copy_text(run.run_id))
        menu.addAction("Copy Pathspec").triggered.connect(lambda: copy_text(run.pathspec))
        folder = run.folder
        show = menu.addAction("Show Run Folder")
        show.setEnabled(folder is not None)
        show.triggered.connect(lambda: reveal(folder) if folder else None)
        menu.addSeparator()
        compare = menu.addAction("Compare Selected Runs")
        compare.setEnabled(self.compare_pair() is not None)
        compare.setToolTip("Select exactly two runs (Ctrl-click) to compare them.")
        compare.triggered.connect(self.request_compare)
        plot = menu.addAction("Plot Artifact Across Runs…")
        plots = run.record is not None and plots_runs_of(run.record.engine)
        plot.setEnabled(plots)
        if run.record is not None and not plots:  # its chooser was empty, unexplained
            plot.setToolTip(NOT_PLOTTED_ENGINE)
        plot.triggered.connect(lambda: self.plot_requested.emit(run))
        menu.addSeparator()
        pin = menu.addAction("Unpin run" if run.pinned else "Pin run")
        pin.triggered.connect(lambda: self.pin_requested.emit(run, not run.pinned))
        several = [r for r in self.selected_runs() if r.layout is not None]
        if len(several) > 1 and run in several:
            delete = menu.addAction(f"Delete {len(several)} runs…")
            delete.triggered.connect(lambda: self.request_delete_many(several))
        else:
            delete = menu.addAction("Delete run…")
            delete.setEnabled(run.status != RUNNING and run.layout is not None)
            delete.triggered.connect(lambda: self.request_delete(run))
        delete.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        return menu

    def _show_menu(self, pos: QPoint) -> None:
        row = self.table.indexAt(pos).row()
        if 0 <= row < len(self._shown):
            if row not in {i.row() for i in self.table.selectionModel().selectedRows()}:
                self.table.selectRow(row)  # a click outside the selection replaces it
            menu = self.menu_for(self._shown[row])
            menu.exec(self.table.viewport().mapToGlobal(pos))
            menu.deleteLater()  # one menu per right-click: never keep them all

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_run_column()
            return False
        if watched is self.table and isinstance(event, QKeyEvent) and \
                event.type() == QEvent.Type.KeyPress and \
                event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            runs = self.selected_runs()
            if len(runs) == 1:
                self.request_delete(runs[0])
            elif runs:
                self.request_delete_many(runs)
            return True
        if watched is self.table and isinstance(event, QKeyEvent) and \
                event.type() == QEvent.Type.KeyPress and \
                event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            run = self.selected()
            if run is not None and run.record is not None:
                self.rerun_requested.emit(run)  # what the button under the table does
            return True
        return super().eventFilter(watched, event)

    def request_delete_many(self, runs: list[RunSummary]) -> None:
        """Ask once, then emit `delete_requested` with every run that may go (deleted
        together, the table refreshed once); the running and pinned ones stay, and the
        question says so."""
        kept = [r for r in runs if r.status == RUNNING or r.pinned or r.layout is None]
        going = [r for r in runs if r not in kept]
        if not going:
            self._tell("None of the selected runs can be deleted: each is running or pinned "
                       "(stop it, or unpin it first).")
            return
        names = ", ".join(r.run_id for r in going[:5]) + (
            f" and {len(going) - 5} more" if len(going) > 5 else "")
        note = (f"\n\n{len(kept)} selected run(s) stay: running or pinned." if kept else "")
        if self._ask(f"Delete {len(going)} runs?", f"{names}: their folders and logs are "
                     "removed for good; their artifacts go at the next clean-up unless other "
                     "runs use them." + note):
            self.delete_requested.emit(going)

    def request_delete(self, run: RunSummary) -> None:
        """Ask, then emit `delete_requested`; a running or pinned run gets a reason instead."""
        if run.status == RUNNING:
            self._tell(f"Run {run.run_id} is running: stop it before deleting it.")
            return
        if run.pinned:
            self._tell(f"Run {run.run_id} is pinned. Unpin it first (right-click it, Unpin "
                       "run), then delete it.")
            return
        resumed = [r.run_id for r in self._runs if r.origin_run_id == run.run_id]
        note = (f"\n\nRun(s) {', '.join(resumed)} resumed from it: the logs of their reused "
                "steps are this run's, and go with it." if resumed else "")
        if self._ask(f"Delete run {run.run_id}?", "Its folder and log are removed for good; "
                     "its artifacts go at the next clean-up unless other runs use them." + note):
            self.delete_requested.emit([run])

    def _ask(self, question: str, detail: str) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, "Delete run", question,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setInformativeText(detail)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes

    def _tell(self, text: str) -> None:
        QMessageBox.information(self, "Delete run", text)


FOLLOW_RUNNING_MS = 1000  # History's check while a listed run is running
FOLLOW_IDLE_MS = 3000  # ...and otherwise (a run started from a terminal appears this fast)


class _Listing(QRunnable):
    """`list_runs` on a pool thread (a flow with thousands of runs takes a while)."""

    def __init__(self, follower: HistoryFollower, generation: int, layout: RunLayout):
        super().__init__()
        self.follower, self.generation, self.layout = follower, generation, layout

    def run(self) -> None:
        try:
            runs = list_runs(self.layout)
        except (OSError, InvalidId):
            runs = None
        self.follower.listed.emit(self.generation, self.layout, runs)


class HistoryFollower(QObject):
    """Keeps History current for runs the window did not start (`python flow.py` in a
    terminal), without the user reselecting the flow.

    The catalog's watcher skips `.flowdeck/`, so this polls the selected flow alone,
    cheaply: one `stat` of its runs folder (a new or deleted run changes its mtime) and
    one read of each run listed as running (its end, or its crash). Every 1 s while a
    listed run is running, else every 3 s. When something changed, the runs are listed
    again on a pool thread and `runs_listed` delivers them; a listing made for an older
    selection, or older than one made since (`note_listed`), is dropped.
    """

    listed = Signal(int, object, object)  # generation, RunLayout, list[RunSummary] | None
    runs_listed = Signal(object)  # list[RunSummary] for the followed flow

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.layout: RunLayout | None = None
        self._stamp: int | None = None  # the runs folder's mtime when last listed
        self._running: list[str] = []
        self._generation = 0
        self._listing = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.listed.connect(self._on_listed)

    def _folder_stamp(self) -> int | None:
        if self.layout is None:
            return None
        try:
            return os.stat(self.layout.runs_dir).st_mtime_ns
        except (OSError, InvalidId):
            return None

    def follow(self, layout: RunLayout | None) -> int | None:
        """Follow a flow's runs (None: nothing); returns the folder's stamp before a listing."""
        if layout != self.layout:
            self._generation += 1
            self.layout, self._running, self._listing = layout, [], False
        self._stamp = self._folder_stamp()
        if layout is None:
            self.timer.stop()
        return self._stamp

    def note_listed(self, runs: list[RunSummary]) -> None:
        """The window listed the followed flow's runs itself: compare against those."""
        self._generation += 1
        self._listing = False
        self._running = [r.run_id for r in runs if r.status == RUNNING]
        if self.layout is not None:
            self.timer.start(FOLLOW_RUNNING_MS if self._running else FOLLOW_IDLE_MS)

    def changed(self) -> bool:
        """Whether the runs folder or a listed running run changed since the listing."""
        if self.layout is None:
            return False
        if self._folder_stamp() != self._stamp:
            return True
        return any(read_run(self.layout, run_id).status != RUNNING for run_id in self._running)

    def check(self) -> None:
        if self.layout is None or self._listing or not self.changed():
            return
        self._stamp = self._folder_stamp()  # taken before the listing: a later change shows
        self._listing = True
        self._pool.start(_Listing(self, self._generation, self.layout))

    def _on_listed(self, generation: int, layout: RunLayout, runs: list[RunSummary] | None
                   ) -> None:
        if generation != self._generation or layout != self.layout:
            return
        self._listing = False
        if runs is None:
            return
        self.note_listed(runs)
        self.runs_listed.emit(runs)

    def stop(self) -> None:
        """Stop polling and wait for a listing under way (call before the window goes)."""
        self.timer.stop()
        self.layout = None
        self._generation += 1
        self._pool.waitForDone()


def foreign_author(layout: RunLayout, run_id: str, origin: str | None = None) -> str | None:
    """Who made the run (or the run a reused task comes from), when that is not this user.

    None for our own runs. Another user's run is one whose folder or `run.json`
    belongs to another uid, or whose record names another user (a datastore
    copied from someone else is ours on disk but still says who made it).
    """
    runs = [run_id] + ([origin.split("/", 1)[0]] if origin else [])
    for run in runs:
        try:
            paths = [layout.run_dir(run), layout.run_json(run)]
        except InvalidId as exc:
            return f"an unknown user ({exc})"
        owner = _foreign_owner(paths)
        if owner is not None:
            return owner
        record = read_run(layout, run).record
        if record is not None and record.user and record.user not in own_names():
            return record.user
    return None


def _foreign_owner(paths: Sequence[Path]) -> str | None:
    """The account owning the first of `paths` that is not ours (a missing file is skipped)."""
    if sys.platform == "win32":
        return None  # no uids: the record's user name is all there is
    for path in paths:
        try:
            uid = os.stat(path).st_uid
        except OSError:
            continue
        if uid != os.getuid():
            return _account(uid)
    return None


def _account(uid: int) -> str:
    try:
        import pwd
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def own_names() -> set[str]:
    """Every name a run of ours may record as its user ($USER, the account, $METAFLOW_USER)."""
    names = {os.environ.get(k, "") for k in ("USER", "LOGNAME", "USERNAME", "METAFLOW_USER")}
    try:
        names.add(getpass.getuser())
    except (KeyError, OSError):
        pass
    if sys.platform != "win32":
        names.add(_account(os.getuid()).split(" ", 1)[0])
    return names - {""}


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


class ErrorPane(QWidget):
    """The failed task's traceback, with a button that opens the failing line.

    The header above it says which step failed with what in at most SUMMARY_LINES lines
    (SUMMARY_COMMAND_LINES when it gives a command):
    an exception message can be thousands of characters (a KeyError listing 300
    columns), and the traceback below, which has it whole, keeps the room.
    """

    open_requested = Signal(str, int)
    SUMMARY_LINES = 2
    SUMMARY_COMMAND_LINES = 3  # a start failure's summary that says what to run

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = WrappedText(max_lines=self.SUMMARY_LINES,
                                   command_lines=self.SUMMARY_COMMAND_LINES)
        self.summary.set_message("No failure.")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.open_button = QPushButton("Open the failing line")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._open)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.text)
        self.location: tuple[str, int] | None = None

    def show_error(self, step: str, task_id: str, error: dict[str, Any] | None,
                   flow_file: str) -> None:
        if not error:
            self.clear()
            return
        self.summary.set_message(f"Step {step} (task {task_id}) failed: {error.get('type')}: "
                                 f"{error.get('message')}")
        trace = error.get("traceback") or ""
        self.text.setPlainText(trace or error.get("message", ""))
        self.location = failing_line(trace, flow_file)
        self.open_button.setEnabled(self.location is not None)

    def show_start_failure(self, failure: StartFailure) -> None:
        """A failure before the run began: its summary, traceback and the line to open."""
        self.summary.set_message(failure.summary)
        self.text.setPlainText(failure.traceback or failure.summary)
        self.location = (failure.file, failure.line) if failure.file and failure.line else None
        self.open_button.setEnabled(self.location is not None)

    def clear(self) -> None:
        self.summary.set_message("No failure.")
        self.text.clear()
        self.location = None
        self.open_button.setEnabled(False)

    def _open(self) -> None:
        if self.location:
            self.open_requested.emit(*self.location)


def failing_line(traceback_text: str, flow_file: str) -> tuple[str, int] | None:
    """The deepest frame in the flow's own file, else the deepest frame at all."""
    frames = [(m.group("file"), int(m.group("line"))) for m in _FRAME.finditer(traceback_text)]
    own = [f for f in frames if os.path.abspath(f[0]) == os.path.abspath(flow_file)]
    if own:
        return own[-1]
    return frames[-1] if frames else None

