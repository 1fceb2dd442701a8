"""Metaflow's own engine, through our bridge (`flowdeck.engines.metaflow_bridge`)."""

from __future__ import annotations

import os
import signal

from flowdeck.engines.base import Engine
from flowdeck.engines.interpreter import InterpreterCheck


class MetaflowEngine(Engine):
    """Runs Metaflow's CLI under the bridge, which writes our event stream.

    Metaflow stops cleanly on SIGINT (as on Ctrl+C); the bridge escalates to TERM
    and KILL itself. The bridge module is ours, so the core always goes on the path.
    """

    name = "metaflow"
    stop_signal = signal.SIGINT

    def run_args(self, file: str, args: list[str], written_for: str = "metaflow") -> list[str]:
        return ["-m", "flowdeck.engines.metaflow_bridge", file, *args]

    def working_dir(self, file: str, project_root: str | None = None) -> str:
        """Where Metaflow's users run it: the nearest folder upward holding `.metaflow/`
        (a project of sibling flow folders shares one), else the project's root folder
        (where `cd project; python 02-x/flow.py run` would create it), else the file's."""
        folder = os.path.dirname(os.path.abspath(file))
        for candidate in (folder, *_parents(folder, project_root)):
            if os.path.isdir(os.path.join(candidate, ".metaflow")):
                return candidate
        return os.path.abspath(project_root) if project_root else folder

    def needs_core_on_path(self, check: InterpreterCheck) -> bool:
        return True

    def missing(self, check: InterpreterCheck, interpreter: str, flow: str) -> str | None:
        if check.has_metaflow:
            return None
        hint = (" (Metaflow does not run natively on Windows; use WSL)." if os.name == "nt"
                else ".")
        return (f"{interpreter} cannot import metaflow, which {flow} uses. Install it there: "
                f"`{interpreter} -m pip install metaflow`{hint} Or run the flow unchanged on "
                "Flowdeck's engine, which needs no Metaflow: Engine \"Flowdeck (fast)\" in "
                "the window, --engine flowdeck with flowdeck run.")


def _parents(folder: str, stop: str | None) -> list[str]:
    """The folders above `folder`, nearest first, up to `stop`, the home folder or the root."""
    home = os.path.expanduser("~")
    out: list[str] = []
    while True:
        parent = os.path.dirname(folder)
        if parent == folder or folder == home or (stop and folder == os.path.abspath(stop)):
            return out
        out.append(parent)
        folder = parent
