"""Open a file at a line in the user's editor ($VISUAL, $EDITOR), else the system's handler."""

from __future__ import annotations

import os
import shlex

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices

# How editors take a line number; anything else gets `+LINE FILE`, the vi/emacs/nano way.
_LINE_STYLES = {
    "code": lambda f, n: ["-g", f"{f}:{n}"],
    "codium": lambda f, n: ["-g", f"{f}:{n}"],
    "subl": lambda f, n: [f"{f}:{n}"],
    "gedit": lambda f, n: [f"+{n}", f],
    "kate": lambda f, n: ["-l", str(n), f],
    "pycharm": lambda f, n: ["--line", str(n), f],
    "charm": lambda f, n: ["--line", str(n), f],
}
_TERMINAL_EDITORS = {"vi", "vim", "nvim", "nano", "emacs", "micro", "hx", "kak"}


def editor_command(file: str, line: int, environ: dict[str, str] | None = None
                   ) -> list[str] | None:
    """The command that opens `file` at `line`, or None when no editor is configured."""
    env = os.environ if environ is None else environ
    configured = env.get("VISUAL") or env.get("EDITOR")
    if not configured:
        return None
    parts = shlex.split(configured)
    if not parts:
        return None
    name = os.path.basename(parts[0])
    style = _LINE_STYLES.get(name)
    args = style(file, line) if style else [f"+{line}", file]
    command = parts + args
    if name in _TERMINAL_EDITORS and env.get("TERMINAL"):
        command = [env["TERMINAL"], "-e", *command]
    return command


def open_in_editor(file: str, line: int) -> bool:
    """Start the editor detached; fall back to the desktop's handler for .py files."""
    command = editor_command(file, line)
    if command is not None:
        ok, _pid = QProcess.startDetached(command[0], command[1:])
        if ok:
            return True
    return QDesktopServices.openUrl(QUrl.fromLocalFile(file))
