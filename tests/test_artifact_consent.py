"""Clicking a task of someone else's run must not unpickle its artifacts (that runs their code).

The run here holds an artifact whose unpickling creates a file: exactly what
a hostile datastore would do, with a harmless effect we can see. A run is
someone else's when its record names another user, or its files belong to
another uid (the real account `nobody`, 65534).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import WAIT_MS, child_env, close_window, flow_key, run_flow
from PySide6.QtCore import QProcess, QSettings

from flowdeck.store.layout import RunLayout
from flowdeck_desktop.app import build
from flowdeck_desktop.views.panes import foreign_author

NOBODY = 65534

TRAP_FLOW = '''import os
from flowdeck import FlowSpec, step

MARKER = os.environ["TRAP_MARKER"]


class Trap:
    """Unpickling this runs `open(MARKER, "a")`: code chosen by whoever made the run."""

    def __reduce__(self):
        return (open, (MARKER, "a"))


class TrapFlow(FlowSpec):
    @step
    def start(self):
        self.trap = Trap()
        self.count = 3
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TrapFlow().run()
'''


@pytest.fixture
def trap_run(tmp_path: Path) -> tuple[Path, Path, str]:
    """A finished TrapFlow run recorded as made by `mallory` (a datastore copied from her:
    the files are ours, the record says who made it); (flow file, marker, run id)."""
    folder = tmp_path / "flows"
    folder.mkdir()
    flow = folder / "trap.py"
    flow.write_text(TRAP_FLOW)
    marker = tmp_path / "artifact-code-ran"
    done = run_flow(flow, "run", env=child_env(TRAP_MARKER=str(marker)))
    assert done.returncode == 0, done.stderr
    marker.unlink(missing_ok=True)  # whatever the run itself did: from here on, only reads
    [run_id] = RunLayout.for_file(flow, "TrapFlow").run_ids()
    record = RunLayout.for_file(flow, "TrapFlow").run_json(run_id)
    data = json.loads(record.read_text())
    data["user"] = "mallory"
    record.write_text(json.dumps(data))
    return flow, marker, run_id


def _run_as_own(flow: Path, run_id: str) -> None:
    """Make the recorded user ours, as if we had made the run."""
    record = RunLayout.for_file(flow, "TrapFlow").run_json(run_id)
    data = json.loads(record.read_text())
    data["user"] = None
    record.write_text(json.dumps(data))


def test_who_made_a_run(trap_run: tuple[Path, Path, str]) -> None:
    flow, _marker, run_id = trap_run
    layout = RunLayout.for_file(flow, "TrapFlow")
    assert foreign_author(layout, run_id) == "mallory"
    _run_as_own(flow, run_id)
    assert foreign_author(layout, run_id) is None
    if not hasattr(os, "getuid") or os.getuid() != 0:
        pytest.skip("giving a run to another user (chown to uid 65534) needs root")
    os.chown(layout.run_json(run_id), NOBODY, NOBODY)
    assert foreign_author(layout, run_id) == "nobody (uid 65534)"


def _show_start_task(qtbot, window, controller) -> None:
    """Select the flow, its only past run, then its start step, as a person would."""
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    window.select_flow(flow_key(controller, "TrapFlow"))
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1, timeout=WAIT_MS)
    window.history.table.selectRow(0)
    window.scene.step_clicked.emit("start")


def test_another_users_run_lists_artifacts_and_loads_values_only_when_asked(
        qtbot, settings: QSettings, trap_run: tuple[Path, Path, str]) -> None:
    flow, marker, _run_id = trap_run
    controller, window = build(settings, [str(flow.parent)])
    window.show()
    try:
        _show_start_task(qtbot, window, controller)
        pane = window.artifacts
        assert pane.findChildren(QProcess) == [], "a helper was started on a mere click"
        assert "This run was made by mallory; loading its values runs code" in pane.title.text()
        assert not pane.load_button.isHidden()
        shown = {row["name"]: row for row in pane.rows}  # from the run's events
        assert shown["trap"]["type"] == "__main__.Trap" and shown["count"]["type"] == "int"
        assert not marker.exists()

        with qtbot.waitSignal(pane.loaded, timeout=WAIT_MS):
            pane.load_button.click()
        assert marker.exists()  # the values were loaded, with the user's consent
        assert {row["name"]: row for row in pane.rows}["count"]["preview"] == "3"
        assert pane.load_button.isHidden()
    finally:
        close_window(controller, window)


def test_a_run_whose_files_belong_to_another_uid_waits_too(
        qtbot, settings: QSettings, trap_run: tuple[Path, Path, str]) -> None:
    if not hasattr(os, "getuid") or os.getuid() != 0:
        pytest.skip("giving a run to another user (chown to uid 65534) needs root")
    flow, marker, run_id = trap_run
    _run_as_own(flow, run_id)
    run_dir = RunLayout.for_file(flow, "TrapFlow").run_dir(run_id)
    for path in (run_dir, *run_dir.rglob("*")):
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    controller, window = build(settings, [str(flow.parent)])
    window.show()
    try:
        _show_start_task(qtbot, window, controller)
        assert window.artifacts.findChildren(QProcess) == []
        assert "made by nobody (uid 65534)" in window.artifacts.title.text()
        assert not marker.exists()
    finally:
        close_window(controller, window)


def test_our_own_run_loads_its_values_at_once(qtbot, settings: QSettings,
                                              trap_run: tuple[Path, Path, str]) -> None:
    flow, marker, run_id = trap_run
    _run_as_own(flow, run_id)
    controller, window = build(settings, [str(flow.parent)])
    window.show()
    try:
        with qtbot.waitSignal(window.artifacts.loaded, timeout=WAIT_MS):
            _show_start_task(qtbot, window, controller)
        assert window.artifacts.load_button.isHidden()
        assert {row["name"]: row for row in window.artifacts.rows}["count"]["preview"] == "3"
        assert marker.exists()
    finally:
        close_window(controller, window)
