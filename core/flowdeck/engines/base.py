"""The engine seam: what differs between the engines that run a flow file.

An `Engine` says how to start a run of a file (the command after the
interpreter), which signal stops it and how long to wait before KILL, what
the interpreter must be able to import, and where the run works. Everything
that starts a flow process (the window's `RunProcess`, `flowdeck run`, the
artifact helper) builds a `LaunchSpec` through `engines.launching`, so a new
engine is one new subclass registered there.
"""

from __future__ import annotations

import os
import signal
from abc import ABC, abstractmethod

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engines.interpreter import InterpreterCheck

#: How long a launcher waits, after its stop signal, before it KILLs the run. The
#: orchestrator gives each step CANCEL_GRACE_S (3 s, engine/runtime.py) after SIGINT for
#: its own cleanup (`except KeyboardInterrupt`, `finally`), then kills what is left and
#: records the run as cancelled; the 2 s beyond that let it finish recording on a busy
#: machine, so the window and History agree on "cancelled".
DEFAULT_STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start and stop one run process; built once, read by launchers."""

    program: str  # the interpreter
    args: list[str]
    cwd: str
    env: dict[str, str]  # added to the caller's environment
    engine: str
    flow: str
    file: str
    run_id: str
    root: str
    events_path: str
    stop_signal: int
    stop_grace_s: float

    @property
    def argv(self) -> list[str]:
        return [self.program, *self.args]


class Engine(ABC):
    """One way of running a flow file. Subclasses are stateless singletons."""

    name: str = ""
    stop_signal: int = signal.SIGTERM
    stop_grace_s: float = DEFAULT_STOP_GRACE_S

    @abstractmethod
    def run_args(self, file: str, args: list[str], written_for: str = "flowdeck") -> list[str]:
        """The interpreter's arguments that run `file` with the flow command line `args`.

        `written_for` is the engine the file imports (discovery's `FlowInfo.engine`):
        an engine may run a file written for another one differently."""

    def working_dir(self, file: str, project_root: str | None = None) -> str:
        """Where the run process starts. `project_root` is the folder the user opened
        (the watched root), when the launcher knows it."""
        return os.path.dirname(os.path.abspath(file))

    def needs_core_on_path(self, check: InterpreterCheck) -> bool:
        """Whether the interpreter needs our core put on PYTHONPATH to run this engine."""
        return not check.has_flowdeck

    def missing(self, check: InterpreterCheck, interpreter: str, flow: str) -> str | None:
        """What the interpreter lacks for this engine, as a message saying what to do."""
        return None
