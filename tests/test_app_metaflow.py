"""Real Metaflow flows in the real window: listed, run live, stopped, resumed, inspected."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FLOWS, WAIT_MS, close_window, flow_key, process_alive
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from flowdeck_desktop.app import build

pytest.importorskip("metaflow")

MF_FLOWS = FLOWS / "metaflow"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "mfflows"
    target.mkdir()
    for name in ("foreach.py", "failing.py", "sleepy.py"):
        shutil.copy(MF_FLOWS / name, target)
    return target


@pytest.fixture
def app(qtbot, settings: QSettings, folder: Path, monkeypatch):
    for name in ("USER", "USERNAME", "METAFLOW_USER"):
        monkeypatch.delenv(name, raising=False)  # the bridge supplies a user name
    controller, window = build(settings, [str(folder)])
    window.show()
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)  # listed off-thread
    yield controller, window
    close_window(controller, window)


key_of = flow_key


def status_of(window, step: str) -> str:
    return window.scene.step_state(step).status


def test_metaflow_flow_runs_live_and_every_step_turns_green(qtbot, app) -> None:
    controller, window = app
    key = key_of(controller, "MfForeachFlow")
    assert controller.model.entry(key).engine == "metaflow"
    window.select_flow(key)
    assert window.params.values() == {"count": "3"}
    seen_running: set[str] = set()
    controller.run_started.connect(lambda _k, state: state.step_changed.connect(
        lambda step: seen_running.add(step) if state.steps[step].status == "running" else None))
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.run_selected()
    assert blocker.args[1] == "succeeded"
    for step in ("start", "square", "join", "end"):
        assert status_of(window, step) == "succeeded"
    square = window.scene.step_state("square")
    assert (square.done, square.total) == (3, 3)
    assert {"start", "square", "end"} <= seen_running  # live, not only at the end
    window.logs.flush()
    assert "square of 2 is 4" in window.logs.text()
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1)
    with qtbot.waitSignal(window.artifacts.loaded, timeout=WAIT_MS):
        window.scene.step_clicked.emit("square")
    assert window.task_picker.count() == 3
    values = sorted(row["preview"] for row in window.artifacts.rows if row["name"] == "value")
    assert values and values[0] in ("0", "1", "4")
    window.logs.flush()
    assert "square of" in window.logs.text()  # the task's own output


def test_a_metaflow_run_is_named_by_metaflows_id_where_it_is_pasted_into_metaflow(
        qtbot, app) -> None:
    """History's Copy Pathspec, the artifacts' title and the log's run line name the run
    by Metaflow's run id, which Metaflow's client opens, as the main window's Copy Pathspec
    does; they named it by Flowdeck's id (`MfForeachFlow/<flowdeck id>`), which it cannot."""
    controller, window = app
    key = key_of(controller, "MfForeachFlow")
    window.select_flow(key)
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.run_selected()
    assert blocker.args[1] == "succeeded"
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1)
    run = window.history.runs[0]
    assert run.record is not None and run.record.metaflow_run_id
    metaflow_id = run.record.metaflow_run_id
    assert metaflow_id != run.run_id
    menu = window.history.menu_for(run)
    next(a for a in menu.actions() if a.text() == "Copy Pathspec").trigger()
    assert QApplication.clipboard().text() == f"MfForeachFlow/{metaflow_id}"
    window.history.run_selected.emit(run)
    assert window.log_scope.text().startswith(f"Run {metaflow_id}:")
    with qtbot.waitSignal(window.artifacts.loaded, timeout=WAIT_MS):
        window.scene.step_clicked.emit("end")
    task_id = window.shown_state.tasks_of("end")[0].task_id
    assert f"MfForeachFlow/{metaflow_id}/end/{task_id}" in window.artifacts.title.text()
    assert run.run_id not in window.artifacts.title.text()


def test_metaflow_failure_then_resume_in_the_window(qtbot, app, folder: Path) -> None:
    controller, window = app
    key = key_of(controller, "MfFailingFlow")
    window.select_flow(key)
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.run_selected()
    assert blocker.args[1] == "failed"
    assert status_of(window, "start") == "succeeded"
    assert status_of(window, "divide") == "failed"
    window.scene.step_clicked.emit("divide")
    assert "ZeroDivisionError" in window.error_pane.text.toPlainText()
    assert window.error_pane.location == (str(folder / "failing.py"), 17)
    path = folder / "failing.py"
    path.write_text(path.read_text().replace("FIX_ME = False", "FIX_ME = True"))
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.resume_selected()
    assert blocker.args[1] == "succeeded"
    assert status_of(window, "start") == "reused"
    assert status_of(window, "divide") == "succeeded"
    assert status_of(window, "end") == "succeeded"


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_metaflow_stop_leaves_no_process(qtbot, app) -> None:
    controller, window = app
    key = key_of(controller, "MfSleepyFlow")
    window.select_flow(key)
    window.run_selected()
    state = controller.states[key]
    qtbot.waitUntil(lambda: status_of(window, "nap_a") == "running"
                    and status_of(window, "nap_b") == "running", timeout=WAIT_MS)
    pgid = controller.runs[key].pid
    task_pids = [t.pid for t in state.tasks.values() if t.step.startswith("nap")]
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.stop_selected()
    assert blocker.args[1] == "cancelled"
    assert status_of(window, "nap_a") == "cancelled"
    qtbot.waitUntil(lambda: _group_gone(pgid) and all(not process_alive(p) for p in task_pids),
                    timeout=WAIT_MS)


def test_missing_metaflow_is_named_with_the_fix(qtbot, app, tmp_path: Path) -> None:
    controller, window = app
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    key = key_of(controller, "MfForeachFlow")
    window.select_flow(key)
    bare = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    controller.set_interpreter(controller.model.entry(key).file, str(bare))
    window.run_selected()
    level, text = window.last_message
    assert level == "error" and "cannot import metaflow" in text and "pip install metaflow" in text
    assert not controller.is_running(key)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False
