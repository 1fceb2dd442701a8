# Expected: one flow, SideEffectFlow, found without running this file. Its top
# level writes a marker file beside it and kills the interpreter: if discovery
# ever imported it, the marker would exist and the scanner would be dead.
import os
import pathlib

pathlib.Path(__file__).with_name("MARKER_side_effects_ran").write_text("imported!")
os._exit(3)

from flowdeck import FlowSpec, step  # noqa: E402


class SideEffectFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
