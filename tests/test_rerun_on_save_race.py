"""Rerun on save when the run going already read the saved file (found by the save storms
of reliability/save_storms.py).

A run starts a moment after the save that asked for it and reads the file then; in a
save storm that is often a later save. When that later save's change arrives, the run
going already runs it: rerunning stopped it and ran the same content a second time.
"""

from __future__ import annotations

import time
from pathlib import Path

from conftest import WAIT_MS, flow_key

from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout
from flowdeck_desktop.control.controller import FlowdeckController

FLOW = '''import time

from flowdeck import FlowSpec, step

VERSION = {version}


class RaceFlow(FlowSpec):
    @step
    def start(self):
        self.version = VERSION
        time.sleep(2)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RaceFlow()
'''


def test_a_save_the_run_going_already_read_does_not_run_again(qtbot, settings,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "race.py"
    path.write_text(FLOW.format(version=1))
    controller = FlowdeckController(settings)
    try:
        controller.add_paths([str(tmp_path)])
        qtbot.waitUntil(lambda: any(e.name == "RaceFlow" for e in controller.model.entries()),
                        timeout=WAIT_MS)
        key = flow_key(controller, "RaceFlow")
        controller.set_auto_rerun(key, True)
        layout = RunLayout(tmp_path / ".flowdeck", "RaceFlow")
        # Version 2 is saved and the run starts before the window hears of the save (its
        # change waits in the event queue, which does not turn until the run's record is
        # written): the run reads version 2.
        path.write_text(FLOW.format(version=2))
        controller.start_run(key)
        run = controller.session(key).run
        deadline = time.monotonic() + 30
        while not layout.run_json(run.spec.run_id).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        version_2 = path.read_text()
        qtbot.waitUntil(lambda: controller.model.entry(key).flow.graph.outside_hash !=
                        _hash_of(FLOW.format(version=1), path), timeout=WAIT_MS)
        assert path.read_text() == version_2
        assert controller.session(key).pending_rerun is None  # no rerun waits for a stop
        assert controller.session(key).run is run and not run.stopping
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
            pass
        assert ended.args[1] == "succeeded"
        qtbot.wait(500)  # a rerun, if one were coming, starts at once after the end
        assert not controller.is_running(key)
        assert len(RunIndex(layout).runs()) == 1
    finally:
        controller.shutdown()


def _hash_of(source: str, path: Path) -> str:
    from flowdeck.analysis.flowfile import analyze_source
    return analyze_source(source, str(path)).flows[0].graph.outside_hash


GATED = '''import os
import time
from pathlib import Path

from flowdeck import FlowSpec, step


class GatedSaveFlow(FlowSpec):
    @step
    def start(self):
        gate = Path(os.environ["SAVE_GATE"])
        Path(str(gate) + ".waiting").write_text("")
        while not gate.exists():
            time.sleep(0.02)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GatedSaveFlow()
'''


def test_a_save_of_comments_only_does_not_stop_the_run(qtbot, settings, tmp_path: Path,
                                                         monkeypatch) -> None:
    """A comment (or blank line) saved while a long run goes on changes no code: the run
    goes on, and the window says why nothing was rerun. A change of code still stops it
    and reruns, and says that the run going on is stopped."""
    gate = tmp_path / "gate"
    monkeypatch.setenv("SAVE_GATE", str(gate))  # the window's runs inherit it
    path = tmp_path / "gated.py"
    path.write_text(GATED)
    controller = FlowdeckController(settings)
    said: list[str] = []
    controller.message.connect(lambda _level, text: said.append(text))
    try:
        controller.add_paths([str(tmp_path)])
        qtbot.waitUntil(lambda: any(e.name == "GatedSaveFlow"
                                    for e in controller.model.entries()), timeout=WAIT_MS)
        key = flow_key(controller, "GatedSaveFlow")
        controller.set_auto_rerun(key, True)
        controller.start_run(key)
        run = controller.session(key).run
        qtbot.waitUntil(Path(str(gate) + ".waiting").exists, timeout=WAIT_MS)
        path.write_text(GATED.replace("    @step\n    def end",
                                      "    # a note, saved mid-run\n\n    @step\n    def end"))
        qtbot.waitUntil(lambda: any("only comments or blank lines changed" in t for t in said),
                        timeout=WAIT_MS)
        assert controller.session(key).run is run and not run.stopping
        assert controller.session(key).pending_rerun is None
        path.write_text(GATED.replace("time.sleep(0.02)", "time.sleep(0.01)"))
        qtbot.waitUntil(lambda: any("The run going on is stopped first." in t for t in said),
                        timeout=WAIT_MS)
        gate.touch()
        qtbot.waitUntil(lambda: controller.session(key).run is not run, timeout=WAIT_MS)
    finally:
        gate.touch()
        controller.shutdown()
