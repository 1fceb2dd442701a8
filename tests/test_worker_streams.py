"""A task worker's sys.stdout/sys.stderr, signals and `current`, whichever way it was set up.

Workers forked from a process whose own fds 1 and 2 are pipes (or a terminal) take
streams that process built once (engine/task.py `_STDIO`, fewer pages copied per task);
elsewhere (output redirected to a file) each worker builds its own. Either way, and
whether the orchestrator or the fork server forked it, a step must see the same streams:
UTF-8, line-buffered, `backslashreplace`, not seekable (its fds are pipes). Real
`python flow.py run` processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import child_env

from flowdeck import Flow, namespace

STREAMS = """
import json
import signal
import sys

from flowdeck import FlowSpec, Parameter, current, step


class StreamFlow(FlowSpec):
    beta = Parameter("beta", default=2)
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        out = sys.stdout
        print(json.dumps({
            "encoding": out.encoding, "errors": out.errors,
            "line_buffering": out.line_buffering, "seekable": out.seekable(),
            "stderr": [sys.stderr.encoding, sys.stderr.errors, sys.stderr.line_buffering,
                       sys.stderr.seekable()],
            "fds": [out.fileno(), sys.stderr.fileno()],
            "sigint": signal.getsignal(signal.SIGINT).__name__,
            "sigterm": int(signal.getsignal(signal.SIGTERM)),
            "parameters": current.parameter_names, "username": bool(current.username),
            "input": self.input,
        }))
        current.parameter_names.append("changed")  # a task's own copy: no other task sees it
        print("lone \\udc80 surrogate", file=sys.stderr)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StreamFlow()
"""


@pytest.mark.parametrize("mode", ["0", "always"])
@pytest.mark.parametrize("output", ["pipe", "file"])
def test_a_step_sees_the_same_streams_however_its_worker_was_set_up(
        tmp_path: Path, mode: str, output: str) -> None:
    path = tmp_path / "streams.py"
    path.write_text(textwrap.dedent(STREAMS))
    log = tmp_path / "orchestrator.log"
    with open(log, "w") as handle:
        result = subprocess.run(
            [sys.executable, str(path), "run"], cwd=tmp_path,
            env=child_env(FLOWDECK_FORK_SERVER=mode), timeout=120,
            stdout=subprocess.PIPE if output == "pipe" else handle, stderr=subprocess.STDOUT)
    assert result.returncode == 0, (result.stdout or b"").decode() + log.read_text()
    namespace(None)
    run = Flow("StreamFlow", root=str(tmp_path / ".flowdeck")).latest_run
    tasks = list(run["work"])
    assert len(tasks) == 3
    seen = sorted((json.loads(t.stdout.strip().splitlines()[-1]) for t in tasks),
                  key=lambda facts: facts["input"])
    for index, facts in enumerate(seen):
        assert facts == {
            "encoding": "utf-8", "errors": "backslashreplace", "line_buffering": True,
            "seekable": False, "stderr": ["utf-8", "backslashreplace", True, False],
            "fds": [1, 2], "sigint": "_on_sigint", "sigterm": 0,
            "parameters": ["alpha", "beta"], "username": True, "input": index,
        }
    for task in tasks:
        assert "lone \\udc80 surrogate" in task.stderr
