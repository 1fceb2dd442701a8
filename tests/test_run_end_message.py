"""What the banner says when a run ends: one full stop, even when the error's own message
ends with one. The real window, a real run whose task process calls os._exit."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import FLOWS, WAIT_MS, flow_key, opened_window


def test_a_task_process_that_exits_is_told_with_one_full_stop(qtbot, settings,
                                                              tmp_path: Path) -> None:
    """The engine says "…(os._exit or a crash in native code)."; the banner said that
    with a second period after it."""
    shutil.copy(FLOWS / "misbehaving.py", tmp_path)
    with opened_window(qtbot, settings, [tmp_path]) as (controller, window):
        window.select_flow(flow_key(controller, "MisbehavingFlow"))
        window.params._editors["mode"].setText("crash")  # each task calls os._exit(7)
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
            window.run_selected()
        assert ended.args[1] == "failed"
        text = window.banner.text
        assert "exited with code 7" in text
        assert text.endswith("native code).") and not text.endswith("..")
