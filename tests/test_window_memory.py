"""What the window remembers across starts: watched folders and its own size."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLES, FLOWS, WAIT_MS, child_env, close_window

from flowdeck_desktop.app import build


def test_a_file_given_at_start_adds_to_the_remembered_folders(qtbot, settings, tmp_path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(EXAMPLES / "train.py", project)
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(FLOWS / "sleepy.py", other)
    controller, window = build(settings, [str(project)])
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    close_window(controller, window)
    controller, window = build(settings, [str(other / "sleepy.py")])  # `flowdeck FILE.py`
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        names = {e.name for e in controller.model.entries()}
        assert {"TrainFlow", "SleepyFlow"} <= names
        assert str(project) in controller.remembered_paths()
    finally:
        close_window(controller, window)


def test_a_scripted_start_does_not_change_the_remembered_window_size(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = child_env(QT_QPA_PLATFORM="offscreen", HOME=str(home),
                    XDG_CONFIG_HOME=str(home / ".config"))
    subprocess.run([sys.executable, "-m", "flowdeck_desktop", "--new-instance",
                    "--quit-when-shown", str(EXAMPLES)], env=env, timeout=60, check=True,
                   capture_output=True)
    ini = list((home / ".config").rglob("flowdeck.ini"))
    text = ini[0].read_text() if ini else ""
    assert "geometry" not in text
