"""What a task's worker holds open: the flow's own files, never the orchestrator's.

A worker that holds another task's pipe keeps that task's output from ending; one that
holds pidfds, logs or the run's selector only leaks. Before `KeptFds`, the orchestrator
closed a list of its own fds in each worker, and the list missed the pidfds of ended
workers not reaped yet: workers of a fan-out held up to 17 of them.
Real `python flow.py run` processes, real fds, real forks.
"""

from __future__ import annotations

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
    the same fds besides its stdio: those the process had before the run (the flow's
    open file among them) and the run's pipe for ending tasks. No pidfd, no other task's
    pipe; the same through the fork server."""
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


# The two below run in a process of their own: a test runner's threads open and close fds
# of their own at any time, which a listing of this process's fds would catch mid-way.

RECHECK = """
import os, sys
from flowdeck.engines.processes import KeptFds

handle = open(sys.argv[1], "w")
number = handle.fileno()
kept = KeptFds.listed(own=())
assert kept is not None and number in kept.fds
handle.close()
r, w = os.pipe()
assert number in (r, w), (number, r, w)  # the lowest free numbers: the pipe took it
kept.recheck()
print("kept after" if number in kept.fds else "dropped")
"""


def test_a_kept_fd_closed_and_reused_is_dropped_before_the_next_fork(tmp_path: Path) -> None:
    """The flow closes a file it had before the run and the orchestrator's next pipe takes
    its number: the workers forked after must not keep that pipe."""
    script = tmp_path / "recheck.py"
    script.write_text(RECHECK)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "flow-file")],
                            capture_output=True, text=True, env=child_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["dropped"]


CLOSE_OTHERS = """
import os, sys
from flowdeck.engines.processes import KeptFds

folder = sys.argv[1]
kept_file = open(os.path.join(folder, "kept"), "w")
kept = KeptFds.listed(own=())
later = open(os.path.join(folder, "later"), "w")  # opened after the listing
also = open(os.path.join(folder, "also"), "w")
report_r, report_w = os.pipe()
pid = os.fork()
if pid == 0:
    code = 1
    try:
        os.dup2(report_w, 1)
        kept.close_others(also=(also.fileno(),))
        listed = [int(n) for n in os.listdir("/proc/self/fd")]
        open_now = []
        for fd in listed:
            try:
                os.fstat(fd)
            except OSError:  # the listing's own fd, closed by now
                continue
            open_now.append(fd)
        os.write(1, " ".join(map(str, open_now)).encode())
        code = 0
    finally:
        os._exit(code)
os.close(report_w)
with os.fdopen(report_r) as report:
    left = {int(n) for n in report.read().split()}
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0
print("kept" if kept_file.fileno() in left else "closed", "also" if also.fileno() in left else "-",
      "later-open" if later.fileno() in left else "later-closed",
      "report-open" if report_r in left else "report-closed")
"""


def test_a_forked_process_closes_all_but_the_kept_fds(tmp_path: Path) -> None:
    """`close_others` in a real child: the kept file and `also` stay, the rest goes."""
    script = tmp_path / "close_others.py"
    script.write_text(CLOSE_OTHERS)
    result = subprocess.run([sys.executable, str(script), str(tmp_path)],
                            capture_output=True, text=True, env=child_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["kept", "also", "later-closed", "report-closed"]
