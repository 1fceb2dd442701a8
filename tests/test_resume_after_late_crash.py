"""Resume of a run killed after its last task finished, before it recorded its end (found by
reliability/kill_rounds.py): it used to refuse, saying the crashed run had succeeded. Now it
reuses every task and records the success."""

from __future__ import annotations

import dataclasses
import subprocess

from conftest import run_flow

from flowdeck import Flow
from flowdeck.store.layout import RunLayout
from flowdeck.store.records import RunRecord


def test_a_run_that_crashed_after_its_last_task_resumes_to_success(flow_file) -> None:
    path = flow_file("branches.py")
    assert run_flow(path, "run", "--run-id", "late").returncode == 0
    name = "BranchFlow"
    layout = RunLayout(path.parent / ".flowdeck", name)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs: the orchestrator, killed at the end
    record = RunRecord.read(layout.run_json("late"))
    dataclasses.replace(record, status="running", end=None, exit_code=None,
                        pid=gone.pid).write(layout.run_json("late"))
    assert Flow(name, root=layout.root)["late"].status == "crashed"

    result = run_flow(path, "resume", "--origin-run-id", "late", "--run-id", "again")
    assert result.returncode == 0, result.stderr
    again = Flow(name, root=layout.root)["again"]
    assert again.successful
    assert {t.status for s in again for t in s} == {"reused"}
