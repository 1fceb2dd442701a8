"""What a task's worker holds open: the flow's own files, never the orchestrator's.

A worker that holds another task's pipe keeps that task's output from ending; one that
holds pidfds, logs or the run's selector only leaks. Each worker closes the
orchestrator's fds, and the executor's own (`LocalExecutor._close_own_fds`): before,
the pidfds of ended workers not reaped yet stayed open in workers of a fan-out (up to
17). Every fd the flow's code opened stays open, whenever it was opened: at import, or
in the orchestrator while it unpickled a foreach list. Real `python flow.py run`
processes, real fds, real forks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env, run_flow

from flowdeck import Flow

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="lists fds through /proc/self/fd")

FDS_FLOW = """
import os
from flowdeck import FlowSpec, step

HELD = open(__file__)  # the flow's own file, opened at import: every task keeps it


def open_fds():
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own fd, closed by now
            pass
    return fds


class FdsFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(40))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.held = HELD.fileno()
        self.fds = open_fds()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.fds_of_items = [i.fds for i in inputs]
        self.held_of_items = [i.held for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FdsFlow()
"""


@pytest.mark.parametrize("fork_server", ["0", "always"])
def test_workers_hold_the_flows_files_and_nothing_of_the_orchestrator(
        tmp_path: Path, fork_server: str) -> None:
    """Every worker of a 40-item fan-out (16 in flight, ending while others start) holds
    the same fds besides its stdio: the flow's open file and the run's pipe for ending
    tasks. No pidfd, no other task's pipe; the same through the fork server."""
    path = tmp_path / "fds.py"
    path.write_text(FDS_FLOW)
    result = run_flow(path, "run", env=child_env(FLOWDECK_FORK_SERVER=fork_server))
    assert result.returncode == 0, result.stderr
    join = Flow("FdsFlow", root=str(tmp_path / ".flowdeck")).latest_run["join"].task.data
    beyond_stdio = [{fd: target for fd, target in fds.items() if fd > 2}
                    for fds in join.fds_of_items]
    held = join.held_of_items[0]
    assert all(fds[held] == str(path) for fds in beyond_stdio)
    for fds in beyond_stdio:
        assert "anon_inode:[pidfd]" not in fds.values(), fds
        assert "anon_inode:[eventpoll]" not in fds.values(), fds
    assert all(fds == beyond_stdio[0] for fds in beyond_stdio), beyond_stdio
    # The run's pipe on which a worker says it ended (none through the server, which
    # says it for them); `run_flow` hands the run no fd beyond its stdio.
    pipes = [target for target in beyond_stdio[0].values() if target.startswith("pipe:")]
    assert len(pipes) == (0 if fork_server == "always" else 1), beyond_stdio[0]


REOPENING_ITEMS = """
import os
from flowdeck import FlowSpec, step


class Shard:
    def __init__(self, path):
        self.path = path
        self.handle = open(path)

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.path = state["path"]
        self.handle = open(self.path)  # opened wherever it is unpickled: the orchestrator too

    def first_line(self):
        self.handle.seek(0)
        return self.handle.readline().strip()


class ReopenFlow(FlowSpec):
    @step
    def start(self):
        paths = []
        for i in range(3):
            path = os.path.abspath(f"shard{i}.txt")
            with open(path, "w") as handle:
                handle.write(f"shard {i}\\n")
            paths.append(path)
        self.shards = [Shard(p) for p in paths]
        self.next(self.work, foreach="shards")

    @step
    def work(self):
        held = [open(__file__) for _ in range(40)]  # new fds: a closed number is reused
        self.line = self.input.first_line()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.lines = [i.line for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print(self.lines)


if __name__ == "__main__":
    ReopenFlow()
"""


@pytest.mark.parametrize("fork_server", ["0", "1000", "always"])
def test_files_opened_while_the_foreach_list_is_unpickled_stay_open(
        tmp_path: Path, fork_server: str) -> None:
    """The process that forks the items unpickles the foreach list once, running the
    items' `__setstate__`, which opens a file: every item reads its own file through it
    (a worker that closed that fd read the step's own file through the reused number,
    and the run succeeded with wrong values)."""
    path = tmp_path / "reopen.py"
    path.write_text(REOPENING_ITEMS)
    result = run_flow(path, "run", env=child_env(FLOWDECK_FORK_SERVER=fork_server))
    assert result.returncode == 0, result.stderr
    assert "['shard 0', 'shard 1', 'shard 2']" in result.stdout


STDIO_CLOSED = """
import logging
import sys
from flowdeck import FlowSpec, step


class StdioClosedFlow(FlowSpec):
    @step
    def start(self):
        with open("results.csv", "w") as out:
            out.write("a,b\\n")
            out.flush()
            logging.warning("a warning meant for stderr")
            print("a line meant for stdout")
            print("a line meant for stderr", file=sys.stderr)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StdioClosedFlow()
"""


@pytest.mark.parametrize("fork_server", ["0", "always"])
def test_a_run_started_without_stdio_keeps_each_tasks_output_in_its_logs(
        tmp_path: Path, fork_server: str) -> None:
    """A launcher that closed fds 0, 1 and 2: the run's first pipes would take those
    numbers, and a worker making its output pipes its fds 1 and 2 overwrote one (through
    the fork server a task's stderr was lost). Each task's output is in its logs, and
    nothing of it in the files the step writes."""
    path = tmp_path / "closed.py"
    path.write_text(STDIO_CLOSED)
    proc = subprocess.run([sys.executable, str(path), "run"], cwd=tmp_path, timeout=120,
                          env=child_env(FLOWDECK_FORK_SERVER=fork_server),
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL,
                          preexec_fn=lambda: [os.close(fd) for fd in (0, 1, 2)])  # noqa: PLW1509
    assert proc.returncode == 0
    assert (tmp_path / "results.csv").read_text() == "a,b\n"
    task = Flow("StdioClosedFlow", root=str(tmp_path / ".flowdeck")).latest_run["start"].task
    assert "a warning meant for stderr" in task.stderr
    assert "a line meant for stderr" in task.stderr
    assert "a line meant for stdout" in task.stdout
