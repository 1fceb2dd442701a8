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

    def run_args(self, file: str, args: list[str]) -> list[str]:
        return ["-m", "flowdeck.engines.metaflow_bridge", file, *args]

    def needs_core_on_path(self, check: InterpreterCheck) -> bool:
        return True

    def missing(self, check: InterpreterCheck, interpreter: str, flow: str) -> str | None:
        if check.has_metaflow:
            return None
        hint = (" (Metaflow does not run natively on Windows; use WSL)." if os.name == "nt"
                else ".")
        return (f"{interpreter} cannot import metaflow, which {flow} uses. Install it there: "
                f"`{interpreter} -m pip install metaflow`{hint}")
