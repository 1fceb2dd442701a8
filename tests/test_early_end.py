"""A task ends when its worker says so, not when the kernel has torn its process down.

A worker's last act before `os._exit` is a word on the run's pipe (engine/task.py
`_tell_ended`): its record is written, its output flushed, what it waited for ended.
The orchestrator then finishes the task and starts the next (`LocalExecutor.release`
ends what the task left at once, as the exit path does), and reaps the worker after.
These tests hold the guarantees of the exit path to the early one: what a task left is
gone before the next task runs, no exited worker is left unreaped and no fd leaks,
and a pipe written into by a step does not confuse the run. Real `python flow.py run`
processes.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from conftest import run_flow


def _run(tmp_path: Path, name: str, source: str, *args: str, timeout: float = 60) -> str:
    """Write `source` as `name` and run it (`python name run args`); its stdout, once the
    run has succeeded."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    result = run_flow(path, "run", *args, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout

LEFT_BEHIND = """
import os, subprocess
from flowdeck import FlowSpec, step


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


class LeftFlow(FlowSpec):
    @step
    def start(self):
        # Left running: one in the task's process group, one in a session of its own
        # (which the group's SIGKILL misses: the worker adopted it).
        self.in_group = subprocess.Popen(["sleep", "300"]).pid
        self.in_session = subprocess.Popen(["sleep", "300"], start_new_session=True).pid
        self.next(self.end)

    @step
    def end(self):
        for name in ("in_group", "in_session"):
            print(name, "when the next step ran:", state(getattr(self, name)))


if __name__ == "__main__":
    LeftFlow()
"""


def test_what_a_task_left_is_gone_before_the_next_task_runs(tmp_path: Path) -> None:
    stdout = _run(tmp_path, "left.py", LEFT_BEHIND)
    for name in ("in_group", "in_session"):
        # Killed: gone, or a zombie until the orchestrator reaps it ("Z"); never running
        # or sleeping ("R", "S").
        line = next(li for li in stdout.splitlines() if f"{name} when" in li)
        assert line.rsplit(": ", 1)[1].split()[-1] in ("gone", "Z"), stdout


MANY_TASKS = """
import os
from flowdeck import FlowSpec, step


def orchestrator_state():
    parent = os.getppid()
    fds = len(os.listdir(f"/proc/{parent}/fd"))
    zombies = 0
    for tid in os.listdir(f"/proc/{parent}/task"):
        with open(f"/proc/{parent}/task/{tid}/children") as handle:
            for child in handle.read().split():
                try:
                    with open(f"/proc/{child}/stat") as stat:
                        zombies += stat.read().rsplit(")", 1)[1].split()[0] == "Z"
                except OSError:
                    pass
    return fds, zombies


class ManyFlow(FlowSpec):
    @step
    def start(self):
        self.fds_before = orchestrator_state()[0]
        self.items = list(range(150))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.fds_before = inputs[0].fds_before
        self.next(self.end)

    @step
    def end(self):
        fds, zombies = orchestrator_state()
        print("orchestrator fds grew by", fds - self.fds_before)
        print("exited workers not reaped:", zombies)


if __name__ == "__main__":
    ManyFlow()
"""


def test_ended_workers_are_reaped_and_their_fds_closed(tmp_path: Path) -> None:
    """153 tasks end early; by the last one the orchestrator holds no more fds than at the
    first (each worker's pidfd is closed once it is reaped) and at most the latest few
    workers, still on their way out, are unreaped."""
    stdout = _run(tmp_path, "many.py", MANY_TASKS, "--max-workers", "2")
    grew = int(stdout.split("orchestrator fds grew by ")[1].split()[0])
    unreaped = int(stdout.split("exited workers not reaped: ")[1].split()[0])
    assert grew <= 8, stdout  # the running tasks' pipes, not one pidfd per task
    assert unreaped <= 3, stdout


#: A foreach of squares and their total; PRELUDE and IN_WORK are where a test puts its
#: own lines (module level, and in the foreach step), ITEMS its items.
SQUARES = """
import os
PRELUDE
from flowdeck import FlowSpec, step


class SquaresFlow(FlowSpec):
    @step
    def start(self):
        self.items = ITEMS
        self.next(self.work, foreach="items")

    @step
    def work(self):
        IN_WORK
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    SquaresFlow()
"""


def squares_flow(items: str, prelude: str = "", in_work: str = "pass") -> str:
    return SQUARES.replace("ITEMS", items).replace("PRELUDE", prelude).replace(
        "IN_WORK", in_work)


SCRIBBLE = squares_flow("list(range(6))", prelude="from flowdeck.engine import task", in_work=(
    'if self.input == 2:  # a step that writes into the run\'s pipe (it should not)\n'
    '            os.write(task._END_PIPE[0][0], b"not a word from a worker, seventeen")'))


def test_a_step_writing_into_the_runs_pipe_does_not_confuse_the_run(tmp_path: Path) -> None:
    """Words after the scribble in the same read are dropped: those tasks end as they exit."""
    stdout = _run(tmp_path, "scribble.py", SCRIBBLE)
    assert "total 55" in stdout


NEIGHBOURS = """
import subprocess, time
from flowdeck import FlowSpec, step


class NeighbourFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(8))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        subprocess.Popen(["sleep", "300"], start_new_session=True)  # left behind
        time.sleep(0.3 if self.input % 2 else 0.05)  # tasks ending while others run
        self.item = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.items_done = sorted(i.item for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("done", self.items_done)


if __name__ == "__main__":
    NeighbourFlow()
"""


def test_a_task_that_left_processes_ends_without_harming_its_neighbours(tmp_path: Path) -> None:
    """Cleaning up after one task (its leftovers killed, its worker reaped) never touches
    the workers of the tasks still running beside it."""
    stdout = _run(tmp_path, "neighbours.py", NEIGHBOURS, "--max-workers", "4")
    assert "done [0, 1, 2, 3, 4, 5, 6, 7]" in stdout


GRANDCHILDREN = """
import os, subprocess, time
from flowdeck import FlowSpec, step

PIDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "last_pids.txt")


def live(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in "ZXx"
    except OSError:
        return False


class GrandFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(40))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        survivors = 0
        if os.path.exists(PIDS):  # the previous task's grandchildren (one task at a time)
            with open(PIDS) as handle:
                survivors = sum(live(int(p)) for p in handle.read().split())
        tmp = PIDS + ".tmp"
        subprocess.Popen(["bash", "-c", f"sleep 300 & echo $! >> {tmp}; "
                          f"sleep 300 & echo $! >> {tmp}; wait"], start_new_session=True)
        while not os.path.exists(tmp) or len(open(tmp).read().split()) < 2:
            time.sleep(0.001)
        os.replace(tmp, PIDS)
        self.survivors = survivors
        self.next(self.join)

    @step
    def join(self, inputs):
        print("tasks that met the previous one's grandchildren:",
              sum(bool(i.survivors) for i in inputs))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GrandFlow()
"""


def test_grandchildren_handed_over_during_the_clean_up_are_killed_too(tmp_path: Path) -> None:
    """A child killed before its own children were listed hands them to the worker (a
    subreaper): the worker's clean-up goes round until none is left, or the task ends by
    its exit. 40 tasks, one at a time, each meeting what the previous one left."""
    stdout = _run(tmp_path, "grand.py", GRANDCHILDREN, "--max-workers", "1", timeout=240)
    assert "tasks that met the previous one's grandchildren: 0" in stdout, stdout


SPAWNING_THREAD = """
import os, subprocess, threading, time
from flowdeck import FlowSpec, step

MARK = "301.5"


def spawn_for_ever():
    while True:
        subprocess.Popen(["sleep", MARK], start_new_session=True)
        time.sleep(0.001)


def alive_with_mark():
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if handle.read() != b"sleep\\0" + MARK.encode() + b"\\0":
                    continue
            with open(f"/proc/{pid}/stat") as handle:
                count += handle.read().rsplit(")", 1)[1].split()[0] not in "ZXx"
        except OSError:
            pass
    return count


class SpawnFlow(FlowSpec):
    @step
    def start(self):
        threading.Thread(target=spawn_for_ever, daemon=True).start()
        time.sleep(0.2)
        self.next(self.end)

    @step
    def end(self):
        print("left alive when the next step ran:", alive_with_mark())


if __name__ == "__main__":
    SpawnFlow()
"""


def test_a_daemon_thread_starting_processes_to_the_end_leaves_none(tmp_path: Path) -> None:
    """A worker with another thread still running does not say it ended (the thread could
    start processes after the clean-up): it ends by its exit, and the run kills all."""
    stdout = _run(tmp_path, "spawn.py", SPAWNING_THREAD)
    assert "left alive when the next step ran: 0" in stdout, stdout


CLOSES_FDS = """
import os
from flowdeck import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))
KEEP = []


class ClosingFlow(FlowSpec):
    @step
    def start(self):
        os.closerange(3, 1024)  # the run's pipe too: its fd number is free for the files
        for i in range(16):
            handle = open(os.path.join(HERE, f"shard{i}.txt"), "w")
            handle.write(f"shard {i}\\n")
            KEEP.append(handle)  # left open, flushed at the task's end
        self.next(self.end)

    @step
    def end(self):
        print("ended")


if __name__ == "__main__":
    ClosingFlow()
"""


def test_the_word_never_lands_in_a_file_of_the_step(tmp_path: Path) -> None:
    _run(tmp_path, "closing.py", CLOSES_FDS)
    for i in range(16):
        assert (tmp_path / f"shard{i}.txt").read_bytes() == f"shard {i}\n".encode()


ELSEWHERE = squares_flow("[1, 2, 3]", prelude=(
    "import flowdeck.engines.processes as processes\n"
    "processes.LINUX = False  # as on macOS: no /proc, no subreaper, no run guard"))


def test_where_workers_cannot_tell_tasks_end_by_their_exit(tmp_path: Path) -> None:
    """Off Linux a worker cannot list what it left (no /proc): the run opens no pipe for
    words and every task ends by its exit, as before."""
    stdout = _run(tmp_path, "elsewhere.py", ELSEWHERE)
    assert "total 14" in stdout


#: Eight tasks forked in one burst (eight slots free at once); each lists what its fds are.
SIBLING_FDS = squares_flow("list(range(8))", in_work=(
    'kinds = []\n'
    '        for fd in os.listdir("/proc/self/fd"):\n'
    '            try:\n'
    '                kinds.append(os.readlink(f"/proc/self/fd/{fd}").split(":")[0])\n'
    '            except OSError:  # the listing\'s own fd, closed by now\n'
    '                pass\n'
    '        self.pipes = kinds.count("pipe")\n'
    '        self.pidfds = sum("pidfd" in k for k in kinds)\n'
    '        print("fds of item", self.input, "pipes", self.pipes, "pidfds", self.pidfds)'))


def test_a_worker_holds_none_of_the_fds_of_workers_forked_before_it(tmp_path: Path) -> None:
    """The orchestrator forks the workers of a burst back to back and records them after
    (`Orchestrator._start_ready_tasks`): the last worker forked holds no more pipes than the
    first (none of its siblings' output pipes) and no pidfd of a sibling."""
    stdout = _run(tmp_path, "siblings.py", SIBLING_FDS, "--max-workers", "8")
    held = [li.split("fds of item ")[1].split() for li in stdout.splitlines()
            if "fds of item" in li]
    assert len(held) == 8, stdout
    pipes = {int(words[2]) for words in held}
    assert len(pipes) == 1, stdout  # every worker the same: its own stdout, stderr, ...
    assert {words[4] for words in held} == {"0"}, stdout
    # Announced after the burst, each start keeps the time of its fork: the events' times
    # never go back, and each task starts before it finishes.
    events = [json.loads(line) for line in
              next(tmp_path.glob(".flowdeck/*/runs/*/events.jsonl")).read_text().splitlines()]
    times = [event["t"] for event in events]
    assert times == sorted(times)
    started = {e["task_id"]: e["t"] for e in events if e["type"] == "task_started"}
    finished = {e["task_id"]: e["t"] for e in events if e["type"] == "task_finished"}
    assert started.keys() == finished.keys() and all(started[k] <= finished[k] for k in started)
