"""Diagnostics: what is wrong with a flow, where, and what to do about it.

Every problem the static analysis or the runtime reports to a person goes
through `Diagnostic`, so the terminal, the JSON output and the desktop window
all show the same file, line and fix-it sentence.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from flowdeck.compiled_dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a flow file.

    `code` is a stable identifier (tests and tools match on it); `message`
    is the sentence a person reads, ending with what to do.
    """

    file: str
    line: int
    message: str
    code: str
    severity: str = "error"  # "error" blocks a run, "warning" does not
    column: int = 0
    flow: str | None = None
    step: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """`file:line: error: message`, the shape editors and terminals link."""
        where = f"{self.file}:{self.line}"
        if self.column:
            where += f":{self.column}"
        return f"{where}: {self.severity}: {self.message}"


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


class FlowdeckError(Exception):
    """An error caused by the user's flow or command line, shown without a traceback."""

    exit_code = 1

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.diagnostics = diagnostics or []


class FlowDefinitionError(FlowdeckError):
    """The flow file does not describe a valid flow (lint or syntax errors)."""


#: The lint's code for a decorator the file never binds (`@stpe`): a warning in the list,
#: since the file may bind it in a way the lint cannot see (`globals()[...]`), and an error
#: once Python stopped on its NameError (`authoring.exceptions.show_user_errors`).
UNDEFINED_DECORATOR = "undefined-decorator"


def flow_file_problem(file: str, what: str = "a flow's .py file") -> str | None:
    """Why `file`, given where a flow file is expected, is not one (None when it is a
    file): missing, a folder (which a command that lists flows takes instead), or another
    kind of file, said as `flowdeck list` says it (a named pipe was "no such file"). Asked
    of the file's status only: nothing is opened, so a FIFO cannot hang the command."""
    try:
        mode = os.stat(file).st_mode
    except (OSError, ValueError):  # missing, a dangling link, a NUL in the path
        return f"{file}: no such file. Give the path of {what}."
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return (f"{file} is a folder. Give the path of {what} in it; `flowdeck list "
                f"{file}` lists the flows there.")
    return f"{file}: {not_regular_file(mode)} Give the path of {what}."


def not_regular_file(mode: int) -> str:
    """Why a path of this `st_mode` (not a regular file) is not read as a flow source: the
    one sentence `flowdeck list`'s skipped files and the commands given one say."""
    return f"This is a {_file_kind(mode)}, not a regular file, so it is not read."


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


class UsageError(FlowdeckError):
    """The command line or the parameters given are wrong."""

    exit_code = 2
