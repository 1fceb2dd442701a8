"""The terminal emulator a terminal program (vim, nano) runs in when the window starts it.

A desktop app has no terminal of its own: a terminal editor it starts draws its screen
into the app's output and waits for keys nobody can type. It has to run inside a
terminal emulator: the user's `$TERMINAL`, else Debian's `x-terminal-emulator` (the
system's choice), else a known one found on PATH. Each emulator is told what to run in
its own way (`-e`, `-x`, `--`, nothing), kept here by the emulator's program name.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping

#: The arguments before the command to run, by emulator; an emulator not named here
#: gets xterm's `-e PROGRAM ARGS...`, which most follow.
_RUN_FLAGS: dict[str, tuple[str, ...]] = {
    "gnome-terminal": ("--",),  # its -e is deprecated and takes one string
    "ptyxis": ("--",),
    "kgx": ("--",),
    "xfce4-terminal": ("-x",),  # its -e takes one string
    "mate-terminal": ("-x",),
    "terminator": ("-x",),
    "kitty": (),
    "foot": (),
    "wezterm": ("start", "--"),
}
#: Emulators whose only way is one string after -e (the shell's quoting of the command).
_ONE_STRING = frozenset({"tilix", "lxterminal", "qterminal"})
#: Looked for on PATH, in this order, when $TERMINAL names none: the system's choice,
#: then the desktops' own, then the plain ones.
SEARCHED = ("x-terminal-emulator", "gnome-terminal", "konsole", "xfce4-terminal",
            "mate-terminal", "ptyxis", "kgx", "terminator", "kitty", "alacritty", "wezterm",
            "foot", "xterm", "urxvt", "st")


def in_terminal(command: list[str], environ: Mapping[str, str]) -> list[str] | None:
    """`command` run inside a terminal emulator; None when none can be found."""
    emulator = find_emulator(environ)
    if emulator is None:
        return None
    name = os.path.basename(emulator[0])
    if name in _ONE_STRING:
        return [*emulator, "-e", shlex.join(command)]
    return [*emulator, *_RUN_FLAGS.get(name, ("-e",)), *command]


def find_emulator(environ: Mapping[str, str]) -> list[str] | None:
    """The emulator's command (its program as a full path): `$TERMINAL` when it names one
    that exists, else the first of SEARCHED on `environ`'s PATH."""
    path = environ.get("PATH", os.defpath)
    try:
        configured = shlex.split(environ.get("TERMINAL", ""))
    except ValueError:  # unbalanced quotes: as if unset
        configured = []
    if configured and (found := shutil.which(configured[0], path=path)):
        return [found, *configured[1:]]
    for name in SEARCHED:
        if found := shutil.which(name, path=path):
            return [found]
    return None
