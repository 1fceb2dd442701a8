"""A full disk fails the run cleanly: "disk full: <path>" in the events, the run record, the
terminal, `flowdeck run` and the window; no traceback, and earlier runs stay readable.

The store lives on a small tmpfs mounted for the test (this needs root and permission to
mount; the tests are skipped, saying so, where that is refused).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import WAIT_MS, child_env

from flowdeck import Flow
from flowdeck.store.events import read_events

DISK_MB = 8

FLOW = '''
from flowdeck import FlowSpec, Parameter, step


class FullFlow(FlowSpec):
    mode = Parameter("mode", default="small")

    @step
    def start(self):
        self.value = 42
        if self.mode == "print":  # 20 MB of output for an 8 MB disk
            line = "x" * 999
            for _ in range(20000):
                print(line)
        if self.mode == "artifact":  # a 20 MB artifact for an 8 MB disk
            self.big = b"y" * (20 * 1024 * 1024)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FullFlow()
'''


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MB megabytes, unmounted afterwards."""
    yield from _tmpfs(tmp_path, f"size={DISK_MB}m")


@pytest.fixture
def few_inodes(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 64 MB with room for 600 files and folders, unmounted afterwards."""
    yield from _tmpfs(tmp_path, "size=64m,nr_inodes=600")


def _tmpfs(tmp_path: Path, options: str) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                               str(mount)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs to fill ({exc}); these tests need root")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({done.stderr.strip()}); these tests "
                    "need root and permission to mount")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "flows" / "fullflow.py"
    path.parent.mkdir()
    path.write_text(FLOW)
    return path


def run(path: Path, store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(path), *args], cwd=path.parent,
                          env=child_env(FLOWDECK_HOME=str(store)), capture_output=True,
                          text=True, errors="replace", timeout=120)


def earlier_run(path: Path, store: Path) -> str:
    done = run(path, store)
    assert done.returncode == 0, done.stderr
    return Flow("FullFlow", root=store).latest_run.id


def assert_earlier_run_intact(store: Path, run_id: str) -> None:
    earlier = Flow("FullFlow", root=store)[run_id]
    assert earlier.successful and earlier.data.value == 42


def assert_failed_for_disk_full(store: Path, earlier_id: str) -> str:
    """The latest run failed with "disk full: <a path on the small disk>" in its record and
    its events (the run's and the task's); returns that message."""
    latest = Flow("FullFlow", root=store).latest_run
    assert latest.id != earlier_id and latest.status == "failed"
    message = latest.record.error["message"]
    assert message.startswith(f"disk full: {store}")
    events = read_events(latest.dir / "events.jsonl")
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "failed"
    assert events[-1]["error"]["message"] == message
    task = next(e for e in events if e["type"] == "task_finished")
    assert task["status"] == "failed" and task["error"]["message"].startswith("disk full: ")
    assert_earlier_run_intact(store, earlier_id)
    return message


@pytest.mark.parametrize("mode", ["print", "artifact"])
def test_a_full_disk_fails_the_run_and_keeps_earlier_runs(small_disk: Path, flow: Path,
                                                          mode: str) -> None:
    earlier = earlier_run(flow, small_disk)
    done = run(flow, small_disk, "--mode", mode)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    message = assert_failed_for_disk_full(small_disk, earlier)
    assert message in done.stderr


def test_flowdeck_run_names_the_full_disk(small_disk: Path, flow: Path) -> None:
    earlier = earlier_run(flow, small_disk)
    done = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", str(flow),
                           "--mode", "print"], cwd=flow.parent,
                          env=child_env(FLOWDECK_HOME=str(small_disk)), capture_output=True,
                          text=True, errors="replace", timeout=120)
    assert done.returncode == 1
    message = assert_failed_for_disk_full(small_disk, earlier)
    assert message in done.stdout + done.stderr


def test_the_window_names_the_full_disk(qtbot, small_disk: Path, flow: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from test_run_process import request_for

    from flowdeck_desktop.control.run_process import RunProcess
    from flowdeck_desktop.models.run_state import RunState

    earlier = earlier_run(flow, small_disk)
    monkeypatch.setenv("FLOWDECK_HOME", str(small_disk))
    process = RunProcess(request_for(flow, "FullFlow", "--mode", "print"))
    state = RunState()
    process.event_arrived.connect(state.apply)
    ended: list[str] = []
    process.ended.connect(lambda code, status: ended.append(status))
    with qtbot.waitSignal(process.ended, timeout=WAIT_MS):
        process.start()
    assert ended == ["failed"]
    message = assert_failed_for_disk_full(small_disk, earlier)
    assert state.error is not None and state.error["message"] == message
    failed = state.failed_task()  # what the window's error pane shows
    assert failed is not None and failed.error is not None
    assert failed.error["message"].startswith(f"disk full: {small_disk}")


WIDE = '''
import os
from flowdeck import FlowSpec, step


class WideFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(40))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        if os.environ.get("FAIL_JOIN"):
            raise RuntimeError("join fails the first time")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WideFlow()
'''


def test_a_resume_out_of_inodes_while_reusing_tasks_says_disk_full(few_inodes: Path,
                                                                    tmp_path: Path) -> None:
    """Out of inodes while a resume records the tasks it reuses (a folder and a record
    each), the run said "cannot write ...: No space left on device. Check that folder
    (permissions, free inodes)": a full disk is said as one, "disk full: <path>"."""
    path = tmp_path / "flows" / "wide.py"
    path.parent.mkdir()
    path.write_text(WIDE)
    first = subprocess.run([sys.executable, str(path), "run"], cwd=path.parent,
                           env=child_env(FLOWDECK_HOME=str(few_inodes), FAIL_JOIN="1"),
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 1, first.stderr
    junk = few_inodes / "junk"
    junk.mkdir()
    made = 0
    try:
        while True:  # every free inode taken
            (junk / str(made)).touch()
            made += 1
    except OSError:
        pass
    for name in range(made - 1, made - 21, -1):  # 20 free: the run starts, its reuse does not
        (junk / str(name)).unlink()
    resumed = subprocess.run([sys.executable, str(path), "resume"], cwd=path.parent,
                             env=child_env(FLOWDECK_HOME=str(few_inodes)),
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 1, resumed.stderr
    assert "Traceback" not in resumed.stderr
    latest = Flow("WideFlow", root=few_inodes).latest_run
    assert latest.status == "failed" and latest.origin_run_id is not None
    assert latest.record.error["message"].startswith(f"disk full: {few_inodes}")
    assert f"disk full: {few_inodes}" in resumed.stderr
