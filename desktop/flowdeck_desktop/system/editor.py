"""Open a file at a line in the user's editor ($VISUAL, else $EDITOR), else the system's handler.

A terminal editor (vim, nano, emacs -nw...) runs inside a terminal emulator
(`terminal_emulator`). Where there is none, the file opens with the system's handler,
which cannot be given a line, and the caller gets a note saying why, for the user.
Every process starts detached, with its input and output on the null device and in a
session of its own: an editor left on the app's stdin/stdout draws its screen into the
app's output and waits for keys nobody can type.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping

from PySide6.QtCore import QProcess, QUrl
from PySide6.QtGui import QDesktopServices

from flowdeck.compiled_dataclasses import dataclass
from flowdeck_desktop.system.terminal_emulator import in_terminal

# How editors take a line number; anything else gets `+LINE FILE`, the vi/emacs/nano way.
_LINE_STYLES: dict[str, Callable[[str, int], list[str]]] = {
    "code": lambda f, n: ["-g", f"{f}:{n}"],
    "codium": lambda f, n: ["-g", f"{f}:{n}"],
    "subl": lambda f, n: [f"{f}:{n}"],
    "gedit": lambda f, n: [f"+{n}", f],
    "kate": lambda f, n: ["-l", str(n), f],
    "pycharm": lambda f, n: ["--line", str(n), f],
    "charm": lambda f, n: ["--line", str(n), f],
    "hx": lambda f, n: [f"{f}:{n}"],
    "helix": lambda f, n: [f"{f}:{n}"],
}
#: Editors that draw in a terminal, by program name.
_TERMINAL_EDITORS = frozenset({
    "vi", "vim", "vim.basic", "vim.tiny", "nvim", "view", "nano", "pico", "micro", "hx",
    "helix", "kak", "ne", "joe", "jmacs", "jpico", "jstar", "jed", "mg", "vis", "mcedit",
})
#: Options that make emacs (or emacsclient) use the terminal instead of a window.
_EMACS_IN_TERMINAL = frozenset({"-nw", "--no-window-system", "-t", "--tty"})


@dataclass(frozen=True)
class EditorLaunch:
    """How to open a file at a line: the command to start (None: the system's handler),
    and, when the line cannot be given as configured, why (said to the user)."""

    command: list[str] | None
    note: str = ""


def configured_editor(environ: Mapping[str, str]) -> tuple[str, list[str]] | None:
    """The variable that names the editor ($VISUAL first: the editor for a desktop, as
    opposed to $EDITOR's for a terminal) and its command words; None when neither does."""
    for variable in ("VISUAL", "EDITOR"):
        try:
            words = shlex.split(environ.get(variable, ""))
        except ValueError:  # unbalanced quotes: not a command
            continue
        if words:
            return variable, words
    return None


def editor_command(file: str, line: int, environ: Mapping[str, str] | None = None
                   ) -> list[str] | None:
    """The editor's own command that opens `file` at `line` (without a terminal around
    it), or None when no editor is configured."""
    chosen = configured_editor(os.environ if environ is None else environ)
    if chosen is None:
        return None
    words = chosen[1]
    style = _LINE_STYLES.get(os.path.basename(words[0]))
    return words + (style(file, line) if style else [f"+{line}", file])


def needs_terminal(words: list[str]) -> bool:
    """Whether an editor command draws in a terminal (vim; emacs -nw) rather than a window."""
    name = os.path.basename(words[0])
    if name in ("emacs", "emacsclient"):
        return any(word in _EMACS_IN_TERMINAL for word in words[1:])
    return name in _TERMINAL_EDITORS


def editor_launch(file: str, line: int, environ: Mapping[str, str] | None = None
                  ) -> EditorLaunch:
    """What opens `file` at `line`: the editor (in a terminal emulator when it needs one),
    else the system's handler, with a note when the configured editor cannot be used."""
    env = os.environ if environ is None else environ
    command = editor_command(file, line, env)
    if command is None or not needs_terminal(command):
        return EditorLaunch(command)
    wrapped = in_terminal(command, env)
    if wrapped is not None:
        return EditorLaunch(wrapped)
    variable, words = configured_editor(env) or ("EDITOR", command)
    return EditorLaunch(None, f"{variable}={shlex.join(words)} needs a terminal; none found: "
                        "set VISUAL to a graphical editor (or TERMINAL to a terminal emulator).")


def open_in_editor(file: str, line: int) -> str:
    """Open `file` at `line`; returns what the user should be told when that could not be
    done as configured ("" when it was)."""
    launch = editor_launch(file, line)
    if launch.command is not None and start_detached(launch.command):
        return ""
    why = launch.note or (f"{launch.command[0]} could not be started." if launch.command
                          else "")
    name = os.path.basename(file)
    opened = QDesktopServices.openUrl(QUrl.fromLocalFile(file))
    if not why:  # no editor is set: the system's handler is the one asked for
        return "" if opened else (f"No editor is set (VISUAL or EDITOR) and no application "
                                  f"opens {name}.")
    if opened:
        return f"{why} {name} was opened with the system's handler, which cannot go to line {line}."
    return f"{why} No application opens {name} either."


def start_detached(command: list[str]) -> bool:
    """Start `command` on its own: no stdin, output discarded, in a new session (a Ctrl+C
    in the terminal that started the app does not reach it); False when it cannot start."""
    process = QProcess()
    process.setProgram(command[0])
    process.setArguments(command[1:])
    process.setStandardInputFile(QProcess.nullDevice())
    process.setStandardOutputFile(QProcess.nullDevice())
    process.setStandardErrorFile(QProcess.nullDevice())
    if hasattr(process, "setUnixProcessParameters"):  # not on Windows
        process.setUnixProcessParameters(QProcess.UnixProcessFlag.CreateNewSession)
    started: object = process.startDetached()
    # PySide6 answers a bool here, though its stubs (and the static form) say (bool, pid).
    return bool(started[0] if isinstance(started, tuple) else started)
