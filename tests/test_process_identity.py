"""A run's record names its process by pid and by the process's start, so a pid reused
after a crash is never taken for the run: not by the crash rule, not by Stop.

The processes are real: `sleep` children stand in for the unrelated process that got a
crashed run's pid, and a real flow run is killed with SIGKILL.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FLOWS, WAIT_S, child_env, wait_for

from flowdeck.store.index import RunIndex, effective_status
from flowdeck.store.layout import RunLayout
from flowdeck.store.liveness import (
    may_signal,
    own_process_start,
    pid_alive,
    process_start,
    signal_recorded,
)
from flowdeck.store.records import RunRecord, hostname
from flowdeck.store.status import CRASHED, RUNNING

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="a process's start is read from /proc (Linux)")


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated live process: what a crashed run's pid may belong to a day later."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=WAIT_S)


def running_record(pid: int, start: str | None) -> RunRecord:
    return RunRecord(flow="F", run_id="1", file="f.py", status=RUNNING, start=time.time(),
                     pid=pid, process_start=start, host=hostname())


def test_a_process_start_is_stable_and_differs_between_processes(stranger) -> None:
    mine = own_process_start()
    assert mine is not None and re.fullmatch(r"[0-9a-f-]{36}:\d+", mine)
    assert own_process_start() == process_start(os.getpid()) == mine
    theirs = process_start(stranger.pid)
    assert theirs is not None and theirs != mine
    assert theirs.split(":")[0] == mine.split(":")[0]  # the same boot


def test_a_live_pid_is_the_recorded_process_only_with_its_own_start(stranger) -> None:
    theirs = process_start(stranger.pid)
    assert pid_alive(stranger.pid, theirs)
    assert pid_alive(stranger.pid)  # a record without a start: the pid alone, as before
    assert not pid_alive(stranger.pid, own_process_start())  # the pid, another start
    assert effective_status(running_record(stranger.pid, theirs)) == RUNNING
    assert effective_status(running_record(stranger.pid, None)) == RUNNING
    assert effective_status(running_record(stranger.pid, own_process_start())) == CRASHED


def test_an_ended_process_is_not_alive_before_or_after_it_is_reaped(stranger) -> None:
    start = process_start(stranger.pid)
    stranger.kill()
    wait_for(lambda: not pid_alive(stranger.pid, start), "the killed process seen as ended")
    assert not pid_alive(stranger.pid)  # a zombie: ended, not yet reaped by this test
    assert stranger.wait(timeout=WAIT_S) == -signal.SIGKILL
    assert not pid_alive(stranger.pid, start) and not pid_alive(stranger.pid)
    assert not pid_alive(None) and not pid_alive(0) and not pid_alive(-1)


def test_a_signal_reaches_the_recorded_process_and_never_a_stranger(stranger) -> None:
    theirs = process_start(stranger.pid)
    assert not signal_recorded(stranger.pid, own_process_start(), signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):  # no signal went: `sleep` goes on
        stranger.wait(timeout=1)
    assert not signal_recorded(0, None, signal.SIGTERM)  # never the caller's own group
    assert signal_recorded(stranger.pid, theirs, signal.SIGTERM)
    assert stranger.wait(timeout=WAIT_S) == -signal.SIGTERM
    assert not signal_recorded(stranger.pid, theirs, signal.SIGTERM)  # gone


def test_only_this_users_processes_may_be_signalled() -> None:
    assert may_signal(os.getpid()) and not may_signal(0) and not may_signal(None)
    if os.geteuid() != 0:
        assert not may_signal(1)  # init is root's
        return
    nobody = 65534  # root may signal anyone: ask in a child turned into an unprivileged user
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.setgroups([])
            os.setgid(nobody)
            os.setuid(nobody)
            os.write(write_end, f"{may_signal(1)} {may_signal(os.getpid())}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        said = answer.read().decode().split()
    os.waitpid(pid, 0)
    assert said == ["False", "True"]  # not root's init; its own process


def test_the_field_round_trips_and_an_older_record_reads_without_it(tmp_path: Path) -> None:
    record = running_record(os.getpid(), own_process_start())
    record.write(tmp_path / "run.json")
    assert RunRecord.read(tmp_path / "run.json").process_start == own_process_start()
    older = record.as_json()
    del older["process_start"]
    assert RunRecord.from_json(older).process_start is None


def test_a_run_records_its_process_and_a_kill_makes_it_crashed(tmp_path: Path) -> None:
    flow = tmp_path / "sleepy.py"
    shutil.copy(FLOWS / "sleepy.py", flow)
    proc = subprocess.Popen([sys.executable, str(flow), "run"], cwd=tmp_path,
                            env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    layout = RunLayout.for_file(str(flow), "SleepyFlow")
    try:
        wait_for(lambda: (newest := RunIndex(layout).newest_written()) is not None
                 and newest.status == RUNNING, "the run recorded as running",
                 still_going=lambda: proc.poll() is None)
        entry = RunIndex(layout).newest_written()
        assert entry is not None
        record = RunRecord.read(layout.run_json(entry.run_id))
        assert record.pid == proc.pid
        assert record.process_start == process_start(proc.pid)
        assert effective_status(record) == RUNNING
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run, its guard and its tasks
        proc.wait(timeout=WAIT_S)
    assert effective_status(record) == CRASHED
