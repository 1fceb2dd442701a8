"""Which Python runs a flow: the folder's virtual environment, $VIRTUAL_ENV, or our own.

A user's flow must run with the interpreter that has their libraries, not
with the app's. We look for `.venv/` or `venv/` in the flow's folder and
above, then `$VIRTUAL_ENV`, then fall back to the app's own Python (or, in
a frozen app, `python3` on PATH). We also check, once per interpreter,
whether it can import `flowdeck` (and `metaflow`); if it cannot, the run
gets our core on its PYTHONPATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

VENV_NAMES = (".venv", "venv")


@dataclass(frozen=True)
class Interpreter:
    """A Python executable and why it was chosen."""

    path: str
    source: str  # "configured", "venv", "VIRTUAL_ENV", "app", "PATH"

    @property
    def label(self) -> str:
        return f"{self.path} ({self.source})"


@dataclass(frozen=True)
class InterpreterCheck:
    """What an interpreter can do, learned by running it once."""

    works: bool
    version: str = ""
    has_flowdeck: bool = False
    has_metaflow: bool = False
    error: str = ""


def _venv_python(venv: Path) -> Path | None:
    for candidate in (venv / "bin" / "python", venv / "bin" / "python3",
                      venv / "Scripts" / "python.exe"):
        try:
            if candidate.is_file():
                return candidate
        except OSError:  # an unreadable folder on the way up is not ours to use
            continue
    return None


def detect_interpreter(folder: str | Path, configured: str | None = None) -> Interpreter:
    """The interpreter for flows in `folder` (configured one first)."""
    if configured:
        return Interpreter(configured, "configured")
    here = Path(folder).resolve()
    for base in (here, *here.parents):
        for name in VENV_NAMES:
            python = _venv_python(base / name)
            if python is not None:
                return Interpreter(str(python), "venv")
    env = os.environ.get("VIRTUAL_ENV")
    if env and _venv_python(Path(env)):
        return Interpreter(str(_venv_python(Path(env))), "VIRTUAL_ENV")
    if not getattr(sys, "frozen", False):
        return Interpreter(sys.executable, "app")
    found = shutil.which("python3") or shutil.which("python")
    return Interpreter(found or "python3", "PATH")


_PROBE = ("import sys, importlib.util as u; print(sys.version.split()[0]); "
          "print(bool(u.find_spec('flowdeck'))); print(bool(u.find_spec('metaflow')))")


@lru_cache(maxsize=32)
def _check_cached(path: str, mtime: float) -> InterpreterCheck:
    try:
        result = subprocess.run([path, "-I", "-c", _PROBE], capture_output=True, text=True,
                                timeout=20, cwd=os.path.abspath(os.sep),
                                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return InterpreterCheck(False, error=f"{path} cannot be started: {exc}")
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return InterpreterCheck(False, error=f"{path} does not run Python: {detail}")
    lines = result.stdout.split()
    if len(lines) < 3:
        return InterpreterCheck(False, error=f"{path} did not answer like Python does.")
    return InterpreterCheck(True, lines[0], lines[1] == "True", lines[2] == "True")


def check_interpreter(path: str) -> InterpreterCheck:
    """Run the interpreter once (cached until its file changes) to see what it has."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        resolved = shutil.which(path)
        if resolved is None:
            return InterpreterCheck(False, error=_missing_message(path))
        path, mtime = resolved, os.stat(resolved).st_mtime
    return _check_cached(path, mtime)


def _missing_message(path: str) -> str:
    """Say what to install when no Python was found, not only that a path is wrong."""
    if os.sep in path or (os.altsep and os.altsep in path):
        return (f"The interpreter {path} does not exist. "
                "Choose another one in Run > Interpreter.")
    return (f"No Python interpreter found: `{path}` is not on PATH. Flows run with a real "
            "Python: install Python 3.11 or newer (Debian/Ubuntu: `sudo apt install python3`; "
            "macOS and Windows: python.org), or create a `.venv` in the flow's folder, or "
            "choose an interpreter in Run > Interpreter.")
