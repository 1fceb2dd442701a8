"""The real window, driven as a person would: real folders, real runs, real events."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from conftest import (
    EXAMPLES,
    FLOWS,
    WAIT_MS,
    WAIT_S,
    close_window,
    flow_key,
    opened_window,
    run_flow,
)
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from flowdeck.store.status import CANCELLED
from flowdeck_desktop.app import build
from flowdeck_desktop.models.catalog_model import BADGES, KEY_ROLE, STATUS_ROLE
from flowdeck_desktop.views.main_window import REMOVED_SAY_AFTER_MS, MainWindow


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    target.mkdir()
    shutil.copy(EXAMPLES / "train.py", target)
    for name in ("failing.py", "sleepy.py", "branches.py"):
        shutil.copy(FLOWS / name, target)
    return target


@pytest.fixture
def app(qtbot, settings: QSettings, folder: Path):
    with opened_window(qtbot, settings, [folder]) as opened:
        yield opened


key_of = flow_key


def delete_the_only_run(qtbot, controller, window, key: str) -> None:
    """Delete the selected failed flow's one run from History: its mark, Resume and view
    go back to a flow that has not run."""
    assert window.act_resume.isEnabled()
    qtbot.waitUntil(lambda: len(window.history.runs) == 1, timeout=WAIT_MS)
    window._delete_past([window.history.runs[0]])
    item = controller.model.itemFromIndex(controller.model.index_of(key))
    assert item.data(STATUS_ROLE) == "ready" and not window.act_resume.isEnabled()
    assert "not run yet" in window.flow_title.text()


def run_and_wait(qtbot, controller, window, name: str) -> str:
    key = key_of(controller, name)
    window.select_flow(key)
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.run_selected()
    return blocker.args[1]


def start_napping(qtbot, controller, window, step: str = "nap_a") -> str:
    """Run SleepyFlow from the window and wait until `step` is running; returns its key."""
    key = key_of(controller, "SleepyFlow")
    window.select_flow(key)
    window.run_selected()
    qtbot.waitUntil(lambda: window.scene.step_state(step).status == "running",
                    timeout=WAIT_MS)
    return key


def step_status(window, step: str) -> str:
    return window.scene.step_state(step).status


def test_lists_flows_of_the_folder(app) -> None:
    controller, window = app
    names = sorted(e.name for e in controller.model.entries())
    assert names == ["BranchFlow", "FailingFlow", "SleepyFlow", "TrainFlow"]
    key = key_of(controller, "TrainFlow")
    window.select_flow(key)
    assert window.selected_key == key
    assert set(window.scene.steps()) == {"start", "fit", "pick", "end"}
    assert window.params.values() == {"rates": "0.1,0.01"}


def test_run_colours_every_step_and_shows_output(qtbot, app) -> None:
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "TrainFlow") == "succeeded"
    for step in ("start", "fit", "pick", "end"):
        assert step_status(window, step) == "succeeded"
    fit = window.scene.step_state("fit")
    assert (fit.done, fit.total) == (2, 2)
    window.logs.flush()
    assert "best rate 0.01" in window.logs.text()
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1)
    index = window.controller.model.index_of(key_of(controller, "TrainFlow"))
    assert index.data(STATUS_ROLE) == "succeeded"


def test_parameters_are_passed_and_remembered(qtbot, app) -> None:
    controller, window = app
    key = key_of(controller, "TrainFlow")
    window.select_flow(key)
    editor = window.params._editors["rates"]
    editor.setText("0.3,0.06")
    editor.textEdited.emit("0.3,0.06")
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
        window.run_selected()
    window.logs.flush()
    assert "best rate 0.06" in window.logs.text()
    assert controller.saved_params(key) == {"rates": "0.3,0.06"}


def test_failure_shows_red_step_traceback_and_resume_works(qtbot, app, folder: Path) -> None:
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "FailingFlow") == "failed"
    assert step_status(window, "divide") == "failed"
    assert step_status(window, "start") == "succeeded"
    assert "ZeroDivisionError" in window.error_pane.text.toPlainText()
    assert window.error_pane.location == (str(folder / "failing.py"), 16)
    # The banner says which step failed with what, and where, not only "failed".
    assert window.banner.text.startswith("FailingFlow failed: step divide raised "
                                         "ZeroDivisionError: ")
    assert window.banner.text.endswith("(failing.py, line 16).")
    assert window.banner.copy_text() == window.banner.text  # no command in it to copy
    assert window.act_resume.isEnabled()
    path = folder / "failing.py"
    path.write_text(path.read_text().replace("FIX_ME = False", "FIX_ME = True"))
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.resume_selected()
    assert blocker.args[1] == "succeeded"
    assert step_status(window, "start") == "reused"
    assert step_status(window, "divide") == "succeeded"


def test_after_a_restart_the_last_outcome_shows_and_a_failure_resumes(
        qtbot, settings: QSettings, folder: Path) -> None:
    """Runs from before the window started (an earlier session, a terminal): the list marks
    each flow's last outcome, selecting a flow shows its last run, not "not run yet", and
    Resume from Failure starts from the newest unfinished run."""
    failing = run_flow(folder / "failing.py")
    assert failing.returncode == 1
    assert run_flow(folder / "branches.py").returncode == 0
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        failing_key, branches_key = (key_of(controller, n) for n in ("FailingFlow", "BranchFlow"))
        item = controller.model.itemFromIndex(controller.model.index_of(failing_key))
        assert item.data(STATUS_ROLE) == "last run failed"
        other = controller.model.itemFromIndex(controller.model.index_of(branches_key))
        assert other.data(STATUS_ROLE) == "succeeded"
        for key in (failing_key, branches_key):  # each mark shows: no file row is folded
            row = window.proxy.mapFromSource(controller.model.index_of(key))
            assert window.tree.isExpanded(row.parent()) and window.tree.visualRect(row).height()
        window.select_flow(failing_key)
        assert "— failed" in window.flow_title.text()
        # Its whole output was never seen here: the log says where it is, not an empty page.
        assert "select a step to see its output" in window.log_scope.text()
        assert step_status(window, "divide") == "failed" and step_status(window, "start") == "succeeded"
        assert window.act_resume.isEnabled()
        path = folder / "failing.py"
        path.write_text(path.read_text().replace("FIX_ME = False", "FIX_ME = True"))
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
            window.resume_selected()
        assert blocker.args[1] == "succeeded"
        assert step_status(window, "start") == "reused"
        assert item.data(STATUS_ROLE) == "succeeded" and not window.act_resume.isEnabled()


def test_history_shows_parameters_where_the_graph_leaves_room(
        qtbot, settings: QSettings, folder: Path) -> None:
    """At 1280 wide a narrow graph (a chain of four) leaves History the room to show a
    run's parameters whole (the DAG kept 900 pixels for it, and the parameters got about
    20); the DAG still shows the graph across, and the logs under it keep their width.
    At 1920 the DAG keeps plenty, and the run ids are whole (cut on their left when
    narrow). A start today shows as its time."""
    assert run_flow(folder / "train.py", "run", "--rates", "0.2,0.05").returncode == 0
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        key = key_of(controller, "TrainFlow")
        window.select_flow(key)
        window.side.setCurrentWidget(window.history)
        qtbot.waitUntil(lambda: len(window.history.runs) == 1, timeout=WAIT_MS)
        table = window.history.table
        assert "rates=0.2,0.05" in table.item(0, 4).text()
        assert ":" in table.item(0, 2).text() and "-" not in table.item(0, 2).text()
        whole = table.sizeHintForColumn(4)
        window.resize(1280, 720)
        qtbot.waitUntil(lambda: window.width() == 1280)
        qtbot.waitUntil(lambda: table.columnWidth(4) >= whole, timeout=WAIT_MS)
        assert window.dag.width() >= window.dag.natural_width()
        assert window.dag.width() >= MainWindow.FIT_CENTRE_KEEPS
        window.resize(1920, 1080)
        qtbot.waitUntil(lambda: window.dag.width() >= MainWindow.FIT_DAG_KEEPS, timeout=WAIT_MS)
        assert table.columnWidth(4) >= whole
        assert table.columnWidth(1) >= table.sizeHintForColumn(1)  # the whole run id


def test_deleting_the_last_failed_run_takes_resume_and_its_mark_away(
        qtbot, settings: QSettings, folder: Path) -> None:
    assert run_flow(folder / "failing.py").returncode == 1
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        key = key_of(controller, "FailingFlow")
        window.select_flow(key)
        delete_the_only_run(qtbot, controller, window, key)


def test_stop_ends_a_hanging_run_as_cancelled(qtbot, app) -> None:
    controller, window = app
    key = start_napping(qtbot, controller, window, "nap_a")
    state = controller.states[key]
    assert window.act_stop.isEnabled()
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.stop_selected()
    assert blocker.args[1] == "cancelled"
    assert state.status == "cancelled"
    assert window.scene.step_state("nap_a").status == "cancelled"


def test_a_stopped_run_has_its_own_mark_in_the_flow_list(qtbot, app) -> None:
    """A stopped run's flow read "●", as a flow that never ran; its mark is the status
    word the header and the graph use (cancelled), with a badge of its own."""
    controller, window = app
    never_run = controller.model.index_of(key_of(controller, "TrainFlow"))
    key = start_napping(qtbot, controller, window, "nap_a")
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.stop_selected()
    assert blocker.args[1] == CANCELLED
    row = controller.model.index_of(key)
    assert row.data(STATUS_ROLE) == CANCELLED and never_run.data(STATUS_ROLE) == "ready"
    assert row.data().startswith(f"{BADGES[CANCELLED]} SleepyFlow")
    assert BADGES[CANCELLED] != BADGES["ready"] and never_run.data().startswith(BADGES["ready"])
    assert f"— {CANCELLED}" in row.data(Qt.ItemDataRole.ToolTipRole)


def test_killed_run_is_marked_crashed(qtbot, app) -> None:
    controller, window = app
    key = start_napping(qtbot, controller, window, "nap_b")
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        os.killpg(controller.runs[key].pid, signal.SIGKILL)
    assert blocker.args[1] == "crashed"
    assert not controller.is_running(key)
    assert window.scene.step_state("nap_b").status != "running"


def test_two_runs_at_once_follow_their_own_events(qtbot, app) -> None:
    controller, window = app
    sleepy, branches = key_of(controller, "SleepyFlow"), key_of(controller, "BranchFlow")
    window.select_flow(sleepy)
    window.run_selected()
    window.select_flow(branches)
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.run_selected()
    assert blocker.args == [branches, "succeeded"]
    assert controller.is_running(sleepy)
    assert controller.states[sleepy].run_id != controller.states[branches].run_id
    assert "nap_a" in controller.states[sleepy].steps and "nap_a" not in \
        controller.states[branches].steps
    assert step_status(window, "inner_each") == "succeeded"


def test_missing_interpreter_is_named(qtbot, app) -> None:
    controller, window = app
    key = key_of(controller, "TrainFlow")
    window.select_flow(key)
    controller.set_interpreter(controller.model.entry(key).file, "/no/such/python3")
    window.run_selected()
    level, text = window.last_message
    assert level == "error" and "/no/such/python3" in text
    assert not controller.is_running(key)


def test_drop_a_flow_file_adds_selects_and_runs_it(qtbot, app, tmp_path: Path) -> None:
    controller, window = app
    other = tmp_path / "dropped"
    other.mkdir()
    shutil.copy(FLOWS / "metaflow_idiom.py", other / "hello.py")
    source = (other / "hello.py").read_text().replace('required=True, ', 'default="!", ')
    (other / "hello.py").write_text(source)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(other / "hello.py"))])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                      Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        QApplication.sendEvent(window, drop)
    assert blocker.args[1] == "succeeded"
    assert controller.model.entry(window.selected_key).name == "HelloFlow"
    assert str(other / "hello.py") in controller.roots  # the file alone, not its folder
    assert str(other) not in controller.roots
    # Its row in the list says where it is; the file is named once, by the row below it.
    model = controller.model
    root = next(model.item(r) for r in range(model.rowCount())
                if model.item(r).data(KEY_ROLE) == str(other))  # files of a folder share it
    assert root.text() == str(other) and "Only this file" in root.toolTip()
    assert [root.child(r).text() for r in range(root.rowCount())] == ["hello.py"]


def test_dropping_a_non_flow_file_gives_a_message(qtbot, app, tmp_path: Path) -> None:
    controller, window = app
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "util.py").write_text("def helper():\n    return 1\n")
    window.handle_dropped([str(text_file)])
    assert "not a Python file" in window.last_message[1]
    window.handle_dropped([str(plain / "util.py")])
    qtbot.waitUntil(lambda: "defines no flow" in window.last_message[1])  # once it is scanned
    assert not any(controller.is_running(k) for k in controller.runs)


def test_dropping_a_flow_file_with_a_syntax_error_names_the_error(qtbot, app,
                                                                  tmp_path: Path) -> None:
    """The flow being edited, dropped with an unclosed bracket, is not "no flow": the
    message names its line and the error, as a watched folder's list does."""
    _, window = app
    broken = tmp_path / "outside" / "broken_flow.py"
    broken.parent.mkdir()
    broken.write_text((EXAMPLES / "train.py").read_text().replace(
        "self.next(self.end)", "self.v = (1\n        self.next(self.end)", 1))
    line = broken.read_text().splitlines().index("        self.v = (1") + 1
    window.handle_dropped([str(broken)])
    qtbot.waitUntil(lambda: window.last_message[0] in ("error", "warning"),
                    timeout=WAIT_MS)  # once scanned
    level, text = window.last_message
    assert level == "error" and "defines no flow" not in text
    assert f"line {line}" in text and "never closed" in text


def test_rerun_on_save_reuses_unchanged_steps(qtbot, app, folder: Path) -> None:
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "TrainFlow") == "succeeded"
    key = key_of(controller, "TrainFlow")
    window.act_auto.setChecked(True)
    assert controller.auto_rerun(key)
    path = folder / "train.py"
    original = path.read_text()
    started: list[str] = []
    controller.run_started.connect(lambda k, _state: started.append(k))
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        for i in range(20):  # twenty saves in quick succession give one rerun
            path.write_text(original.replace('print("best rate", self.best)',
                                             f'print("the best rate is", self.best)  # {i}'))
    assert blocker.args[1] == "succeeded"
    assert started == [key]
    state = controller.states[key]
    assert [step_status(window, s) for s in ("start", "fit", "pick")] == ["reused"] * 3
    assert step_status(window, "end") == "succeeded"
    assert sum(1 for r in window.history._runs) == 2
    window.logs.flush()
    assert "the best rate is 0.01" in window.logs.text()
    assert state.status == "succeeded"


def test_a_save_shows_the_new_graph_and_parameters_and_marks_errors(qtbot, app,
                                                                     folder: Path) -> None:
    """The DAG and the form follow the file as it is saved; a save with an error keeps the
    last good graph, and the header says it is from before the error."""
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "TrainFlow") == "succeeded"
    key = key_of(controller, "TrainFlow")
    path = folder / "train.py"
    original = path.read_text()
    added = original.replace("        self.next(self.end)\n\n    @step\n    def end",
                             "        self.next(self.report)\n\n    @step\n    def report(self):\n"
                             "        self.next(self.end)\n\n    @step\n    def end").replace(
        '    @step\n    def start',
        '    seed = Parameter("seed", default=7)\n\n    @step\n    def start', 1)
    assert added.count("report") == 2 and "seed" in added
    path.write_text(added)
    qtbot.waitUntil(lambda: "report" in window.scene.steps(), timeout=WAIT_MS)
    assert window.scene.step_state("report").status == "pending"
    assert "not run yet" in window.flow_title.text()
    assert "seed" in window.params.values()
    path.write_text(added.replace("self.next(self.end)\n\n    @step\n    def end",
                                  "self.next(self.ending)\n\n    @step\n    def end"))
    qtbot.waitUntil(lambda: "has errors" in window.flow_title.text(), timeout=WAIT_MS)
    assert "report" in window.scene.steps()  # the last good graph, marked as such
    assert "from before them" in window.flow_title.text()
    assert "ending" in window.flow_title.toolTip()
    assert controller.model.entry(key) is not None and not window.act_run.isEnabled()
    path.write_text(original)
    qtbot.waitUntil(lambda: "report" not in window.scene.steps(), timeout=WAIT_MS)
    assert "has errors" not in window.flow_title.text()


def test_a_file_read_with_errors_says_its_first_error_in_the_header(qtbot, app,
                                                                      folder: Path) -> None:
    """A file that had errors when first read shows its own graph: the header gives the
    first error (it said the graph was "from before them", of a file never good)."""
    controller, window = app
    (folder / "badgraph.py").write_text(
        "from flowdeck import FlowSpec, step\n\n\n"
        "class BadGraphFlow(FlowSpec):\n    @step\n    def start(self):\n"
        "        self.next(self.middle)\n\n    @trace\n    @step\n    def end(self):\n"
        "        pass\n")  # `@trace`: a warning, listed first, which the header passes over
    qtbot.waitUntil(lambda: any(e.name == "BadGraphFlow" for e in controller.model.entries()),
                    timeout=WAIT_MS)
    window.select_flow(key_of(controller, "BadGraphFlow"))
    title = window.flow_title.text()
    assert "the file has errors (line 7)" in title and "from before them" not in title
    assert "middle" in title and "which is not a step" in title
    assert "trace" not in title
    assert "badgraph.py:7" in window.flow_title.toolTip()


def test_save_with_a_syntax_error_does_not_run(qtbot, app, folder: Path) -> None:
    controller, window = app
    key = key_of(controller, "TrainFlow")
    window.select_flow(key)
    window.act_auto.setChecked(True)
    path = folder / "train.py"
    with qtbot.waitSignal(controller.message, timeout=WAIT_MS,
                          check_params_cb=lambda level, text: level == "error"):
        path.write_text(path.read_text().replace("def end(self):", "def end(self)"))
    assert "saved with errors" in window.last_message[1]
    assert key not in controller.runs
    assert "saved with errors" in window.banner.text and window.banner.isVisible()
    # Fixed and saved (no rerun on save now): the banner about the errors goes, the file
    # it was about is gone.
    window.act_auto.setChecked(False)
    path.write_text(path.read_text().replace("def end(self)", "def end(self):"))
    qtbot.waitUntil(lambda: not window.banner.isVisible(), timeout=WAIT_MS)
    assert window.banner.text == ""


def test_deleting_a_failed_run_of_this_session_takes_resume_away(qtbot, app) -> None:
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "FailingFlow") == "failed"
    delete_the_only_run(qtbot, controller, window, key_of(controller, "FailingFlow"))


def test_a_flow_renamed_while_it_runs_keeps_its_run_under_the_new_name(
        qtbot, app, folder: Path) -> None:
    """The run goes on under the new name: shown live there, Run not offered (a second run
    of the flow started beside the first), Stop stops it."""
    controller, window = app
    key = start_napping(qtbot, controller, window)
    path = Path(controller.model.entry(key).file)
    path.rename(path.with_name("renamed_" + path.name))
    qtbot.waitUntil(lambda: "renamed_sleepy.py" in str(window.selected_key), timeout=WAIT_MS)
    new = window.selected_key
    assert controller.is_running(new) and not controller.is_running(key)
    assert not window.act_run.isEnabled() and window.act_stop.isEnabled()
    assert "outside this window" not in window.flow_title.text()
    assert window.scene.step_state("nap_a").status == "running"
    assert "file was removed" not in window.banner.text
    window.select_flow(key_of(controller, "TrainFlow"))
    window.select_flow(new)  # shown again: still its live run
    assert window.scene.step_state("nap_a").status == "running"
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.stop_selected()
    assert blocker.args == [new, "cancelled"]
    assert window.act_run.isEnabled()


def test_a_clean_save_leaves_a_run_options_error_up(qtbot, app, folder: Path) -> None:
    """Only the banner about the file's errors goes with a clean save: bad run options are
    as bad after it."""
    controller, window = app
    key = key_of(controller, "TrainFlow")
    window.select_flow(key)
    controller.save_run_options(key, "--tag 'unclosed")
    window.run_selected()
    assert window.banner.isVisible() and window.banner.level == "error"
    text = window.banner.text
    path = folder / "train.py"
    with qtbot.waitSignal(controller.model.flow_changed, timeout=WAIT_MS):
        path.write_text(path.read_text().replace('"""Parse the grid', '"""Parse the whole grid'))
    assert window.banner.isVisible() and window.banner.text == text


def test_another_flow_shows_nothing_of_the_one_before(qtbot, app) -> None:
    """The task picker and the status bar's message were the previous flow's."""
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "TrainFlow") == "succeeded"
    window.scene.step_clicked.emit("fit")  # two tasks: the picker offers them
    assert window.task_picker.isVisible() and window.task_picker.count() == 2
    assert "TrainFlow succeeded" in window.statusBar().currentMessage()
    window.select_flow(key_of(controller, "BranchFlow"))
    assert not window.task_picker.isVisible() and window.task_picker.count() == 0
    assert window.shown_step is None and window.statusBar().currentMessage() == ""


def test_closing_during_a_run_asks_then_stops_it(qtbot, app) -> None:
    controller, window = app
    key = start_napping(qtbot, controller, window, "nap_a")

    def answer_yes() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.button(QMessageBox.StandardButton.Yes).click()
        else:
            QTimer.singleShot(20, answer_yes)
    QTimer.singleShot(20, answer_yes)
    window.close()
    assert not window.isVisible()
    assert not controller.is_running(key)


def test_layout_is_restored(qtbot, settings: QSettings, folder: Path) -> None:
    controller, window = build(settings, [str(folder)])
    qtbot.addWidget(window)
    window.show()
    window.resize(761, 555)
    window.main_split.setSizes([200, 400, 150])
    QApplication.processEvents()
    expected = window.main_split.sizes()
    window.close()
    controller2, window2 = build(settings)
    qtbot.addWidget(window2)
    window2.show()
    assert (window2.size().width(), window2.size().height()) == (761, 555)
    assert window2.main_split.sizes() == expected
    assert controller2.roots == [str(folder)]
    controller2.shutdown()


def test_flow_file_deleted_while_running(qtbot, app, folder: Path) -> None:
    controller, window = app
    key = start_napping(qtbot, controller, window, "nap_a")
    (folder / "sleepy.py").unlink()
    qtbot.waitUntil(lambda: controller.model.entry(key) is None, timeout=WAIT_MS)
    assert controller.is_running(key)  # the run goes on; its process has the code
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
        controller.stop_run(key)


def test_a_flood_of_output_keeps_the_window_responsive(qtbot, app, folder: Path) -> None:
    controller, window = app
    (folder / "chatty.py").write_text(
        "from flowdeck import FlowSpec, step\n"
        "class ChattyFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        for i in range(200_000):\n"
        "            print('line', i)\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
        "if __name__ == '__main__':\n"
        "    ChattyFlow().run()\n")
    qtbot.waitUntil(lambda: any(e.name == "ChattyFlow" for e in controller.model.entries()),
                    timeout=WAIT_MS)
    gaps: list[float] = []
    last = [0.0]

    def beat() -> None:
        import time
        now = time.perf_counter()
        if last[0]:
            gaps.append(now - last[0])
        last[0] = now
    heartbeat = QTimer()
    heartbeat.timeout.connect(beat)
    heartbeat.start(10)
    assert run_and_wait(qtbot, controller, window, "ChattyFlow") == "succeeded"
    qtbot.waitUntil(lambda: not window.logs.has_pending(), timeout=WAIT_MS)
    heartbeat.stop()
    assert window.logs.line_count() <= window.logs.maximum_line_count()
    assert "line 199999" in window.logs.text()
    assert window._logs[window.selected_key].size <= 4_000_000 + 70_000
    assert max(gaps) < 1.0  # generous: the loop never froze for long


def test_a_file_that_never_starts_its_flow_gets_a_clear_message(qtbot, app, folder: Path
                                                                 ) -> None:
    controller, window = app
    (folder / "nomain.py").write_text(
        "from flowdeck import FlowSpec, step\n"
        "class NoMainFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n")
    qtbot.waitUntil(lambda: any(e.name == "NoMainFlow" for e in controller.model.entries()),
                    timeout=WAIT_MS)
    key = key_of(controller, "NoMainFlow")
    window.select_flow(key)
    window.run_selected()  # refused before a process starts: it would run nothing
    assert window.last_message[0] == "error"
    assert "does not start NoMainFlow when it runs" in window.last_message[1]
    assert 'if __name__ == "__main__": NoMainFlow()' in window.last_message[1]
    assert not controller.session(key).running
    with open(folder / "nomain.py", "a") as handle:  # the fix the message asks for
        handle.write('if __name__ == "__main__":\n    NoMainFlow()\n')
    qtbot.waitUntil(lambda: controller.model.entry(key_of(controller, "NoMainFlow"))
                    .flow.start_problem is None, timeout=WAIT_MS)
    assert run_and_wait(qtbot, controller, window, "NoMainFlow") == "succeeded"


def test_deleted_watched_folder_is_reported(qtbot, app, folder: Path) -> None:
    """The watched folder goes (deleted, moved, unmounted) while one of its flows is
    shown: the banner says the folder is gone, not that the flow's file was removed."""
    controller, window = app
    window.select_flow(key_of(controller, "TrainFlow"))
    with qtbot.waitSignal(controller.message, timeout=WAIT_MS,
                          check_params_cb=lambda level, text: "flows" in text):
        shutil.rmtree(folder)
    qtbot.waitUntil(lambda: not controller.model.entries(), timeout=WAIT_MS)
    assert window.isVisible()
    assert f"{folder} does not exist (deleted, moved or not mounted)" in window.banner.text
    assert not any("file was removed" in n.text for n in window.notifications.notices)


def test_a_row_that_is_not_one_flow_shows_no_flow(qtbot, app, folder: Path) -> None:
    """A file that cannot be read, a folder: the flow shown before does not stay on screen
    (its graph, title, parameters and history), and the header says what is selected."""
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "TrainFlow") == "succeeded"
    broken = folder / "broken.py"
    broken.write_text("from flowdeck import FlowSpec, step\n\nclass Broken(FlowSpec)\n    pass\n")
    model = controller.model
    qtbot.waitUntil(lambda: str(broken) in model._files, timeout=WAIT_MS)
    file_item = model._files[str(broken)]
    qtbot.waitUntil(lambda: file_item.rowCount() > 0, timeout=WAIT_MS)
    row = window.proxy.mapFromSource(model.indexFromItem(file_item.child(0)))
    window.tree.setCurrentIndex(row)
    assert window.selected_key is None
    assert "broken.py</b> cannot be read: line 3" in window.flow_title.text()
    assert window.scene.steps() == [] and window.params.values() == {}
    assert window.history.runs == [] and not window.act_run.isEnabled()
    window.tree.setCurrentIndex(window.proxy.index(0, 0))  # the folder
    assert window.flow_title.text() == "Select a flow in the list"
    window.select_flow(key_of(controller, "TrainFlow"))
    assert "TrainFlow" in window.flow_title.text() and "fit" in window.scene.steps()


def test_a_renamed_file_keeps_its_flow_selected(qtbot, app, folder: Path) -> None:
    """Renamed or moved: the selection follows the flow (it jumped to another flow); a file
    deleted leaves its flow shown with the warning, and no other flow looks selected."""
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "TrainFlow") == "succeeded"
    (folder / "train.py").rename(folder / "train_renamed.py")
    qtbot.waitUntil(lambda: any(e.file.endswith("train_renamed.py")
                                for e in controller.model.entries()), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: str(window.selected_key).startswith(str(folder / "train_renamed.py")),
                    timeout=WAIT_MS)
    entry = controller.model.entry(window.selected_key)
    assert entry is not None and entry.name == "TrainFlow"
    assert window.tree.currentIndex().data(KEY_ROLE) == window.selected_key
    assert not window.banner.isVisible()
    qtbot.wait(REMOVED_SAY_AFTER_MS + 200)  # a rename is no removal: nothing said, later either
    assert not any("removed" in n.text for n in window.notifications.notices)
    (folder / "train_renamed.py").unlink()
    qtbot.waitUntil(lambda: not any(e.name == "TrainFlow" for e in controller.model.entries()),
                    timeout=WAIT_MS)
    assert "TrainFlow" in window.flow_title.text()
    qtbot.waitUntil(lambda: "file was removed" in window.banner.text, timeout=WAIT_MS)
    assert not window.tree.currentIndex().isValid()


def test_list_updates_live_keeps_selection_and_shows_diagnostics(qtbot, app,
                                                                 folder: Path) -> None:
    controller, window = app
    key = key_of(controller, "TrainFlow")
    window.select_flow(key)
    broken = folder / "broken.py"
    broken.write_text((FLOWS / "bad" / "missing_step.py").read_text())
    qtbot.waitUntil(lambda: any(e.name == "MissingStepFlow" for e in controller.model.entries()),
                    timeout=WAIT_MS)
    assert window.selected_key == key
    assert window.tree.currentIndex().data(0).split()[1] == "TrainFlow"
    bad_key = key_of(controller, "MissingStepFlow")
    item = controller.model.itemFromIndex(controller.model.index_of(bad_key))
    assert item.data(STATUS_ROLE) == "has errors"
    children = [item.child(i).text() for i in range(item.rowCount())]
    assert children and children[0].startswith("line 8: Step `start` calls self.next() to "
                                                "`trian`")
    # the error row is painted in the theme's "failed" colour, in light and in dark
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QStyleOptionViewItem

    from flowdeck_desktop.views.theme import make_palette, status_color
    row = window.proxy.mapFromSource(controller.model.indexFromItem(item.child(0)))
    for dark in (False, True):
        option = QStyleOptionViewItem()
        option.palette = make_palette(dark)
        window.tree.itemDelegate().initStyleOption(option, row)
        assert option.palette.color(QPalette.ColorRole.Text) == status_color("failed", dark)
    window.select_flow(bad_key)
    assert not window.act_run.isEnabled()
    broken.unlink()
    qtbot.waitUntil(lambda: controller.model.entry(bad_key) is None, timeout=WAIT_MS)


def test_double_clicking_a_step_opens_the_editor_at_its_line(qtbot, app, tmp_path: Path,
                                                              monkeypatch) -> None:
    controller, window = app
    record = tmp_path / "editor-args.txt"
    editor = tmp_path / "fake-editor"
    editor.write_text(f"#!/bin/sh\necho \"$@\" > {record}\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    key = key_of(controller, "TrainFlow")
    window.select_flow(key)
    window.scene.step_double_clicked.emit("pick")
    qtbot.waitUntil(lambda: record.exists() and record.read_text().endswith("\n"),
                    timeout=WAIT_MS)  # the shell creates the file before it writes the line
    entry = controller.model.entry(key)
    assert record.read_text().split() == [f"+{entry.flow.graph['pick'].line}", entry.file]


def test_step_click_shows_task_logs_and_artifacts(qtbot, app) -> None:
    controller, window = app
    assert run_and_wait(qtbot, controller, window, "TrainFlow") == "succeeded"
    with qtbot.waitSignal(window.artifacts.loaded, timeout=WAIT_MS):
        window.scene.step_clicked.emit("fit")
    assert window.task_picker.count() == 2
    names = {row["name"]: row for row in window.artifacts.rows}
    assert names["rate"]["preview"] == "0.1" and names["score"]["type"] == "float"
    window.logs.flush()
    assert "rate 0.1 scores" in window.logs.text()
    with qtbot.waitSignal(window.artifacts.loaded, timeout=WAIT_MS):
        window.task_picker.setCurrentIndex(1)
    assert {row["name"]: row for row in window.artifacts.rows}["rate"]["preview"] == "0.01"
    assert "TrainFlow" in window.artifacts.title.text()
    assert "fit" in window.cards.status.text()
    # Another flow shown: neither tab keeps TrainFlow's task (both did, under its graph).
    window.select_flow(key_of(controller, "BranchFlow"))
    assert window.artifacts.rows == [] and window.artifacts.table.rowCount() == 0
    assert "TrainFlow" not in window.artifacts.title.text()
    assert window.artifacts.title.text() == "Select a step in the graph to see its artifacts."
    assert window.cards.status.text() == "Select a task to see its cards."


def test_filter_box_narrows_the_list(qtbot, app) -> None:
    controller, window = app
    window.filter_box.setText("train")
    visible = []

    def walk(parent) -> None:
        for row in range(window.proxy.rowCount(parent)):
            index = window.proxy.index(row, 0, parent)
            visible.append(index.data(0))
            walk(index)
    walk(window.tree.rootIndex())
    flows = [v for v in visible if "·" in v]
    assert len(flows) == 1 and "TrainFlow" in flows[0]
    window.filter_box.clear()


def test_first_start_offers_the_bundled_examples(qtbot, settings: QSettings) -> None:
    controller, window = build(settings)
    window.show()
    try:
        assert controller.roots == []
        assert window.empty_hint.isVisible()
        assert window.examples_dir == str(EXAMPLES)
        window.open_paths([window.examples_dir])
        qtbot.waitUntil(lambda: any(e.name == "TrainFlow" for e in controller.model.entries()))
        assert not window.empty_hint.isVisible()
    finally:
        window.close()
        controller.shutdown()


def test_history_shows_a_past_run_and_reruns_it(qtbot, app) -> None:
    controller, window = app
    key = key_of(controller, "TrainFlow")
    window.select_flow(key)
    window.params._editors["rates"].setText("0.2,0.04")
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
        window.run_selected()
    window.params._editors["rates"].setText("0.5")
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
        window.run_selected()
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 2)
    window.history.table.selectRow(1)  # the older run
    assert window.shown_state.params == {"rates": "0.2,0.04"}
    assert step_status(window, "fit") == "succeeded"
    assert window.scene.step_state("fit").total == 2
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
        window.history.rerun.click()
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 3)
    assert window.history._runs[0].params == {"rates": "0.2,0.04"}


def test_screenshot_option_runs_the_flow_and_saves_a_picture(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import child_env
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(EXAMPLES / "train.py", folder)
    out = tmp_path / "shot.png"
    result = subprocess.run([sys.executable, "-m", "flowdeck_desktop", str(folder / "train.py"),
                             "--screenshot", str(out)], capture_output=True, text=True,
                            timeout=120, env=child_env(QT_QPA_PLATFORM="offscreen",
                                                       HOME=str(tmp_path / "home")))
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("case", ["missing flow", "no folder for the picture",
                                  "no such picture format", "no flow in the folder"])
def test_a_scripted_start_that_cannot_end_well_says_why_and_ends(tmp_path: Path,
                                                                 case: str) -> None:
    """A missing path waited for ever for a run; a screenshot that could not be saved
    exited 0 with no file; a folder with no flow said only "Select a flow to run."."""
    import subprocess
    import sys

    from conftest import child_env
    flow = tmp_path / "train.py"
    shutil.copy(EXAMPLES / "train.py", flow)
    (tmp_path / "empty").mkdir()
    path, out, said = {
        "missing flow": (tmp_path / "gone.py", tmp_path / "shot.png", "no such file"),
        "no folder for the picture": (flow, tmp_path / "no" / "shot.png", "does not exist"),
        "no such picture format": (flow, tmp_path / "shot.pngx", "cannot write a .pngx"),
        "no flow in the folder": (tmp_path / "empty", tmp_path / "shot.png", "no flow found"),
    }[case]
    result = subprocess.run([sys.executable, "-m", "flowdeck_desktop", str(path),
                             "--screenshot", str(out)], capture_output=True, text=True,
                            timeout=120, env=child_env(QT_QPA_PLATFORM="offscreen",
                                                       HOME=str(tmp_path / "home")))
    assert result.returncode in (1, 2) and said in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / ".flowdeck").exists()  # nothing ran
    if case != "no flow in the folder":  # refused before a window (that one shows its window)
        assert not out.exists()


def test_a_scripted_start_says_why_a_flow_failed_before_it_started(tmp_path: Path) -> None:
    """A flow whose import fails: the screenshot showed "M3 failed." and an Error tab saying
    "No failure." (the reason came after the run's end, which the screenshot was taken
    at); the terminal said only "Flowdeck: M3 failed."."""
    import subprocess
    import sys

    from conftest import child_env
    flow = tmp_path / "m3.py"
    flow.write_text("import numpy_not_installed_pkg\n" + (EXAMPLES / "train.py").read_text())
    out = tmp_path / "shot.png"
    result = subprocess.run([sys.executable, "-m", "flowdeck_desktop", str(flow),
                             "--screenshot", str(out)], capture_output=True, text=True,
                            timeout=120, env=child_env(QT_QPA_PLATFORM="offscreen",
                                                       HOME=str(tmp_path / "home")))
    assert result.returncode == 1
    said = [line for line in result.stderr.splitlines() if line.startswith("Flowdeck: ")]
    assert len(said) == 1 and "m3.py failed before TrainFlow started (line 1)" in said[0]
    assert "pip install numpy_not_installed_pkg" in said[0]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_copied_project_shows_its_own_runs_not_the_originals(qtbot, settings, tmp_path) -> None:
    """Runs are found from where the flow file is now; nothing absolute is followed back."""
    original = tmp_path / "original"
    original.mkdir()
    shutil.copy(EXAMPLES / "train.py", original)
    controller, window = build(settings, [str(original)])
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    run_and_wait(qtbot, controller, window, "TrainFlow")
    close_window(controller, window)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    logs = list((copy / ".flowdeck" / "TrainFlow" / "runs").glob("*/end/*/attempt-0.out"))
    assert logs
    for log in logs:
        log.write_text("this is the copy's log\n")
    controller, window = build(settings, [str(copy)], restore=False)
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        window.select_flow(key_of(controller, "TrainFlow"))
        qtbot.waitUntil(lambda: window.history.table.rowCount() == 1)
        window.history.table.selectRow(0)
        window._on_step_clicked("end")
        qtbot.waitUntil(lambda: "this is the copy's log" in window.logs.text())
    finally:
        close_window(controller, window)


BASE_STEPS = '''from flowdeck import FlowSpec, step


class BaseFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.middle)

    @step
    def end(self):
        print("end", self.x, self.y)
'''
CHILD_FLOW = '''from base_steps import BaseFlow
from flowdeck import step


class ChildFlow(BaseFlow):
    @step
    def middle(self):
        self.y = self.x + 1
        self.next(self.end)


if __name__ == "__main__":
    ChildFlow()
'''


def test_a_flow_whose_base_class_is_in_a_module_beside_it(
        qtbot, settings: QSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listed with the base's steps, run from the window, and a base step opens in its own
    module (the window listed the file as having no flow)."""
    folder = tmp_path / "inherit"
    folder.mkdir()
    (folder / "base_steps.py").write_text(BASE_STEPS)
    (folder / "child_flow.py").write_text(CHILD_FLOW)
    opened = tmp_path / "opened.txt"
    editor = tmp_path / "editor.sh"
    editor.write_text(f'#!/bin/sh\necho "$@" > {opened}\n')
    editor.chmod(0o755)
    monkeypatch.setenv("VISUAL", str(editor))
    controller, window = build(settings, [str(folder)])
    window.show()
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        key = key_of(controller, "ChildFlow")
        assert controller.model.entry(key).steps == ["start", "middle", "end"]
        base = controller.model.itemFromIndex(
            controller.model.index_of(key_of(controller, "BaseFlow")))
        assert base.data(STATUS_ROLE) == "base class" and base.rowCount() == 0  # no errors
        assert "base class of ChildFlow" in base.toolTip()
        window.select_flow(key)
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
            window.run_selected()
        assert blocker.args[1] == "succeeded"
        assert window.scene.step_state("start").status == "succeeded"
        window._open_step("start")
        qtbot.waitUntil(opened.exists, timeout=WAIT_MS)
        assert opened.read_text().split() == ["+6", str(folder / "base_steps.py")]  # its def
    finally:
        close_window(controller, window)


PARAM_FAILING = '''from flowdeck import FlowSpec, Parameter, step


class ParamFailFlow(FlowSpec):
    bad = Parameter("bad", default=137)

    @step
    def start(self):
        self.next(self.check)

    @step
    def check(self):
        if self.bad == 137:
            raise ValueError("137 is not allowed")
        self.next(self.end)

    @step
    def end(self):
        print("ran with", self.bad)


if __name__ == "__main__":
    ParamFailFlow()
'''


def test_resume_asks_when_the_form_holds_other_parameters_than_the_run(
        qtbot, app, folder: Path) -> None:
    """A resume keeps the failed run's parameter values: the form's other values were
    silently ignored. The window now asks, and "Run Again" runs with the form's."""
    controller, window = app
    (folder / "paramfail.py").write_text(PARAM_FAILING)
    qtbot.waitUntil(lambda: any(e.name == "ParamFailFlow" for e in controller.model.entries()),
                    timeout=WAIT_MS)
    assert run_and_wait(qtbot, controller, window, "ParamFailFlow") == "failed"
    editor = window.params._editors["bad"]
    editor.setText("999")
    editor.textEdited.emit("999")
    asked: list[str] = []
    tries = [0]

    def answer() -> None:  # the dialog is modal: answered from the event loop it runs
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            tries[0] += 1
            if tries[0] < 500:
                QTimer.singleShot(20, answer)
            return
        asked.append(box.text())
        next(b for b in box.buttons() if b.text().startswith("Run Again")).click()

    QTimer.singleShot(0, answer)
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.resume_selected()
    assert blocker.args[1] == "succeeded"
    assert asked and "bad: 137 in the run, 999 in the form" in asked[0]
    window.logs.flush()
    assert "ran with 999" in window.logs.text()
    assert step_status(window, "start") == "succeeded"  # a new run, nothing reused
    # A save reruns changed steps by resuming the last good run, which keeps its values
    # too: with others in the form, it runs whole.
    editor.setText("5")
    editor.textEdited.emit("5")
    window._save_params()
    entry = controller.model.entry(key_of(controller, "ParamFailFlow"))
    plan = controller.rerun_plan(entry)
    assert plan.args[0] == "run" and plan.reason == "parameters changed: bad"
    editor.setText("0999")  # the same int, written otherwise (999.0 is no int: a change)
    editor.textEdited.emit("0999")
    window._save_params()
    assert controller.rerun_plan(entry).reason == "no step changed"


def test_a_scripted_start_leaves_the_remembered_folders_as_they_were(tmp_path: Path) -> None:
    """`--run --exit-when-done some/flow.py` (or --screenshot) restores no folders, and
    wrote its own in their place: `folders=@Invalid()`, `files=some/flow.py`; the next
    plain start listed that file alone."""
    import subprocess
    import sys

    from conftest import child_env
    home = tmp_path / "home"
    ini = home / ".config" / "Flowdeck" / "Flowdeck" / "flowdeck.ini"
    chosen = [str(tmp_path / "a"), str(tmp_path / "b")]
    for folder in chosen:
        os.mkdir(folder)
    remembered = QSettings(str(ini), QSettings.Format.IniFormat)
    remembered.setValue("folders", chosen)
    remembered.setValue("recent", chosen)
    remembered.sync()
    flow = tmp_path / "scripted" / "train.py"
    flow.parent.mkdir()
    shutil.copy(EXAMPLES / "train.py", flow)
    result = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "--new-instance",
                             "--run", "--exit-when-done", str(flow)], capture_output=True,
                            text=True, timeout=120, env=child_env(
                                QT_QPA_PLATFORM="offscreen", HOME=str(home),
                                XDG_CONFIG_HOME=str(home / ".config")))
    assert result.returncode == 0, result.stderr[-2000:]
    after = QSettings(str(ini), QSettings.Format.IniFormat)
    assert after.value("folders") == chosen
    assert after.value("files") is None
    assert after.value("recent") == chosen


UNSTORABLE = "F" * 150  # a class name the store refuses as a folder (layout.MAX_ID_LENGTH)

UNSTORABLE_FLOW = f'''from flowdeck import FlowSpec, step


class {UNSTORABLE}(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
'''


@pytest.fixture
def with_unstorable(tmp_path: Path) -> Path:
    """A folder of a flow whose name the store refuses, beside TrainFlow that ran once."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a_unstorable.py").write_text(UNSTORABLE_FLOW)
    shutil.copy(EXAMPLES / "train.py", folder / "train.py")
    assert run_flow(folder / "train.py", "run").returncode == 0
    return folder


def test_a_flow_whose_runs_cannot_be_read_leaves_the_others_listed(
        qtbot, settings: QSettings, with_unstorable: Path) -> None:
    """Reading the runs of a flow whose name the store refuses (InvalidId) raised out of
    the scan's delivery: the folder's first scan never ended (`scanning()` stayed True),
    nothing was selected, the other flows had no mark; selecting it raised again and
    said nothing. Now the scan ends and the flow says its problem in its banner."""
    from flowdeck.store.layout import InvalidId, check_id
    with pytest.raises(InvalidId):  # still refused by the store: the case stays honest
        check_id("flow name", UNSTORABLE)
    controller, window = build(settings, [str(with_unstorable)], restore=False)
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        train = key_of(controller, "TrainFlow")
        item = controller.model.itemFromIndex(controller.model.index_of(train))
        assert item.data(STATUS_ROLE) == "succeeded"
        bad = key_of(controller, UNSTORABLE)
        qtbot.waitUntil(lambda: window.selected_key is not None, timeout=WAIT_MS)
        window.select_flow(train)
        window.select_flow(bad)
        assert window.selected_key == bad and window.history.table.rowCount() == 0
        problem = controller.runs_problem(bad)
        assert problem is not None and window.banner.text == problem
        assert problem.startswith(f"{with_unstorable / 'a_unstorable.py'}, line 4: ")
        assert "Rename the class" in problem
        assert controller.start_run(bad) is None  # lint names the name: its file has errors
        assert controller.runs_problem(train) is None
    finally:
        close_window(controller, window)


@pytest.mark.timeout(WAIT_S + 60)  # a hang is the subprocess's TimeoutExpired, not a kill
def test_a_scripted_run_of_a_flow_whose_runs_cannot_be_kept_ends(with_unstorable: Path,
                                                                 tmp_path: Path) -> None:
    """`--run --exit-when-done` on such a file waited for ever for its folder's scan."""
    import subprocess
    import sys

    from conftest import child_env
    result = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "--new-instance",
                             "--run", "--exit-when-done",
                             str(with_unstorable / "a_unstorable.py")],
                            capture_output=True, text=True, timeout=WAIT_S,
                            env=child_env(QT_QPA_PLATFORM="offscreen",
                                          HOME=str(tmp_path / "home")))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    said = [line for line in result.stderr.splitlines() if line.startswith("Flowdeck: ")]
    assert len(said) == 1 and UNSTORABLE[:20] in said[0], result.stderr[-2000:]
