"""The main window: flow list, DAG, panes and run controls, all views of the controller.

Widgets here only display and forward intent; running, watching and
rerunning live in `FlowdeckController`. The window never imports a user's
flow: graphs come from discovery, live states from the event stream,
artifacts from a helper process.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from PySide6.QtCore import QModelIndex, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QSystemTrayIcon,
    QTabWidget,
    QToolBar,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from flowdeck.engines.interpreter import check_interpreter
from flowdeck.engines.startup import StartFailure
from flowdeck.store.layout import RunLayout
from flowdeck_desktop import __version__
from flowdeck_desktop.control.controller import FlowdeckController
from flowdeck_desktop.models.catalog_model import (
    FILE_ROLE,
    KEY_ROLE,
    KIND_ROLE,
    LINE_ROLE,
    CatalogFilter,
)
from flowdeck_desktop.models.run_state import RunState, StepSummary, TaskView
from flowdeck_desktop.system.editor import open_in_editor
from flowdeck_desktop.system.resources import icon_file
from flowdeck_desktop.views.dag_view import DagScene, DagView
from flowdeck_desktop.views.log_view import LogView, compact_prefix
from flowdeck_desktop.views.panes import (
    ArtifactsPane,
    ErrorPane,
    HistoryPane,
    RunSummary,
    foreign_author,
    list_runs,
)
from flowdeck_desktop.views.params_form import ParamsForm
from flowdeck_desktop.views.timeline_view import TimelineTask, TimelineView

LOG_MEMORY_CHARS = 4_000_000  # per flow, so switching flows brings its recent output back
def app_icon() -> QIcon:
    """The icon from the repository's (or the bundle's) resources/icons folder."""
    icon = icon_file()
    return QIcon(str(icon)) if icon else QIcon()


class RecentOutput:
    """A run's latest output, bounded in characters: what the logs show when you come back."""

    def __init__(self, limit: int = LOG_MEMORY_CHARS):
        self.limit = limit
        self.chunks: deque[tuple[str, str]] = deque()
        self.size = 0

    def append(self, stream: str, text: str) -> None:
        self.chunks.append((stream, text))
        self.size += len(text)
        while self.size > self.limit and len(self.chunks) > 1:
            self.size -= len(self.chunks.popleft()[1])


class MainWindow(QMainWindow):
    """Composed by `app.py`; everything it shows comes from the controller's models."""

    selection_changed = Signal(str)

    def __init__(self, controller: FlowdeckController, settings: QSettings,
                 examples_dir: str | None = None):
        super().__init__()
        self.controller = controller
        self.settings = settings
        self.examples_dir = examples_dir
        self.selected_key: str | None = None
        self.shown_state: RunState | None = None
        self.shown_step: str | None = None
        self._logs: dict[str, RecentOutput] = {}
        self.setWindowTitle("Flowdeck")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self._build_widgets()
        self._build_actions()
        self._build_menus()
        self._connect()
        self._restore_layout()
        self.tray = self._make_tray()
        self._refresh_controls()

    # -- construction --------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.filter_box = QLineEdit(placeholderText="Filter flows")
        self.filter_box.setClearButtonEnabled(True)
        self.proxy = CatalogFilter(self)
        self.proxy.setSourceModel(self.controller.model)
        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.tree.setHeaderHidden(True)
        self.tree.setUniformRowHeights(True)
        self.empty_hint = self._empty_hint()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(4, 4, 4, 4)
        left_layout.addWidget(self.filter_box)
        left_layout.addWidget(self.tree, 1)
        left_layout.addWidget(self.empty_hint)

        self.scene = DagScene()
        self.dag = DagView(self.scene)
        self.flow_title = QLabel("Select a flow")
        self.flow_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.task_picker = QComboBox()
        self.task_picker.setMinimumContentsLength(18)
        self.task_picker.setVisible(False)
        centre_top = QWidget()
        top_layout = QVBoxLayout(centre_top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(self.flow_title, 1)
        header.addWidget(self.task_picker)
        top_layout.addLayout(header)
        top_layout.addWidget(self.dag, 1)

        self.logs = LogView()
        self.logs.line_transform = compact_prefix  # long run-id prefixes as short columns
        self.log_scope = QLabel("Output of the run")
        logs_page = QWidget()
        logs_layout = QVBoxLayout(logs_page)
        logs_layout.setContentsMargins(0, 0, 0, 0)
        self.whole_run = QPushButton("Show the whole run")
        self.whole_run.setVisible(False)
        scope_row = QHBoxLayout()
        scope_row.addWidget(self.log_scope, 1)
        scope_row.addWidget(self.whole_run)
        logs_layout.addLayout(scope_row)
        logs_layout.addWidget(self.logs, 1)
        self.timeline = TimelineView()
        self.artifacts = ArtifactsPane()
        self.error_pane = ErrorPane()
        self.bottom = QTabWidget()
        self.bottom.addTab(logs_page, "Logs")
        timeline_page = QScrollArea(widgetResizable=True)
        timeline_page.setFrameShape(QScrollArea.Shape.NoFrame)
        timeline_page.setWidget(self.timeline)  # it grows with its rows: scroll, never grow the pane
        self.bottom.addTab(timeline_page, "Timeline")
        self.bottom.addTab(self.artifacts, "Artifacts")
        self.bottom.addTab(self.error_pane, "Error")

        self.centre_split = QSplitter(Qt.Orientation.Vertical)
        self.centre_split.addWidget(centre_top)
        self.centre_split.addWidget(self.bottom)
        self.centre_split.setStretchFactor(0, 3)
        self.centre_split.setStretchFactor(1, 2)
        self.centre_split.setSizes([480, 300])

        self.params = ParamsForm()
        self.history = HistoryPane()
        self.side = QTabWidget()
        self.side.addTab(self.params, "Parameters")
        self.side.addTab(self.history, "History")

        self.main_split = QSplitter(Qt.Orientation.Horizontal)
        self.main_split.addWidget(left)
        self.main_split.addWidget(self.centre_split)
        self.main_split.addWidget(self.side)
        self.main_split.setStretchFactor(1, 1)
        self.main_split.setSizes([260, 760, 280])
        self.setCentralWidget(self.main_split)
        self.interpreter_label = QLabel()
        self.statusBar().addPermanentWidget(self.interpreter_label)

    def _empty_hint(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        label = QLabel("No folder is watched yet.")
        label.setWordWrap(True)
        layout.addWidget(label)
        if self.examples_dir:
            button = QPushButton("Open the bundled examples")
            button.clicked.connect(lambda: self.open_paths([self.examples_dir]))
            layout.addWidget(button)
        open_button = QPushButton("Open Folder…")
        open_button.clicked.connect(self.choose_folder)
        layout.addWidget(open_button)
        return box

    def _action(self, text: str, slot: Any,
                shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None,
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.act_open = self._action("&Open Folder…", self.choose_folder, QKeySequence.StandardKey.Open)
        self.act_open_file = self._action("Open Flow &File…", self.choose_file)
        self.act_watch_folder = self._action("&Watch Folder of Opened File",
                                             lambda: self.controller.watch_folder_of())
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.act_run = self._action("&Run", self.run_selected, "Ctrl+R")
        self.act_stop = self._action("&Stop", self.stop_selected, "Ctrl+.")
        self.act_resume = self._action("Resume from &Failure", self.resume_selected, "Ctrl+Shift+R")
        self.act_auto = self._action("Rerun on &Save", self._toggle_auto, checkable=True)
        self.act_interp = self._action("&Interpreter…", self.choose_interpreter)
        self.act_run_on_drop = self._action("Run Dropped Flows at Once", self._toggle_run_on_drop,
                                            checkable=True)
        self.act_run_on_drop.setChecked(self.run_on_drop())
        self.act_fit = self._action("&Fit Graph", lambda: self.dag.fit(), "Ctrl+0")
        self.act_zoom_in = self._action("Zoom &In", lambda: self.dag.zoom_by(1.25), "Ctrl+=")
        self.act_zoom_out = self._action("Zoom &Out", lambda: self.dag.zoom_by(0.8), "Ctrl+-")
        self.act_about = self._action("&About Flowdeck", self.about)
        toolbar = QToolBar("Run")
        toolbar.setObjectName("run-toolbar")
        for action in (self.act_run, self.act_stop, self.act_resume, self.act_auto):
            toolbar.addAction(action)
        self.addToolBar(toolbar)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.act_open)
        file_menu.addAction(self.act_open_file)
        file_menu.addAction(self.act_watch_folder)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        file_menu.addAction(self.act_run_on_drop)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        run_menu = bar.addMenu("&Run")
        for action in (self.act_run, self.act_stop, self.act_resume, self.act_auto,
                       self.act_interp):
            run_menu.addAction(action)
        view_menu = bar.addMenu("&View")
        for action in (self.act_fit, self.act_zoom_in, self.act_zoom_out):
            view_menu.addAction(action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.act_about)

    def _connect(self) -> None:
        c = self.controller
        self.filter_box.textChanged.connect(self.proxy.setFilterFixedString)
        self.tree.selectionModel().currentChanged.connect(self._on_tree_current)
        self.tree.doubleClicked.connect(self._on_tree_double_click)
        self.scene.step_clicked.connect(self._on_step_clicked)
        self.scene.step_double_clicked.connect(self._open_step)
        self.task_picker.currentIndexChanged.connect(self._on_task_picked)
        self.whole_run.clicked.connect(self._show_run_logs)
        self.timeline.task_clicked.connect(self._on_timeline_task)
        self.history.run_selected.connect(self._show_past_run)
        self.history.rerun_requested.connect(self._rerun_past)
        self.history.delete_requested.connect(self._delete_past)
        self.history.pin_requested.connect(self._pin_past)
        c.garbage_collected.connect(lambda _root, _report: self._refresh_history())
        self.error_pane.open_requested.connect(open_in_editor)
        self.params.changed.connect(self._save_params)
        c.run_started.connect(self._on_run_started)
        c.run_output.connect(self._on_run_output)
        c.run_ended.connect(self._on_run_ended)
        c.start_failed.connect(self._on_start_failed)
        c.message.connect(self.show_message)
        c.roots_changed.connect(self._refresh_controls)
        c.model.flow_removed.connect(self._on_flow_removed)

    # -- layout persistence --------------------------------------------------------------

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1300, 820)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        self._splitters_restored = False

    def showEvent(self, event: Any) -> None:
        """Splitter sizes are restored once the window has its real size, or Qt rescales them."""
        super().showEvent(event)
        if not self._splitters_restored:
            self._splitters_restored = True
            for name, splitter in (("main", self.main_split), ("centre", self.centre_split)):
                value = self.settings.value(f"window/split-{name}")
                if value is not None:
                    splitter.restoreState(value)

    #: False for scripted starts (screenshots, benchmarks, tests): their throwaway window
    #: size must not become the next real start's.
    remember_layout = True
    #: The flows of a selected file that defines several: Run asks which.
    file_choices: list[str] = []

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/split-main", self.main_split.saveState())
        self.settings.setValue("window/split-centre", self.centre_split.saveState())
        self.settings.sync()

    # -- opening -------------------------------------------------------------------------------

    def open_paths(self, paths: list[str], select: bool = True, then: Any = None) -> list[str]:
        """Watch paths; once listed (scans run off this thread), select and call `then(keys)`."""
        def listed(keys: list[str]) -> None:
            if keys and select:
                self.select_flow(keys[0])
            self._refresh_controls()
            if then is not None:
                then(keys)
        keys = self.controller.add_paths(paths, on_listed=listed)
        self._refresh_controls()
        return keys

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Watch a folder of flows")
        if folder:
            self.open_paths([folder])

    def choose_file(self) -> None:
        file, _ = QFileDialog.getOpenFileName(self, "Open a flow file", "", "Python (*.py)")
        if file:
            self.open_paths([file])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        value = self.settings.value("recent") or []
        for folder in ([value] if isinstance(value, str) else list(value)):
            self.recent_menu.addAction(folder, lambda f=folder: self.open_paths([f]))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    # -- drag and drop ------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        event.acceptProposedAction()
        self.handle_dropped(paths)

    def handle_dropped(self, paths: list[str]) -> list[str]:
        """Folders are watched; flow files are watched, selected and (by default) run."""
        usable = []
        for path in paths:
            if os.path.isdir(path) or path.endswith(".py"):
                usable.append(path)
            else:
                self.show_message("warning", f"{os.path.basename(path)} is not a Python file or "
                                  "a folder; drop .py flow files or folders.")
        run = lambda keys: self.run_selected() if keys and self.run_on_drop() else None  # noqa: E731
        return self.open_paths(usable, then=run) if usable else []

    def run_on_drop(self) -> bool:
        return self.settings.value("prefs/run_on_drop", True) in (True, "true")

    def _toggle_run_on_drop(self, on: bool) -> None:
        self.settings.setValue("prefs/run_on_drop", on)

    # -- selection -------------------------------------------------------------------------------

    def select_flow(self, key: str) -> None:
        index = self.proxy.mapFromSource(self.controller.model.index_of(key))
        if index.isValid():
            self.tree.setCurrentIndex(index)
            self.tree.scrollTo(index)

    def _on_tree_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        """Run and the other flow actions act on what is selected, never on an earlier flow:
        a file with one flow selects that flow; a file with several waits for Run to ask
        which; a folder selects nothing."""
        kind = current.data(KIND_ROLE)
        self.file_choices = []
        if kind == "flow":
            self._show_flow(current.data(KEY_ROLE))
        elif kind == "diagnostic" and current.parent().data(KIND_ROLE) == "flow":
            self._show_flow(current.parent().data(KEY_ROLE))
        elif kind == "file":
            keys = [e.key for e in self.controller.model.entries()
                    if e.file == current.data(KEY_ROLE)]
            if len(keys) == 1:
                self._show_flow(keys[0])
            else:
                self.file_choices = keys
                self._select_nothing()
        else:
            self._select_nothing()

    def _select_nothing(self) -> None:
        self.selected_key = None
        self._refresh_controls()

    def choose_flow(self, keys: list[str]) -> str | None:
        """Ask which of a file's flows to run."""
        names = [self.controller.model.entry(k).name for k in keys  # type: ignore[union-attr]
                 if self.controller.model.entry(k) is not None]
        name, ok = QInputDialog.getItem(self, "Run which flow?",
                                        "This file defines several flows:", names, 0, False)
        if not ok:
            return None
        return next((k for k in keys if (e := self.controller.model.entry(k)) and
                     e.name == name), None)

    def _on_tree_double_click(self, index: QModelIndex) -> None:
        file, line = index.data(FILE_ROLE), index.data(LINE_ROLE)
        if file and line:
            open_in_editor(file, int(line))

    def _show_flow(self, key: str) -> None:
        if key == self.selected_key:
            return
        self.selected_key = key
        entry = self.controller.model.entry(key)
        if entry is None:
            return
        self.params.set_parameters(entry.flow.parameters, self.controller.saved_params(key))
        self.act_auto.blockSignals(True)
        self.act_auto.setChecked(self.controller.auto_rerun(key))
        self.act_auto.blockSignals(False)
        state = self.controller.states.get(key)
        if state is None:
            state = RunState(self)
            state.reset(entry.flow.graph.as_dict())
            state.describe(entry.name, entry.file)
        self._show_state(state)
        self._replay_logs(key)
        self._refresh_history()
        self._refresh_controls()
        self.selection_changed.emit(key)

    def _on_flow_removed(self, key: str) -> None:
        if key == self.selected_key:
            self.show_message("warning", "The selected flow's file was removed or no longer "
                              "defines that flow.")
            self._refresh_controls()

    # -- showing a run ---------------------------------------------------------------------------

    def _show_state(self, state: RunState) -> None:
        old = self.shown_state
        if old is not None and old is not state:
            for signal, slot in self._state_links():
                try:
                    getattr(old, signal).disconnect(slot)
                except (RuntimeError, TypeError):
                    pass
            if old.parent() is self:  # a view of a past or never-run flow: only we hold it
                old.setParent(None)
                old.deleteLater()
        self.shown_state = state
        for signal, slot in self._state_links():
            getattr(state, signal).connect(slot)
        self.scene.set_graph(state.graph)  # a new graph fits itself; the same one keeps the user's zoom
        self._redraw_all()

    def _state_links(self) -> list[tuple[str, Any]]:
        return [("step_changed", self._on_step_changed), ("task_changed", self._on_task_changed),
                ("run_changed", self._redraw_all)]

    def _redraw_all(self) -> None:
        state = self.shown_state
        if state is None:
            return
        for step in state.steps:
            self._on_step_changed(step)
        self.timeline.set_tasks([_timeline_task(t) for t in state.tasks.values()])
        self._update_title()
        failed = state.failed_task()
        if failed is not None:
            self.error_pane.show_error(failed.step, failed.task_id, failed.error, state.file)
        else:
            self.error_pane.clear()
        self._refresh_controls()

    def _on_step_changed(self, step: str) -> None:
        if self.shown_state is None:
            return
        summary = self.shown_state.steps.get(step, StepSummary())
        self.scene.set_step_state(step, summary)

    def _on_task_changed(self, task_id: str) -> None:
        state = self.shown_state
        if state is None or task_id not in state.tasks:
            return
        task = state.tasks[task_id]
        self.timeline.update_task(_timeline_task(task))
        if task.status == "failed":
            self.error_pane.show_error(task.step, task.task_id, task.error, state.file)

    def _update_title(self) -> None:
        state = self.shown_state
        if state is None:
            return
        run_id = state.fold.metaflow_run_id or state.run_id  # the id its engine's client takes
        run = f"run {run_id} — {state.status}" if run_id else "not run yet"
        self.flow_title.setText(f"<b>{state.flow}</b> · {run}")

    def _show_past_run(self, run: RunSummary) -> None:
        if self.selected_key is None:
            return
        state = RunState(self)
        state.load_file(run.events_path)
        if not state.flow:
            entry = self.controller.model.entry(self.selected_key)
            state.describe(entry.name if entry else "", entry.file if entry else "")
        self._show_state(state)
        self._show_run_logs_of(run.run_id)

    def _delete_past(self, run: RunSummary) -> None:
        if run.layout is not None and self.controller.delete_run(run.layout, run.run_id):
            self._refresh_history()

    def _pin_past(self, run: RunSummary, on: bool) -> None:
        if run.layout is not None and self.controller.pin_run(run.layout, run.run_id, on):
            self._refresh_history()

    def _rerun_past(self, run: RunSummary) -> None:
        if self.selected_key is None or run.record is None:
            return
        self.controller.rerun_with(self.selected_key, run.record)
        entry = self.controller.model.entry(self.selected_key)
        if entry is not None:
            self.params.set_parameters(entry.flow.parameters,
                                       self.controller.saved_params(self.selected_key))

    # -- steps and tasks ---------------------------------------------------------------------

    def _on_step_clicked(self, step: str) -> None:
        self.shown_step = step
        state = self.shown_state
        tasks = state.tasks_of(step) if state else []
        self.task_picker.blockSignals(True)
        self.task_picker.clear()
        for task in tasks:
            label = f"task {task.task_id}" + (f" [{task.foreach_index}]"
                                              if task.foreach_index is not None else "")
            self.task_picker.addItem(f"{label} · {task.status}", task.task_id)
        self.task_picker.blockSignals(False)
        self.task_picker.setVisible(len(tasks) > 1)
        if tasks:
            failed = next((i for i, t in enumerate(tasks) if t.status == "failed"), 0)
            self.task_picker.setCurrentIndex(failed)
            self._show_task(tasks[failed])
        else:
            self.log_scope.setText(f"Step {step} has not run in this run.")

    def _on_task_picked(self, index: int) -> None:
        task_id = self.task_picker.itemData(index)
        state = self.shown_state
        if state is not None and task_id in state.tasks:
            self._show_task(state.tasks[task_id])

    def _on_timeline_task(self, task_id: str) -> None:
        state = self.shown_state
        if state is not None and task_id in state.tasks:
            self._show_task(state.tasks[task_id])

    def _show_task(self, task: TaskView) -> None:
        state = self.shown_state
        if state is None or not state.run_id:
            return
        entry = self.controller.model.entry(self.selected_key or "")
        # The flow file as it is now: a copied or moved project's runs are read from the
        # new place, never from the absolute path recorded when the run was made.
        file = (entry.file if entry else "") or state.file
        layout = RunLayout.for_file(file, state.flow)
        self._show_task_logs(layout, state, task)
        interpreter = self.controller.interpreter_for(file)
        check = check_interpreter(interpreter.path)
        if check.works and task.status in ("succeeded", "reused", "failed"):
            self.artifacts.show_task(interpreter.path, str(layout.root), state.flow, state.run_id,
                                     task.step, task.task_id, not check.has_flowdeck,
                                     made_by=foreign_author(layout, state.run_id, task.origin),
                                     listed=task.artifacts)
        if task.status == "failed":
            self.error_pane.show_error(task.step, task.task_id, task.error, file)

    def _show_task_logs(self, layout: RunLayout, state: RunState, task: TaskView) -> None:
        paths = layout.log_paths(state.run_id, task.step, task.task_id, task.attempt,
                                 task.origin)
        self.logs.clear()
        for stream, path in paths.items():
            try:
                with open(path, "rb") as handle:
                    self.logs.append(handle.read().decode("utf-8", "replace"), stream)
            except OSError:
                continue
        self.log_scope.setText(f"Output of {task.step}/{task.task_id} (attempt {task.attempt})")
        self.whole_run.setVisible(True)

    def _show_run_logs(self) -> None:
        self.whole_run.setVisible(False)
        if self.selected_key:
            self._replay_logs(self.selected_key)

    def _show_run_logs_of(self, run_id: str) -> None:
        self.logs.clear()
        self.log_scope.setText(f"Run {run_id}: select a step to see its output")

    def _replay_logs(self, key: str) -> None:
        self.logs.clear()
        for stream, text in self._logs.get(key, RecentOutput()).chunks:
            self.logs.append(text, stream)
        self.log_scope.setText("Output of the run")
        self.whole_run.setVisible(False)

    def _open_step(self, step: str) -> None:
        entry = self.controller.model.entry(self.selected_key or "")
        if entry is not None and step in entry.flow.graph.nodes:
            open_in_editor(entry.file, entry.flow.graph[step].line)

    # -- run controls --------------------------------------------------------------------------

    def run_selected(self) -> None:
        if self.selected_key is None and self.file_choices:
            chosen = self.choose_flow(self.file_choices)
            if chosen is None:
                return
            self.select_flow(chosen)
        key = self.selected_key
        if key is None:
            self.show_message("warning", "Select a flow to run.")
            return
        missing = self.params.missing_required()
        if missing:
            self.side.setCurrentWidget(self.params)
            self.show_message("error", f"Fill in the required parameter(s): {', '.join(missing)}.")
            return
        self._save_params()
        self.controller.start_run(key)

    def stop_selected(self) -> None:
        if self.selected_key:
            self.controller.stop_run(self.selected_key)

    def resume_selected(self) -> None:
        if self.selected_key:
            self.controller.resume_failed(self.selected_key)

    def _toggle_auto(self, on: bool) -> None:
        if self.selected_key:
            self.controller.set_auto_rerun(self.selected_key, on)

    def _save_params(self) -> None:
        if self.selected_key:
            self.controller.save_params(self.selected_key, self.params.values())

    def choose_interpreter(self) -> None:
        entry = self.controller.model.entry(self.selected_key or "")
        if entry is None:
            self.show_message("warning", "Select a flow first: the interpreter is per folder.")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Python interpreter for this folder")
        if path:
            self.controller.set_interpreter(entry.file, path)
            check = check_interpreter(path)
            if not check.works:
                self.show_message("error", check.error)
        self._refresh_controls()

    def _on_run_started(self, key: str, state: RunState) -> None:
        self._logs[key] = RecentOutput()
        if key == self.selected_key:
            self._show_state(state)
            self.logs.clear()
            self.log_scope.setText("Output of the run")
            self.whole_run.setVisible(False)
            self.bottom.setCurrentIndex(0)
        self._refresh_controls()

    def _on_run_output(self, key: str, stream: str, text: str) -> None:
        self._logs.setdefault(key, RecentOutput()).append(stream, text)
        if key == self.selected_key and not self.whole_run.isVisible():
            self.logs.append(text, stream)

    def _on_run_ended(self, key: str, status: str) -> None:
        if key == self.selected_key:
            self.logs.finish()
        self._refresh_controls()
        if key == self.selected_key:
            self._refresh_history()
            if status in ("failed", "crashed"):
                self.bottom.setCurrentWidget(self.error_pane)
        entry = self.controller.model.entry(key)
        name = entry.name if entry else key
        self.show_message("info" if status == "succeeded" else "warning",
                          f"{name} {status}.")
        if not self.isActiveWindow() and self.tray is not None:
            self.tray.showMessage("Flowdeck", f"{name} {status}.",
                                  QSystemTrayIcon.MessageIcon.Information, 5000)

    def _on_start_failed(self, key: str, failure: StartFailure) -> None:
        """The file failed before its run began: the Error tab shows why, with the line."""
        if key == self.selected_key:
            self.error_pane.show_start_failure(failure)
            self.bottom.setCurrentWidget(self.error_pane)

    def _refresh_history(self) -> None:
        entry = self.controller.model.entry(self.selected_key or "")
        if entry is None:
            self.history.set_runs([])
            return
        self.history.set_runs(list_runs(RunLayout.for_file(entry.file, entry.name)))

    def _refresh_controls(self) -> None:
        key = self.selected_key
        entry = self.controller.model.entry(key) if key else None
        running = bool(key) and self.controller.is_running(key or "")
        self.act_run.setEnabled((entry is not None and entry.ok and not running)
                                or (entry is None and bool(self.file_choices)))
        self.act_stop.setEnabled(running)
        session = self.controller.sessions.get(key or "")
        self.act_resume.setEnabled(entry is not None and not running and session is not None
                                   and session.can_resume())
        self.act_auto.setEnabled(entry is not None)
        self.empty_hint.setVisible(not self.controller.roots)
        if entry is not None:
            interp = self.controller.interpreter_for(entry.file)
            self.interpreter_label.setText(f"Python: {interp.label}")
        else:
            self.interpreter_label.setText("")

    # -- messages, about, closing -----------------------------------------------------------------

    def show_message(self, level: str, text: str) -> None:
        prefix = {"error": "Error: ", "warning": "Note: "}.get(level, "")
        self.statusBar().showMessage(prefix + text, 15000)
        self.last_message = (level, text)

    def about(self) -> None:
        QMessageBox.about(self, "About Flowdeck",
                          f"<b>Flowdeck {__version__}</b><p>Write, run and watch Metaflow-style "
                          "flows on your own machine.</p>")

    def _make_tray(self) -> QSystemTrayIcon | None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None
        tray = QSystemTrayIcon(app_icon(), self)
        tray.setToolTip("Flowdeck")
        tray.show()
        return tray

    def running_keys(self) -> list[str]:
        return [k for k in self.controller.runs if self.controller.is_running(k)]

    def closeEvent(self, event: QCloseEvent) -> None:
        running = self.running_keys()
        if running and not self.confirm_stop(len(running)):
            event.ignore()
            return
        if self.remember_layout:
            self.save_layout()
        self.controller.shutdown()
        event.accept()

    def confirm_stop(self, count: int) -> bool:
        box = QMessageBox(QMessageBox.Icon.Question, "Runs in progress",
                          f"{count} run(s) are still going. Stop them and quit?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return box.exec() == QMessageBox.StandardButton.Yes



def _timeline_task(task: TaskView) -> TimelineTask:
    return TimelineTask(task_id=task.task_id, step=task.step, start=task.start, end=task.end,
                        status=task.status, attempt=task.attempt)

