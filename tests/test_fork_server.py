"""The fork server (engine/executors/forkserver.py): workers forked by a lean copy of the
orchestrator keep every semantic of a direct fork. Real `python flow.py run` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import child_env, process_alive, run_flow, wait_for

from flowdeck import Flow, namespace

ISOLATION = """
from flowdeck import FlowSpec, step, retry

TOUCHED = []  # a module global every task changes: no task may see another's change


class IsolationFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(40))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        TOUCHED.append(self.input)
        self.seen = list(TOUCHED)
        if self.input == 7:
            import os
            os._exit(3)  # a crash in one task takes no other down
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = [i.seen for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    IsolationFlow()
"""

SLEEPERS = """
import time
from flowdeck import FlowSpec, current, step, retry


class SleepFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(30))
        self.next(self.work, foreach="items")

    @retry(times=2)
    @step
    def work(self):
        if self.input < 2:
            SLEEP
        self.out = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    SleepFlow()
"""


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def events_of(path: Path, flow: str) -> list[dict]:
    namespace(None)
    run = Flow(flow, root=str(path.parent / ".flowdeck")).latest_run
    events_file = path.parent / ".flowdeck" / flow / "runs" / run.id / "events.jsonl"
    return [json.loads(line) for line in events_file.read_text().splitlines()]


def start_served_run(path: Path) -> subprocess.Popen[str]:
    """`python path run` with every worker forked by the server, in a session of its own."""
    return subprocess.Popen([sys.executable, str(path), "run", "--max-workers", "2"],
                            env=child_env(FLOWDECK_FORK_SERVER="always"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize("mode", ["always", "0"])
def test_tasks_are_isolated_and_a_crash_stays_in_its_task(tmp_path: Path, mode: str) -> None:
    path = write(tmp_path, "isolation.py", ISOLATION)
    result = run_flow(path, "run", env=child_env(FLOWDECK_FORK_SERVER=mode))
    assert result.returncode == 1
    assert "exited with code 3" in result.stderr
    events = events_of(path, "IsolationFlow")
    finished = {e["task_id"]: e for e in events if e["type"] == "task_finished"}
    work = [e for e in events if e["type"] == "task_started" and e["step"] == "work"]
    assert len(work) >= 8  # the fan-out went on past the crash until the failure stopped it
    assert all(e["pid"] for e in work)
    failed = [finished[e["task_id"]] for e in work if finished[e["task_id"]]["status"] == "failed"]
    assert len(failed) == 1
    namespace(None)
    run = Flow("IsolationFlow", root=str(tmp_path / ".flowdeck")).latest_run
    for task in run["work"]:
        if task.successful:
            assert task.data.seen == [task.index]  # only its own change


def test_a_run_with_many_tasks_goes_through_the_server(tmp_path: Path) -> None:
    """Workers forked directly, then (past the first 16 here) through the server started
    mid-run, while direct workers still run: every task runs once, none is left."""
    path = write(tmp_path, "many.py", ISOLATION.replace("self.input == 7", "False"))
    result = run_flow(path, "run", env=child_env(FLOWDECK_FORK_SERVER="16"))
    assert result.returncode == 0, result.stderr
    started = {e["task_id"]: e["pid"] for e in events_of(path, "IsolationFlow")
               if e["type"] == "task_started"}
    assert len(started) == 43
    assert not any(process_alive(pid) for pid in started.values())
    # A served worker's pid comes from the server, through its exit pipe: it is the pid
    # the worker itself recorded.
    records = list((tmp_path / ".flowdeck" / "IsolationFlow" / "runs").glob("*/*/*/attempt-0.json"))
    assert len(records) == 43
    for record in records:
        written = json.loads(record.read_text())
        assert started[written["task_id"]] == written["pid"]


def test_a_killed_server_takes_its_workers_and_retry_reruns_them(tmp_path: Path) -> None:
    """Killing the server mid-run kills its workers (they die with it): those attempts
    fail as killed, @retry runs them again forked directly, and the run finishes."""
    path = write(tmp_path, "sleepers.py", SLEEPERS.replace(
        "SLEEP", "time.sleep(120 if current.retry_count == 0 else 0)"))
    proc = start_served_run(path)
    try:
        runs = tmp_path / ".flowdeck" / "SleepFlow" / "runs"

        def sleeping_pids() -> list[int]:
            found = []
            for events in runs.glob("*/events.jsonl"):
                for line in events.read_text().splitlines():
                    event = json.loads(line)
                    if event["type"] == "task_started" and event["step"] == "work":
                        found.append(event["pid"])
            return found

        wait_for(lambda: len(sleeping_pids()) >= 2, "two sleeping tasks",
                 still_going=lambda: proc.poll() is None)
        server = parent_of(sleeping_pids()[0])
        assert server != proc.pid  # forked by the server, not by the orchestrator
        os.kill(server, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert "total 435" in out
    events = events_of(path, "SleepFlow")
    killed = [e for e in events if e["type"] == "task_finished" and e["status"] == "failed"]
    assert len(killed) == 2 and all("SIGKILL" in e["error"]["message"] for e in killed)


def test_sigint_stops_served_workers_and_their_children(tmp_path: Path) -> None:
    path = write(tmp_path, "sleepers.py", SLEEPERS.replace(
        "SLEEP", "import subprocess; subprocess.Popen(['sleep', '300']); time.sleep(120)"))
    proc = start_served_run(path)
    try:
        runs = tmp_path / ".flowdeck" / "SleepFlow" / "runs"

        def sleepers() -> list[int]:
            return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                    and _cmdline(p) == b"sleep\x00300\x00" and _marked(p, runs)]

        wait_for(lambda: len(sleepers()) == 2, "two `sleep 300` started by tasks",
                 still_going=lambda: proc.poll() is None)
        started = sleepers()
        os.kill(proc.pid, signal.SIGINT)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert not any(process_alive(pid) for pid in started)
    namespace(None)
    assert Flow("SleepFlow", root=str(tmp_path / ".flowdeck")).latest_run.status == "cancelled"


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""


def _marked(proc_dir: Path, runs: Path) -> bool:
    """A process of one of this test's runs (it carries the run id)."""
    try:
        environ = (proc_dir / "environ").read_bytes()
    except OSError:
        return False
    ids = {p.name for p in runs.iterdir()} if runs.exists() else set()
    return any(f"FLOWDECK_RUN_ID={run_id}".encode() in environ for run_id in ids)


WIDE_JOIN = """
import os
from flowdeck import FlowSpec, step


class WideFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(WIDTH))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.parent_pid = os.getppid()
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.parent_pid = os.getppid()
        self.work_parents = {i.parent_pid for i in inputs}
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    WideFlow()
"""


def test_a_join_of_a_wide_fan_out_is_forked_by_the_orchestrator(tmp_path: Path) -> None:
    """Every worker through the server but the join of more parents than
    SERVED_PARENTS_MAX: its request would be pickled object by object for the server and
    unpickled again, where one direct fork of the orchestrator costs far less."""
    from flowdeck.engine.executors.local import SERVED_PARENTS_MAX

    width = SERVED_PARENTS_MAX + 1
    path = write(tmp_path, "wide.py", WIDE_JOIN.replace("WIDTH", str(width)))
    result = run_flow(path, "run", env=child_env(FLOWDECK_FORK_SERVER="always"))
    assert result.returncode == 0, result.stderr
    assert f"total {sum(i * i for i in range(width))}" in result.stdout
    orchestrator = next(e["pid"] for e in events_of(path, "WideFlow")
                        if e["type"] == "run_started")
    run = Flow("WideFlow", root=str(tmp_path / ".flowdeck")).latest_run
    join = run["join"].task.data
    assert join.parent_pid == orchestrator
    assert len(join.work_parents) == 1  # one server forked every item
    assert join.work_parents != {orchestrator}
