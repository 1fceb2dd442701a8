"""The main window: flow list, DAG, panes and run controls, all views of the controller.

Widgets here only display and forward intent; running, watching and
rerunning live in `FlowdeckController`. The window never imports a user's
flow: graphs come from discovery, live states from the event stream,
artifacts from a helper process.
"""

from __future__ import annotations

import functools
import html
import os
from collections import deque
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPoint,
    QSettings,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QFontMetrics,
    QGuiApplication,
    QIcon,
    QKeySequence,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStyle,
    QSystemTrayIcon,
    QTabWidget,
    QToolBar,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from flowdeck.discovery.catalog import CatalogEntry, key_file
from flowdeck.engines.interpreter import SOURCE_NAMES, check_interpreter
from flowdeck.engines.startup import StartFailure
from flowdeck.store.layout import InvalidId, RunLayout
from flowdeck.store.status import REUSED, RUNNING, SUCCEEDED, TASK_RESULTS_FINAL
from flowdeck_desktop import __version__
from flowdeck_desktop.control.controller import (
    FILE_ERRORS_SAY,
    FlowdeckController,
    ParamChange,
    path_refusal,
)
from flowdeck_desktop.control.run_options import ENGINE_LABELS
from flowdeck_desktop.models.catalog_model import (
    FILE_ROLE,
    KEY_ROLE,
    KIND_ROLE,
    LINE_ROLE,
    ROOTS_ROLE,
    CatalogFilter,
)
from flowdeck_desktop.models.run_state import RunState, StepSummary, TaskView
from flowdeck_desktop.system.editor import open_in_editor
from flowdeck_desktop.system.resources import icon_file
from flowdeck_desktop.views.artifacts import ArtifactsPane
from flowdeck_desktop.views.banner import MessageBanner, Notice, NotificationsView
from flowdeck_desktop.views.cards_pane import CardsPane
from flowdeck_desktop.views.catalog_delegate import CatalogDelegate
from flowdeck_desktop.views.compare_view import CompareView
from flowdeck_desktop.views.dag_layout import node_table
from flowdeck_desktop.views.dag_view import DagScene, DagView, StepItem
from flowdeck_desktop.views.interpreter_dialog import InterpreterDialog
from flowdeck_desktop.views.log_view import MARKER_STREAM, LogView, compact_prefix
from flowdeck_desktop.views.panes import (
    ErrorPane,
    HistoryFollower,
    HistoryPane,
    RunSummary,
    copy_text,
    failing_line,
    foreign_author,
    list_runs,
    reveal,
)
from flowdeck_desktop.views.params_form import ParamsForm
from flowdeck_desktop.views.placement_bar import PlacementBar
from flowdeck_desktop.views.runs_plot import (
    ArtifactChooser,
    RunsPlotWindow,
    plots_runs_of,
    plotting_problem,
)
from flowdeck_desktop.views.runs_plot import plot_across_runs as open_runs_plot
from flowdeck_desktop.views.theme import palette_is_dark, status_color
from flowdeck_desktop.views.timeline_view import TimelineTask, TimelineView

#: The banner of a selected flow whose file went (taken down if it reappears, moved).
REMOVED_WARNING = "The selected flow's file was removed or no longer defines that flow."
#: How long a selected flow's row may be gone before the window says so: both ends of a
#: rename share the watcher's quiet period (0.15 s), so the new name comes well before.
REMOVED_SAY_AFTER_MS = 1500
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
        self.dropped = 0  # characters let go from the start, said when the output is shown

    def append(self, stream: str, text: str) -> None:
        self.chunks.append((stream, text))
        self.size += len(text)
        while self.size > self.limit and len(self.chunks) > 1:
            gone = len(self.chunks.popleft()[1])
            self.size -= gone
            self.dropped += gone


class MainWindow(QMainWindow):
    """Composed by `app.py`; everything it shows comes from the controller's models."""

    selection_changed = Signal(str)
    message_shown = Signal(str, str)  # level, text: every message `show_message` shows

    def __init__(self, controller: FlowdeckController, settings: QSettings,
                 examples_dir: str | None = None):
        super().__init__()
        self.controller = controller
        self.settings = settings
        self.examples_dir = examples_dir
        self.selected_key: str | None = None
        #: (flow key, run id): the run whose files are being fetched from the flow's object
        #: store to be shown (`_fetch_if_elsewhere`).
        self._awaited_run: tuple[str, str] | None = None
        self.shown_state: RunState | None = None
        self.shown_step: str | None = None
        self._removing_selected: str | None = None  # the selected flow, while its row goes
        self._orphaned: str | None = None  # the selected flow whose row went
        self._orphaned_name = ""  # its flow's name, to know it listed again elsewhere
        self._moved_while_running: dict[str, str] = {}  # old key -> new, followed at its end
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
        self.tree.setItemDelegate(CatalogDelegate(self.tree))
        self.tree.setHeaderHidden(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setIndentation(16)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # rows keep both ends; tooltips
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
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
        # A long title (a long flow name, a note on the file's errors) wraps onto another
        # line: it never widens the DAG's pane (the flow list shrank) nor is cut unmarked.
        self.flow_title.setWordWrap(True)
        self.flow_title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
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
        self.banner = MessageBanner()  # the selected flow's message that needs action
        top_layout.addWidget(self.banner)
        top_layout.addWidget(self.dag, 1)
        self.dag.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

        self.logs = LogView()
        self.logs.trim_hint = "Each step's whole output is under it: click the step."
        self.logs.line_transform = compact_prefix  # long run-id prefixes as short columns
        self.log_scope = QLabel("Output of the run")
        logs_page = QWidget()
        logs_layout = QVBoxLayout(logs_page)
        logs_layout.setContentsMargins(0, 0, 0, 0)
        self.whole_run = QPushButton("Show the whole run")
        self.whole_run.setVisible(False)
        #: The task whose log files the log shows: (run id, task id, attempt).
        self._logs_task: tuple[str, str, int] | None = None
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
        self.cards = CardsPane()  # the selected task's @card reports, live while it runs
        self.bottom.addTab(self.cards, "Cards")
        self.bottom.addTab(self.error_pane, "Error")

        self.centre_split = QSplitter(Qt.Orientation.Vertical)
        self.centre_split.addWidget(centre_top)
        self.centre_split.addWidget(self.bottom)
        self.centre_split.setStretchFactor(0, 3)
        self.centre_split.setStretchFactor(1, 2)
        self.centre_split.setSizes([480, 300])
        # The DAG gets the height its graph wants, the tabs under it the rest, until the
        # user drags the handle: from then on (and at later starts) their sizes stay.
        self._centre_by_user = bool(self.settings.value("window/centre-by-user", False, bool))
        self.centre_split.splitterMoved.connect(self._centre_moved)

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
        # Which engine runs the selected flow; a choice for a file written for Metaflow.
        self.engine_label = QLabel(" Engine ")
        self.engine_box = QComboBox()
        for engine, label in ENGINE_LABELS.items():
            self.engine_box.addItem(label, engine)
        self.engine_box.setEnabled(False)
        self.engine_label.setBuddy(self.engine_box)
        self.placement_bar = PlacementBar()  # Run on (this machine / Dask) and Store
        self.bell = QToolButton()
        self.bell.setAutoRaise(True)
        self.bell.setToolTip("Notifications: every recent message, in full")
        self.statusBar().addPermanentWidget(self.bell)
        self.statusBar().addPermanentWidget(self.interpreter_label)
        self.notifications = NotificationsView()
        self.notifications_dock = QDockWidget("Notifications", self)
        self.notifications_dock.setObjectName("notifications-dock")
        self.notifications_dock.setWidget(self.notifications)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.notifications_dock)
        self.notifications_dock.hide()
        self._banners: dict[str | None, Notice] = {}  # flow key (None: no flow) -> its notice
        self._drop_notices: list[Notice] = []  # what the latest drop put in the banner
        self._drops = 0  # drops so far
        self._drop_listening = 0  # the drop whose messages are still due (0: none)
        self._update_bell()
        self.history_follower = HistoryFollower(self)
        self._fitted_sizes: list[int] | None = None  # the pane sizes we chose, until changed

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
                checkable: bool = False, tip: str = "") -> QAction:
        """A window action; its tooltip (toolbar buttons) says what it does and its
        shortcut, so the keys can be learnt where the buttons are."""
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip((tip or text.replace("&", "").rstrip("…"))
                          + (f" ({keys})" if keys else ""))
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
        self.act_run = self._action("&Run", self.run_selected, "Ctrl+R",
                                    tip="Run the selected flow with the parameters of the side pane")
        self.act_stop = self._action("&Stop", self.stop_selected, "Ctrl+.",
                                     tip="Stop the selected flow's run: its tasks end as "
                                     "cancelled")
        self.act_resume = self._action("Resume from &Failure", self.resume_selected, "Ctrl+Shift+R",
                                       tip="Run the last failed run again from its failed "
                                       "step, reusing the steps that succeeded")
        self.act_auto = self._action("Rerun on &Save", self._toggle_auto, checkable=True,
                                     tip="Run the flow again each time its file is saved, "
                                     "reusing the steps the save did not change")
        self.act_interp = self._action("&Interpreter…", self.choose_interpreter)
        self.act_run_on_drop = self._action("Run Dropped Flows at Once", self._toggle_run_on_drop,
                                            checkable=True)
        self.act_run_on_drop.setChecked(self.run_on_drop())
        self.act_fit = self._action("&Fit Graph", lambda: self.dag.fit(), "Ctrl+0")
        self.act_zoom_in = self._action("Zoom &In", lambda: self.dag.zoom_by(1.25), "Ctrl+=")
        self.act_zoom_out = self._action("Zoom &Out", lambda: self.dag.zoom_by(0.8), "Ctrl+-")
        self.act_about = self._action("&About Flowdeck", self.about)
        self.act_run_options = self._action("Run &Options…", self.edit_run_options)
        self.act_open_editor = self._action("Open in &Editor", self.open_selected_in_editor,
                                            "Ctrl+E")
        self.act_reveal = self._action("Show in File &Manager", self.reveal_selected)
        self.act_copy_run_id = self._action("Copy Run &ID", self.copy_run_id)
        self.act_copy_pathspec = self._action("Copy &Pathspec", self.copy_pathspec)
        self.act_notifications = self.notifications_dock.toggleViewAction()
        self.act_notifications.setText("&Notifications")
        self.act_notifications.setShortcut(QKeySequence("Ctrl+Shift+N"))
        self.addAction(self.act_notifications)
        self.act_clear_notifications = self._action("&Clear Notifications",
                                                    self.clear_notifications)
        toolbar = QToolBar("Run")
        toolbar.setObjectName("run-toolbar")
        for action in (self.act_run, self.act_stop, self.act_resume, self.act_auto):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addWidget(self.engine_label)
        toolbar.addWidget(self.engine_box)
        toolbar.addSeparator()
        toolbar.addWidget(self.placement_bar)
        self.addToolBar(toolbar)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.act_open)
        file_menu.addAction(self.act_open_file)
        file_menu.addAction(self.act_watch_folder)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.unwatch_menu = file_menu.addMenu("Stop &Watching")
        self.unwatch_menu.aboutToShow.connect(self._fill_unwatch)
        file_menu.addSeparator()
        file_menu.addAction(self.act_run_on_drop)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        run_menu = bar.addMenu("&Run")
        for action in (self.act_run, self.act_stop, self.act_resume, self.act_auto,
                       self.act_run_options, self.act_interp):
            run_menu.addAction(action)
        flow_menu = bar.addMenu("F&low")
        for entry in (self.act_open_editor, self.act_reveal, None, self.act_copy_run_id,
                      self.act_copy_pathspec, None, self.act_run_options, self.act_interp):
            if entry is None:
                flow_menu.addSeparator()
            else:
                flow_menu.addAction(entry)
        view_menu = bar.addMenu("&View")
        for action in (self.act_fit, self.act_zoom_in, self.act_zoom_out):
            view_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.act_notifications)
        view_menu.addAction(self.act_clear_notifications)
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
        self.history.compare_requested.connect(self.compare_runs)
        self.history.plot_requested.connect(self._plot_from_history)
        c.garbage_collected.connect(lambda _root, _report: self._refresh_history())
        self.error_pane.open_requested.connect(self.open_source)
        self.params.changed.connect(self._save_params)
        c.run_started.connect(self._on_run_started)
        c.run_output.connect(self._on_run_output)
        c.run_ended.connect(self._on_run_ended)
        c.outside_run_ended.connect(self._on_outside_run_ended)
        c.shared_runs_fetched.connect(self._on_shared_runs_fetched)
        c.start_failed.connect(self._on_start_failed)
        c.message.connect(self.show_message)
        c.roots_changed.connect(self._refresh_controls)
        c.model.flow_removing.connect(self._on_flow_removing)
        c.model.flow_removed.connect(self._on_flow_removed)
        c.model.flow_added.connect(self._on_flow_added)
        c.session_moved.connect(self._on_session_moved)
        c.model.flow_changed.connect(self._on_flow_changed)
        self.tree.customContextMenuRequested.connect(self._show_tree_menu)
        self.dag.customContextMenuRequested.connect(self._show_dag_menu)
        self.history_follower.runs_listed.connect(self._on_runs_listed)
        self.notifications.flow_clicked.connect(self.select_flow)
        self.notifications.changed.connect(self._update_bell)
        self.bell.clicked.connect(self.show_notifications)
        self.banner.dismissed.connect(self._on_banner_dismissed)
        self.params.options_changed.connect(self._save_run_options)
        self.engine_box.activated.connect(self._on_engine_chosen)
        self.placement_bar.changed.connect(self._on_placement_chosen)
        self.placement_bar.problem.connect(
            lambda text: self.show_message("error", text, flow=self.selected_key))
        self.artifacts.plot_requested.connect(self.plot_across_runs)
        self.proxy.rowsInserted.connect(self._expand_listed)
        self.proxy.rowsInserted.connect(lambda *_: self._schedule_fit())
        self.tree.expanded.connect(lambda _index: self._schedule_fit())
        self.main_split.splitterMoved.connect(lambda *_: self._stop_fitting())
        self.scene.graph_changed.connect(self._schedule_centre_fit)
        self.banner.installEventFilter(self)  # a banner shown or grown takes the DAG's room

    # -- layout persistence --------------------------------------------------------------

    #: The first-start size on a screen that has room for it...
    FIRST_SIZE = QSize(1300, 820)
    #: ...else at most this share of the screen's available area, each way.
    SCREEN_SHARE = 0.9

    def _restore_layout(self) -> None:
        """The remembered geometry, else a first-start size that fits the screen.

        Qt's restoreGeometry already brings a geometry remembered on a bigger monitor
        within this screen (tests/test_window_fits_screen.py keeps watching that)."""
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(self._first_size())
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        self._splitters_restored = False

    def _first_size(self) -> QSize:
        """1300x820 where it fits, else at most 90% of the screen the window opens on: a
        fixed size cut off the right column and the first-start buttons at 1280x720."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return self.FIRST_SIZE
        area = screen.availableGeometry()  # without panels and docks
        return self.FIRST_SIZE.boundedTo(QSize(int(area.width() * self.SCREEN_SHARE),
                                               int(area.height() * self.SCREEN_SHARE)))

    def showEvent(self, event: Any) -> None:
        """Splitter sizes are restored once the window has its real size, or Qt rescales them."""
        super().showEvent(event)
        if not self._splitters_restored:
            self._splitters_restored = True
            for name, splitter in (("main", self.main_split), ("centre", self.centre_split)):
                value = self.settings.value(f"window/split-{name}")
                if value is not None and (name == "main" or self._centre_by_user):
                    splitter.restoreState(value)
                    if name == "main":
                        self._stop_fitting()  # the user's own sizes, from last time
            self._schedule_fit()
            self._schedule_centre_fit()

    # -- pane sizes: nothing clipped at the default size --------------------------------

    _fitting = True  # size the side panes to their contents until the user sizes them
    _fit_pending = False
    FIT_SHARE_LEFT = 0.30  # at most this share of the width for the flow list...
    FIT_SHARE_SIDE = 0.34  # ...and for the side panes; past it, rows elide (tooltips)
    FIT_DAG_KEEPS = 900  # the DAG keeps this much before the side panes grow past their need
    #: ... or what its graph takes at natural size, if less, but never below this: the logs
    #: under the DAG share its width.
    FIT_CENTRE_KEEPS = 560

    def _stop_fitting(self) -> None:
        self._fitting = False

    FIT_TOP_MIN = 200  # the DAG's least height when sized to its graph...
    FIT_TOP_SHARE = 0.62  # ...and its most, as a share of the centre's height

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        """The banner over the graph was shown, hidden or resized: the DAG's pane is sized
        again (a banner that came after the fit cut the graph's last step off)."""
        if watched is self.banner and event.type() in (
                QEvent.Type.Show, QEvent.Type.Hide, QEvent.Type.Resize):
            self._schedule_centre_fit()
        return super().eventFilter(watched, event)

    def _centre_moved(self, *_: object) -> None:
        self._centre_by_user = True

    def _schedule_centre_fit(self) -> None:
        if not self._centre_by_user:
            QTimer.singleShot(0, self._fit_centre)

    def _fit_centre(self, again: int = 1) -> None:
        """The DAG's pane as tall as its graph wants (between FIT_TOP_MIN and
        FIT_TOP_SHARE of the centre), the tabs under it the rest; only while the sizes are
        ours. Measured at the present width: the graph's zoom follows the width. Measured
        `again` once the layout has placed everything (a banner's height settles late)."""
        sizes = self.centre_split.sizes()
        total = sum(sizes)
        if self._centre_by_user or not self.isVisible() or total <= 0 or len(sizes) != 2:
            return
        wanted = self.dag.wanted_height()
        if wanted <= 0:
            return
        chrome = sizes[0] - self.dag.height()  # the title row and a banner above the graph
        top = max(self.FIT_TOP_MIN, min(chrome + wanted, int(total * self.FIT_TOP_SHARE)))
        if top != sizes[0]:
            self.centre_split.setSizes([top, total - top])
            if again:
                QTimer.singleShot(0, lambda: self._fit_centre(again - 1))

    def _schedule_fit(self) -> None:
        if self._fitting and not self._fit_pending:
            self._fit_pending = True
            QTimer.singleShot(0, self._fit_panes)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._schedule_fit()
        if event.oldSize().width() != event.size().width():
            self._refresh_controls()  # the interpreter's label gets the room there is

    def _expand_listed(self, parent: QModelIndex, first: int, last: int) -> None:
        """Open each folder and file row as it is listed, so every flow and its mark (last
        run failed, running) shows without a click; a flow's diagnostics stay folded under
        it, and a row the user folds stays folded until it is listed anew."""
        pending = [self.proxy.index(row, 0, parent) for row in range(first, last + 1)]
        while pending:
            index = pending.pop()
            if index.data(KIND_ROLE) in ("folder", "file"):
                self.tree.expand(index)
                pending += [self.proxy.index(row, 0, index)
                            for row in range(self.proxy.rowCount(index))]

    def tree_width_needed(self) -> int:
        """Width of the flow list that shows every file and flow row whole (folders and
        diagnostics may elide: their tooltips have the full text)."""
        metrics = QFontMetrics(self.tree.font())
        indent = self.tree.indentation()
        need = 0
        pending = [(QModelIndex(), 0)]
        while pending:
            parent, depth = pending.pop()
            for row in range(self.proxy.rowCount(parent)):
                index = self.proxy.index(row, 0, parent)
                if depth > 0 and index.data(KIND_ROLE) in ("file", "flow"):
                    need = max(need, (depth + 1) * indent
                               + metrics.horizontalAdvance(str(index.data() or "")) + 16)
                if self.tree.isExpanded(index):
                    pending.append((index, depth + 1))
        scrolls = self.tree.verticalScrollBar().maximum() > 0
        return need + 2 * self.tree.frameWidth() + 8 + \
            (self.tree.verticalScrollBar().sizeHint().width() if scrolls else 0)

    def _room_past_dag(self, total: int, left: int, side: int) -> int:
        """What the window has beyond the flow list, the side panes and the DAG's keep:
        the room History's parameters may take. The DAG keeps FIT_DAG_KEEPS, or the width
        its graph takes at natural size when that is less (a chain of four steps needs a
        third of it), never below FIT_CENTRE_KEEPS."""
        keeps = max(self.FIT_CENTRE_KEEPS, min(self.FIT_DAG_KEEPS, self.dag.natural_width()))
        return total - left - side - keeps

    def side_width_needed(self) -> int:
        return max(self.history.essential_width(),
                   self.params.minimumSizeHint().width()) + self._side_frame()

    def side_width_wanted(self) -> int:
        """The side panes' width with History's parameters shown whole."""
        return max(self.history.wanted_width(),
                   self.params.minimumSizeHint().width()) + self._side_frame()

    def _side_frame(self) -> int:
        return 2 * (self.side.style().pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth,
                                                  None, self.side) + 1)

    def _fit_panes(self) -> None:
        """Give the flow list and the side panes the width their contents need (each at
        most its share of the window), the DAG the rest; only while the sizes are ours."""
        self._fit_pending = False
        sizes = self.main_split.sizes()
        total = sum(sizes)
        if not self._fitting or not self.isVisible() or total <= 0 or len(sizes) != 3:
            return
        if self._fitted_sizes is not None and \
                (sizes[0], sizes[2]) != (self._fitted_sizes[0], self._fitted_sizes[2]):
            self._stop_fitting()  # someone sized the panes: theirs from now on
            return
        left = min(max(self.tree_width_needed(), 220), int(total * self.FIT_SHARE_LEFT))
        most = int(total * self.FIT_SHARE_SIDE)
        side = min(max(self.side_width_needed(), 260), most)
        spare = self._room_past_dag(total, left, side)  # a wide window: History's
        if spare > 0:                                   # parameters get the rest they want
            side = min(most, side + min(spare, max(0, self.side_width_wanted() - side)))
        wanted = [left, total - left - side, side]
        if wanted != sizes:
            self.main_split.setSizes(wanted)
        self._fitted_sizes = self.main_split.sizes()

    #: False for scripted starts (screenshots, benchmarks, tests): their throwaway window
    #: size must not become the next real start's.
    remember_layout = True
    #: The flows of a selected file that defines several: Run asks which.
    file_choices: list[str] = []
    #: (level, text) of the newest message shown; empty until the first.
    last_message: tuple[str, str] = ("", "")

    def save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/split-main", self.main_split.saveState())
        self.settings.setValue("window/split-centre", self.centre_split.saveState())
        self.settings.setValue("window/centre-by-user", self._centre_by_user)
        self.settings.sync()

    # -- opening -------------------------------------------------------------------------------

    def open_paths(self, paths: list[str], select: bool = True, then: Any = None,
                   restoring: bool = False) -> list[str]:
        """Watch paths; once listed (scans run off this thread), select and call `then(keys)`.
        `restoring`: the last session's, kept even when a file lists no flow now."""
        def listed(keys: list[str]) -> None:
            if keys and select:
                self.select_flow(keys[0])
            self._refresh_controls()
            if then is not None:
                then(keys)
        keys = self.controller.add_paths(paths, on_listed=listed, restoring=restoring)
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
        """Folders are watched; flow files are watched, selected and (by default) run.
        The drop's messages take the previous drop's place in the banner."""
        drop = self._start_drop()
        usable = []
        for path in paths:
            refusal = path_refusal(path)
            if refusal is None:
                usable.append(path)
            else:
                self.show_message(*refusal)

        def listed(keys: list[str]) -> None:
            self._end_drop(drop)
            if keys and self.run_on_drop():
                self.run_selected()
        if not usable:
            self._end_drop(drop)
            return []
        return self.open_paths(usable, then=listed)

    def _start_drop(self) -> int:
        """Take the previous drop's messages out of the banner (Notifications keep them):
        they told of files the user has moved on from. Messages that need action and
        concern no one flow, from now until this drop's files are listed, are this
        drop's. Returns the drop's number."""
        stale, self._drop_notices = self._drop_notices, []
        for key in [k for k, n in self._banners.items() if any(n is s for s in stale)]:
            del self._banners[key]
        self._show_banner_for(self.selected_key)
        self._drops += 1
        self._drop_listening = self._drops
        return self._drops

    def _end_drop(self, drop: int) -> None:
        """A drop's files are listed: later messages are not its (unless a newer drop's)."""
        if self._drop_listening == drop:
            self._drop_listening = 0

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
        if self._removing_selected is not None:
            return  # the selected flow's row is being removed: no other flow takes its place
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
                self._select_nothing(*_file_row_title(current, len(keys)))
        elif kind == "diagnostic":  # of a file that defines no flow it can read
            file = str(current.parent().data(KEY_ROLE) or "")
            text = str(current.data() or "")
            self._select_nothing(f"<b>{html.escape(os.path.basename(file))}</b> cannot be read: "
                                 f"{html.escape(text)}", f"{file}\n{current.data(Qt.ItemDataRole.ToolTipRole) or text}")
        else:
            self._select_nothing()

    def _select_nothing(self, title: str = "Select a flow in the list",
                        tip: str = "") -> None:
        """No one flow is selected (a folder, a file of several flows or of none): nothing
        of the flow shown before stays on screen; the header says what is selected."""
        self.selected_key = None
        self.statusBar().clearMessage()
        empty = RunState(self)
        empty.reset(None)
        self._show_state(empty)
        self.flow_title.setText(title)
        self.flow_title.setToolTip(tip)
        self.params.set_parameters([])
        self.logs.clear()
        self._refresh_history()
        self._show_placement(None)
        self._show_banner_for(None)
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
            self.open_source(file, int(line))

    def _show_flow(self, key: str, again: bool = False) -> None:
        """Show `key`'s flow; `again`: even if it is the one shown (what it shows is gone)."""
        if key == self.selected_key and not again:
            return
        self.selected_key = key
        self.statusBar().clearMessage()  # it told of the flow shown before
        entry = self.controller.model.entry(key)
        if entry is None:
            return
        self.controller.warm_interpreter(entry.file)
        self.params.set_parameters(entry.flow.parameters, self.controller.saved_params(key))
        self.params.set_run_options(self.controller.run_options(key))
        self._show_engine(key)
        self.act_auto.blockSignals(True)
        self.act_auto.setChecked(self.controller.auto_rerun(key))
        self.act_auto.blockSignals(False)
        runs = self._refresh_history(deleted_gives_way=False)  # the shown run is another's
        self._show_state(self._state_to_show(key, entry, runs[0] if runs else None))
        self._replay_logs(key)
        self._schedule_fit()  # its graph's width and its runs' parameters share the room
        self._say_runs_problem(key)
        self._show_banner_for(key)
        if self.controller.fetch_shared_runs(key):  # an object store's runs: read again
            self._update_title()
        self._fetch_if_elsewhere(key, runs[0] if runs else None)
        self._refresh_controls()
        self.selection_changed.emit(key)

    def _fetch_if_elsewhere(self, key: str, run: RunSummary | None) -> bool:
        """A run listed from the flow's object store whose files are not here (made on
        another machine, or from another folder): fetch them, and show the run when they
        arrive (`_on_shared_runs_fetched`); True when a fetch is under way."""
        if run is None or run.status == RUNNING or os.path.exists(run.events_path) or \
                self.controller.store_url(key) is None:  # a run going on publishes its
            return False  # events when it ends: followed as any run started elsewhere
        self._awaited_run = (key, run.run_id)
        self.controller.fetch_shared_runs(key, run.run_id)
        self.statusBar().showMessage(f"Reading run {run.run_id} from "
                                     f"{self.controller.store_url(key)}…", 10000)
        return True

    def _on_shared_runs_fetched(self, key: str, run_id: str) -> None:
        """Runs, or one run's files, arrived from the selected flow's object store: History,
        the title, the marks and Resume from Failure follow; a flow shown as never run
        shows its newest run, and a run waited for is shown."""
        entry = self._selected_entry()
        if key != self.selected_key or entry is None:
            return
        if not run_id:
            runs = self._refresh_history()
            state = self.shown_state
            if runs and (state is None or not state.run_id) and \
                    not self.controller.is_running(key):
                self._show_state(self._state_to_show(key, entry, runs[0]))
                self._replay_logs(key)
                self._fetch_if_elsewhere(key, runs[0])
        elif self._awaited_run == (key, run_id):
            self._awaited_run = None
            self.statusBar().clearMessage()
            run = next((r for r in self._refresh_history() if r.run_id == run_id), None)
            if run is not None and os.path.exists(run.events_path):
                self._show_past_run(run)
        self._update_title()
        self._refresh_controls()

    def _say_runs_problem(self, key: str) -> None:
        """A flow whose runs its store cannot keep (`runs_problem`) says why in its banner
        when shown (once while the banner says it: not a notification per selection)."""
        problem = self.controller.runs_problem(key)
        notice = self._banners.get(key)
        if problem is not None and (notice is None or notice.text != problem):
            self.show_message("error", problem, flow=key)

    def _drop_resolved_banner(self, key: str, file_ok: bool) -> None:
        """A save that leaves the flow without errors resolves its banner about the file's
        errors (it has errors and cannot run, it was saved with errors): the file it was
        about is gone. Any other message stays (bad run options, a run's failure)."""
        notice = self._banners.get(key)
        if file_ok and notice is not None and any(say in notice.text for say in FILE_ERRORS_SAY):
            del self._banners[key]
            if key == self.selected_key:
                self._show_banner_for(key)

    def _unrun_state(self, entry: CatalogEntry) -> RunState:
        """The view of a flow as its file is now, before any run: every step pending."""
        state = RunState(self)
        state.reset(entry.flow.graph.as_dict(unreachable=True))
        state.describe(entry.name, entry.file)
        return state

    def _state_to_show(self, key: str, entry: CatalogEntry,
                       newest: RunSummary | None) -> RunState:
        """What the window shows of a flow: its run going on here; else `newest`, its
        newest run by start as History lists it first (this session's own, one going on
        elsewhere followed live, or one from before, by its outcome, not "not run yet");
        else its steps."""
        own = self.controller.states.get(key)
        if own is not None and (self.controller.is_running(key) or
                                self.controller.session(key).start_failure is not None):
            return own  # going on, or refused before it began (it has no run on disk)
        if newest is None:
            return own or self._unrun_state(entry)
        if own is not None and own.run_id == newest.run_id:
            return own
        if newest.status == RUNNING:  # started elsewhere, going on: followed live
            followed = self.controller.follow_outside_run(key, newest.run_id)
            if followed is not None:
                return followed
        if not os.path.exists(newest.events_path):
            return own or self._unrun_state(entry)
        return self._past_state(newest.events_path, newest.status, entry.name, entry.file)

    def _past_state(self, events_path: str, status: str, flow: str, file: str) -> RunState:
        """A past run's view from its events; one that ended without saying so (its process
        killed) shows the status its record gives (crashed), not "running", ended when it
        was last known alive (not now: its last task did not run until it was looked at)."""
        state = RunState(self)
        state.load_file(events_path)
        if not state.flow:
            state.describe(flow, file)
        if state.status == RUNNING and status != RUNNING:
            state.mark_ended(status, state.fold.last_sign_of_life(events_path))
        return state

    def _on_flow_removing(self, key: str) -> None:
        """The selected flow's row goes: the view would make another row current and show
        that flow; the window keeps showing this one (moved, it follows: _on_flow_added)."""
        if key == self.selected_key:
            self._removing_selected = key
            entry = self.controller.model.entry(key)
            self._orphaned_name = entry.name if entry is not None else ""

    def _on_flow_removed(self, key: str) -> None:
        if key == self._removing_selected:
            self._removing_selected = None
            self.tree.selectionModel().blockSignals(True)
            self.tree.setCurrentIndex(QModelIndex())  # no other flow looks selected
            self.tree.selectionModel().blockSignals(False)
            self._orphaned = key
        if key == self.selected_key:
            # Said once it is not a rename: the watcher may tell the removal and the new
            # name apart, and Notifications kept a false warning of every rename.
            QTimer.singleShot(REMOVED_SAY_AFTER_MS, self, lambda k=key: self._say_removed(k))
            self._refresh_controls()

    def _say_removed(self, key: str) -> None:
        if key == self.selected_key and self._orphaned == key and \
                self.controller.model.entry(key) is None and not self._watched_folder_gone(key):
            self.show_message("warning", REMOVED_WARNING, flow=key)  # else the watcher says why

    def _watched_folder_gone(self, key: str) -> bool:
        """Whether the flow's file lay in a watched folder that no longer exists (moved,
        deleted, unmounted): its flows went with it, which the watcher says itself."""
        file = key_file(key)
        return any(file.startswith(root.rstrip(os.sep) + os.sep) and not os.path.exists(root)
                   for root in self.controller.roots)

    def _on_flow_added(self, new: str) -> None:
        """A flow of the selected flow's name listed anew while the selected one's row is
        gone: its file was renamed or moved (the watcher may tell the removal and the
        addition apart): select it where it is now. Renamed in its folder, a run going on
        moved with it (`session_moved`); moved to another folder (another store), the run
        stays shown live under the old file and the selection follows when it ends."""
        old = self._orphaned
        entry = self.controller.model.entry(new)
        if old is None or entry is None or entry.name != self._orphaned_name:
            return
        self._orphaned = None
        self._dismiss_removal_warning(old)
        if self.controller.is_running(old):
            self._moved_while_running[old] = new
            self._show_banner_for(old)
            return
        self.select_flow(new)

    def _on_session_moved(self, old: str, new: str) -> None:
        """A running flow's file was renamed: its run, output and messages answer to the new
        key, and shown, the window shows it there, live."""
        if old in self._logs:
            self._logs[new] = self._logs.pop(old)
        self._dismiss_removal_warning(old)
        self._moved_while_running.pop(old, None)
        if self.selected_key == old or self._orphaned == old:
            self._orphaned = None
            self.select_flow(new)

    def _dismiss_removal_warning(self, key: str) -> None:
        notice = self._banners.get(key)
        if notice is not None and notice.text == REMOVED_WARNING:
            del self._banners[key]

    def _on_flow_changed(self, key: str) -> None:
        """The selected flow's file was saved: the form gets its parameters, and the DAG its
        new graph (unless a run is shown live, whose graph it keeps); a file with errors
        leaves the DAG as it was, and the header says it is from before the save."""
        entry = self.controller.model.entry(key)
        if entry is None:
            return
        self._drop_resolved_banner(key, entry.ok)
        if key != self.selected_key:
            return
        if not self.params.shows(entry.flow.parameters):
            self.params.set_parameters(entry.flow.parameters, self.controller.saved_params(key))
        state = self.shown_state
        graph = entry.flow.graph.as_dict(unreachable=True)
        if entry.ok and not self.controller.is_running(key) and \
                (state is None or state.graph != graph):
            self._show_state(self._unrun_state(entry))
        self._update_title()
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
        if old is not state:  # the step and task picked were the other run's
            self.dag.follow_run()  # its running steps and its failure, not the view the user set before
            self.shown_step = None
            self.task_picker.blockSignals(True)
            self.task_picker.clear()
            self.task_picker.blockSignals(False)
            self.task_picker.setVisible(False)
            self.artifacts.clear()  # they showed that task: another flow's, or another run's
            self.cards.clear()
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
        if self.scene.set_step_state(step, summary) and self.shown_state.status == RUNNING:
            self._update_title()  # its count of steps done

    def _on_task_changed(self, task_id: str) -> None:
        state = self.shown_state
        if state is None or task_id not in state.tasks:
            return
        task = state.tasks[task_id]
        self.timeline.update_task(_timeline_task(task))
        if task.status == "failed":
            self.error_pane.show_error(task.step, task.task_id, task.error, state.file)
        self._follow_task_logs(state, task)

    def _follow_task_logs(self, state: RunState, task: TaskView) -> None:
        """The task whose log is shown changed: its next attempt's log replaces it as the
        attempt starts; once it ends, its log stops being followed."""
        shown = self._logs_task
        if shown is None or self.whole_run.isHidden() or shown[:2] != (state.run_id,
                                                                         task.task_id):
            return
        if task.status == RUNNING and task.attempt != shown[2]:
            self._show_task(task)
        elif task.status != RUNNING:
            self.logs.stop_following()

    def _update_title(self) -> None:
        state = self.shown_state
        if state is None or self.selected_key is None:  # no flow: _select_nothing's title
            return
        run_id = state.engine_run_id
        run = f"run {run_id} — {state.status}" if run_id else "not run yet"
        url = self.controller.store_url(self.selected_key)
        if not run_id and url and self.controller.fetching_shared_runs(self.selected_key):
            run = f"reading its runs from {url}…"
        if run_id and state.status == RUNNING:
            run += steps_done_note(state)
        if self.controller.is_outside_state(state):
            run += " (started outside this window)"
        if self.controller.session(self.selected_key).did_not_start(state):
            run = "the run did not start (see the message above)"
        warning, tip = self._file_errors_note(state)
        self.flow_title.setText(f"<b>{html.escape(state.flow)}</b> · {run}{warning}")
        self.flow_title.setToolTip(tip)

    def _file_errors_note(self, state: RunState) -> tuple[str, str]:
        """The header's note when the shown flow's file now has errors, and its tooltip:
        the first error in full. A save with errors leaves the DAG with the graph from
        before them, and the note says so; a file that had errors when it was first read
        shows its own graph, and the note gives the first error itself (it said "from
        before them" of a graph there was no before to)."""
        entry = self._selected_entry()
        if entry is None or entry.ok or entry.is_base or entry.name != state.flow:
            return "", ""
        first = next((d for d in entry.diagnostics if d.severity == "error"), None)
        where = f" (line {first.line})" if first else ""
        color = status_color("failed", palette_is_dark(self.palette())).name()
        if state.graph != entry.flow.graph.as_dict(unreachable=True):
            what = "this graph is from before them"
        else:
            what = html.escape(first.message) if first else "see the list"
        return (f" · <span style='color:{color}'>⚠ the file has errors{where}: {what}</span>",
                first.format() if first else "")

    def _show_past_run(self, run: RunSummary) -> None:
        if self.selected_key is None:
            return
        entry = self.controller.model.entry(self.selected_key)
        if self._fetch_if_elsewhere(self.selected_key, run):
            return  # shown when its files arrive
        followed = self.controller.follow_outside_run(self.selected_key, run.run_id) \
            if run.status == RUNNING else None
        state = followed or self._past_state(run.events_path, run.status,
                                             entry.name if entry else "",
                                             entry.file if entry else "")
        self._show_state(state)
        self._show_run_logs_of(run.run_id)

    def _on_runs_listed(self, runs: list[RunSummary]) -> None:
        """History saw the runs change on disk (a run from a terminal, or of a flow of the
        same name in another file): the list's marks and Resume follow."""
        if runs == self.history.runs:
            return
        before = self.history.runs
        self.history.set_runs(runs)
        entry = self._selected_entry()
        if entry is not None:
            self.controller.forget_last_runs(entry.name)
            if not self._leave_deleted_run(entry.key, before, runs):
                self._show_new_run(entry, before, runs)
        self._refresh_controls()

    def _leave_deleted_run(self, key: str, before: list[RunSummary],
                           runs: list[RunSummary]) -> bool:
        """The run shown was deleted outside the window (`flowdeck gc`, another window, a
        file manager): show the flow's newest run instead, and say so; True if it was."""
        state = self.shown_state
        if state is None or not state.run_id or self.controller.is_running(key) or \
                self.controller.is_outside_state(state):
            return False
        if state.run_id not in {r.run_id for r in before} or \
                state.run_id in {r.run_id for r in runs}:
            return False
        gone = state.run_id
        self.controller.forget_deleted_runs({gone})  # this session's own finished run too
        self._show_flow(key, again=True)
        self.show_message("info", f"Run {gone} was deleted outside this window; the window "
                          "shows the flow's newest run now.", flow=key)
        return True

    def _show_new_run(self, entry: CatalogEntry, before: list[RunSummary],
                      runs: list[RunSummary]) -> None:
        """A run of the shown flow started elsewhere (a terminal), while the window shows
        the flow's newest run, or none: show the new one (live while it goes; one that
        ended before it was seen, by its outcome). A run picked in History, or one of
        this window's going on, stays shown."""
        newest = runs[0] if runs else None
        state = self.shown_state
        if newest is None or state is None or self.controller.is_running(entry.key) or \
                newest.run_id in {r.run_id for r in before} or state.run_id == newest.run_id:
            return
        if state.run_id and (not before or state.run_id != before[0].run_id):
            return
        self._show_state(self._state_to_show(entry.key, entry, newest))
        self._show_run_logs_of(self.shown_state.run_id if self.shown_state else newest.run_id)

    def _on_outside_run_ended(self, key: str, status: str) -> None:
        """A followed run started elsewhere ended: History, the controls and the title
        catch up, and the window says how it ended."""
        if key == self.selected_key:
            self._refresh_history()
            self._update_title()
        self._refresh_controls()
        entry = self.controller.model.entry(key)
        outside = self.controller.outside.get(key)
        state = outside.findChild(RunState) if outside is not None else None
        text = run_ended_text(entry.name if entry else key, status, state)
        self.show_message("info" if status in ("succeeded", "cancelled") else "warning",
                          f"{text[:-1]} (a run started outside this window).", flow=key)

    def _delete_past(self, runs: list[RunSummary]) -> None:
        """Delete History's confirmed runs, then refresh once (a refresh per run re-listed
        and redrew the table 100 times for 100 runs: 18 s of a frozen window)."""
        deleted: set[str] = set()
        for layout in {run.layout for run in runs if run.layout is not None}:
            ids = [run.run_id for run in runs if run.layout == layout]
            deleted.update(self.controller.delete_runs(layout, ids))
        if not deleted:
            return
        # Deleted here: the controller said so, and the run shown gives way below (the
        # refresh's own giving way says the run was deleted outside this window).
        self._refresh_history(deleted_gives_way=False)
        shown = self.shown_state
        key = self.selected_key
        if key and shown is not None and shown.run_id in deleted and \
                not self.controller.is_running(key):  # the run shown is gone: the newest
            self._show_flow(key, again=True)
        self._refresh_controls()

    def _pin_past(self, run: RunSummary, on: bool) -> None:
        if run.layout is not None and self.controller.pin_run(run.layout, run.run_id, on):
            self._refresh_history()

    def compare_runs(self, older: RunSummary, newer: RunSummary) -> CompareView | None:
        """History's Compare: the two runs side by side, in a window of their own."""
        if older.layout is None:
            return None
        view = CompareView(older.layout, older.run_id, newer.run_id, self)
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        view.show()
        return view

    def _plot_from_history(self, run: RunSummary) -> None:
        """History's "Plot Artifact Across Runs…": choose from the run's artifacts, plot."""
        if run.layout is None:
            return
        chooser = ArtifactChooser(run.layout, run.run_id, self)
        if chooser.exec() == ArtifactChooser.DialogCode.Accepted and chooser.chosen():
            step, name = chooser.chosen() or ("", "")
            self.plot_across_runs(run.layout, step, name)

    def plot_across_runs(self, layout: RunLayout, step: str, name: str
                         ) -> RunsPlotWindow | None:
        """Plot `step`'s artifact `name` across the runs in History (the slot the Artifacts
        pane and History call); the values load in the selected flow's interpreter."""
        entry = self.controller.model.entry(self.selected_key or "")
        if entry is None:
            return None
        problem = plotting_problem()
        if problem is not None:
            self.show_message("warning", f"Cannot plot {step}.{name}: {problem}")
            return None
        interpreter = self.controller.interpreter_for(entry.file)
        check = check_interpreter(interpreter.path)
        if not check.works:
            self.show_message("warning", f"Cannot plot {step}.{name}: {check.error}")
            return None
        listed = [r for r in self.history.runs if r.layout == layout] or list_runs(layout)
        runs = [r for r in listed if r.record is not None]
        return open_runs_plot(self, interpreter.path, not check.has_flowdeck, layout, step,
                              name, runs, lambda run_id: foreign_author(layout, run_id))

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
        if tasks and all(t.foreach_index is not None for t in tasks):  # in item order
            tasks = sorted(tasks, key=lambda t: t.foreach_index or 0)
        self.task_picker.blockSignals(True)
        self.task_picker.clear()
        for task in tasks:
            label = f"task {task.task_id}" + (f" [{task.foreach_index}]"
                                              if task.foreach_index is not None else "")
            self.task_picker.addItem(f"{label} · {task.status}", task.task_id)
        self.task_picker.blockSignals(False)
        self.task_picker.setVisible(len(tasks) > 1)
        if tasks:  # what needs a look: a failure, else a task this run ran (not reused)
            first = next((i for i, t in enumerate(tasks) if t.status == "failed"),
                         next((i for i, t in enumerate(tasks) if t.status != "reused"), 0))
            self.task_picker.setCurrentIndex(first)
            self._show_task(tasks[first])
        else:
            self.log_scope.setText(f"Step {step} has not run in this run.")
            self.cards.clear(f"Step {step} has not run in this run.")

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
        run = self.controller.runs.get(self.selected_key or "")
        if run is not None and run.spec.run_id == state.run_id:  # the store it was run in
            layout = RunLayout(Path(run.spec.root), state.flow)
        else:  # a past run: the store the flow's runs go to (History lists that one)
            layout = self.controller.layout_for(self.selected_key or "") or \
                RunLayout.for_file(file, state.flow)
        self._show_task_logs(layout, state, task)
        self.cards.show_task(layout, state.run_id, task.step, task.task_id, task.origin)
        interpreter = self.controller.interpreter_for(file)
        check = check_interpreter(interpreter.path)
        if state.fold.engine == "metaflow" and check.works and task.status in TASK_RESULTS_FINAL:
            self.cards.fetch_metaflow_cards(interpreter.path, layout, state.flow, state.run_id,
                                            task.step, task.task_id, not check.has_flowdeck)
        if check.works and task.status in TASK_RESULTS_FINAL:
            self.artifacts.show_task(interpreter.path, str(layout.root), state.flow, state.run_id,
                                     task.step, task.task_id, not check.has_flowdeck,
                                     made_by=foreign_author(layout, state.run_id, task.origin),
                                     listed=task.artifacts, engine_run_id=state.engine_run_id,
                                     plots=plots_runs_of(state.fold.engine or "flowdeck"))
        if task.status == "failed":
            self.error_pane.show_error(task.step, task.task_id, task.error, file)

    def _show_task_logs(self, layout: RunLayout, state: RunState, task: TaskView) -> None:
        paths = layout.log_paths(state.run_id, task.step, task.task_id, task.attempt,
                                 task.origin)
        # the tail, read off the GUI thread; earlier pages on demand; a running task's as
        # it grows (until _on_task_changed sees it end)
        self.logs.show_files(paths, live=task.status == RUNNING)
        self._logs_task = (state.run_id, task.task_id, task.attempt)
        self.log_scope.setText(f"Output of {task.step}/{task.task_id} (attempt {task.attempt})")
        self.whole_run.setVisible(True)

    def _show_run_logs(self) -> None:
        self.whole_run.setVisible(False)
        if self.selected_key:
            self._replay_logs(self.selected_key)

    def _show_run_logs_of(self, run_id: str) -> None:
        """The log's line for a whole run, naming it by the id its engine's client opens."""
        self.logs.clear()
        state = self.shown_state
        shown = state.engine_run_id if state is not None and state.run_id == run_id else run_id
        if state is not None and state.run_id == run_id and \
                self.controller.is_outside_state(state):  # its output goes to its terminal
            self.log_scope.setText(f"Run {shown} was started outside this window: select a "
                                   "step to see its output as it is written")
            return
        self.log_scope.setText(f"Run {shown}: select a step to see its output")

    def _replay_logs(self, key: str) -> None:
        """The output this window saw of the flow's run; for a run made before (another
        session, a terminal), whose whole output was never seen, where to find it."""
        state = self.shown_state
        seen = self._logs.get(key)
        if (seen is None or not seen.chunks) and state is not None and state.run_id \
                and state is not self.controller.states.get(key):
            self._show_run_logs_of(state.run_id)
            self.whole_run.setVisible(False)
            return
        self.logs.clear()
        kept = seen or RecentOutput()
        if kept.dropped:
            self.logs.append(f"… {kept.dropped:,} characters of earlier output not kept here: "
                             "click a step for its whole output …\n", MARKER_STREAM)
        for stream, text in kept.chunks:
            self.logs.append(text, stream)
        self.log_scope.setText("Output of the run")
        self.whole_run.setVisible(False)

    def _open_step(self, step: str) -> None:
        entry = self.controller.model.entry(self.selected_key or "")
        if entry is not None and step in entry.flow.graph.nodes:
            node = entry.flow.graph[step]  # a base class's step is in its own module
            self.open_source(node.source_file or entry.file, node.line)

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
            self.show_message("error", f"Fill in the required parameter(s): {', '.join(missing)}.",
                              flow=key)
            return
        problems = self.params.problems()
        if problems:
            self.side.setCurrentWidget(self.params)
            self.show_message("error", "Fix the parameter value(s) before running: "
                              f"{'; '.join(problems)}.", flow=key)
            return
        self._save_params()
        self.controller.start_run(key)

    def stop_selected(self) -> None:
        if self.selected_key:
            self.controller.stop_run(self.selected_key, self.shown_state)
            self._refresh_controls()  # a run followed from outside: Stop is sent once

    def resume_selected(self) -> None:
        """Resume from Failure: a resume keeps the run's parameter values, so when the form
        holds others the user chooses which they meant (they were silently ignored)."""
        key = self.selected_key
        if not key:
            return
        self._save_params()
        changes = self.controller.resume_param_changes(key)
        choice = self.ask_resume_params(changes) if changes else "resume"
        if choice == "resume":
            self.controller.resume_failed(key)
        elif choice == "run":
            self.controller.start_run(key)

    def ask_resume_params(self, changes: list[ParamChange]) -> str:
        """"resume" (the run's values), "run" (a new run with the form's) or "cancel"."""
        listed = "\n".join(f"  {c.name}: {c.run_value} in the run, {c.form_value} in the form"
                            for c in changes)
        box = QMessageBox(QMessageBox.Icon.Question, "Resume keeps the run's parameters",
                          "A resume continues the failed run with its own parameter values; "
                          f"the form has others:\n\n{listed}", QMessageBox.StandardButton.NoButton,
                          self)
        resume = box.addButton("Resume with the Run's Values", QMessageBox.ButtonRole.AcceptRole)
        run = box.addButton("Run Again with the Form's", QMessageBox.ButtonRole.ActionRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(resume)
        box.exec()
        clicked = box.clickedButton()
        return "resume" if clicked is resume else "run" if clicked is run else "cancel"

    def _toggle_auto(self, on: bool) -> None:
        if self.selected_key:
            self.controller.set_auto_rerun(self.selected_key, on)

    def _save_params(self) -> None:
        if self.selected_key:
            self.controller.save_params(self.selected_key, self.params.values())

    def _save_run_options(self) -> None:
        if self.selected_key:
            self.controller.save_run_options(self.selected_key, self.params.run_options())

    def _show_engine(self, key: str | None) -> None:
        """Show the engine the flow's runs use; a choice only for a file written for Metaflow."""
        entry = self.controller.model.entry(key) if key else None
        engine = self.controller.run_engine(key) if entry is not None and key else "flowdeck"
        self.engine_box.setCurrentIndex(max(0, self.engine_box.findData(engine)))
        choice = entry is not None and entry.engine == "metaflow"
        self.engine_box.setEnabled(choice)
        tip = ("This file is written for Metaflow. Metaflow (bridge): Metaflow's own engine "
               "runs it (cards, cloud decorators, Metaflow's client). Flowdeck (fast): "
               "Flowdeck's engine runs the unchanged file, its `metaflow` imports resolving "
               "to Flowdeck in that run only. Used by Run, Resume and Rerun on Save; "
               "remembered per flow.") if choice else (
               "Flowdeck's engine runs this flow (the engine is a choice for files written "
               "for Metaflow).")
        self.engine_box.setToolTip(tip)
        self.engine_label.setToolTip(tip)
        self._show_placement(key)

    def _show_placement(self, key: str | None) -> None:
        """Run on and Store of the flow; disabled (saying why) where the engine ignores them."""
        entry = self.controller.model.entry(key) if key else None
        if key is None or entry is None:
            self.placement_bar.set_placement(self.placement_bar.placement(), usable=False)
            return
        engine = self.controller.run_engine(key)
        self.placement_bar.set_placement(self.controller.placement(key),
                                         usable=self.controller.placement_used(key),
                                         engine_label=ENGINE_LABELS.get(engine, engine))

    def _on_placement_chosen(self, placement: Any) -> None:
        if self.selected_key:
            self.controller.set_placement(self.selected_key, placement)
            self._refresh_history()  # another store lists other runs

    def _on_engine_chosen(self, _index: int) -> None:
        key = self.selected_key
        entry = self.controller.model.entry(key) if key else None
        if key is None or entry is None or entry.engine != "metaflow":
            return
        engine = str(self.engine_box.currentData())
        self.controller.set_run_engine(key, engine)
        self._show_placement(key)
        self.show_message("info", f"{entry.name} will run on {ENGINE_LABELS[engine]}.",
                          flow=key)

    def edit_run_options(self) -> None:
        """Run > Run Options…: the field in the Parameters pane, focused."""
        if self.selected_key is None:
            self.show_message("warning", "Select a flow first: run options are per flow.")
            return
        self.side.setCurrentWidget(self.params)
        self.params.options.setFocus()
        self.params.options.selectAll()

    interpreter_dialog: InterpreterDialog | None = None

    def choose_interpreter(self) -> InterpreterDialog | None:
        """Run > Interpreter…: the current choice and why, the skipped venvs, the
        interpreters found, Browse… and Automatic. Applied when the dialog is accepted."""
        entry = self.controller.model.entry(self.selected_key or "")
        if entry is None:
            self.show_message("warning", "Select a flow first: the interpreter is per folder.")
            return None
        c = self.controller
        dialog = InterpreterDialog(os.path.dirname(entry.file), c.interpreter_for(entry.file),
                                   c.automatic_interpreter(entry.file),
                                   c.configured_interpreter(entry.file),
                                   c.search_root(entry.file), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda f=entry.file, d=dialog: self.set_interpreter(f, d.chosen()))
        self.interpreter_dialog = dialog
        dialog.destroyed.connect(lambda *_: setattr(self, "interpreter_dialog", None))
        dialog.open()
        return dialog

    def set_interpreter(self, file: str, path: str | None) -> None:
        """Use `path` for the file's folder (None: automatic again), and say if it is unusable."""
        self.controller.set_interpreter(file, path)
        if path:
            check = check_interpreter(path)
            if not check.works:
                key = self.selected_key if self.selected_key else None
                self.show_message("error", check.error, flow=key)
        self._refresh_controls()

    # -- menus: the flow list, History and the DAG -------------------------------------

    def _selected_entry(self) -> Any:
        return self.controller.model.entry(self.selected_key or "")

    def open_source(self, file: str, line: int) -> None:
        """Open `file` at `line` in the user's editor; what stood in the way (a terminal
        editor with no terminal emulator to run in) goes to Notifications, so an editor
        that cannot show the line is never a click that did nothing."""
        note = open_in_editor(file, line)
        if note:
            self.show_message("warning", note, flow=None)

    def open_selected_in_editor(self) -> None:
        entry = self._selected_entry()
        if entry is not None:
            self.open_source(entry.file, entry.line)

    def reveal_selected(self) -> None:
        entry = self._selected_entry()
        if entry is not None:
            reveal(entry.file)

    def shown_pathspec(self, step: str | None = None, task_id: str | None = None) -> str | None:
        """`Flow/run_id[/step[/task]]` of the run shown (None when it has not run)."""
        state = self.shown_state
        run_id = state.engine_run_id if state is not None else None
        if state is None or not run_id:
            return None
        return "/".join([state.flow, run_id, *([step] if step else []),
                         *([task_id] if step and task_id else [])])

    def copy_run_id(self) -> None:
        spec = self.shown_pathspec()
        if spec is None:
            self.show_message("info", "The flow shown has not run yet: no run id to copy.")
            return
        copy_text(spec.split("/")[1])

    def copy_pathspec(self) -> None:
        spec = self.shown_pathspec(self.shown_step, self.task_picker.currentData()
                                   if self.task_picker.isVisible() else None)
        if spec is None:
            self.show_message("info", "The flow shown has not run yet: no pathspec to copy.")
            return
        copy_text(spec)

    def _fill_unwatch(self) -> None:
        self.unwatch_menu.clear()
        for root in self.controller.roots:
            self.unwatch_menu.addAction(root).triggered.connect(
                functools.partial(self.controller.remove_root, root))
        if self.unwatch_menu.isEmpty():
            self.unwatch_menu.addAction("(nothing is watched)").setEnabled(False)

    def tree_menu_for(self, index: QModelIndex) -> QMenu:
        """The flow list's context menu for a folder, file, flow or diagnostic row."""
        menu = QMenu(self)
        kind = index.data(KIND_ROLE)
        key = str(index.data(KEY_ROLE) or "")
        file = index.data(FILE_ROLE)
        if kind == "flow":
            self.select_flow(key)
            for action in (self.act_run, self.act_run_options, self.act_interp, self.act_auto):
                menu.addAction(action)
            menu.addSeparator()
        if kind in ("flow", "file", "diagnostic") and file:
            line = int(index.data(LINE_ROLE) or 1)
            menu.addAction("Open in Editor", lambda: self.open_source(file, line))
            menu.addAction("Show in File Manager", lambda: reveal(file))
            menu.addAction("Copy File Path", lambda: copy_text(file))
        entry = self.controller.model.entry(key) if kind == "flow" else None
        if entry is not None:
            name = entry.name
            menu.addAction("Copy Flow Name", lambda: copy_text(name))
        if kind == "folder":
            menu.addAction("Show in File Manager", lambda: reveal(key))
            menu.addAction("Copy Path", lambda: copy_text(key))
            menu.addSeparator()
            roots = list(index.data(ROOTS_ROLE) or [key])
            stop = menu.addAction("Stop Watching This Folder" if roots == [key] else
                                  "Stop Watching This File" if len(roots) == 1 else
                                  f"Stop Watching These {len(roots)} Files")
            stop.triggered.connect(lambda: self._stop_watching(roots))
        return menu

    def _stop_watching(self, roots: list[str]) -> None:
        for root in roots:
            self.controller.remove_root(root)

    def _show_tree_menu(self, pos: QPoint) -> None:
        index = self.tree.indexAt(pos)
        if not index.isValid():
            return
        menu = self.tree_menu_for(index)
        menu.exec(self.tree.viewport().mapToGlobal(pos))
        menu.deleteLater()

    def dag_menu_for(self, step: str | None) -> QMenu:
        """The DAG's context menu: a step's pathspec and line, the run's id and pathspec."""
        menu = QMenu(self)
        entry = self._selected_entry()
        if step is not None:
            spec = self.shown_pathspec(step)
            copy_step = menu.addAction(f"Copy Pathspec of {step}")
            copy_step.setEnabled(spec is not None)
            copy_step.triggered.connect(lambda: copy_text(spec or ""))
            tasks = self.shown_state.tasks_of(step) if self.shown_state else []
            if len(tasks) == 1:
                task_spec = self.shown_pathspec(step, tasks[0].task_id)
                menu.addAction("Copy Task Pathspec", lambda: copy_text(task_spec or ""))
            opened = menu.addAction("Open Step in Editor", lambda: self._open_step(step))
            opened.setEnabled(entry is not None and step in entry.flow.graph.nodes)
            menu.addSeparator()
        run_spec = self.shown_pathspec()
        for text, value in (("Copy Run ID", run_spec.split("/")[1] if run_spec else None),
                            ("Copy Run Pathspec", run_spec)):
            action = menu.addAction(text)
            action.setEnabled(value is not None)
            action.triggered.connect(lambda _=False, v=value: copy_text(v or ""))
        return menu

    def _show_dag_menu(self, pos: QPoint) -> None:
        item = next((i for i in self.dag.items(pos) if isinstance(i, StepItem)), None)
        menu = self.dag_menu_for(item.name if item is not None else None)
        menu.exec(self.dag.viewport().mapToGlobal(pos))
        menu.deleteLater()

    def _on_run_started(self, key: str, state: RunState) -> None:
        self._logs[key] = RecentOutput()
        if self._banners.pop(key, None) is not None and key == self.selected_key:
            self._show_banner_for(key)  # a new run: the last one's message is history
        if key == self.selected_key:
            self._show_state(state)
            self.logs.clear()
            self.log_scope.setText("Output of the run")
            self.whole_run.setVisible(False)
            if self.bottom.currentWidget() in (self.error_pane, self.cards):
                self.bottom.setCurrentIndex(0)  # the last run's: the new run's Logs instead
        self._refresh_controls()  # (Logs, Timeline, Artifacts stay: the Gantt chart is live)

    def _on_run_output(self, key: str, stream: str, text: str) -> None:
        self._logs.setdefault(key, RecentOutput()).append(stream, text)
        if key == self.selected_key and not self.whole_run.isVisible():
            self.logs.append(text, stream)

    def _on_run_ended(self, key: str, status: str) -> None:
        moved_to = self._moved_while_running.pop(key, None)
        if moved_to is not None and key == self.selected_key:
            QTimer.singleShot(0, lambda: self.select_flow(moved_to))  # after this run's news
        if key == self.selected_key:
            self.logs.finish()
        self._refresh_controls()
        if key == self.selected_key:
            self._refresh_history()
            if status in ("failed", "crashed"):
                self.bottom.setCurrentWidget(self.error_pane)
        entry = self.controller.model.entry(key)
        name = entry.name if entry else key
        text = run_ended_text(name, status, self.controller.states.get(key))
        if self.controller.session(key).start_failure is None:  # else it said why, and more
            self.show_message("info" if status in ("succeeded", "cancelled") else "warning",
                              text, flow=key)
        if not self.isActiveWindow() and self.tray is not None:
            self.tray.showMessage("Flowdeck", text, QSystemTrayIcon.MessageIcon.Information, 5000)

    def _on_start_failed(self, key: str, failure: StartFailure) -> None:
        """The file failed before its run began: the banner says why, the Error tab shows
        the traceback and the line."""
        entry = self.controller.model.entry(key)
        self._banners[key] = Notice("error", failure.summary, key, entry.name if entry else "")
        if key == self.selected_key:
            self._show_banner_for(key)
            self._update_title()  # no run id: there is no such run
            self.error_pane.show_start_failure(failure)
            self.bottom.setCurrentWidget(self.error_pane)

    def _refresh_history(self, deleted_gives_way: bool = True) -> list[RunSummary]:
        """List the selected flow's runs now, and return them; the follower then keeps
        them current. `deleted_gives_way`: a run shown that the listing no longer has
        gives way to the newest (off while another flow's run is still shown)."""
        entry = self.controller.model.entry(self.selected_key or "")
        if entry is None:
            self.history_follower.follow(None)
            self.history.set_runs([])
            return []
        layout = self.controller.layout_for(entry.key) or RunLayout.for_file(entry.file,
                                                                             entry.name)
        self.history_follower.follow(layout)  # notes the runs folder before the listing
        try:
            runs = list_runs(layout)
        except (OSError, InvalidId):  # InvalidId: the flow's name; its banner says so
            runs = []
        before = self.history.runs
        self.history.set_runs(runs)
        self.history_follower.note_listed(runs)
        if deleted_gives_way:  # a refresh may be the first to see a deletion
            self._leave_deleted_run(entry.key, before, runs)
        return runs

    def _refresh_controls(self) -> None:
        key = self.selected_key
        entry = self.controller.model.entry(key) if key else None
        running = bool(key) and self.controller.is_running(key or "")
        self.act_run.setEnabled((entry is not None and entry.ok and not running)
                                or (entry is None and bool(self.file_choices)))
        self.act_stop.setEnabled(bool(key) and self.controller.can_stop(key or "",
                                                                        self.shown_state))
        self.act_resume.setEnabled(entry is not None and not running
                                   and self.controller.can_resume(key or ""))
        self.act_auto.setEnabled(entry is not None)
        self.empty_hint.setVisible(not self.controller.roots)
        if entry is not None:
            interp = self.controller.interpreter_for(entry.file)
            home = os.path.expanduser("~")
            path = "~" + interp.path[len(home):] if home != "/" and \
                interp.path.startswith(home + os.sep) else interp.path
            text = f"Python: {path} ({SOURCE_NAMES.get(interp.source, interp.source)})"
            metrics = QFontMetrics(self.interpreter_label.font())
            room = max(420, int(self.width() * 0.4))  # the status bar's messages keep the rest
            self.interpreter_label.setText(metrics.elidedText(text, Qt.TextElideMode.ElideMiddle,
                                                              room))
            self.interpreter_label.setToolTip("\n".join([interp.announcement, *interp.skipped,
                                                         "Change it in Run > Interpreter…"]))
        else:
            self.interpreter_label.setText("")
            self.interpreter_label.setToolTip("")

    # -- messages, about, closing -----------------------------------------------------------------

    def show_message(self, level: str, text: str, flow: str | None | bool = True) -> None:
        """Info goes to the status bar for a while; a warning or an error stays, whole, in
        the banner over the DAG (for its flow, or whatever is selected when it concerns no
        one flow) until closed. Every message goes to Notifications with its flow.

        `flow`: the flow the message is about; True (the default, as the controller's
        `message` signal calls it) asks the controller which flow it is telling about.
        """
        key = self.controller.message_flow if flow is True else (flow or None)
        key = key if isinstance(key, str) else None
        entry = self.controller.model.entry(key) if key else None
        notice = Notice(level, text, key, entry.name if entry else "")
        self.last_message = (level, text)
        self.notifications.add(notice)
        self.message_shown.emit(level, text)
        prefix = {"error": "Error: ", "warning": "Note: "}.get(level, "")
        if not notice.needs_action:
            self.statusBar().showMessage(prefix + text, 15000)
            return
        self._banners[key] = notice
        if key is None and self._drop_listening:
            self._drop_notices.append(notice)
        if key is None or key == self.selected_key:
            self._show_banner_for(self.selected_key)
            self.statusBar().clearMessage()
        else:  # about another flow: say so briefly; Notifications has it whole
            self.statusBar().showMessage(f"{prefix}{notice.flow_name}: {text.splitlines()[0]}",
                                         15000)

    def _show_banner_for(self, key: str | None) -> None:
        """The banner shows the newest message that needs action for `key` or for no flow."""
        candidates = [n for n in (self._banners.get(key) if key else None,
                                  self._banners.get(None)) if n is not None]
        if not candidates:
            self.banner.clear()
            return
        notice = max(candidates, key=lambda n: n.when)
        if (self.banner.level, self.banner.text) != (notice.level, notice.text) or \
                self.banner.isHidden():
            self.banner.show_message(notice.level, notice.text)

    def _on_banner_dismissed(self, level: str, text: str) -> None:
        for key in [k for k, n in self._banners.items() if (n.level, n.text) == (level, text)]:
            del self._banners[key]
        self._show_banner_for(self.selected_key)

    def _update_bell(self) -> None:
        count = self.notifications.action_count()
        self.bell.setText(f"Notifications ({count})" if count else "Notifications")
        self.bell.setToolTip(f"Notifications: {count} warning(s) or error(s); every recent "
                             "message, in full (Ctrl+Shift+N)" if count else
                             "Notifications: every recent message, in full (Ctrl+Shift+N)")

    def show_notifications(self) -> None:
        self.notifications_dock.show()
        self.notifications_dock.raise_()

    def clear_notifications(self) -> None:
        self.notifications.clear_all()

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
        self.history_follower.stop()
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
                        status=task.status, attempt=task.attempt, worker=task.worker)


#: A failure's message is cut here in the banner (the Error tab has it whole).
ENDED_MESSAGE_CHARS = 300


def steps_done_note(state: RunState) -> str:
    """How far a run is, for the header: in a long graph the running step may be off-screen
    (and the view stops following it once the user moves it)."""
    total = len(node_table(state.graph))
    done = sum(1 for s in state.steps.values() if s.status in (SUCCEEDED, REUSED))
    return f" · {done}/{total} steps done" if total else ""


def run_ended_text(name: str, status: str, state: RunState | None) -> str:
    """What the banner and the tray say when a run ends: for a failure, which step failed
    with what, and where in the flow's file, so the user knows without opening a tab."""
    failed = state.failed_task() if state is not None and status == "failed" else None
    error = failed.error if failed is not None else None
    if failed is None or not error:
        return f"{name} {status}."
    kind = str(error.get("type") or "an error").rsplit(".", 1)[-1]
    message = " ".join(str(error.get("message") or "").split())
    if len(message) > ENDED_MESSAGE_CHARS:
        message = message[:ENDED_MESSAGE_CHARS] + "…"
    where = failing_line(str(error.get("traceback") or ""), state.file) if state else None
    at = f" ({os.path.basename(where[0])}, line {where[1]})" if where else ""
    return _sentence(f"{name} failed: step {failed.step} raised {kind}"
                     + (f": {message}" if message else "") + at)


def _sentence(text: str) -> str:
    """`text` with one full stop at its end: an error's message that ends with its own
    (the engine's "…(os._exit or a crash in native code).") gets no second."""
    return text if text.endswith((".", "!", "?", "…")) else f"{text}."


def _file_row_title(row: QModelIndex, flows: int) -> tuple[str, str]:
    """The header (and its tooltip) for a file row that is not one flow."""
    name = html.escape(os.path.basename(str(row.data(KEY_ROLE) or "")))
    if flows > 1:
        return (f"<b>{name}</b> defines {flows} flows: select one, or press Run to choose",
                str(row.data(KEY_ROLE) or ""))
    return (f"<b>{name}</b> defines no flow that can run: see its rows in the list",
            str(row.data(KEY_ROLE) or ""))
