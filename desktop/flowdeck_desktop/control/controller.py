"""The window's logic, kept out of the widgets: watching, running, rerunning on save.

`FlowdeckController` owns the folder watcher (through `WatchBridge`, which
turns the watcher thread's callbacks into queued Qt signals), the catalog
model, and one `RunProcess` + `RunState` per running flow. Views call its
methods and listen to its signals; it never touches a widget.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from flowdeck.store.blobs import default_root, read_json
from flowdeck.discovery.catalog import CatalogDiff, CatalogEntry
from flowdeck.discovery.watcher import FolderWatcher, WatchStatus

from flowdeck_desktop.models.catalog_model import CatalogModel
from flowdeck_desktop.system.interpreter import Interpreter, check_interpreter, detect_interpreter
from flowdeck_desktop.control.run_process import RunProcess, RunRequest, new_run_id
from flowdeck_desktop.models.run_state import RunState


class WatchBridge(QObject):
    """Carries watcher callbacks (on its own thread) into the GUI thread as queued signals."""

    diff_ready = Signal(object)
    status_ready = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.watcher: FolderWatcher | None = None

    def watch(self, roots: list[str]) -> Any:
        """(Re)start watching exactly these roots; returns the first snapshot."""
        self.stop()
        self.watcher = FolderWatcher(roots, on_change=self.diff_ready.emit,
                                     on_status=self.status_ready.emit)
        return self.watcher.start()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None


@dataclass
class RunPlan:
    """What a rerun will do: all steps, or resume from the changed ones."""

    args: list[str]
    reason: str
    origin_run_id: str | None = None
    changed_steps: tuple[str, ...] = ()


class FlowdeckController(QObject):
    """Holds the session's state; the main window is a view of it."""

    run_started = Signal(str, object)  # flow key, RunState
    run_output = Signal(str, str, str)  # flow key, stream, text
    run_ended = Signal(str, str)  # flow key, status
    message = Signal(str, str)  # level (info | warning | error), text
    roots_changed = Signal()

    def __init__(self, settings: QSettings, parent: QObject | None = None):
        super().__init__(parent)
        self.settings = settings
        self.model = CatalogModel(self)
        self.bridge = WatchBridge(self)
        self.bridge.diff_ready.connect(self._on_diff)
        self.bridge.status_ready.connect(self._on_watch_status)
        self.roots: list[str] = []
        self.runs: dict[str, RunProcess] = {}
        self.states: dict[str, RunState] = {}
        self._pending_rerun: dict[str, RunPlan] = {}
        self._pending_args: dict[str, list[str]] = {}

    # -- folders -------------------------------------------------------------------

    def add_paths(self, paths: list[str]) -> list[str]:
        """Watch folders (and the folders of files); returns flow keys of given files."""
        wanted = list(self.roots)
        files = []
        for raw in paths:
            path = os.path.abspath(raw)
            if os.path.isfile(path):
                files.append(path)
                path = os.path.dirname(path)
            elif not os.path.isdir(path):
                self.message.emit("error", f"{raw}: no such file or folder.")
                continue
            if not any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in wanted):
                wanted = [r for r in wanted if not r.startswith(path.rstrip(os.sep) + os.sep)]
                wanted.append(path)
        if wanted != self.roots:
            self._watch(wanted)
        keys = []
        for file in files:
            found = [e.key for e in self.model.entries() if e.file == file]
            if not found:
                self.message.emit("warning", f"{file} defines no flow (a class deriving from "
                                  "FlowSpec of flowdeck or metaflow).")
            keys += found
        return keys

    def remove_root(self, root: str) -> None:
        self._watch([r for r in self.roots if r != root])

    def _watch(self, roots: list[str]) -> None:
        self.roots = roots
        self.settings.setValue("folders", roots)
        self._remember_recent(roots)
        snapshot = self.bridge.watch(roots)
        self.model.apply_snapshot(snapshot)
        self.roots_changed.emit()

    def _remember_recent(self, roots: list[str]) -> None:
        recent = [r for r in _as_list(self.settings.value("recent")) if r not in roots]
        self.settings.setValue("recent", (roots + recent)[:10])

    def shutdown(self) -> None:
        self.bridge.stop()
        for run in list(self.runs.values()):
            run.stop()
            run.wait_stopped(3000)

    # -- catalog updates -------------------------------------------------------------

    def _on_diff(self, diff: CatalogDiff) -> None:
        watcher = self.bridge.watcher
        if watcher is None:
            return
        if diff.roots_changed:
            self.model.apply_snapshot(watcher.snapshot)
        else:
            self.model.apply_diff(diff, watcher.snapshot)
        for entry in diff.changed:
            if self.auto_rerun(entry.key):
                self._rerun_on_save(entry)

    def _on_watch_status(self, status: WatchStatus) -> None:
        level = "warning" if status.kind in ("folder-missing", "polling") else "info"
        self.message.emit(level, str(status))

    # -- settings per flow -----------------------------------------------------------

    def auto_rerun(self, key: str) -> bool:
        return _as_bool(self.settings.value(f"autorerun/{_slug(key)}", False))

    def set_auto_rerun(self, key: str, on: bool) -> None:
        self.settings.setValue(f"autorerun/{_slug(key)}", on)

    def saved_params(self, key: str) -> dict[str, str]:
        value = self.settings.value(f"params/{_slug(key)}")
        return dict(value) if isinstance(value, dict) else {}

    def save_params(self, key: str, values: dict[str, str]) -> None:
        self.settings.setValue(f"params/{_slug(key)}", values)

    def interpreter_for(self, file: str) -> Interpreter:
        folder = os.path.dirname(file)
        configured = self.settings.value(f"interpreter/{_slug(folder)}") or None
        return detect_interpreter(folder, configured)

    def set_interpreter(self, file: str, path: str | None) -> None:
        key = f"interpreter/{_slug(os.path.dirname(file))}"
        if path:
            self.settings.setValue(key, path)
        else:
            self.settings.remove(key)

    # -- running -------------------------------------------------------------------------

    def is_running(self, key: str) -> bool:
        run = self.runs.get(key)
        return run is not None and run.status not in ("succeeded", "failed", "cancelled",
                                                      "crashed")

    def start_run(self, key: str, args: list[str] | None = None,
                  plan: RunPlan | None = None) -> RunState | None:
        """Start `python file.py run ARGS` (or the plan's resume) for a flow."""
        entry = self.model.entry(key)
        if entry is None:
            self.message.emit("error", "That flow is gone: its file was removed or renamed.")
            return None
        if not entry.ok:
            first = entry.diagnostics[0] if entry.diagnostics else None
            where = f" (line {first.line}: {first.message})" if first else ""
            self.message.emit("error", f"{entry.name} has errors and cannot run{where}.")
            return None
        if self.is_running(key):
            self.message.emit("warning", f"{entry.name} is already running; stop it first.")
            return None
        request = self._request(entry, plan.args if plan else ["run", *(args or [])])
        if request is None:
            return None
        return self._launch(key, entry, request)

    def _request(self, entry: CatalogEntry, args: list[str]) -> RunRequest | None:
        interpreter = self.interpreter_for(entry.file)
        check = check_interpreter(interpreter.path)
        if not check.works:
            self.message.emit("error", check.error)
            return None
        if entry.engine == "metaflow" and not check.has_metaflow:
            self.message.emit("error", f"{interpreter.path} cannot import metaflow, which "
                              f"{entry.name} uses. Install it there: `{interpreter.path} -m pip "
                              "install metaflow`" + (" (Metaflow does not run natively on "
                                                     "Windows; use WSL)." if os.name == "nt"
                                                     else "."))
            return None
        return RunRequest(file=entry.file, flow=entry.name, interpreter=interpreter.path,
                          args=args, run_id=new_run_id(),
                          root=str(default_root(entry.file)),
                          add_core_to_path=not check.has_flowdeck, engine=entry.engine)

    def _launch(self, key: str, entry: CatalogEntry, request: RunRequest) -> RunState:
        state = RunState(self)
        state.reset(entry.flow.graph.as_dict())
        state.flow, state.file, state.run_id = entry.name, entry.file, request.run_id
        state.status = "running"
        run = RunProcess(request, self)
        run.event.connect(state.apply)
        run.output.connect(lambda stream, text, k=key: self.run_output.emit(k, stream, text))
        run.failed_to_start.connect(lambda msg: self.message.emit("error", msg))
        run.ended.connect(lambda code, status, k=key: self._on_ended(k, status))
        old = self.runs.get(key)
        if old is not None:
            old.deleteLater()
        self.runs[key] = run
        self.states[key] = state
        self.model.set_run_status(key, "running")
        self.run_started.emit(key, state)
        run.start()
        return state

    def stop_run(self, key: str) -> None:
        run = self.runs.get(key)
        if run is not None and self.is_running(key):
            run.stop()

    def _on_ended(self, key: str, status: str) -> None:
        run = self.runs.get(key)
        never_started = run is not None and status == "failed" and \
            not os.path.exists(run.request.events_path)
        state = self.states.get(key)
        if state is not None:
            state.mark_ended(status)
        self.model.set_run_status(key, {"succeeded": "succeeded", "running": "running"}.get(
            status, "last run failed" if status in ("failed", "crashed") else None))
        self.run_ended.emit(key, status)
        if never_started and run is not None:
            name = run.request.flow
            self.message.emit("error", f"{Path(run.request.file).name} ended without running "
                              f"{name}. Make the file start the flow: end it with "
                              f"`if __name__ == \"__main__\": {name}().run()`.")
        plan = self._pending_rerun.pop(key, None)
        if plan is not None:
            self.start_run(key, plan=plan)

    # -- resume and rerun --------------------------------------------------------------------

    def resume_failed(self, key: str) -> RunState | None:
        state = self.states.get(key)
        origin = state.run_id if state and state.status in ("failed", "crashed", "cancelled") \
            else None
        args = ["resume"] + (["--origin-run-id", origin] if origin else [])
        return self.start_run(key, plan=RunPlan(args, "resume from the failure", origin))

    def rerun_plan(self, entry: CatalogEntry) -> RunPlan:
        """After a save: rerun only changed steps (and what follows) when that is safe."""
        base = self._pending_args.get(entry.key) or ["run"]
        last = latest_successful_run_info(entry)
        if last is None:
            return RunPlan(base, "no successful run to reuse")
        new_hashes = entry.flow.graph.step_hashes()
        old_hashes = last.get("step_hashes") or {}
        if last.get("outside_hash") != entry.flow.graph.outside_hash or \
                set(old_hashes) != set(new_hashes):
            return RunPlan(base, "code outside the steps changed")
        changed = tuple(s for s in entry.flow.graph.topological()
                        if old_hashes.get(s) != new_hashes.get(s))
        if not changed:
            return RunPlan(base, "no step changed")
        args = ["resume", *changed, "--origin-run-id", str(last["run_id"])]
        return RunPlan(args, f"steps changed: {', '.join(changed)}", str(last["run_id"]), changed)

    def _rerun_on_save(self, entry: CatalogEntry) -> None:
        if not entry.ok:
            first = entry.diagnostics[0] if entry.diagnostics else None
            detail = f": line {first.line}: {first.message}" if first else ""
            self.message.emit("error", f"{Path(entry.file).name} was saved with errors, so it "
                              f"was not rerun{detail}")
            return
        plan = self.rerun_plan(entry)
        self.message.emit("info", f"{entry.name} saved; rerunning ({plan.reason}).")
        if self.is_running(entry.key):
            self._pending_rerun[entry.key] = plan
            self.stop_run(entry.key)
        else:
            self.start_run(entry.key, plan=plan)

    def remember_args(self, key: str, args: list[str]) -> None:
        """The last `run` arguments (parameters) the user chose, reused by reruns."""
        self._pending_args[key] = ["run", *args]


def latest_successful_run_info(entry: CatalogEntry) -> dict[str, Any] | None:
    """`run.json` of the newest succeeded run of a flow (plain JSON, nothing unpickled)."""
    runs_dir = default_root(entry.file) / entry.name / "runs"
    best: tuple[float, dict[str, Any]] | None = None
    try:
        folders = list(os.scandir(runs_dir))
    except OSError:
        return None
    for folder in folders:
        try:
            info = read_json(os.path.join(folder.path, "run.json"))
        except (OSError, ValueError):
            continue
        if info.get("status") == "succeeded" and (best is None or info.get("start", 0) > best[0]):
            best = (float(info.get("start") or 0), info)
    return best[1] if best else None


def _slug(key: str) -> str:
    return key.replace("/", "|").replace("\\", "|")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _as_bool(value: Any) -> bool:
    return value in (True, "true", "1", 1)

