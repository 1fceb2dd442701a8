"""A task worker's sys.stdout/sys.stderr, signals and `current`, whichever way it was set up.

Workers take streams the process that forks them built once (engine/task.py `_STDIO`,
fewer pages copied per task), over its own fds 1 and 2, which may be pipes, a terminal or
files (output redirected to a log); closed, each worker builds its own. Whichever, and
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


HELLO = """
from flowdeck import FlowSpec, step


class QuietFlow(FlowSpec):
    @step
    def start(self):
        print("said in start")
        self.next(self.end)

    @step
    def end(self):
        print("said in end")


if __name__ == "__main__":
    QuietFlow()
"""


@pytest.mark.parametrize("closed", [(1,), (2,), (1, 2)], ids=["stdout", "stderr", "both"])
@pytest.mark.parametrize("how", ["script", "flowdeck run"])
def test_a_run_started_without_stdout_or_stderr_finishes_and_keeps_its_logs(
        tmp_path: Path, closed: tuple[int, ...], how: str) -> None:
    """`python flow.py >&-`: Python sets sys.stdout to None. The run used to fail on its
    first line of progress and leave run.json "running"; it now runs as print() would
    (saying nothing there), and the tasks' output is still in their logs."""
    import os
    path = tmp_path / "quiet.py"
    path.write_text(textwrap.dedent(HELLO))
    command = ([sys.executable, str(path)] if how == "script" else
               [sys.executable, "-c", "from flowdeck.cli.main import main; raise SystemExit("
                "main())", "run", str(path)])

    def close_fds() -> None:
        for fd in closed:
            os.close(fd)

    result = subprocess.run(command, cwd=tmp_path, env=child_env(), timeout=120,
                            stdin=subprocess.DEVNULL, capture_output=True,
                            preexec_fn=close_fds)  # noqa: PLW1509 (only closes fds)
    assert result.returncode == 0, result
    namespace(None)
    run = Flow("QuietFlow", root=str(tmp_path / ".flowdeck")).latest_run
    assert run.successful and run.finished
    assert "said in start" in run["start"].task.stdout
    assert "said in end" in run["end"].task.stdout
