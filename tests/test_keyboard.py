"""The window from the keyboard: toolbar tooltips teach the shortcuts, and Tab leaves
a table instead of walking its cells (a new user's Tab never reached History)."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import EXAMPLES, WAIT_MS, opened_window, run_flow
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication


def test_toolbar_tooltips_name_the_shortcuts(qtbot, settings, tmp_path: Path) -> None:
    with opened_window(qtbot, settings, [tmp_path]) as (_, window):
        tips = {a.text(): a.toolTip() for a in (window.act_run, window.act_stop,
                                                 window.act_resume, window.act_auto)}
        assert "Ctrl+R" in tips["&Run"] and "Ctrl+." in tips["&Stop"]
        assert "Ctrl+Shift+R" in tips["Resume from &Failure"]
        assert "saved" in tips["Rerun on &Save"]  # says what it does, not its label again


def test_tab_leaves_the_artifacts_and_history_tables(qtbot, settings, tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "train.py", tmp_path)
    assert run_flow(tmp_path / "train.py").returncode == 0
    with opened_window(qtbot, settings, [tmp_path]) as (controller, window):
        window.select_flow(next(e.key for e in controller.model.entries()))
        window.activateWindow()
        window.bottom.setCurrentWidget(window.artifacts)
        window.side.setCurrentWidget(window.history)
        window.scene.step_clicked.emit("start")  # its artifacts load in a helper process
        tables = (window.artifacts.table, window.history.table)
        qtbot.waitUntil(lambda: all(t.rowCount() for t in tables), timeout=WAIT_MS)
        for table in tables:
            table.setFocus(Qt.FocusReason.OtherFocusReason)
            table.setCurrentCell(0, 0)
            qtbot.waitUntil(lambda t=table: QApplication.focusWidget() is t)
            QTest.keyClick(table, Qt.Key.Key_Tab)
            assert QApplication.focusWidget() is not table
