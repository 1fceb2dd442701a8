"""The composition root: builds the controller, the window and wires them. Nothing else does."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from PySide6.QtCore import QDir, QSettings, QStandardPaths, QTimer
from PySide6.QtGui import QImageWriter
from PySide6.QtWidgets import QApplication

from flowdeck_desktop.command_line import AppOptions
from flowdeck_desktop.control.controller import FlowdeckController
from flowdeck_desktop.system.single_instance import FileOpenFilter, InstanceServer
from flowdeck_desktop.system.user_examples import ExamplesFolder, examples_for_window
from flowdeck_desktop.views.main_window import MainWindow, app_icon, run_ended_text
from flowdeck_desktop.views.theme import THEME_ENV, apply_theme


def bundled_examples() -> ExamplesFolder:
    """The examples shipped with the app, as the window opens them: a checkout's own, else
    the user's copy of a wheel's or a bundle's (`user_examples`), so runs land there."""
    return examples_for_window()


def default_settings() -> QSettings:
    folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppConfigLocation)
    return QSettings(os.path.join(folder or os.path.expanduser("~/.config/flowdeck"),
                                  "flowdeck.ini"), QSettings.Format.IniFormat)


def build(settings: QSettings | None = None, paths: list[str] | None = None,
          restore: bool = True, examples: ExamplesFolder | None = None,
          ) -> tuple[FlowdeckController, MainWindow]:
    """Create the controller and the window: the remembered folders (unless `restore` is
    off, for scripted starts, which then leave them as they were: nothing they open is
    remembered), plus the given paths, which are selected. Paths given on the command line
    add to what is remembered; they never replace it. `examples`: what
    `bundled_examples()` gave, when the caller already asked."""
    settings = settings or default_settings()
    controller = FlowdeckController(settings, remember_roots=restore)
    examples = examples or bundled_examples()
    window = MainWindow(controller, settings, examples_dir=examples.folder)
    for note in examples.notes:
        window.show_message("warning", note, flow=None)
    existing = controller.remembered_paths() if restore or not paths else []
    if existing:
        window.open_paths(existing, select=False, restoring=True)
    if paths:
        window.open_paths(paths)
    controller.when_listed(lambda: select_first(controller, window))
    return controller, window


def select_first(controller: FlowdeckController, window: MainWindow) -> None:
    """Select the first flow unless one is selected (run once the folders are listed)."""
    if window.selected_key is None and controller.model.entries():
        window.select_flow(controller.model.entries()[0].key)


def cli_files(paths: list[str]) -> list[str]:
    """The files among the command-line paths: what a file manager passes for "Open with"."""
    return [p for p in paths if os.path.isfile(p)]


def bring_up(window: MainWindow, paths: list[str], run: bool = False) -> None:
    """Paths from another start (or the Dock): raise the window, then treat them as a drop.

    `run` (the Run action) runs the selected flow even when dropped flows do not run.
    """
    window.showNormal() if window.isMinimized() else window.show()
    window.raise_()
    window.activateWindow()
    if run and paths:  # the watcher's thread lists their flows first: run after that
        window.open_paths(paths, then=lambda keys: window.run_selected())
    elif run:
        window.run_selected()
    elif paths:
        window.handle_dropped(paths)


def listen_for_others(app: QApplication, window: MainWindow) -> InstanceServer:
    """Later starts and macOS file-open events hand their paths to this window."""
    server = InstanceServer(parent=app)
    if not server.listen() and not server.other_instance:
        print("Flowdeck: cannot listen for other starts "
              f"({server.server.errorString()}); each start will open its own window. "
              f"Check that {QDir.tempPath()} is writable.", file=sys.stderr)
    server.paths_received.connect(lambda paths: bring_up(window, paths))
    server.run_requested.connect(lambda paths: bring_up(window, paths, run=True))
    app.aboutToQuit.connect(server.close)  # remove the socket file on a normal exit
    opener = FileOpenFilter(app)
    opener.paths_received.connect(lambda paths: bring_up(window, paths))
    app.installEventFilter(opener)
    return server


def scripted_start_problem(options: AppOptions, paths: list[str]) -> str | None:
    """Why a scripted start (--screenshot, --exit-when-done) cannot do what it was asked,
    found before any window: a missing path (it waited for a run that never came), a
    screenshot file that cannot be written (it ran the flow, then exited 0 with no file)."""
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        return f"{missing[0]}: no such file or folder."
    if options.screenshot:
        target = os.path.abspath(options.screenshot)
        folder = os.path.dirname(target)
        if not os.path.isdir(folder):
            return (f"--screenshot {options.screenshot}: the folder {folder} does not exist. "
                    "Create it, or name a file in an existing folder.")
        suffix = os.path.splitext(target)[1].lower().lstrip(".")
        formats = {bytes(f.data()).decode() for f in QImageWriter.supportedImageFormats()}
        if suffix not in formats:
            return (f"--screenshot {options.screenshot}: cannot write a .{suffix or '?'} "
                    "picture; name a .png (or .jpg, .bmp) file.")
    return None


def run_app(argv: list[str], options: AppOptions) -> int:
    """The window for `options` (`argv` parsed by `command_line.parse_args`; `__main__`
    has already offered the paths to a running window)."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0], *argv])
    app.setApplicationName("Flowdeck")
    app.setOrganizationName("Flowdeck")
    app.setDesktopFileName("flowdeck")
    app.setWindowIcon(app_icon())
    apply_theme(app, os.environ.get(THEME_ENV))  # "dark" / "light"; else the system's
    paths = options.paths
    examples = bundled_examples()
    if options.screenshot and not paths and examples.folder:
        paths = [examples.folder]
    scripted = bool(options.quit_when_shown or options.screenshot or options.exit_when_done)
    refusal = scripted_start_problem(options, paths) if scripted else None
    if refusal:  # before a window or a run: a scripted start that cannot end well hung
        print(f"Flowdeck: {refusal}", file=sys.stderr)
        return 2
    controller, window = build(paths=paths or None, restore=not scripted, examples=examples)
    window.remember_layout = not scripted
    if options.size:
        window.resize(*options.size)
    if not options.new_instance:
        listen_for_others(app, window)
    window.show()
    outcome = {"status": "none", "asked": False}  # asked: a run was asked for

    def ask(start: Callable[[], object]) -> None:
        outcome["asked"] = True
        start()

    if options.quit_when_shown:
        QTimer.singleShot(0, window.close)
    if options.exit_when_done:  # listening first: a run may be refused as it is asked for
        def finish(key: str, status: str) -> None:
            if outcome.get("finished"):
                return
            outcome["finished"] = True
            outcome["status"] = status
            if key and status != "succeeded":  # why, on the terminal that started it
                failure = controller.session(key).start_failure
                entry = controller.model.entry(key)
                print("Flowdeck: " + (failure.summary if failure else run_ended_text(
                    entry.name if entry else key, status, controller.states.get(key))),
                    file=sys.stderr)
            if options.screenshot:
                window.logs.flush()
                window.dag.fit()
                for _ in range(3):  # the layout's late passes (scroll bars, a banner's height)
                    QApplication.sendPostedEvents()
                    app.processEvents()
                if not window.grab().save(options.screenshot):
                    print(f"Flowdeck: the screenshot could not be saved to "
                          f"{options.screenshot}.", file=sys.stderr)
                    outcome["status"] = "screenshot not saved"
            window.close()

        def refused(level: str, text: str) -> None:
            """A run was asked for and a warning or an error came instead (a required
            parameter left empty, a flow with errors, no flow to run): no run will end, so
            say why and end (a scripted start hung here). Decided once the events of the
            moment are delivered: a run that ended says so itself (`finish`)."""
            if level in ("error", "warning") and outcome["asked"]:
                QTimer.singleShot(0, lambda: give_up(text))

        def give_up(text: str) -> None:
            if outcome.get("finished") or any(
                    controller.is_running(e.key) for e in controller.model.entries()):
                return
            if not controller.model.entries():  # "Select a flow to run." said less
                text = f"no flow found in {', '.join(paths) or 'the folders watched'}."
            print(f"Flowdeck: {text}", file=sys.stderr)
            finish("", "not started")

        controller.run_ended.connect(finish)
        window.message_shown.connect(refused)
    if options.run:  # the watcher's thread lists them first
        controller.when_listed(lambda: ask(window.run_selected))
    elif cli_files(paths):  # "Open with" and drops on the icon run, as drops on the window do
        QTimer.singleShot(0, lambda: ask(lambda: window.handle_dropped(cli_files(paths))))
    code = app.exec()
    if options.exit_when_done:
        return 0 if outcome["status"] == "succeeded" else 1
    return code
