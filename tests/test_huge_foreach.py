"""A foreach of 10 million items is stopped like any other run.

The orchestrator used to build every task of a foreach before it looked at anything
else: with 10 million items it ignored SIGTERM for about 70 s while its memory grew.
Tasks are now made as worker slots free up (`runtime.FanOut`), so the stop that comes
after the first items ran ends the run, recorded as cancelled, within the usual grace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import child_env, wait_for

from flowdeck import Flow
from flowdeck.store.events import read_events

FLOW = '''
from flowdeck import FlowSpec, step


class HugeFlow(FlowSpec):
    @step
    def start(self):
        self.items = range(10_000_000)
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HugeFlow()
'''


def finished_work_tasks(events_path: Path) -> int:
    try:
        events = read_events(events_path)
    except OSError:
        return 0
    return sum(1 for e in events if e.get("type") == "task_finished" and e.get("step") == "work")


def test_a_ten_million_item_foreach_is_cancelled_by_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "hugeflow.py"
    path.write_text(FLOW)
    run_id = "huge"
    proc = subprocess.Popen([sys.executable, str(path), "run", "--run-id", run_id,
                             "--max-workers", "2", "--quiet"], cwd=tmp_path, env=child_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    events_path = tmp_path / ".flowdeck" / "HugeFlow" / "runs" / run_id / "events.jsonl"
    try:
        wait_for(lambda: finished_work_tasks(events_path) >= 5, "the foreach's first items",
                 still_going=lambda: proc.poll() is None)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)  # ends (generous: no timing claim)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    run = Flow("HugeFlow", root=tmp_path / ".flowdeck")[run_id]
    assert run.status == "cancelled"
    started = [e for e in read_events(events_path)
               if e.get("type") == "task_started" and e.get("step") == "work"]
    # made in input order, as slots freed up: nowhere near the 10 million items
    assert [e["foreach"]["index"] for e in started] == list(range(len(started)))
    assert all(e["foreach"]["num_splits"] == 10_000_000 for e in started)
