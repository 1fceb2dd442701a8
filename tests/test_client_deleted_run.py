"""The client on a run deleted while it is read (`flowdeck gc`, the window's Delete): one
clear MetaflowNotFound saying so (found in review: a raw FileNotFoundError from listing
the run's steps, and on a Run whose folder was gone `run["end"]` said the step "may not
have run yet", `run.data` was None and `task.stdout` was '')."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import child_env, run_flow

from flowdeck import Flow, namespace
from flowdeck.client import RunDeleted
from flowdeck.exception import MetaflowNotFound

FLOW = '''
from flowdeck import FlowSpec, step


class KeptFlow(FlowSpec):
    @step
    def start(self):
        self.value = 42
        print("said by start")
        self.next(self.end)

    @step
    def end(self):
        print("said by end")


if __name__ == "__main__":
    KeptFlow()
'''


def _raises_deleted(read: Callable[[], Any], run_id: str) -> None:
    with pytest.raises(MetaflowNotFound) as caught:
        read()
    assert isinstance(caught.value, RunDeleted)
    assert f"Run KeptFlow/{run_id} was deleted while it was being read" in str(caught.value)
    assert "flowdeck gc" in str(caught.value)


def test_a_run_deleted_while_read_says_so(tmp_path: Path) -> None:
    flow = tmp_path / "kept.py"
    flow.write_text(FLOW)
    for _ in range(2):
        assert run_flow(flow, "run").returncode == 0
    namespace(None)
    root = tmp_path / ".flowdeck"
    older = Flow("KeptFlow", root=root).runs()[1]  # opened before the deletion
    end_task = older["end"].task
    start_step = older["start"]
    assert end_task.stdout == "said by end\n" and older.data.value == 42
    older = Flow("KeptFlow", root=root).runs()[1]  # fresh: nothing read and cached yet
    task = older["start"].task
    done = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "gc", str(tmp_path),
                           "--keep", "1"], env=child_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "removed 1 run" in done.stdout, done.stdout + done.stderr
    assert not older.dir.exists()

    _raises_deleted(lambda: list(older), older.id)  # was a raw FileNotFoundError
    _raises_deleted(lambda: older["end"], older.id)  # was "it may not have run yet"
    _raises_deleted(lambda: older.data, older.id)  # was None
    _raises_deleted(lambda: "end" in older, older.id)  # was False
    _raises_deleted(lambda: task.stdout, older.id)  # was ''
    _raises_deleted(lambda: start_step.tasks(), older.id)  # was []
    _raises_deleted(lambda: start_step["1"], older.id)
    # The kept run reads as before.
    kept = Flow("KeptFlow", root=root).latest_run
    assert kept.data.value == 42 and kept["start"].task.stdout == "said by start\n"
    assert "end" in kept and "nope" not in kept
