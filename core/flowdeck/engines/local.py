"""Flowdeck's own engine: the flow file runs as a script, `python file.py run ...`.

A file written for Metaflow runs unchanged on it too, through the alias entry
(`python -m flowdeck.engines.as_metaflow file.py run ...`), which makes its `metaflow`
imports resolve to Flowdeck in that run's process only.
"""

from __future__ import annotations

import signal

from flowdeck.engines.as_metaflow import ENTRY_MODULE
from flowdeck.engines.base import Engine


class FlowdeckEngine(Engine):
    """Runs the file itself; TERM cancels the run (its orchestrator stops tasks gracefully)."""

    name = "flowdeck"
    stop_signal = signal.SIGTERM

    def run_args(self, file: str, args: list[str], written_for: str = "flowdeck") -> list[str]:
        if written_for == "metaflow":
            return ["-m", ENTRY_MODULE, file, *args]
        return [file, *args]
