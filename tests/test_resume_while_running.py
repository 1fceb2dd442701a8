"""`resume` of a run that is still running is refused, with what to do (found in review: it
reused the finished tasks and ran the ones in flight a second time, beside the run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import child_env, run_flow, wait_for

from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout

FLOW = '''
import time
from pathlib import Path
from flowdeck import FlowSpec, step

GATE = Path(__file__).with_name("gate")


class LiveFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        while self.input == 1 and not GATE.exists():  # item 1 is in flight until the gate
            time.sleep(0.05)
        self.v = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.vals = sorted(i.v for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("vals", self.vals)


if __name__ == "__main__":
    LiveFlow()
'''


def test_resuming_a_running_run_is_refused(tmp_path: Path) -> None:
    flow = tmp_path / "live.py"
    flow.write_text(FLOW)
    index = RunIndex(RunLayout(tmp_path / ".flowdeck", "LiveFlow"))
    running = subprocess.Popen([sys.executable, str(flow), "run"], cwd=tmp_path,
                               env=child_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        def item_0_done() -> bool:
            runs = index.runs()
            return bool(runs) and any(r.step == "each" and r.done
                                      for r in index.final_attempts(runs[0].run_id)[0])
        wait_for(item_0_done, "the first foreach item finished",
                 still_going=lambda: running.poll() is None)
        origin = index.runs()[0]
        assert origin.record is not None
        for extra in ([], ["--origin-run-id", origin.run_id]):
            refused = run_flow(flow, "resume", *extra, timeout=30)
            assert refused.returncode == 2, refused.stderr
            assert (f"error: Run {origin.run_id} of LiveFlow is still running (pid "
                    f"{origin.record.pid}). Resuming it now would run its unfinished tasks "
                    "a second time beside it. Wait for it to end, or stop it") in refused.stderr
            assert "Traceback" not in refused.stderr
        assert [r.run_id for r in index.runs()] == [origin.run_id]  # nothing started
    finally:
        (tmp_path / "gate").touch()
        running.wait(timeout=120)
    assert running.returncode == 0
    resumed = run_flow(flow, "resume", "each")  # ended: resumed as any other run
    assert resumed.returncode == 0, resumed.stderr
    assert "vals [0, 1]" in resumed.stdout


def test_a_run_recorded_running_on_another_host_is_resumed_with_a_warning(
        tmp_path: Path) -> None:
    """Another host's run cannot be checked from here: it may have crashed there (or in a
    container since replaced, whose host name changed). Refused, it could never be
    resumed; it is resumed, saying what happens if it still runs there."""
    import json
    flow = tmp_path / "live.py"
    flow.write_text(FLOW)
    (tmp_path / "gate").touch()
    assert run_flow(flow, "run").returncode == 0
    index = RunIndex(RunLayout(tmp_path / ".flowdeck", "LiveFlow"))
    origin = index.runs()[0]
    record_file = origin.path
    record = json.loads(record_file.read_text())
    record.update(status="running", host="build-box-7")  # as that machine left it
    record.pop("end", None)
    record_file.write_text(json.dumps(record))
    resumed = run_flow(flow, "resume", "each")
    assert resumed.returncode == 0, resumed.stderr
    assert (f"[flowdeck] Run {origin.run_id} of LiveFlow is still running (pid "
            f"{record['pid']} on build-box-7, which this machine cannot check); if it still "
            "runs there, its unfinished tasks now run a second time.") in resumed.stderr
