"""The Artifacts tab: a task's artifacts on the left, the selected one's viewer on the right.

Names, types and sizes show at once (from the run's events). Everything that
unpickles runs in the artifact helper, a process of the flow's own interpreter
(`flowdeck.engines.inspect_task`): the list's one-line summaries, then one
artifact's bounded preview when the user selects it, then its whole value written
to a file on "Export…". Each call is asynchronous and killed past its time limit
(`HelperCall`), and a new selection cancels the preview under way, so a value that
hangs or is huge never freezes the window; why an artifact cannot be shown is
said in its row.

A numeric artifact (a score, a loss: `runs_plot.NUMERIC_TYPE` by its listed type) can be
plotted across the flow's runs: "Plot Across Runs…" in its row's context menu and beside
Export asks the window (`plot_requested`) to open the plot.

The list keeps the width its splitter gives it, whatever is selected: the viewer's
title (name, type, size) is elided to the room it has instead of widening its side.

Unpickling runs code chosen by whoever made the run: for a run another user made
(`foreign_author`), the pane lists names, types and sizes from the run's events and
starts no helper until asked ("Load values").
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QFont, QFontMetricsF, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from flowdeck.engines.load_limits import window_load_limits
from flowdeck.engines.preview import FORMAT_LABELS
from flowdeck.store.layout import RunLayout
from flowdeck.store.previews import task_preview
from flowdeck_desktop.control.task_helper import HelperAnswer, HelperCall, HelperRequest
from flowdeck_desktop.views.artifacts.viewers import VIEWERS, MessageViewer, Viewer, items_text
from flowdeck_desktop.views.runs_plot import NOT_PLOTTED_ENGINE, NUMERIC_TYPE, plotting_problem
from flowdeck_desktop.views.theme import status_color

NAME, TYPE, SIZE, VALUE = range(4)


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def preview_summary(preview: dict[str, Any]) -> str:
    """A one-line summary of a preview, for the list row of a value the list skipped."""
    kind = preview.get("kind")
    if kind == "table":
        return f"shape {tuple(preview.get('shape') or ())}"
    if kind == "image":
        width, height = (list(preview.get("original") or []) + ["?", "?"])[:2]
        return f"picture {width} × {height} px {preview.get('mode', '')}".rstrip()
    if kind == "plot":
        return f"{preview.get('count', 0):,} values"
    if kind == "text":
        return f"{preview.get('length', 0):,} characters: {str(preview.get('text', ''))[:200]}"
    if kind == "tree":
        return items_text((preview.get("root") or {}).get("length", 0))
    return str(preview.get("text", ""))[:200]


def _listed_row(artifact: dict[str, Any]) -> dict[str, Any]:
    """An artifact as the events list it (name, type, size), with no value read."""
    size = artifact.get("size")
    return {"name": str(artifact.get("name", "")), "type": str(artifact.get("type", "")),
            "size": size if isinstance(size, (int, float)) else 0}


class ViewerTitle(QLabel):
    """One line over the viewer: the artifact's name in bold, then its type and size,
    elided on the right to the width it is given (whole in the tooltip).

    It never asks for width: a QLabel's text sets its minimum width, so each artifact's
    title moved the splitter between the list and the viewer (174 px for a table, 249
    for a tree) as the user clicked through them.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._name = ""
        self._detail = ""

    def set_title(self, name: str, detail: str) -> None:
        """Show `name` (bold) followed by `detail`."""
        self._name, self._detail = name, detail
        self._render()

    def title(self) -> str:
        """The whole title, however much of it is shown."""
        return self._name + self._detail

    def clear(self) -> None:
        self.set_title("", "")

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._render()

    def _render(self) -> None:
        """Elide with the bold font's metrics (the wider one), so what is shown fits."""
        whole = self.title()
        bold = QFont(self.font())
        bold.setBold(True)
        shown = QFontMetricsF(bold).elidedText(whole, Qt.TextElideMode.ElideRight,
                                               max(0, self.contentsRect().width()))
        cut = len(self._name)
        self.setText(f"<b>{html.escape(shown[:cut])}</b>{html.escape(shown[cut:])}" if shown else "")
        self.setToolTip(whole if shown != whole else "")


class ArtifactsPane(QWidget):
    """Artifacts of one task: a list (name, type, size, summary or why it cannot load)
    and a viewer for the selected one, chosen by its preview's kind."""

    loaded = Signal()  # the list's summaries arrived (or failed)
    preview_shown = Signal(str, str)  # artifact name, viewer kind ("message" for a failure)
    exported = Signal(str, str)  # artifact name, the path written ("" when it failed)
    #: "Plot Across Runs…" of a numeric artifact: the run's store, the step, the name.
    plot_requested = Signal(object, str, str)  # RunLayout, step, artifact name

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        limits = window_load_limits()  # the helper stops a load a little earlier itself
        self.list_limit_s = limits.list_wait
        self.preview_limit_s = limits.preview_wait
        self.export_limit_s = limits.export_wait
        self.title = QLabel("Select a step in the graph to see its artifacts.")
        self.title.setWordWrap(True)
        self.load_button = QPushButton("Load values")
        self.load_button.setToolTip("Unpickle this run's artifacts in the flow's interpreter. "
                                    "Unpickling runs code chosen by whoever made the run.")
        self.load_button.hide()
        self.load_button.clicked.connect(self.load_values)
        self.table = QTableWidget(0, 4)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
        self.table.setHorizontalHeaderLabels(["Name", "Type", "Size", "Value"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_row_menu)

        self.viewer_title = ViewerTitle()
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Write the whole value to a file (the flow's interpreter "
                                      "writes it; the window never loads it).")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._export_clicked)
        self.plot_button = QPushButton("Plot Across Runs…")
        self.plot_button.setToolTip(self.PLOT_TIP)
        self.plot_button.setEnabled(False)
        self.plot_button.clicked.connect(lambda: self.plot_across_runs(self.selected_name()))
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stack = QStackedWidget()
        self.message = MessageViewer()
        self.stack.addWidget(self.message)
        self.viewers: dict[str, Viewer] = {}

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(self.viewer_title, 1)
        head.addWidget(self.plot_button)
        head.addWidget(self.export_button)
        right_layout.addLayout(head)
        right_layout.addWidget(self.stack, 1)
        right_layout.addWidget(self.status)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([450, 550])  # before it is shown: the proportions

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.load_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)

        self.rows: list[dict[str, Any]] = []
        self.previews: dict[str, dict[str, Any]] = {}  # name -> preview, for the task shown
        self._request: HelperRequest | None = None
        self._waiting: HelperRequest | None = None  # a foreign run's helper, not yet allowed
        self._list_call: HelperCall | None = None
        self._preview_call: HelperCall | None = None
        self.exports: list[HelperCall] = []  # under way, whatever is shown meanwhile
        self._shown: tuple[HelperRequest | None, str] | None = None  # task and name in view
        self._clear_viewer("Select an artifact to preview it.")

    # -- the task ---------------------------------------------------------------------------

    def show_task(self, interpreter: str, root: str, flow: str, run_id: str, step: str,
                  task_id: str, add_core: bool, *, made_by: str | None = None,
                  listed: Sequence[dict[str, Any]] = (), plots: bool = True,
                  engine_run_id: str | None = None) -> None:
        """Show the task's artifacts: names, types and sizes at once (`listed`, from the
        events), then values from the helper for our own runs (`made_by` None); for a run
        `made_by` another user, nothing more until the user asks for the values. `plots`:
        whether its numbers plot across runs (a run of Metaflow's engine: its values are
        in Metaflow's datastore, which the plot does not read: every point was "not
        plotted"). `engine_run_id`: the run's id in its engine's client, which the title
        names."""
        self.plots = plots
        self.plot_button.setToolTip(self.PLOT_TIP if plots else self.NOT_PLOTTED_TIP)
        keep = self.selected_name()
        request = HelperRequest(interpreter, root, flow, run_id, step, task_id, add_core,
                                engine_run_id=engine_run_id)
        self._forget_task([_listed_row(a) for a in listed if isinstance(a, dict)])
        self._request = request
        if made_by is None:
            self._start_list(request, keep)
            return
        self._waiting = request
        unlisted = "" if listed else " Its events list no artifact names."
        self.title.setText(f"Artifacts of {request.title}. This run was made by {made_by}; "
                           f"loading its values runs code from its artifacts.{unlisted}")
        self.load_button.show()
        if keep is not None:
            self.select(keep)

    def clear(self, message: str = "Select a step in the graph to see its artifacts.") -> None:
        """Show no task: another flow or run is shown now, whose tasks these were not."""
        self._forget_task([])
        self.title.setText(message)
        self.viewer_title.clear()
        self.plot_button.setEnabled(False)

    def _forget_task(self, rows: list[dict[str, Any]]) -> None:
        """Drop the task shown (its helpers, previews and selection); list `rows`."""
        self._stop_helpers()
        self._request = None
        self._shown = None
        self.previews = {}
        self._fill(rows, keep=None)
        self._clear_viewer("Select an artifact to preview it.")

    @property
    def awaiting_consent(self) -> bool:
        """True while a foreign run's values wait for "Load values"."""
        return self._waiting is not None

    def load_values(self) -> None:
        """The user's go-ahead: start the helper for the foreign run shown."""
        request, self._waiting = self._waiting, None
        self.load_button.hide()
        if request is not None:
            self._start_list(request, self.selected_name())

    def _stop_helpers(self) -> None:
        """Cancel the list and preview under way (an export the user asked for goes on)."""
        self._waiting = None
        self.load_button.hide()
        for call in (self._list_call, self._preview_call):
            if call is not None:
                call.cancel()
        self._list_call = self._preview_call = None

    def _call(self, request: HelperRequest, extra: list[str], limit_s: float,
              slot: Any) -> HelperCall:
        call = HelperCall(request, extra, limit_s, self)
        call.answered.connect(slot)
        call.start()
        return call

    def _start_list(self, request: HelperRequest, keep: str | None) -> None:
        """Ask the helper for the list's summaries; the rows fill in when it answers."""
        self.title.setText(f"Artifacts of {request.title} (loading…)")
        self._list_call = self._call(request, [], self.list_limit_s,
                                     lambda a, k=keep: self._on_list(a, k))
        if keep is not None:
            self.select(keep)
        elif self.selected_name() is not None:
            self._on_selection()

    def _on_list(self, answer: HelperAnswer, keep: str | None) -> None:
        self._list_call = None
        request = self._request
        if request is None:
            return
        data = answer.data or {"artifacts": [], "error": answer.error}
        error = data.get("error")
        self.title.setText(f"Artifacts of {request.title}" + (f" — {error}" if error else ""))
        artifacts = [a for a in data.get("artifacts") or [] if isinstance(a, dict)]
        if artifacts or not self.rows:
            known = {r["name"]: r for r in self.rows}
            for i, art in enumerate(artifacts):  # a preview that answered first said more
                before = known.get(art.get("name", ""))
                if before and before.get("load_error") and not art.get("load_error"):
                    art["load_error"] = before["load_error"]
                if art.get("name") in self.previews:
                    artifacts[i] = self._previewed(art, self.previews[art["name"]])
            self._fill(artifacts, keep=self.selected_name() or keep)
        self.loaded.emit()

    # -- the list ---------------------------------------------------------------------------

    def _fill(self, rows: list[dict[str, Any]], keep: str | None) -> None:
        """One row per artifact: name, type, size, and the summary or why it cannot load."""
        self.rows = rows
        self.table.blockSignals(True)
        self.table.clearSelection()
        self.table.setRowCount(len(rows))
        for row, art in enumerate(rows):
            self._render_row(row, art)
        self.table.blockSignals(False)
        header = self.table.horizontalHeader()
        for column, widest in ((NAME, 150), (TYPE, 140), (SIZE, 90)):
            self.table.resizeColumnToContents(column)  # then capped: the summary needs room
            header.resizeSection(column, min(header.sectionSize(column), widest))
        if keep is not None:
            self.select(keep)
        self.plot_button.setEnabled(self.plottable(self.selected_name()))

    def _render_row(self, row: int, art: dict[str, Any]) -> None:
        problem = art.get("load_error")
        summary = art.get("preview", "")
        if problem:
            summary = f"cannot load: {problem}"
        elif art.get("shape") is not None:
            summary = f"shape {tuple(art['shape'])} {art.get('dtype', '')}  {summary}"
        summary = " ".join(str(summary).split())  # one line
        if not summary and art.get("deferred"):
            summary = "(large: select it to preview)"
        dark = self.palette().color(QPalette.ColorRole.Base).lightnessF() < 0.5
        for column, text in enumerate([art["name"], art.get("type", ""),
                                       size_text(art.get("size", 0)), summary]):
            item = QTableWidgetItem(str(text))
            item.setToolTip(f"{art['name']}: {problem}" if problem
                            else str(art.get("preview", "")) or str(text))
            if column == SIZE:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if problem and column in (NAME, VALUE):
                item.setForeground(status_color("failed", dark))
            self.table.setItem(row, column, item)

    def _row_of(self, name: str) -> int:
        return next((i for i, r in enumerate(self.rows) if r.get("name") == name), -1)

    def _set_problem(self, name: str, problem: str) -> None:
        """Say in the artifact's row why it cannot be shown."""
        row = self._row_of(name)
        if row >= 0:
            self.rows[row] = {**self.rows[row], "load_error": problem}
            self.table.blockSignals(True)
            self._render_row(row, self.rows[row])
            self.table.blockSignals(False)

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self.rows):
            return str(self.rows[rows[0].row()]["name"])
        return None

    def select(self, name: str) -> bool:
        """Select an artifact by name (its preview loads); False when the task has none."""
        row = self._row_of(name)
        if row < 0:
            return False
        if self.selected_name() == name:
            self._on_selection()
        else:
            self.table.selectRow(row)
        return True

    # -- plotting across runs ----------------------------------------------------------------

    #: Whether the task shown is of a run whose numbers plot across runs (`show_task`).
    plots = True
    PLOT_TIP = "Plot this number's value in every run of the flow (History's runs)."
    NOT_PLOTTED_TIP = NOT_PLOTTED_ENGINE

    def plottable(self, name: str | None) -> bool:
        """Whether `name` is a number by its listed type (int, float, a numpy scalar...)
        of a run that plots (see `show_task`)."""
        row = self._row_of(name) if name is not None else -1
        return self.plots and row >= 0 and self._request is not None and \
            bool(NUMERIC_TYPE.match(str(self.rows[row].get("type", ""))))

    def row_menu_for(self, name: str) -> QMenu:
        """The context menu of an artifact's row: Plot Across Runs… (enabled for numbers)."""
        menu = QMenu(self)
        plot = menu.addAction("Plot Across Runs…", lambda: self.plot_across_runs(name))
        plot.setEnabled(self.plottable(name))
        if not plot.isEnabled():
            plot.setToolTip(self.NOT_PLOTTED_TIP if not self.plots else
                            "Only a number (int, float, a numpy scalar) plots across runs.")
        menu.setToolTipsVisible(True)
        return menu

    def _show_row_menu(self, pos: QPoint) -> None:
        row = self.table.rowAt(pos.y())
        if 0 <= row < len(self.rows):
            self.row_menu_for(str(self.rows[row]["name"])).exec(
                self.table.viewport().mapToGlobal(pos))

    def plot_across_runs(self, name: str | None) -> bool:
        """Ask the window to plot `name` across the flow's runs; False when it is no number."""
        request = self._request
        if name is None or request is None or not self.plottable(name):
            return False
        self.plot_requested.emit(RunLayout(Path(request.root), request.flow), request.step, name)
        return True

    # -- the viewer -------------------------------------------------------------------------

    def viewer(self, kind: str) -> Viewer:
        """The viewer of a preview kind, made on first use (the plot's pyqtgraph loads then)."""
        if kind not in self.viewers:
            viewer = VIEWERS[kind]()
            self.viewers[kind] = viewer
            self.stack.addWidget(viewer)
        return self.viewers[kind]

    @property
    def current_viewer(self) -> Viewer:
        widget = self.stack.currentWidget()
        return widget if isinstance(widget, Viewer) else self.message

    def _clear_viewer(self, text: str, failure: bool = False) -> None:
        self.message.show_message(text, failure)
        self.stack.setCurrentWidget(self.message)
        self.export_button.setEnabled(False)

    def _on_selection(self) -> None:
        name = self.selected_name()
        self.plot_button.setEnabled(self.plottable(name))
        if name is not None and self._shown == (self._request, name) and self._waiting is None:
            return  # already shown or loading (the list's answer reselects the same row)
        self._shown = None
        if self._preview_call is not None:
            self._preview_call.cancel()  # a new selection replaces the request under way
            self._preview_call = None
        self.status.clear()
        if name is None:
            self.viewer_title.clear()
            self._clear_viewer("Select an artifact to preview it.")
            return
        art = self.rows[self._row_of(name)]
        self.viewer_title.set_title(name, f" · {art.get('type', '')} · "
                                  f"{size_text(art.get('size', 0))}")
        request = self._request
        if request is None:
            return
        stored = self._stored_preview(request, name)
        if stored is not None:  # written by the task beside a large blob: no helper needed
            self._shown = (request, name)
            self._take_preview(name, stored)
            return
        if self._waiting is not None:
            self._clear_viewer("This run was made by someone else: press “Load values” to "
                               "load its artifacts in the flow's interpreter.")
            return
        self._shown = (request, name)
        problem = art.get("load_error")
        if problem and "took more than" not in str(problem) \
                and not str(problem).startswith("stopped after"):
            self._show_failure(name, str(problem))
            return
        if name in self.previews:
            self._show_preview(name, self.previews[name])
            return
        self._clear_viewer(f"Loading a preview of {name} in the flow's interpreter…")
        self._preview_call = self._call(request, ["--preview", name], self.preview_limit_s,
                                        lambda a, n=name: self._on_preview(n, a))

    @staticmethod
    def _stored_preview(request: HelperRequest, name: str) -> dict[str, Any] | None:
        """The preview its task stored for a large artifact (store/previews.py): plain JSON,
        safe to show even for someone else's run."""
        layout = RunLayout(Path(request.root), request.flow)
        return task_preview(layout, request.run_id, request.step, request.task_id, name)

    def _on_preview(self, name: str, answer: HelperAnswer) -> None:
        self._preview_call = None
        data = answer.data or {}
        preview = data.get("preview")
        if not isinstance(preview, dict):
            problem = str(data.get("error") or answer.error or "the helper sent no preview")
            self._set_problem(name, problem)
            if self.selected_name() == name:
                self._show_failure(name, problem)
            return
        self._take_preview(name, preview)

    def _take_preview(self, name: str, preview: dict[str, Any]) -> None:
        """Keep a preview, complete its row's summary and show it if still selected."""
        self.previews[name] = preview
        row = self._row_of(name)
        if row >= 0:
            self.rows[row] = self._previewed(self.rows[row], preview)
            self.table.blockSignals(True)
            self._render_row(row, self.rows[row])
            self.table.blockSignals(False)
        if self.selected_name() == name:
            self._show_preview(name, preview)

    @staticmethod
    def _previewed(art: dict[str, Any], preview: dict[str, Any]) -> dict[str, Any]:
        """A list row completed by its preview: the summary the list skipped, the type
        a Metaflow run's list does not know."""
        art = dict(art)
        art.pop("load_error", None)  # it loaded (the list's shorter limit may have said not)
        if art.get("deferred") or not art.get("preview"):
            art.update(deferred=False, preview=preview_summary(preview))
        if not art.get("type"):
            art["type"] = str(preview.get("type", ""))
        return art

    def _show_failure(self, name: str, problem: str) -> None:
        self._clear_viewer(f"{name} cannot be shown: {problem}", failure=True)
        self.preview_shown.emit(name, MessageViewer.kind)

    def _show_preview(self, name: str, preview: dict[str, Any]) -> None:
        kind = str(preview.get("kind", "repr"))
        problem = plotting_problem() if kind == "plot" else None
        if problem is not None:
            self._clear_viewer(f"{preview_summary(preview)}\n\n{problem}")
            self.export_button.setEnabled(bool(preview.get("export")))
            self.preview_shown.emit(name, MessageViewer.kind)
            return
        viewer = self.viewer(kind if kind in VIEWERS else "repr")
        viewer.show_preview(preview)
        self.stack.setCurrentWidget(viewer)
        self.export_button.setEnabled(bool(preview.get("export")))
        self.preview_shown.emit(name, viewer.kind)

    # -- export -----------------------------------------------------------------------------

    def _export_clicked(self) -> None:
        name = self.selected_name()
        preview = self.previews.get(name or "")
        if name is None or preview is None:
            return
        formats = [str(f) for f in preview.get("export") or [".pkl"]]
        filters = [f"{FORMAT_LABELS.get(f, f)} (*{f})" for f in formats]
        path, chosen = QFileDialog.getSaveFileName(self, f"Export {name}", name + formats[0],
                                                   ";;".join(filters))
        if not path:
            return
        suffix = formats[filters.index(chosen)] if chosen in filters else formats[0]
        if not any(path.lower().endswith(f) for f in formats):
            path += suffix
        self.export_to(name, path)

    def export_to(self, name: str, path: str) -> None:
        """Have the helper write `name`'s whole value to `path` (format from the suffix)."""
        request = self._request
        if request is None or self._waiting is not None:
            return
        self.status.setText(f"Exporting {name} to {path}…")
        call = self._call(request, ["--export", name, path], self.export_limit_s,
                          lambda a, n=name, p=path: self._on_export(n, p, a))
        self.exports.append(call)
        call.answered.connect(lambda _a, c=call: self.exports.remove(c))

    def _on_export(self, name: str, path: str, answer: HelperAnswer) -> None:
        data = answer.data or {}
        problem = data.get("error") or answer.error
        if problem:
            self.status.setText(f"Export of {name} failed: {problem}")
            self.exported.emit(name, "")
            return
        self.status.setText(f"Wrote {name} to {path}")
        self.exported.emit(name, path)
