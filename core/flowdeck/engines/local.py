"""Flowdeck's own engine: the flow file runs as a script, `python file.py run ...`."""

from __future__ import annotations

import signal

from flowdeck.engines.base import Engine


class FlowdeckEngine(Engine):
    """Runs the file itself; TERM cancels the run (its orchestrator stops tasks gracefully)."""

    name = "flowdeck"
    stop_signal = signal.SIGTERM

    def run_args(self, file: str, args: list[str]) -> list[str]:
        return [file, *args]
