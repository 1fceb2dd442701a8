"""The window's logic, kept out of the widgets: watching, running, rerunning on save.

`FlowdeckController` owns the folder watcher (through `WatchBridge`, which
turns the watcher thread's callbacks into queued Qt signals), the catalog
model, and one `FlowSession` per flow (its parameters, its current run and
state, a pending rerun). Runs start from a `LaunchSpec` built by the core's
engine seam (`flowdeck.engines.launching`). Views call its
methods and listen to its signals; it never touches a widget.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QSettings, QThreadPool, QTimer, Signal

from flowdeck.analysis.graph import code_fingerprint
from flowdeck.analysis.parameter_text import same_value
from flowdeck.compiled_dataclasses import dataclass
from flowdeck.discovery.catalog import CatalogDiff, CatalogEntry
from flowdeck.discovery.watcher import WatchStatus
from flowdeck.engines.base import LaunchSpec
from flowdeck.engines.interpreter import Interpreter, detect_interpreter, warm_check
from flowdeck.engines.launching import (
    LaunchError,
    build_launch,
    datastore_arg,
    store_environment,
)
from flowdeck.engines.startup import StartFailure, diagnose_start
from flowdeck.store import gc as store_gc
from flowdeck.store.index import RunEntry, RunIndex, read_run
from flowdeck.store.layout import DATASTORE_ENV, InvalidId, RunLayout, is_store_url
from flowdeck.store.records import RunRecord, parameter_arguments
from flowdeck.store.status import (
    CANCELLED,
    CRASHED,
    FAILED,
    RUN_FINAL,
    RUN_UNFINISHED,
    RUNNING,
    SUCCEEDED,
)
from flowdeck_desktop.control.outside_run import OutsideRun
from flowdeck_desktop.control.run_options import (
    ENGINE_LABELS,
    Placement,
    RunOptionsError,
    engine_announcement,
    engine_choice,
    parse_run_options,
    placement_clash,
    window_terms,
)
from flowdeck_desktop.control.run_process import RunProcess, core_path
from flowdeck_desktop.control.shared_store import SharedRunsFetcher
from flowdeck_desktop.control.watching import WatchBridge
from flowdeck_desktop.models.catalog_model import LAST_RUN_FAILED, CatalogModel
from flowdeck_desktop.models.run_state import RunState


@dataclass
class RunPlan:
    """What a rerun will do: all steps, or resume from the changed ones."""

    args: list[str]
    reason: str
    origin_run_id: str | None = None
    changed_steps: tuple[str, ...] = ()
    engine: str | None = None  # the engine to use (a resume: the one that made its origin)


OUTPUT_TAIL_CHARS = 65536


def _fingerprint_of(file: str) -> str | None:
    """The code of `file` without comments (`code_fingerprint`); None when unreadable."""
    try:
        return code_fingerprint(Path(file).read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return None


@dataclass
class FlowSession:
    """Everything the window keeps for one flow: its parameters (by command-line name,
    persisted), its current run and that run's state, and a rerun waiting for it to end.

    Replacing the run releases the previous one's process wrapper and state, so a
    session holds one run's records however many runs it starts.
    """

    key: str
    params: dict[str, str] = field(default_factory=dict)
    options: str = ""  # run options, as typed: put before the parameters (`--max-workers 2`)
    engine: str = ""  # the engine chosen for a Metaflow file ("": the Metaflow bridge)
    placement: Placement = field(default_factory=Placement)  # Run on and Store (toolbar)
    run: RunProcess | None = None
    state: RunState | None = None
    pending_rerun: RunPlan | None = None
    output_tail: str = ""  # the current run's last output, for a failure before it started
    start_failure: StartFailure | None = None
    recheck: tuple[CatalogEntry, float] | None = None  # a save waiting for its run's record
    #: `code_fingerprint` of the file as the latest run started from it: a save that
    #: changes only comments or blank lines leaves it, and is not rerun.
    started_code: str | None = None

    def keep_output(self, text: str) -> None:
        self.output_tail = (self.output_tail + text)[-OUTPUT_TAIL_CHARS:]

    @property
    def running(self) -> bool:
        return self.run is not None and self.run.status not in RUN_FINAL

    def did_not_start(self, state: RunState) -> bool:
        """True when `state` is this session's run and it failed before it began (a
        refused parameter, an import error): there is no such run on disk."""
        return state is self.state and self.start_failure is not None

    def can_resume(self) -> bool:
        """A run that got going and did not succeed (one that never started has nothing)."""
        return (self.state is not None and self.start_failure is None
                and self.state.status in RUN_UNFINISHED)

    def replace_run(self, run: RunProcess, state: RunState) -> None:
        self.output_tail, self.start_failure = "", None
        for old in (self.run, self.state):
            if old is not None:
                old.setParent(None)
                old.deleteLater()
        self.run, self.state = run, state


@dataclass(frozen=True)
class ParamChange:
    """A parameter whose value in the form differs from a run's (command-line texts)."""

    name: str
    run_value: str
    form_value: str


def recorded_params(record: RunRecord) -> dict[str, str]:
    """A run's parameters by command-line name as the form holds them: one that had no
    value in the run is left out (blank in the form: not passed), not the text 'None'."""
    return {p.name: p.cli for p in record.params if p.cli is not None}


def param_changes(form: dict[str, str], record: RunRecord,
                  types: dict[str, str]) -> list[ParamChange]:
    """The form's values (blank: the flow's default, not compared) that differ from the
    run's, each compared as a value of its parameter's type (`types`: by command-line
    name, as static analysis reads them): `0.10` is the run's `0.1` for a float only."""
    given = recorded_params(record)
    return [ParamChange(name, given.get(name, "(its default)"), value)
            for name, value in form.items()
            if value != "" and (name not in given or
                                not same_value(types.get(name, "str"), given[name], value))]


#: What the messages about a flow file's errors say (the window takes their banner down
#: once a save leaves the file without errors; no other error's).
FILE_ERRORS_SAY = ("has errors and cannot run", "was saved with errors")

#: How often, and how long, a save that came while its run was starting waits for the run's
#: record (which says what file the run read) before it is rerun anyway.
RECHECK_MS = 50
RECHECK_LIMIT_S = 3.0

GC_INTERVAL_MINUTES = 10  # setting `gc/interval_minutes`: collect a store at most this often


class _GcRelay(QObject):
    """Carries a collection's result from the pool's thread to the GUI thread.

    It lives in the GUI thread, so emitting from the worker queues the call: the
    worker never touches the controller, and no timer is started off the GUI thread.
    """

    done = Signal(str, object)  # store root, GcReport or the error's text


class _GcJob(QRunnable):
    """One collection of one store, on a pool thread (it walks every run and blob). It
    drops old runs only where the store's retention was chosen (`keep_runs`,
    $FLOWDECK_KEEP_RUNS); `flowdeck gc` applies the default of 50 when asked."""

    def __init__(self, root: str, relay: _GcRelay):
        super().__init__()
        self.root, self.relay = root, relay  # the job keeps the relay alive until it emits

    def run(self) -> None:
        result: object
        try:
            result = store_gc.collect(self.root, store_gc.GcPolicy(default_retention=False))
        except (store_gc.GcSettingError, OSError) as exc:
            result = str(exc)
        self.relay.done.emit(self.root, result)


def path_refusal(path: str) -> tuple[str, str] | None:
    """(level, message) when `path` cannot be opened as flows, else None: one rule for
    the command line, "Open with", drops and a running window's hand-over. A file that is
    not `.py` (a README passed by "Open with") was parsed as Python and said "Fix the
    code at line 8"; a folder path ending in a slash was named by an empty name."""
    name = os.path.basename(os.path.normpath(path)) or path
    if os.path.isdir(path):
        return None
    if not os.path.exists(path):
        return ("error", f"{path}: no such file or folder.")
    if not path.endswith(".py"):
        return ("warning", f"{name} is not a Python file or a folder; open .py flow files "
                           "or folders.")
    return None


class FlowdeckController(QObject):
    """Holds the session's state; the main window is a view of it."""

    run_started = Signal(str, object)  # flow key, RunState
    run_output = Signal(str, str, str)  # flow key, stream, text
    run_ended = Signal(str, str)  # flow key, status
    #: A run the window did not start (`follow_outside_run`) ended: flow key, status.
    outside_run_ended = Signal(str, str)
    message = Signal(str, str)  # level (info | warning | error), text
    #: The flow key the message being emitted is about (None: no one flow); set only
    #: while `message` is emitted, so a slot can read it, as the banner does.
    message_flow: str | None = None
    start_failed = Signal(str, object)  # flow key, StartFailure: ended before its run began
    roots_changed = Signal()
    garbage_collected = Signal(str, object)  # store root, GcReport or the error's text
    #: A running flow's file was renamed or moved within its folder: its session (the run
    #: going on, its parameters) now answers to the new key. Old key, new key.
    session_moved = Signal(str, str)
    #: Runs of a flow (run id "") or one run's files (its id) arrived from the flow's object
    #: store into its working copy: History and the run views read them there now.
    shared_runs_fetched = Signal(str, str)

    def __init__(self, settings: QSettings, parent: QObject | None = None,
                 remember_roots: bool = True):
        """`remember_roots` off (a scripted start, which restores none): the folders and
        files watched are not written to `settings`, so the user's next start lists what
        the user chose, not what a script opened."""
        super().__init__(parent)
        self.settings = settings
        self.remember_roots = remember_roots
        self.model = CatalogModel(self)
        #: (folder, flow name) -> key of a running flow whose row went: a flow of that name
        #: listed in that folder next is the same file renamed (the watcher may tell the
        #: removal and the addition apart).
        self._gone_running: dict[tuple[str, str], str] = {}
        self.model.flow_removing.connect(self._note_running_gone)
        self.model.flow_added.connect(self._follow_moved_run)
        self.bridge = WatchBridge(self)
        self.bridge.diff_ready.connect(self._on_diff)
        self.bridge.status_ready.connect(self._on_watch_status)
        self.roots: list[str] = []
        self.sessions: dict[str, FlowSession] = {}
        self._last_runs: dict[str, RunEntry | None] = {}  # last_run's reads, by flow key
        #: By flow key: the run of it started elsewhere that the window follows (kept after
        #: it ends while the window may show its state).
        self.outside: dict[str, OutsideRun] = {}
        self._gc_pool = QThreadPool(self)
        self._gc_pool.setMaxThreadCount(1)  # one collection at a time, whatever the store
        self._gc_relay = _GcRelay()
        self._gc_relay.done.connect(self._on_gc_done)
        self._gc_last: dict[str, float] = {}  # store root -> monotonic time of the last start
        self._gc_busy: set[str] = set()
        self.shared = SharedRunsFetcher(self)
        self.shared.fetched.connect(self._on_shared_fetched)
        self._shared_problems: dict[str, str] = {}  # flow key -> the problem last told
        self._closed = False

    # -- folders -------------------------------------------------------------------

    def add_paths(self, paths: list[str],
                  on_listed: Callable[[list[str]], None] | None = None,
                  restoring: bool = False) -> list[str]:
        """Watch folders, and files as roots of their own; returns keys of given files listed now.

        Nothing is scanned here, on the GUI thread: the watcher's thread scans
        each new root alone and its flows arrive as a diff. `on_listed(keys)`
        runs once every given path is listed (at once when all already are),
        with the flow keys of the given files; a file that defines no flow
        gets its warning then. A file's folder is not watched, so dropping one
        file does not list all of ~/Downloads; a message offers `watch_folder_of`.
        """
        files: list[str] = []
        listing: set[str] = set()
        before = list(self.roots)
        for raw in paths:
            path = os.path.abspath(raw)
            single_file = os.path.isfile(path)
            refusal = path_refusal(raw)
            if refusal is not None:
                self.message.emit(*refusal)
                continue
            if single_file:
                files.append(path)
            listing.add(self._add_root(path, single_file))
        if self.roots != before:
            self._roots_updated()
        alone = [f for f in files if f in self.roots and f not in before]  # roots of their own
        self.bridge.when_listed(lambda: self._opened(files, on_listed, restoring, alone),
                                sorted(listing))
        return [e.key for e in self.model.entries() if e.file in files]

    def remove_root(self, root: str) -> None:
        """Stop watching a folder or single file; its flows leave when the watcher's diff comes."""
        root = os.path.abspath(root)
        if root in self.roots:
            self.bridge.remove_root(root)
            self._roots_updated()

    def watch_folder_of(self, file: str | None = None) -> str | None:
        """Watch the folder of a file opened on its own (default: the latest one opened).

        The folder's root replaces the file's, so the file's flows stay listed
        (now under the folder) along with its neighbours. Returns the folder.
        """
        singles = [r for r in self.roots if self.bridge.is_file_root(r)]
        target = os.path.abspath(file) if file else (singles[-1] if singles else None)
        if target is None:
            self.message.emit("warning", "No flow file is open on its own: open or drop a "
                              "flow file first, or open its folder with Open Folder.")
            return None
        folder = os.path.dirname(target)
        self.add_paths([folder])
        return folder

    def when_listed(self, callback: Callable[[], None]) -> None:
        """Run `callback` once every root added so far is listed (now, when they all are)."""
        self.bridge.when_listed(callback)

    def scanning(self) -> bool:
        """True while a root added has not had its first scan delivered to the model."""
        return self.bridge.scanning()

    def remembered_paths(self) -> list[str]:
        """Folders and single files watched last time that still exist, to restore at start."""
        folders = [p for p in _as_list(self.settings.value("folders")) if os.path.isdir(p)]
        files = [p for p in _as_list(self.settings.value("files")) if os.path.isfile(p)]
        return folders + files

    def _add_root(self, path: str, single_file: bool) -> str:
        """Watch `path` unless a watched folder covers it; returns the root that lists it."""
        covering = self._covering_root(path)
        if covering is not None:
            return covering
        if single_file:
            self.bridge.add_file(path)  # `_opened` says so once it lists a flow
        else:
            self.bridge.add_root(path)
            inside = path.rstrip(os.sep) + os.sep
            for nested in [r for r in self.bridge.roots() if r.startswith(inside)]:
                self.bridge.remove_root(nested)  # the folder lists them now
        self.roots = self.bridge.roots()
        return path

    def project_root(self, file: str) -> str | None:
        """The watched folder a flow file belongs to (None for a file opened on its own)."""
        root = self._covering_root(file)
        return root if root and os.path.isdir(root) else None

    def _covering_root(self, path: str) -> str | None:
        """The root that already lists `path`: itself, or the deepest watched folder above it."""
        if path in self.roots:
            return path
        above = [r for r in self.roots if not self.bridge.is_file_root(r)
                 and path.startswith(r.rstrip(os.sep) + os.sep)]
        return max(above, key=len) if above else None

    def _roots_updated(self) -> None:
        """Persist the roots (folders as before, single files apart; unless
        `remember_roots` is off) and tell the views."""
        self.roots = self.bridge.roots()
        if self.remember_roots:
            folders = [r for r in self.roots if not self.bridge.is_file_root(r)]
            self.settings.setValue("folders", folders)
            self.settings.setValue("files",
                                   [r for r in self.roots if self.bridge.is_file_root(r)])
            self._remember_recent(folders)
        self.roots_changed.emit()

    def _opened(self, files: list[str], on_listed: Callable[[list[str]], None] | None,
                restoring: bool = False, alone: list[str] | None = None) -> None:
        """The given files are listed: say what is wrong with those that list no flow, and
        that those watched on their own (`alone`: added now, their folder unwatched) list
        only themselves. Once listed, so one message says what is true (a file of no flow
        was said to be listed, then not). A file opened now (a drop, File > Open) that
        defines none is not kept; one remembered from the last session stays watched (it
        may be mid-edit: it lists its flow again once it has one)."""
        keys: list[str] = []
        for file in files:
            found = [e.key for e in self.model.entries() if e.file == file]
            problem = self.model.problem(file)
            if found and file in (alone or []):
                self._listing_only(file)
            elif not found and problem is not None and problem.diagnostics:
                first = problem.diagnostics[0]  # the error Python stops at, as the list shows
                self.message.emit("error", f"{file} cannot be read as Python, so its flows "
                                  f"are not listed: line {first.line}: {first.message}")
            elif not found:
                self._forget_flowless(file, keep=restoring)
            keys += found
        if on_listed is not None:
            on_listed(keys)

    def _listing_only(self, file: str) -> None:
        """Say that a file opened on its own lists its flows, not its folder's."""
        self.message.emit("info", f"Listing only {os.path.basename(file)}: its folder "
                          f"{os.path.dirname(file)} is not watched. To list the other "
                          "flows there, choose File ▸ Watch Folder of Opened File.")

    def _forget_flowless(self, file: str, keep: bool = False) -> None:
        """A file opened on its own that defines no flow is not kept (unless `keep`):
        watched, it would be a folder row with nothing under it, remembered for the next
        start. The warning says so; a file inside a watched folder stays watched with its
        folder."""
        kept = keep or not self.bridge.is_file_root(file)
        self.message.emit("warning", f"{file} defines no flow (a class deriving from "
                          "FlowSpec of flowdeck or metaflow)" +
                          ("." if kept else ", so it is not listed."))
        if not kept:
            self.remove_root(file)

    def _remember_recent(self, roots: list[str]) -> None:
        recent = [r for r in _as_list(self.settings.value("recent")) if r not in roots]
        self.settings.setValue("recent", (roots + recent)[:10])

    def _tell(self, level: str, text: str, key: str | None) -> None:
        """Emit `message` about one flow (`message_flow` names it during the emit)."""
        self.message_flow = key
        try:
            self.message.emit(level, text)
        finally:
            self.message_flow = None

    def shutdown(self) -> None:
        self._closed = True  # no collection starts after this (its relay would be gone)
        self.bridge.stop()
        for outside in self.outside.values():
            outside.close()  # followed, not owned: those runs go on
        for run in list(self.runs.values()):
            run.stop()
            run.wait_stopped(3000)
        self._gc_pool.waitForDone(30000)  # a collection ends between two files, never mid-way

    # -- catalog updates -------------------------------------------------------------

    def _on_diff(self, diff: CatalogDiff) -> None:
        """Apply a diff with the snapshot it carries, taken by the watcher's thread.

        Never the catalog itself: the watcher's thread holds its lock for a
        whole scan, and a slow root must not freeze the window. The diff is settled
        whatever one flow does here: an error about one (its runs unreadable) left the
        folder's scan unfinished, `scanning()` True and a scripted start waiting for ever.
        """
        try:
            self.model.apply_diff(diff)
            for entry in diff.added:  # a flow listed anew (the app's start): its last outcome
                if entry.key not in self.states:
                    self._last_runs.pop(entry.key, None)
                    last = self.last_run(entry.key)
                    self.model.set_run_status(entry.key,
                                              outcome_badge(last.status) if last else None)
                    self.fetch_shared_runs(entry.key)  # its object store's runs, if it has one
            for entry in diff.changed:
                if self.auto_rerun(entry.key):
                    self._rerun_on_save(entry)
        finally:
            self.bridge.settle(diff)

    def _on_watch_status(self, status: WatchStatus) -> None:
        level = "warning" if status.kind in ("folder-missing", "polling") else "info"
        self.message.emit(level, str(status))

    # -- settings per flow -----------------------------------------------------------

    def auto_rerun(self, key: str) -> bool:
        return _as_bool(self.settings.value(f"autorerun/{_slug(key)}", False))

    def set_auto_rerun(self, key: str, on: bool) -> None:
        self.settings.setValue(f"autorerun/{_slug(key)}", on)

    def saved_params(self, key: str) -> dict[str, str]:
        """The flow's parameters by command-line name, as the user last gave them."""
        return dict(self.session(key).params)

    def save_params(self, key: str, values: dict[str, str]) -> None:
        self.session(key).params = dict(values)
        self.settings.setValue(f"params/{_slug(key)}", dict(values))

    def session(self, key: str) -> FlowSession:
        """The flow's session, made on first use with its remembered parameters."""
        found = self.sessions.get(key)
        if found is None:
            value = self.settings.value(f"params/{_slug(key)}")
            found = FlowSession(key, {str(k): str(v) for k, v in value.items()}
                                if isinstance(value, dict) else {},
                                options=str(self.settings.value(f"options/{_slug(key)}") or ""),
                                engine=str(self.settings.value(f"engine/{_slug(key)}") or ""),
                                placement=_placement(self.settings.value(
                                    f"placement/{_slug(key)}")))
            self.sessions[key] = found
        return found

    def run_options(self, key: str) -> str:
        """The flow's run options as the user typed them (put before the parameters)."""
        return self.session(key).options

    def save_run_options(self, key: str, text: str) -> None:
        self.session(key).options = text
        self._last_runs.pop(key, None)  # the options may name another store
        if text.strip():
            self.settings.setValue(f"options/{_slug(key)}", text)
        else:
            self.settings.remove(f"options/{_slug(key)}")

    def run_engine(self, key: str) -> str:
        """The engine the flow's next run uses: for a file written for Metaflow, the one
        chosen for it (Metaflow's through the bridge, or Flowdeck's on the unchanged file);
        otherwise the one the file imports."""
        entry = self.model.entry(key)
        written_for = entry.engine if entry is not None else "flowdeck"
        return engine_choice(written_for, self.session(key).engine)

    def set_run_engine(self, key: str, engine: str) -> None:
        """Choose the engine of a Metaflow file's runs (Run, Resume, rerun on save); kept."""
        self.session(key).engine = engine
        self.settings.setValue(f"engine/{_slug(key)}", engine)

    def option_args(self, key: str) -> list[str]:
        """The run options as arguments, with where the run goes (`placement_args`) after
        them; RunOptionsError names a malformed one."""
        options = parse_run_options(self.session(key).options)
        return options + self.placement_args(key, options)

    def placement(self, key: str) -> Placement:
        """Where the flow's runs go (the toolbar's Run on and Store), as the user chose."""
        return self.session(key).placement

    def set_placement(self, key: str, placement: Placement) -> None:
        """Choose where the flow's runs go; kept as typed (checked before each run)."""
        self.session(key).placement = placement
        self._last_runs.pop(key, None)
        self.fetch_shared_runs(key)
        if placement.default:
            self.settings.remove(f"placement/{_slug(key)}")
        else:
            self.settings.setValue(f"placement/{_slug(key)}", {
                "executor": placement.executor, "scheduler": placement.scheduler,
                "store": placement.store})

    def placement_used(self, key: str) -> bool:
        """Whether the placement applies: Flowdeck's engine runs it (the Metaflow bridge
        runs tasks with Metaflow's own runtime and store)."""
        return self.run_engine(key) == "flowdeck"

    def placement_args(self, key: str, options: list[str] | None = None) -> list[str]:
        """`--executor dask --scheduler ADDR`, `--datastore URL` for the flow's run;
        RunOptionsError names a bad address or store, or Run Options that also set them."""
        if not self.placement_used(key):
            return []
        placement = self.session(key).placement
        placement_clash(options or [], placement)
        return placement.args()

    def run_store(self, key: str, args: list[str]) -> str | None:
        """The store a run with `args` writes (the toolbar's, or a `--datastore URL` typed in
        Run Options), so the window follows its events there; None: the flow's own."""
        if not self.placement_used(key):
            return None
        try:
            chosen = self.session(key).placement.checked().store
        except RunOptionsError:
            chosen = ""
        return chosen or datastore_arg(args)

    def layout_for(self, key: str) -> RunLayout | None:
        """The store the flow's runs go to now (its History): the flow's `.flowdeck`, or
        the folder or object store's working copy chosen in the toolbar."""
        entry = self.model.entry(key)
        if entry is None:
            return None
        store = self.run_store(key, _options_or_none(self.session(key).options))
        return RunLayout(store_environment(entry.file, store)[0], entry.name)

    def store_url(self, key: str) -> str | None:
        """The object store (`s3://...`) the flow's runs go to, when they go to one: the
        toolbar's Store, a `--datastore` in Run Options, or the window's
        $FLOWDECK_DATASTORE; None for a folder."""
        store = self.run_store(key, _options_or_none(self.session(key).options))
        if not store:
            store = os.environ.get(DATASTORE_ENV)
        return store if store and is_store_url(store) else None

    def fetch_shared_runs(self, key: str, run_id: str = "") -> bool:
        """Fetch the flow's runs (or the files of its run `run_id`) from its object store
        into its working copy, on a thread of their own (`shared_runs_fetched` when they
        are there): runs made on another machine, or from another folder sharing the
        bucket, are listed with this machine's. False when the flow keeps its runs in a
        folder (nothing to fetch), or that fetch is under way."""
        url = self.store_url(key)
        layout = self.layout_for(key) if url else None
        if url is None or layout is None or self._closed:
            return False
        return self.shared.fetch(key, layout, url, run_id)

    def fetching_shared_runs(self, key: str) -> bool:
        """Whether the flow's runs are being fetched from its object store now."""
        return self.shared.busy(key)

    def _on_shared_fetched(self, key: str, run_id: str, problem: str | None) -> None:
        """A fetch ended: say once what failed (the runs made here stay listed), or mark
        the flow by its newest run, now that the object store's runs are listed."""
        self.shared.done(key, run_id)
        entry = self.model.entry(key)
        if self._closed or entry is None:
            return
        if problem is None:
            self._shared_problems.pop(key, None)
            if not run_id:
                self.forget_last_runs(entry.name)
        elif self._shared_problems.get(key) != problem:
            self._shared_problems[key] = problem
            what = f"run {run_id} of {entry.name}" if run_id else f"the runs of {entry.name}"
            self._tell("warning", f"The window shows only what this machine has of {what}: "
                       f"{problem}", key)
        self.shared_runs_fetched.emit(key, run_id)

    @property
    def runs(self) -> dict[str, RunProcess]:
        return {k: s.run for k, s in self.sessions.items() if s.run is not None}

    @property
    def states(self) -> dict[str, RunState]:
        return {k: s.state for k, s in self.sessions.items() if s.state is not None}

    def interpreter_for(self, file: str) -> Interpreter:
        """The folder's configured Python, else a venv found no higher than the watched root."""
        folder = os.path.dirname(file)
        configured = self.settings.value(f"interpreter/{_slug(folder)}") or None
        return detect_interpreter(folder, configured,
                                  stop_at=self._covering_root(os.path.abspath(file)))

    def warm_interpreter(self, file: str) -> None:
        """Start checking the file's interpreter in the background (a process: 75 ms to
        seconds), so that Run and a click on a task do not wait for it on the GUI thread."""
        warm_check(self.interpreter_for(file).path)

    def configured_interpreter(self, file: str) -> str | None:
        """The interpreter chosen for the file's folder, None when it is automatic."""
        value = self.settings.value(f"interpreter/{_slug(os.path.dirname(file))}")
        return str(value) if value else None

    def automatic_interpreter(self, file: str) -> Interpreter:
        """What "Automatic" picks for the file (whatever is configured)."""
        return detect_interpreter(os.path.dirname(file), None,
                                  stop_at=self._covering_root(os.path.abspath(file)))

    def search_root(self, file: str) -> str | None:
        """The watched root a folder venv is looked for up to."""
        return self._covering_root(os.path.abspath(file))

    def set_interpreter(self, file: str, path: str | None) -> None:
        key = f"interpreter/{_slug(os.path.dirname(file))}"
        if path:
            self.settings.setValue(key, path)
        else:
            self.settings.remove(key)

    # -- running -------------------------------------------------------------------------

    def is_running(self, key: str) -> bool:
        session = self.sessions.get(key)
        return session is not None and session.running

    def start_run(self, key: str, args: list[str] | None = None,
                  plan: RunPlan | None = None) -> RunState | None:
        """Start `python file.py run ARGS` (or the plan's resume) for a flow.

        Without `args` or a plan, the session's parameters are used.
        """
        entry = self.model.entry(key)
        if entry is None:
            self._tell("error", "That flow is gone: its file was removed or renamed.", key)
            return None
        if not entry.ok:
            first = entry.diagnostics[0] if entry.diagnostics else None
            where = f" (line {first.line}: {first.message})" if first else ""
            self._tell("error", f"{entry.name} {FILE_ERRORS_SAY[0]}{where}.", key)
            return None
        if self.is_running(key):
            self._tell("warning", f"{entry.name} is already running; stop it first.", key)
            return None
        if plan is None:
            try:
                options = self.option_args(key)
            except RunOptionsError as exc:
                self._tell("error", str(exc), key)
                return None
            plan = RunPlan(["run", *options, *(args if args is not None else self.run_args(key))],
                           "run")
        interpreter = self.interpreter_for(entry.file)
        engine = plan.engine or self.run_engine(key)
        store = self.run_store(key, plan.args) if engine == "flowdeck" else None
        spec = self._launch_spec(entry, plan.args, interpreter, engine, store)
        if spec is None:
            return None
        return self._launch(key, entry, spec, interpreter)

    def run_args(self, key: str) -> list[str]:
        """`--name value` for every parameter the session gives (blank: the flow's default;
        a `multiple` parameter's text gives one `--name value` per value)."""
        entry = self.model.entry(key)
        multiple = {p.name for p in entry.flow.parameters if p.multiple} if entry else set()
        return [arg for name, value in self.session(key).params.items() if value != ""
                for arg in parameter_arguments(name, value, name in multiple)]

    def _launch_spec(self, entry: CatalogEntry, args: list[str], interpreter: Interpreter,
                     engine: str, store: str | None = None) -> LaunchSpec | None:
        try:
            return build_launch(entry.file, entry.name, engine, args,
                                interpreter=interpreter, core_dir=core_path(),
                                project_root=self.project_root(entry.file),
                                imports=entry.engine, store=store, info=entry.flow)
        except LaunchError as exc:
            self._tell("error", " ".join([str(exc), *interpreter.skipped]), entry.key)
            return None

    def _launch(self, key: str, entry: CatalogEntry, spec: LaunchSpec,
                interpreter: Interpreter) -> RunState:
        session = self.session(key)
        state = RunState(self)
        state.reset(entry.flow.graph.as_dict(unreachable=True))
        state.begin(spec.run_id, entry.name, entry.file)
        run = RunProcess(spec, self)
        run.event_arrived.connect(state.apply)
        # By the session's key when it speaks: a rename of the file moves the session.
        run.output.connect(lambda stream, text, s=session: self.run_output.emit(s.key, stream,
                                                                                text))
        run.failed_to_start.connect(lambda msg, s=session: self._tell("error", msg, s.key))
        run.output.connect(lambda _stream, text, s=session: s.keep_output(text))
        run.ended.connect(lambda code, status, s=session: self._on_ended(s.key, status, code))
        session.replace_run(run, state)
        session.started_code = _fingerprint_of(entry.file)
        self._last_runs.pop(key, None)
        self.model.set_run_status(key, RUNNING)
        self.run_started.emit(key, state)
        engine_line = [engine_announcement(entry.engine, spec.engine)] \
            if entry.engine == "metaflow" else []
        placement = session.placement
        if not placement.default:
            engine_line.append(placement.describe() if spec.engine == "flowdeck" else
                               f"Run on and Store are not used: {ENGINE_LABELS['metaflow']} "
                               "runs tasks on this machine in Metaflow's own store. Choose "
                               f"{ENGINE_LABELS['flowdeck']} to run on a Dask cluster or "
                               "another store.")
        for line in (interpreter.announcement, *engine_line,
                     *interpreter.skipped):  # the log's header
            self.run_output.emit(key, "flowdeck", line + "\n")
        if interpreter.skipped:
            self._tell("warning", " ".join(interpreter.skipped), key)
        run.start()
        return state

    # -- a running flow's file renamed --------------------------------------------------

    def _note_running_gone(self, key: str) -> None:
        entry = self.model.entry(key)
        if entry is not None and self.is_running(key):
            self._gone_running[(os.path.dirname(entry.file), entry.name)] = key

    def _follow_moved_run(self, new: str) -> None:
        """A flow listed anew where a running flow of its name went: the same file, renamed.
        Its session moves to the new key, so the run shows as running there (Run was
        offered, and a second run of the flow started beside the first)."""
        entry = self.model.entry(new)
        if entry is None:
            return
        old = self._gone_running.pop((os.path.dirname(entry.file), entry.name), None)
        if old is None or old == new or not self.is_running(old) or new in self.sessions \
                and self.sessions[new].running:
            return
        session = self.sessions.pop(old)
        session.key = new
        self.sessions[new] = session
        self.save_params(new, session.params)
        self._last_runs.pop(old, None)
        self._last_runs.pop(new, None)
        self.model.set_run_status(new, RUNNING)
        self.session_moved.emit(old, new)

    def stop_run(self, key: str, state: RunState | None = None) -> None:
        """Stop the flow's run: the window's own, else, when `state` (the run on screen)
        is one started elsewhere that it follows, that one (on this host). A followed run
        that is not on screen is never stopped by Stop."""
        session = self.sessions.get(key)
        if session is not None and session.run is not None and session.running:
            session.run.stop()
            return
        outside = self._outside_of(key, state)
        if outside is not None:
            outside.stop()

    def can_stop(self, key: str, state: RunState | None = None) -> bool:
        """Whether Stop has a run to stop: the window's own, or `state`'s when it is a run
        followed from outside that goes on on this host and is not being stopped already."""
        if self.is_running(key):
            return True
        outside = self._outside_of(key, state)
        return outside is not None and outside.stoppable and not outside.stopping

    def _outside_of(self, key: str, state: RunState | None) -> OutsideRun | None:
        outside = self.outside_run(key)
        return outside if outside is not None and state is not None and \
            state.parent() is outside else None

    # -- runs started elsewhere --------------------------------------------------------

    def outside_run(self, key: str) -> OutsideRun | None:
        """The run of the flow started elsewhere that the window follows, while it goes."""
        outside = self.outside.get(key)
        return outside if outside is not None and outside.running else None

    def is_outside_state(self, state: RunState) -> bool:
        """Whether `state` is the view of a run started elsewhere that is followed live."""
        return any(o.running and state.parent() is o for o in self.outside.values())

    def follow_outside_run(self, key: str, run_id: str) -> RunState | None:
        """The flow's run `run_id`, when it goes on elsewhere (a terminal, a window killed
        before it ended), as a state fed live from its events; None when it is not
        running, or is the window's own. Asked again for the same run, the same state.
        One run per flow is followed at a time."""
        session = self.sessions.get(key)
        own = session.state.run_id if session is not None and session.state else None
        layout = self.layout_for(key)
        if layout is None:
            return None
        last = read_run(layout, run_id)
        if last is None or last.record is None or last.status != RUNNING or \
                (self.is_running(key) and last.run_id == own):
            return None
        outside = self.outside.get(key)
        if outside is not None and outside.run_id == last.run_id:
            state = outside.findChild(RunState)
            if state is not None:
                return state
        if outside is not None:
            outside.close()
            outside.deleteLater()
        outside = OutsideRun(layout, last.record, self)
        state = RunState(outside)
        entry = self.model.entry(key)
        if entry is not None:
            state.reset(entry.flow.graph.as_dict(unreachable=True))  # its run_started event brings the run's
            state.describe(entry.name, entry.file)
        outside.event_arrived.connect(state.apply)
        outside.ended.connect(lambda status, k=key, o=outside: self._on_outside_ended(k, o, status))
        self.outside[key] = outside
        outside.start()
        if outside.running and not self.is_running(key):
            self.model.set_run_status(key, RUNNING)
        return state

    def _on_outside_ended(self, key: str, outside: OutsideRun, status: str) -> None:
        state = outside.findChild(RunState)
        if state is not None and state.status == RUNNING:  # killed: ended when last alive
            events = outside.layout.events(outside.run_id)
            state.mark_ended(status, state.fold.last_sign_of_life(events))
        entry = self.model.entry(key)
        if entry is not None and not self.is_running(key):
            self.forget_last_runs(entry.name)  # reads its record again, and marks the row
            if self.outside.get(key) is outside:
                self.model.set_run_status(key, outcome_badge(status))
        self.outside_run_ended.emit(key, status)

    def _on_ended(self, key: str, status: str, code: int = 0) -> None:
        session = self.session(key)
        run, state = session.run, session.state
        # Never started: no events at all, or (Metaflow refusing the flow before its first
        # task, after the bridge wrote its run_started) a failed run without one task.
        never_started = run is not None and status == FAILED and (
            not os.path.exists(run.spec.events_path) or (state is not None and not state.tasks))
        if state is not None:
            state.mark_ended(status)
        entry = self.model.entry(key)
        if entry is not None:  # a flow of the same name in another file may share the store
            self.forget_last_runs(entry.name)
        if never_started:  # no run was made: the mark stays that of the last one on disk
            last = self.last_run(key)
            self.model.set_run_status(key, outcome_badge(last.status) if last else None)
        else:
            self.model.set_run_status(key, outcome_badge(status))
        if never_started and run is not None:
            failure = diagnose_start(session.output_tail, code, run.spec.file,
                                     run.spec.flow, run.spec.program)
            session.start_failure = dataclasses.replace(  # the advice names the boxes
                failure, summary=window_terms(failure.summary))
        if session.start_failure is not None:  # first: whoever hears the end knows why
            self.start_failed.emit(key, session.start_failure)  # (a screenshot said "failed.")
            self._tell("error", session.start_failure.summary, key)
        self.run_ended.emit(key, status)
        plan, session.pending_rerun = session.pending_rerun, None
        if plan is not None:
            self.start_run(key, plan=plan)
        if run is not None:
            self.collect_garbage(run.spec.root)

    # -- the store: deleting, pinning, collecting ------------------------------------------

    def delete_run(self, layout: RunLayout, run_id: str) -> bool:
        """History's "Delete run": its folder and log go now, its blobs at the next collection.

        A running or pinned run is refused with a message (the store checks, not the view).
        """
        return bool(self.delete_runs(layout, [run_id]))

    def delete_runs(self, layout: RunLayout, run_ids: list[str]) -> list[str]:
        """Delete runs of one flow (`delete_run` for each), saying so in one message; the
        ids of those deleted. Each refusal is said on its own."""
        deleted, freed = [], 0
        for run_id in run_ids:
            try:
                freed += store_gc.delete_run(layout, run_id)
            except (store_gc.RunProtected, FileNotFoundError) as exc:
                self.message.emit("warning", str(exc))
                continue
            except OSError as exc:
                self.message.emit("error", f"Run {layout.flow}/{run_id} could not be deleted: "
                                  f"{exc}")
                continue
            deleted.append(run_id)
        if not deleted:
            return deleted
        self.forget_deleted_runs(set(deleted))
        self.forget_last_runs(layout.flow)
        what = f"run {layout.flow}/{deleted[0]}" if len(deleted) == 1 else \
            f"{len(deleted)} runs of {layout.flow}"
        self.message.emit("info", f"Deleted {what} ({store_gc.human_bytes(freed)}).")
        return deleted

    def forget_deleted_runs(self, gone: set[str]) -> None:
        """Runs deleted (here, or outside the window): a session whose finished run was
        one of them has nothing left to show of it."""
        for session in self.sessions.values():
            if session.state is not None and session.state.run_id in gone and \
                    not session.running:
                session.state = None
                session.start_failure = None

    def pin_run(self, layout: RunLayout, run_id: str, pinned: bool = True) -> bool:
        """Pin a run (the collector keeps it however old) or unpin it."""
        index = RunIndex(layout)
        try:
            if pinned:
                index.pin(run_id)
            else:
                index.unpin(run_id)
        except OSError as exc:
            self.message.emit("error", f"Run {layout.flow}/{run_id} could not be "
                              f"{'pinned' if pinned else 'unpinned'}: {exc}")
            return False
        return True

    def collect_garbage(self, root: str, force: bool = False) -> bool:
        """Collect a store on the pool's thread; True when a collection started.

        At most one per store every `gc/interval_minutes` (unless `force`), and never two
        at once: after each run would walk the whole store after every rerun-on-save.
        `garbage_collected` says what it did.
        """
        root = os.path.abspath(root)
        if self._closed:
            return False
        last = self._gc_last.get(root)
        interval = 60 * _as_float(self.settings.value("gc/interval_minutes"),
                                  GC_INTERVAL_MINUTES)
        if root in self._gc_busy or (not force and last is not None
                                     and time.monotonic() - last < interval):
            return False
        self._gc_busy.add(root)
        self._gc_last[root] = time.monotonic()
        self._gc_pool.start(_GcJob(root, self._gc_relay))
        return True

    def _on_gc_done(self, root: str, result: object) -> None:
        self._gc_busy.discard(root)
        if not isinstance(result, store_gc.GcReport):
            self.message.emit("warning", f"Old runs in {root} were not cleaned up: {result}")
        elif result.errors:
            self.message.emit("warning", f"Cleaning up {root}: {result.errors[0]}")
        elif result.runs_removed:
            self.message.emit("info", f"Cleaned up {root}: {result.summary()}.")
        self.garbage_collected.emit(root, result)

    # -- resume and rerun --------------------------------------------------------------------

    def last_run(self, key: str) -> RunEntry | None:
        """The flow's newest run on disk (from an earlier session too: the record written
        last), read once and kept until a run of the flow starts or ends, or one is
        deleted."""
        if key not in self._last_runs:
            layout = self.layout_for(key)
            try:
                newest = RunIndex(layout).newest_written() if layout is not None else None
            except (OSError, InvalidId):  # InvalidId: `runs_problem` says why
                newest = None
            self._last_runs[key] = newest
        return self._last_runs[key]

    def runs_problem(self, key: str) -> str | None:
        """Why the flow's runs can be neither kept nor listed in its store, as the window
        says it (naming the class's line, and what to do); None when they can. The store
        keeps a flow's runs in a folder named after the flow, and refuses a name that
        cannot be one (`layout.check_id`): one such flow must not break the others."""
        entry = self.model.entry(key)
        layout = self.layout_for(key)
        if entry is None or layout is None:
            return None
        try:
            layout.runs_dir  # noqa: B018 (the store's own check of the flow's folder)
        except InvalidId as exc:
            return (f"{entry.file}, line {entry.line}: this flow cannot be run, nor its runs "
                    f"listed: the store keeps its runs in a folder named after the class, "
                    f"and {exc} Rename the class.")
        return None

    def forget_last_runs(self, flow: str) -> None:
        """Read the newest run again of every flow called `flow` (a run of it ended or was
        deleted, or History saw new runs: one from a terminal, or of a flow of the same
        name in another file, which may share the store), and mark those not run in this
        session by it (or whose last start here failed before its run began: that made no
        run, so the mark is the newest on disk's, as when it failed). Only that name's: a
        folder of many flows is not read again."""
        for entry in self.model.entries():
            if entry.name != flow:
                continue
            self._last_runs.pop(entry.key, None)
            session = self.sessions.get(entry.key)
            if self.outside_run(entry.key) is not None and not self.is_running(entry.key):
                self.model.set_run_status(entry.key, RUNNING)  # followed: it goes on
            elif session is None or session.state is None or session.start_failure is not None:
                last = self.last_run(entry.key)
                self.model.set_run_status(entry.key, outcome_badge(last.status) if last else None)

    def can_resume(self, key: str) -> bool:
        """Whether Resume from Failure has a run to start from: this session's last run if
        the flow ran in it, else its newest run on disk (the app may have restarted)."""
        session = self.sessions.get(key)
        if session is not None and (session.state is not None or session.start_failure):
            return session.can_resume()
        last = self.last_run(key)
        return last is not None and last.status in RUN_UNFINISHED

    def _resume_origin(self, key: str) -> tuple[str | None, str | None]:
        """The run Resume from Failure continues (this session's last run, else the newest
        on disk) and the engine that ran it."""
        state = self.session(key).state
        run = self.session(key).run
        origin = state.run_id if state and state.status in RUN_UNFINISHED else None
        engine = run.spec.engine if origin and run is not None else None  # the one that ran it
        if state is None:  # not run in this session: its newest run on disk
            last = self.last_run(key)
            if last is not None and last.status in RUN_UNFINISHED:
                origin = last.run_id
                engine = last.record.engine if last.record is not None else None
        return origin, engine

    def resume_param_changes(self, key: str) -> list[ParamChange]:
        """The form's parameter values that differ from those of the run a resume would
        continue: a resume keeps that run's values (it continues the run as it was), so the
        form's would be silently ignored."""
        origin, _engine = self._resume_origin(key)
        layout = self.layout_for(key)
        if origin is None or layout is None:
            return []
        try:
            record = RunIndex(layout).read(origin).record
        except (OSError, ValueError):
            return []
        return param_changes(self.session(key).params, record, self._param_types(key)) \
            if record is not None else []

    def _param_types(self, key: str) -> dict[str, str]:
        entry = self.model.entry(key)
        return {p.name: p.type for p in entry.flow.parameters} if entry is not None else {}

    def resume_failed(self, key: str) -> RunState | None:
        origin, engine = self._resume_origin(key)
        try:
            options = self.option_args(key)
        except RunOptionsError as exc:
            self._tell("error", str(exc), key)
            return None
        args = ["resume"] + (["--origin-run-id", origin] if origin else []) + options
        return self.start_run(key, plan=RunPlan(args, "resume from the failure", origin,
                                                engine=engine))

    def rerun_with(self, key: str, record: RunRecord) -> RunState | None:
        """History's "rerun with these parameters": exactly the recorded command-line values."""
        self.save_params(key, recorded_params(record))
        return self.start_run(key, record.cli_args())

    def rerun_plan(self, entry: CatalogEntry) -> RunPlan:
        """After a save: rerun only changed steps (and what follows) when that is safe.

        Raises RunOptionsError when the flow's run options are malformed."""
        options = self.option_args(entry.key)
        base = ["run", *options, *self.run_args(entry.key)]
        layout = self.layout_for(entry.key) or RunLayout.for_file(entry.file, entry.name)
        last = RunIndex(layout).latest_successful()
        if last is None or last.record is None:
            return RunPlan(base, "no successful run to reuse")
        record = last.record
        if record.engine != self.run_engine(entry.key):
            return RunPlan(base, f"the last successful run was on the {record.engine} engine")
        changes = param_changes(self.session(entry.key).params, record,
                                self._param_types(entry.key))
        if changes:  # a resume would keep the run's values: the form's are the ones to run
            return RunPlan(base, f"parameters changed: {', '.join(c.name for c in changes)}")
        new_hashes = entry.flow.graph.step_hashes()
        old_hashes = record.step_hashes
        if record.outside_hash != entry.flow.graph.outside_hash or \
                set(old_hashes) != set(new_hashes):
            return RunPlan(base, "code outside the steps changed")
        changed = tuple(s for s in entry.flow.graph.topological()
                        if old_hashes.get(s) != new_hashes.get(s))
        if not changed:
            return RunPlan(base, "no step changed")
        args = ["resume", *changed, "--origin-run-id", record.run_id, *options]
        return RunPlan(args, f"steps changed: {', '.join(changed)}", record.run_id, changed)

    def _rerun_on_save(self, entry: CatalogEntry) -> None:
        if not entry.ok:
            first = entry.diagnostics[0] if entry.diagnostics else None
            detail = f": line {first.line}: {first.message}" if first else ""
            self._tell("error", f"{Path(entry.file).name} {FILE_ERRORS_SAY[1]}, so it "
                       f"was not rerun{detail}", entry.key)
            self.session(entry.key).recheck = None  # an earlier save waiting is outdated
            return
        version = self._read_version(entry)
        if version == "unknown" and self._recheck_later(entry):
            return  # the run is starting: which file it read shows once its record is out
        self.session(entry.key).recheck = None
        if version == "same":
            return  # the latest run read the saved file already: rerunning would run it twice
        session = self.session(entry.key)
        if session.run is not None and session.started_code is not None and \
                _fingerprint_of(entry.file) == session.started_code:
            self._tell("info", f"{entry.name} saved: only comments or blank lines changed, so "
                       "it was not rerun.", entry.key)
            return
        try:
            plan = self.rerun_plan(entry)
        except RunOptionsError as exc:
            self._tell("error", f"{entry.name} was saved but not rerun: {exc}", entry.key)
            return
        stopping = " The run going on is stopped first." if self.is_running(entry.key) else ""
        self._tell("info", f"{entry.name} saved; rerunning ({plan.reason}).{stopping}",
                   entry.key)
        if self.is_running(entry.key):
            self.session(entry.key).pending_rerun = plan
            self.stop_run(entry.key)
        else:
            self.start_run(entry.key, plan=plan)

    def _read_version(self, entry: CatalogEntry) -> str:
        """Whether the flow's latest run read exactly the saved code: "same", "other", or
        "unknown" (it is starting and has not written its record yet).

        A run starts a moment after the save that asked for it, and reads the file then;
        in a save storm that is often a later save, whose change arrives after. Its record
        says which code it read (step and outside-of-steps hashes). Without this the final
        content of a storm ran twice, the first run cancelled (reliability/save_storms.py).
        Only a run going on, or one that ended succeeded or failed, counts.
        """
        session = self.sessions.get(entry.key)
        if session is None or session.run is None or session.pending_rerun is not None:
            return "other"
        run = session.run
        going = session.running
        if run.stopping or run.spec.engine != "flowdeck" or \
                (not going and run.status not in (SUCCEEDED, FAILED)):
            return "other"
        try:
            record = RunRecord.read(RunLayout(Path(run.spec.root), run.spec.flow)
                                    .run_json(run.spec.run_id))
        except (OSError, ValueError):  # not written yet (still starting), or unreadable
            return "unknown" if going else "other"
        graph = entry.flow.graph
        same = record.step_hashes == graph.step_hashes() and \
            record.outside_hash == graph.outside_hash
        return "same" if same else "other"

    def _recheck_later(self, entry: CatalogEntry) -> bool:
        """Decide about this save again in RECHECK_MS, for at most RECHECK_LIMIT_S (then the
        run is taken to have read older code); False when that time is up."""
        session = self.session(entry.key)
        now = time.monotonic()
        first = session.recheck[1] if session.recheck and session.recheck[0] is entry else now
        if now - first > RECHECK_LIMIT_S:
            return False
        session.recheck = (entry, first)
        QTimer.singleShot(RECHECK_MS, lambda: self._recheck(entry))
        return True

    def _recheck(self, entry: CatalogEntry) -> None:
        session = self.sessions.get(entry.key)
        if session is not None and session.recheck is not None and \
                session.recheck[0] is entry:  # else a newer save took over
            self._rerun_on_save(entry)


def _slug(key: str) -> str:
    return key.replace("/", "|").replace("\\", "|")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _options_or_none(text: str) -> list[str]:
    """The run options as arguments, or none when they are malformed (the run says why)."""
    try:
        return parse_run_options(text)
    except RunOptionsError:
        return []


def _placement(value: Any) -> Placement:
    """A remembered placement (a settings dict); the default for anything else."""
    if not isinstance(value, dict):
        return Placement()
    return Placement(str(value.get("executor") or "local"), str(value.get("scheduler") or ""),
                     str(value.get("store") or ""))


def _as_bool(value: Any) -> bool:
    return value in (True, "true", "1", 1)


def _as_float(value: Any, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def outcome_badge(status: str) -> str | None:
    """The flow list's mark for a finished run's status: failed and crashed read "last run
    failed"; succeeded and cancelled (stopped) are marked so, a stopped run apart from a
    flow that never ran; one still running elsewhere marks nothing (ready)."""
    if status in (FAILED, CRASHED):
        return LAST_RUN_FAILED
    return status if status in (SUCCEEDED, CANCELLED) else None
