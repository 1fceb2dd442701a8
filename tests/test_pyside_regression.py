"""PySide6 6.12.0 on CPython 3.11 aborts ("Fatal Python error: none_dealloc") after about
5,300 Qt calls that return None. The dependency pins keep users off that pair; this test
makes 20,000 such calls in a fresh interpreter with the installed PySide6 and must survive."""

from __future__ import annotations

import subprocess
import sys

from conftest import child_env

CALLS = 20_000

SCRIPT = f"""
from PySide6.QtWidgets import QApplication, QLabel
app = QApplication([])
label = QLabel()
for i in range({CALLS}):
    label.setText("x")      # returns None
    label.setToolTip("y")   # returns None
print("survived", {CALLS})
"""


def test_many_none_returning_qt_calls_do_not_abort() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env=child_env(QT_QPA_PLATFORM="offscreen"), timeout=120)
    assert "none_dealloc" not in result.stderr
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"survived {CALLS}" in result.stdout


def test_installed_pair_is_not_the_broken_one() -> None:
    import PySide6
    version = tuple(int(x) for x in PySide6.__version__.split(".")[:2])
    assert not (sys.version_info[:2] == (3, 11) and version >= (6, 12))
