"""The window fits the screen it opens on: a 1280x720 laptop sees its right column and its
first-start buttons, and a size remembered from a bigger monitor is brought within it.

Each case is a real process on Qt's offscreen platform given a screen of that size
(`offscreen:configfile=`), as the test process's own screen cannot change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import child_env

#: Builds the window (first start, or with the remembered geometry in the settings file),
#: optionally first remembers a big one, and prints what the window and screen are.
PROBE = r'''
import json, sys
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QPushButton
app = QApplication([])
settings = QSettings(sys.argv[1], QSettings.Format.IniFormat)
from flowdeck_desktop.app import build
controller, window = build(settings)
if sys.argv[2] == "remember":
    window.resize(2400, 1300)
    window.move(100, 60)
    settings.setValue("window/geometry", window.saveGeometry())
    settings.sync()
window.show()
app.processEvents()
buttons = [b for b in window.empty_hint.findChildren(QPushButton) if b.isVisible()]
area = window.screen().availableGeometry()
print(json.dumps({
    "window": window.geometry().getRect(), "area": area.getRect(),
    "buttons": [(b.text(), b.mapTo(window, b.rect().bottomRight()).toTuple()) for b in buttons],
}))
window.close()
controller.shutdown()
'''


def _screen(tmp_path: Path, width: int, height: int) -> str:
    config = tmp_path / f"screen-{width}x{height}.json"
    config.write_text(json.dumps({"screens": [{"name": "probe", "x": 0, "y": 0, "width": width,
                                               "height": height, "logicalDpi": 96}]}))
    return f"offscreen:configfile={config}"


def _probe(tmp_path: Path, screen: tuple[int, int], mode: str = "") -> dict:
    env = child_env(QT_QPA_PLATFORM=_screen(tmp_path, *screen), HOME=str(tmp_path / "home"),
                    XDG_DATA_HOME=str(tmp_path / "data"))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1] / "desktop"),
                                         env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "flowdeck.ini"), mode],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _inside(rect: list[int], area: list[int]) -> bool:
    x, y, w, h = rect
    ax, ay, aw, ah = area
    return ax <= x and ay <= y and x + w <= ax + aw and y + h <= ay + ah


def test_the_first_start_fits_a_1280x720_screen(tmp_path: Path) -> None:
    seen = _probe(tmp_path, (1280, 720))
    x, y, width, height = seen["window"]
    assert width <= 0.9 * 1280 and height <= 0.9 * 720, seen
    assert _inside(seen["window"], seen["area"]), seen
    assert {"Open the bundled examples", "Open Folder…"} <= {t for t, _ in seen["buttons"]}
    for text, (right, bottom) in seen["buttons"]:
        assert right < width and bottom < height, f"{text} is cut off: {seen}"


def test_the_first_start_keeps_its_size_on_a_big_screen(tmp_path: Path) -> None:
    assert _probe(tmp_path, (1920, 1080))["window"][2:] == [1300, 820]


def test_a_size_remembered_on_a_bigger_monitor_fits_the_smaller_one(tmp_path: Path) -> None:
    big = _probe(tmp_path, (2560, 1440), "remember")
    assert big["window"][2:] == [2400, 1300]
    small = _probe(tmp_path, (1280, 720))
    assert _inside(small["window"], small["area"]), small
    assert small["window"][2] <= 0.9 * 1280 and small["window"][3] <= 0.9 * 720, small
