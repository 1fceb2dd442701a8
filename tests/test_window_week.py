"""The window through a real user's week: messages that stay until read, run options,
History following terminal runs, the interpreter dialog, the menus a desktop user
expects, nothing clipped at the default size, dark and light, and a start from a folder
holding a `flowdeck` folder. Real folders, real runs, the real window."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, WAIT_MS, child_env, close_window, flow_key
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QFontMetrics, QPalette, QTextOption
from PySide6.QtWidgets import QApplication, QFileDialog, QStyle

from flowdeck.store.layout import RunLayout
from flowdeck_desktop.app import build

GATED_FLOW = '''
import os
import time
from pathlib import Path

from flowdeck import FlowSpec, step


class GatedFlow(FlowSpec):
    @step
    def start(self):
        gate = os.environ.get("GATE")
        if gate:  # wait until the test opens the gate
            Path(gate + ".waiting").write_text("")
            while not Path(gate).exists():
                time.sleep(0.02)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GatedFlow().run()
'''

HELLO_METAFLOW = '''from metaflow import FlowSpec, step


class HelloFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HelloFlow()
'''

CONDA_METAFLOW = '''from metaflow import FlowSpec, conda, step


class CondaFlow(FlowSpec):
    @conda(libraries={"numpy": "1.26.4"})
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CondaFlow()
'''

BROKEN_IMPORT = '''import not_a_module_flowdeck_tests
from flowdeck import FlowSpec, step


class BrokenImportFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BrokenImportFlow().run()
'''


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    target.mkdir()
    shutil.copy(EXAMPLES / "train.py", target)
    (target / "gated.py").write_text(GATED_FLOW)
    return target


def open_window(qtbot, settings: QSettings, paths: list[Path], size: tuple[int, int] | None = None):
    controller, window = build(settings, [str(p) for p in paths], restore=False)
    if size is not None:
        window.resize(*size)
    window.show()
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)  # listed off-thread
    return controller, window


@pytest.fixture
def app(qtbot, settings: QSettings, folder: Path):
    controller, window = open_window(qtbot, settings, [folder])
    yield controller, window
    close_window(controller, window)


def run_and_wait(qtbot, controller, window, name: str) -> str:
    window.select_flow(flow_key(controller, name))
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.run_selected()
    return blocker.args[1]


def bare_venv(where: Path) -> Path:
    """A virtual environment with nothing installed (no flowdeck, no metaflow, no pip)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True,
                   capture_output=True)
    return where / "bin" / "python"


def action(menu, text: str):
    found = [a for a in menu.actions() if a.text() == text]
    assert found, f"no {text!r} in {[a.text() for a in menu.actions()]}"
    return found[0]


def type_options(window, text: str) -> None:
    window.params.options.setText(text)
    window.params.options.textEdited.emit(text)


# --------------------------------------------------------------------------- 1. messages


def test_messages_that_need_action_stay_whole_in_a_banner_and_in_notifications(
        qtbot, settings: QSettings, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "hello.py").write_text(HELLO_METAFLOW)
    (folder / "broken.py").write_text(BROKEN_IMPORT)
    shutil.copy(EXAMPLES / "train.py", folder)
    python = bare_venv(folder / ".venv")  # the folder's venv: no metaflow in it
    controller, window = open_window(qtbot, settings, [folder], (1280, 700))
    try:
        hello = flow_key(controller, "HelloFlow")
        window.select_flow(hello)
        assert window.banner.isHidden()
        window.run_selected()  # refused: the venv cannot import metaflow
        command = f"{python} -m pip install metaflow"
        banner = window.banner
        qtbot.waitUntil(banner.isVisible)
        assert "cannot import metaflow, which HelloFlow uses" in banner.text
        assert command in banner.view.toPlainText()  # the whole text, command included
        assert banner.view.wordWrapMode() == QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere
        assert banner.view.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
        assert banner.view.fits()  # nothing scrolled away or cut off
        assert command not in window.statusBar().currentMessage()  # not left to the status bar
        banner.copy_button.click()
        assert QApplication.clipboard().text() == command
        notice = window.notifications.notices[0]
        assert (notice.level, notice.flow_key, notice.flow_name) == ("error", hello, "HelloFlow")
        assert command in window.notifications.toPlainText()
        assert "HelloFlow" in window.notifications.toPlainText()

        train = flow_key(controller, "TrainFlow")
        window.select_flow(train)  # the banner is the selected flow's
        assert banner.isHidden()
        window.select_flow(hello)
        assert banner.isVisible() and command in banner.view.toPlainText()
        banner.close_button.click()
        assert banner.isHidden()
        assert window.notifications.notices[0].text == notice.text  # still listed

        broken = flow_key(controller, "BrokenImportFlow")
        window.select_flow(broken)
        with qtbot.waitSignal(controller.start_failed, timeout=WAIT_MS):
            window.run_selected()
        qtbot.waitUntil(banner.isVisible)
        assert "not_a_module_flowdeck_tests" in banner.text
        assert banner.copy_text() == f"{python} -m pip install not_a_module_flowdeck_tests"
        assert window.bottom.currentWidget() is window.error_pane

        window.select_flow(train)
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
            window.run_selected()
        assert window.statusBar().currentMessage() == "TrainFlow succeeded."  # info: transient
        assert banner.isHidden()
    finally:
        close_window(controller, window)


# --------------------------------------------------------------------------- 2. run options


def test_run_options_are_remembered_passed_before_the_parameters_and_checked(
        qtbot, app, settings: QSettings, folder: Path) -> None:
    controller, window = app
    key = flow_key(controller, "TrainFlow")
    window.select_flow(key)
    type_options(window, "--max-workers 1")
    assert controller.run_options(key) == "--max-workers 1"
    with qtbot.waitSignal(controller.run_started, timeout=WAIT_MS):
        window.run_selected()
    args = controller.runs[key].spec.args
    assert args[args.index("run"):args.index("run") + 5] == \
        ["run", "--max-workers", "1", "--rates", "0.1,0.01"]
    qtbot.waitUntil(lambda: not controller.is_running(key), timeout=WAIT_MS)
    layout = RunLayout.for_file(folder / "train.py", "TrainFlow")
    run_id = controller.states[key].run_id
    started = json.loads(layout.events(run_id).read_text().splitlines()[0])
    assert started["type"] == "run_started" and started["max_workers"] == 1

    type_options(window, '--max-workers 1 --with "kubernetes:cpu=2')  # a quote left open
    assert window.params.options_error.isVisible()
    assert "--with" in window.params.options_error.text()
    started_runs: list[str] = []
    controller.run_started.connect(lambda k, _s: started_runs.append(k))
    window.run_selected()
    assert not started_runs
    assert window.banner.isVisible() and "--with" in window.banner.text
    assert "never closed" in window.banner.text

    type_options(window, "--no-such-option 3")  # not an option of the flow's command line
    with qtbot.waitSignal(controller.start_failed, timeout=WAIT_MS):
        window.run_selected()
    assert "--no-such-option is not an option" in window.banner.text
    assert "Run options" in window.banner.text

    # Metaflow's option of the script itself, typed in Run options: it goes before the
    # command, where the script takes it (it was put after `run`, and refused there).
    type_options(window, "--environment=conda --max-workers 1")
    with qtbot.waitSignal(controller.run_started, timeout=WAIT_MS):
        window.run_selected()
    args = controller.runs[key].spec.args
    assert args[args.index("run") - 1] == "--environment=conda"
    assert args[args.index("run"):args.index("run") + 3] == ["run", "--max-workers", "1"]
    qtbot.waitUntil(lambda: not controller.is_running(key), timeout=WAIT_MS)
    assert controller.states[key].status == "succeeded"

    type_options(window, "--max-workers 2")
    controller2, window2 = build(settings, restore=True)  # remembered in the settings
    try:
        assert controller2.run_options(key) == "--max-workers 2"
    finally:
        window2.close()
        controller2.shutdown()


def test_a_metaflow_flow_needing_an_environment_says_which_option_to_set(
        qtbot, settings: QSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("metaflow")
    monkeypatch.setenv("USER", "flowdeck-tests")
    folder = tmp_path / "conda"
    folder.mkdir()
    (folder / "condaflow.py").write_text(CONDA_METAFLOW)
    controller, window = open_window(qtbot, settings, [folder])
    try:
        key = flow_key(controller, "CondaFlow")
        window.select_flow(key)
        with qtbot.waitSignal(controller.start_failed, timeout=WAIT_MS) as failed:
            window.run_selected()
        assert "--environment" in failed.args[1].summary
        assert "Run options" in window.banner.text
        assert window.banner.copy_text() == "--environment=conda"
        assert not window.act_resume.isEnabled()  # nothing ran: nothing to resume
    finally:
        close_window(controller, window)


# --------------------------------------------------------------------------- 3. history


def test_history_follows_a_run_started_from_a_terminal(qtbot, app, folder: Path,
                                                       tmp_path: Path) -> None:
    controller, window = app
    window.select_flow(flow_key(controller, "GatedFlow"))
    assert window.history.table.rowCount() == 0
    gate = tmp_path / "gate"
    process = subprocess.Popen([sys.executable, str(folder / "gated.py")], cwd=folder,
                               env=child_env(GATE=str(gate)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        qtbot.waitUntil(lambda: Path(str(gate) + ".waiting").exists(), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: [r.status for r in window.history._runs] == ["running"],
                        timeout=WAIT_MS)
        assert window.history.table.item(0, 0).toolTip() == "running"
        gate.touch()
        qtbot.waitUntil(lambda: [r.status for r in window.history._runs] == ["succeeded"],
                        timeout=WAIT_MS)
        assert process.wait(timeout=30) == 0
    finally:
        gate.touch()
        process.wait(timeout=30)


# --------------------------------------------------------------------------- 4. interpreter


def test_interpreter_dialog_says_why_lists_skipped_and_found_and_goes_back_to_automatic(
        qtbot, settings: QSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    project = tmp_path / "project"
    sub = project / "sub"
    sub.mkdir(parents=True)
    shutil.copy(EXAMPLES / "train.py", sub)
    for venv in (project / ".venv", sub / "venv"):
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(sys.executable)
    (sub / "venv").chmod(0o777)  # others could plant a python there: skipped
    controller, window = open_window(qtbot, settings, [project])
    try:
        key = flow_key(controller, "TrainFlow")
        window.select_flow(key)
        file = controller.model.entry(key).file
        good = str(project.resolve() / ".venv" / "bin" / "python")
        dialog = window.choose_interpreter()
        assert dialog is not None and dialog.isVisible()
        assert good in dialog.current_label.text() and "folder venv" in dialog.current_label.text()
        assert "virtual environment" in dialog.reason_label.text()
        assert dialog.skipped_label.isVisible()
        assert str(sub.resolve() / "venv") in dialog.skipped_label.text()
        assert "writable by other users" in dialog.skipped_label.text()
        offered = dialog.offered()
        assert offered[0] == ""  # Automatic first
        assert good in offered and sys.executable in offered
        if shutil.which("python3"):
            assert shutil.which("python3") in offered
        skipped_item = dialog.choices.item(offered.index(str(sub.resolve() / "venv" / "bin" /
                                                             "python")))
        assert not skipped_item.flags() & Qt.ItemFlag.ItemIsEnabled
        assert dialog.chosen() is None  # Automatic is what is in use

        dialog.choose(sys.executable)
        dialog.accept()
        chosen = controller.interpreter_for(file)
        assert (chosen.path, chosen.source) == (sys.executable, "configured")
        assert "configured" in window.interpreter_label.text()

        dialog = window.choose_interpreter()
        assert dialog.chosen() == sys.executable
        assert "You chose it" in dialog.reason_label.text()
        other = str(tmp_path / "elsewhere" / "python")
        monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(
            lambda *args, **kwargs: (other, "")))
        dialog.browse()  # the file dialog, answered at the UI boundary
        assert dialog.chosen() == other
        dialog.choose(None)  # Automatic
        dialog.accept()
        back = controller.interpreter_for(file)
        assert (back.path, back.source) == (good, "venv")
        assert controller.configured_interpreter(file) is None
    finally:
        (sub / "venv").chmod(0o755)
        close_window(controller, window)


# --------------------------------------------------------------------------- 5. menus


def test_menus_reveal_copy_open_and_stop_watching(qtbot, app, folder: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  opened_urls: list[str]) -> None:
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "TrainFlow") == "succeeded"
    key = flow_key(controller, "TrainFlow")
    entry = controller.model.entry(key)
    run_id = controller.states[key].run_id
    clipboard = QApplication.clipboard()

    index = window.proxy.mapFromSource(controller.model.index_of(key))
    menu = window.tree_menu_for(index)
    texts = [a.text() for a in menu.actions()]
    for wanted in ("&Run", "Run &Options…", "&Interpreter…", "Open in Editor",
                   "Show in File Manager", "Copy File Path", "Copy Flow Name"):
        assert wanted in texts
    action(menu, "Show in File Manager").trigger()
    assert opened_urls == [str(folder)]
    action(menu, "Copy File Path").trigger()
    assert clipboard.text() == entry.file
    record = tmp_path / "editor-args.txt"
    editor = tmp_path / "fake-editor"
    editor.write_text(f"#!/bin/sh\necho \"$@\" > {record}\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    action(menu, "Open in Editor").trigger()
    qtbot.waitUntil(lambda: record.exists() and record.read_text().endswith("\n"), timeout=WAIT_MS)
    assert record.read_text().split() == [f"+{entry.line}", entry.file]

    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1)
    run = window.history.runs[0]
    history_menu = window.history.menu_for(run)
    action(history_menu, "Copy Run ID").trigger()
    assert clipboard.text() == run_id
    action(history_menu, "Copy Pathspec").trigger()
    assert clipboard.text() == f"TrainFlow/{run_id}"
    action(history_menu, "Show Run Folder").trigger()
    assert opened_urls[-1] == str(RunLayout.for_file(entry.file, "TrainFlow").run_dir(run_id))

    dag_menu = window.dag_menu_for("fit")
    action(dag_menu, "Copy Pathspec of fit").trigger()
    assert clipboard.text() == f"TrainFlow/{run_id}/fit"
    pick = window.dag_menu_for("pick")  # one task: its own pathspec too
    action(pick, "Copy Task Pathspec").trigger()
    task = controller.states[key].tasks_of("pick")[0]
    assert clipboard.text() == f"TrainFlow/{run_id}/pick/{task.task_id}"
    action(window.dag_menu_for(None), "Copy Run ID").trigger()
    assert clipboard.text() == run_id

    bar = {a.text(): a.menu() for a in window.menuBar().actions()}
    flow_menu = [a.text() for a in bar["F&low"].actions()]
    for wanted in ("Open in &Editor", "Show in File &Manager", "Copy Run &ID", "Copy &Pathspec",
                   "Run &Options…", "&Interpreter…"):
        assert wanted in flow_menu
    assert "Run &Options…" in [a.text() for a in bar["&Run"].actions()]
    window.act_copy_pathspec.trigger()
    assert clipboard.text().startswith(f"TrainFlow/{run_id}")
    window.act_reveal.trigger()
    assert opened_urls[-1] == str(folder)
    window.act_run_options.trigger()
    assert window.side.currentWidget() is window.params

    root_index = window.proxy.index(0, 0)
    root_menu = window.tree_menu_for(root_index)
    action(root_menu, "Stop Watching This Folder").trigger()
    qtbot.waitUntil(lambda: not controller.model.entries(), timeout=WAIT_MS)
    assert controller.roots == []


# --------------------------------------------------------------------------- 6. clipping


def test_nothing_is_clipped_at_1280x700(qtbot, settings: QSettings, tmp_path: Path) -> None:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns(".flowdeck", "__pycache__"))
    controller, window = open_window(qtbot, settings, [folder], (1280, 700))
    try:
        assert run_and_wait(qtbot, controller, window, "FeatureTourFlow") == "succeeded"
        window.side.setCurrentWidget(window.history)
        qtbot.waitUntil(lambda: window.history.table.rowCount() == 1)
        QApplication.processEvents()
        table = window.history.table
        column = 2
        assert table.horizontalHeaderItem(column).text() == "Started"
        started = table.item(0, column)
        text_width = QFontMetrics(table.font()).horizontalAdvance(started.text())
        assert text_width <= table.columnWidth(column)
        assert table.columnViewportPosition(column) >= 0
        assert table.columnViewportPosition(column) + table.columnWidth(column) <= \
            table.viewport().width()  # the whole column in view, not scrolled off
        assert started.text()[:4] in started.toolTip()  # the full date in the tooltip
        # The table fits its pane: the parameters take what is left, no sideways scrolling.
        assert table.horizontalScrollBar().maximum() == 0
        last = len(window.history.COLUMNS) - 1
        assert table.columnViewportPosition(last) + table.columnWidth(last) <= \
            table.viewport().width()

        index = window.proxy.mapFromSource(controller.model.index_of(
            flow_key(controller, "FeatureTourFlow")))
        rect = window.tree.visualRect(index)
        margin = window.tree.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin,
                                                 None, window.tree) + 1
        row_text = str(index.data())
        assert QFontMetrics(window.tree.font()).horizontalAdvance(row_text) + 2 * margin <= \
            rect.width()
        assert rect.right() <= window.tree.viewport().width()
        assert "FeatureTourFlow" in str(index.data(Qt.ItemDataRole.ToolTipRole))

        # A long title wraps within the DAG's pane: the panes keep their widths.
        sizes = window.main_split.sizes()
        window.flow_title.setText("<b>" + "AVeryLongFlowNameThatSomeoneWrote " * 6 + "</b> · "
                                  "run 1796332716202-bc41d7 — succeeded")
        for _ in range(3):
            QApplication.sendPostedEvents()
            QApplication.processEvents()
        assert window.main_split.sizes() == sizes
        assert window.flow_title.width() <= window.dag.width() + 8
        assert window.flow_title.height() > QFontMetrics(window.flow_title.font()).height() * 1.5
    finally:
        close_window(controller, window)


# --------------------------------------------------------------------------- 7. dark and light


def test_the_window_follows_a_dark_and_a_light_palette(qtbot, app) -> None:
    from flowdeck_desktop.views.theme import apply_theme, palette_is_dark
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "TrainFlow") == "succeeded"
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1)
    window.show_message("warning", "A message to colour.", flow=window.selected_key)
    qapp = QApplication.instance()
    original = QApplication.palette()
    light_glyph = window.history.table.item(0, 0).foreground().color().name()
    try:
        assert apply_theme(qapp, "dark") == "dark"
        QApplication.processEvents()
        assert palette_is_dark(QApplication.palette())
        scene = window.scene
        assert scene.backgroundBrush().color().lightnessF() < 0.5
        assert scene.theme.text.lightnessF() > 0.5  # step names light on dark
        assert window.dag.legend.theme().dark
        assert window.logs.palette().color(QPalette.ColorRole.Base).lightnessF() < 0.5
        fill, _border = window.banner.colors()
        assert fill.lightnessF() < 0.5
        dark_glyph = window.history.table.item(0, 0).foreground().color().name()
        assert dark_glyph != light_glyph  # the status colours' dark variants

        assert apply_theme(qapp, "light") == "light"
        QApplication.processEvents()
        assert scene.backgroundBrush().color().lightnessF() > 0.5
        assert scene.theme.text.lightnessF() < 0.5
        assert not window.dag.legend.theme().dark
        assert window.banner.colors()[0].lightnessF() > 0.5
        assert window.history.table.item(0, 0).foreground().color().name() == light_glyph
        assert apply_theme(qapp, "system") is None  # anything else: the system's palette
    finally:
        hints = QApplication.styleHints()
        if hasattr(hints, "unsetColorScheme"):
            hints.unsetColorScheme()
        QApplication.setPalette(original)


def test_flowdeck_theme_dark_starts_the_app_dark(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(EXAMPLES / "train.py", folder)
    out = tmp_path / "dark.png"
    env = child_env(FLOWDECK_THEME="dark", QT_QPA_PLATFORM="offscreen",
                    HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent / "desktop"),
                                         env["PYTHONPATH"]])
    result = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "--new-instance",
                             "--screenshot", str(out), str(folder / "train.py")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    from PySide6.QtGui import QImage
    image = QImage(str(out))
    assert not image.isNull()
    corner = image.pixelColor(image.width() // 2, image.height() - 4)  # the status bar
    assert corner.lightnessF() < 0.5


# --------------------------------------------------------------------------- 8. flowdeck/ in cwd


def test_a_run_started_from_a_folder_holding_a_flowdeck_folder_succeeds(
        qtbot, settings: QSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flowdeck").mkdir()  # looks like a namespace package from this cwd
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(EXAMPLES / "train.py", folder)
    python = bare_venv(folder / ".venv")  # no flowdeck: the run needs our core on its path
    monkeypatch.chdir(tmp_path)
    controller, window = open_window(qtbot, settings, [folder])
    try:
        key = flow_key(controller, "TrainFlow")
        interpreter = controller.interpreter_for(controller.model.entry(key).file)
        assert (interpreter.path, interpreter.source) == \
            (str(folder.resolve() / ".venv" / "bin" / "python"), "venv")
        assert python.exists()
        assert run_and_wait(qtbot, controller, window, "TrainFlow") == "succeeded"
        window.logs.flush()
        assert "best rate 0.01" in window.logs.text()
    finally:
        close_window(controller, window)
