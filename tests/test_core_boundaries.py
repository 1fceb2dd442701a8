"""Qt stays out of the core: no module of `flowdeck` imports Qt or the desktop package."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import CORE, child_env

FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "flowdeck_desktop", "qtpy")


def test_no_core_module_imports_qt() -> None:
    offenders = []
    for path in sorted((CORE / "flowdeck").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_and_running_the_core_loads_no_qt(tmp_path) -> None:
    code = ("import sys, flowdeck, flowdeck.cli.main, flowdeck.engine.launch, flowdeck.client\n"
            "import flowdeck.analysis.flowfile, flowdeck.engine.runtime\n"
            f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
            "print(bad)\n")
    result = subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
