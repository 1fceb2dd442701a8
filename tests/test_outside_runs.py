"""Runs the window did not start (a terminal's, or one a killed window left going) are
shown live, can be stopped from the window, and end with the status they really had."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FLOWS, WAIT_MS, WAIT_S, child_env, flow_key, opened_window, wait_for
from test_history_actions import GATED_FLOW

from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout
from flowdeck.store.liveness import own_process_start
from flowdeck.store.records import RunRecord, hostname
from flowdeck.store.status import CANCELLED, CRASHED, RUNNING, SUCCEEDED
from flowdeck_desktop.control.outside_run import OutsideRun
from flowdeck_desktop.models.catalog_model import STATUS_ROLE


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    target.mkdir()
    shutil.copy(FLOWS / "sleepy.py", target)
    (target / "gated.py").write_text(GATED_FLOW)  # its `hold` step waits for $GATE
    return target


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Runs started as in a terminal: `python file.py run ...`; killed after the test."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=WAIT_S)


def start_in_terminal(started: list[subprocess.Popen[bytes]], path: Path, flow: str,
                      *args: str, **env: str) -> str:
    """Start the flow in a process of its own and wait until its run is recorded as
    running; the run's id."""
    log = open(path.parent / f"{flow}.log", "ab")  # noqa: SIM115 (the child keeps it)
    proc = subprocess.Popen([sys.executable, str(path), "run", *args], cwd=path.parent,
                            env=child_env(**env), stdout=log, stderr=log)
    log.close()
    started.append(proc)
    layout = RunLayout.for_file(str(path), flow)

    def recorded() -> bool:
        newest = RunIndex(layout).newest_written()
        return newest is not None and newest.status == RUNNING

    wait_for(recorded, f"{flow}'s run recorded", still_going=lambda: proc.poll() is None)
    newest = RunIndex(layout).newest_written()
    assert newest is not None
    return newest.run_id


def mark_of(controller, key: str) -> str | None:
    return controller.model.itemFromIndex(controller.model.index_of(key)).data(STATUS_ROLE)


def test_a_terminal_run_is_shown_live_and_stopped_from_the_window(
        qtbot, settings, folder: Path, terminal) -> None:
    """The window opens while `python sleepy.py run` goes on in a terminal: it shows that
    run live (not a frozen "running"), Stop stops it as the window's own Stop would, and
    the window shows it cancelled, as its record says."""
    run_id = start_in_terminal(terminal, folder / "sleepy.py", "SleepyFlow")
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        key = flow_key(controller, "SleepyFlow")
        window.select_flow(key)
        state = window.shown_state
        assert state.run_id == run_id and state.status == RUNNING
        assert "started outside this window" in window.flow_title.text()
        assert "select a step to see its output as it is written" in window.log_scope.text()
        assert mark_of(controller, key) == RUNNING
        # live: both branches start after the window began to follow the run
        qtbot.waitUntil(lambda: window.scene.step_state("nap_b").status == "running",
                        timeout=WAIT_MS)
        assert window.act_stop.isEnabled() and not controller.is_running(key)
        window._on_step_clicked("nap_b")  # its log, from the store, as it is written
        qtbot.waitUntil(lambda: "napping" in window.logs.text(), timeout=WAIT_MS)
        assert window.logs.following_files
        with qtbot.waitSignal(controller.outside_run_ended, timeout=WAIT_MS) as ended:
            window.stop_selected()
            assert not window.act_stop.isEnabled()  # sent once
        assert ended.args == [key, CANCELLED]
        assert terminal[0].wait(timeout=WAIT_S) != 0
        assert window.shown_state.status == CANCELLED
        assert window.scene.step_state("nap_a").status == CANCELLED
        record = RunIndex(RunLayout.for_file(str(folder / "sleepy.py"), "SleepyFlow")) \
            .newest_written()
        assert record is not None and record.status == CANCELLED
        assert "started outside this window" not in window.flow_title.text()
        assert not window.act_stop.isEnabled() and window.act_resume.isEnabled()


def test_a_run_started_in_a_terminal_while_the_flow_is_shown_is_followed(
        qtbot, settings, folder: Path, terminal, tmp_path: Path) -> None:
    """The flow is shown (never run); a run of it starts in a terminal: the window
    switches to it, follows it to its end, and marks the flow's row by its outcome."""
    gate = tmp_path / "gate"
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        key = flow_key(controller, "GatedFlow")
        window.select_flow(key)
        assert window.shown_state.run_id == ""
        run_id = start_in_terminal(terminal, folder / "gated.py", "GatedFlow", GATE=str(gate))
        qtbot.waitUntil(lambda: window.shown_state.run_id == run_id, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: window.scene.step_state("hold").status == "running",
                        timeout=WAIT_MS)
        with qtbot.waitSignal(controller.outside_run_ended, timeout=WAIT_MS) as ended:
            gate.touch()
        assert ended.args == [key, SUCCEEDED]
        assert terminal[0].wait(timeout=WAIT_S) == 0
        assert window.scene.step_state("end").status == SUCCEEDED
        assert mark_of(controller, key) == SUCCEEDED


def test_a_followed_run_killed_from_outside_ends_crashed(
        qtbot, settings, folder: Path, terminal) -> None:
    """Its orchestrator is killed (no `run_finished` is ever written): the window learns
    it from the record's crash rule and shows the run crashed, not running forever."""
    start_in_terminal(terminal, folder / "sleepy.py", "SleepyFlow")
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        key = flow_key(controller, "SleepyFlow")
        window.select_flow(key)
        assert window.shown_state.status == RUNNING
        with qtbot.waitSignal(controller.outside_run_ended, timeout=WAIT_MS) as ended:
            os.kill(terminal[0].pid, signal.SIGKILL)
            terminal[0].wait(timeout=WAIT_S)  # reaped, as its shell would (not a zombie)
        assert ended.args == [key, CRASHED]
        assert window.shown_state.status == CRASHED
        assert mark_of(controller, key) == "last run failed"
        assert not window.act_stop.isEnabled()


def test_a_terminal_run_of_a_flow_not_shown_is_followed_when_it_is_selected(
        qtbot, settings, folder: Path, terminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The window ran the flow itself earlier; then, while another flow is shown, the flow
    is run in a terminal: selecting it shows the terminal's run live (the window's own
    finished run, or a stale read of the newest run, stayed on screen), Stop reaches it,
    and its row says running even when History sees its runs change meanwhile."""
    open_gate, gate = tmp_path / "open", tmp_path / "gate"
    open_gate.touch()
    monkeypatch.setenv("GATE", str(open_gate))  # the window's own run passes at once
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        gated, sleepy = flow_key(controller, "GatedFlow"), flow_key(controller, "SleepyFlow")
        window.select_flow(gated)
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as own:
            window.run_selected()
        assert own.args[1] == SUCCEEDED
        window.select_flow(sleepy)
        run_id = start_in_terminal(terminal, folder / "gated.py", "GatedFlow", GATE=str(gate))
        window.select_flow(gated)
        assert window.shown_state.run_id == run_id and window.shown_state.status == RUNNING
        assert window.act_stop.isEnabled() and mark_of(controller, gated) == RUNNING
        controller.forget_last_runs("GatedFlow")  # History saw a change: the mark stays
        assert mark_of(controller, gated) == RUNNING
        with qtbot.waitSignal(controller.outside_run_ended, timeout=WAIT_MS) as ended:
            gate.touch()
        assert ended.args == [gated, SUCCEEDED]


def test_stop_never_stops_a_followed_run_that_is_not_on_screen(
        qtbot, settings, folder: Path, terminal, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal run is followed; the window then runs the flow itself, and that run
    ends: Stop is off (it stopped the terminal's run, which was not on screen)."""
    open_gate, gate = tmp_path / "open", tmp_path / "gate"
    open_gate.touch()
    monkeypatch.setenv("GATE", str(open_gate))  # the window's own run passes at once
    start_in_terminal(terminal, folder / "gated.py", "GatedFlow", GATE=str(gate))
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        key = flow_key(controller, "GatedFlow")
        window.select_flow(key)
        assert controller.outside_run(key) is not None and window.act_stop.isEnabled()
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as own:
            window.run_selected()
        assert own.args[1] == SUCCEEDED
        assert controller.outside_run(key) is not None  # still followed, not on screen
        assert not window.act_stop.isEnabled()
        window.stop_selected()
        gate.touch()
        assert terminal[0].wait(timeout=WAIT_S) == 0  # it ended on its own, not stopped


def test_the_windows_own_run_deleted_outside_gives_way_too(
        qtbot, settings, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window's own finished run is deleted outside it: the flow shows what is left
    (it kept showing the deleted run under a message saying it did not)."""
    from flowdeck.store.gc import delete_run
    (tmp_path / "gate").touch()
    monkeypatch.setenv("GATE", str(tmp_path / "gate"))
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        key = flow_key(controller, "GatedFlow")
        window.select_flow(key)
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
            window.run_selected()
        run_id = window.shown_state.run_id
        delete_run(RunLayout.for_file(str(folder / "gated.py"), "GatedFlow"), run_id)
        qtbot.waitUntil(lambda: window.shown_state.run_id == "", timeout=WAIT_MS)
        assert "not run yet" in window.flow_title.text()


def test_a_terminal_run_that_ended_before_it_was_seen_is_shown_by_its_outcome(
        qtbot, settings, folder: Path, tmp_path: Path) -> None:
    """A run from a terminal that finishes between two looks of History: the window
    shows it (succeeded), as History's first row, not the run before it."""
    gate = tmp_path / "gate"
    gate.touch()
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        key = flow_key(controller, "GatedFlow")
        window.select_flow(key)
        assert subprocess.run([sys.executable, str(folder / "gated.py"), "run"],
                              cwd=folder, env=child_env(GATE=str(gate)),
                              capture_output=True, timeout=WAIT_S).returncode == 0
        newest = RunIndex(RunLayout.for_file(str(folder / "gated.py"), "GatedFlow")).runs()[0]
        qtbot.waitUntil(lambda: window.shown_state.run_id == newest.run_id, timeout=WAIT_MS)
        assert window.shown_state.status == SUCCEEDED


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="a process's start is read from /proc (Linux)")
def test_stop_never_signals_a_process_that_got_a_crashed_runs_pid(
        qtbot, tmp_path: Path) -> None:
    """The run crashed and its pid went to an unrelated process (here a `sleep`) before
    the window noticed: Stop leaves that process alone and the run ends crashed."""
    stranger = subprocess.Popen(["sleep", "600"])
    try:
        layout = RunLayout(tmp_path / ".flowdeck", "GatedFlow")
        record = RunRecord(flow="GatedFlow", run_id="1", file=str(tmp_path / "gated.py"),
                           status=RUNNING, start=1.0, pid=stranger.pid,
                           process_start=own_process_start(), host=hostname())
        layout.run_json("1").parent.mkdir(parents=True)
        record.write(layout.run_json("1"))
        followed = OutsideRun(layout, record)
        assert followed.stoppable
        with qtbot.waitSignal(followed.ended, timeout=WAIT_MS) as ended:
            followed.stop()
        assert ended.args == [CRASHED] and not followed.stopping
        followed._kill()  # the KILL after the grace would be refused the same way
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(timeout=WAIT_S)


def test_a_run_killed_long_ago_ends_when_it_was_last_known_alive(
        qtbot, settings, folder: Path, terminal, tmp_path: Path) -> None:
    """A run killed (kill -9) a day before the window looks at it: its last task ends
    when the run was last known alive, not when the window looked (it used to show a
    task that had run for a day)."""
    gate = tmp_path / "gate"  # never opened: `hold` runs until the run is killed
    run_id = start_in_terminal(terminal, folder / "gated.py", "GatedFlow", GATE=str(gate))
    wait_for(Path(str(gate) + ".waiting").exists, "the hold step waiting")
    terminal[0].kill()
    terminal[0].wait(timeout=WAIT_S)
    run_dir = RunLayout.for_file(str(folder / "gated.py"), "GatedFlow").run_dir(run_id)
    day = 86400.0
    events = run_dir / "events.jsonl"  # as if all of it had been written a day ago
    events.write_text("".join(json.dumps({**e, "t": e["t"] - day}) + "\n"
                              for e in map(json.loads, events.read_text().splitlines())))
    for path in run_dir.rglob("*"):
        if path.is_file():
            stat = path.stat()
            os.utime(path, (stat.st_atime - day, stat.st_mtime - day))
    last_write = max(p.stat().st_mtime for p in [events, *run_dir.glob("hold/*/attempt-0.*")])
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        window.select_flow(flow_key(controller, "GatedFlow"))
        qtbot.waitUntil(lambda: window.shown_state is not None
                        and window.shown_state.run_id == run_id, timeout=WAIT_MS)
        state = window.shown_state
        assert state.status == CRASHED
        [hold] = [t for t in state.fold.tasks.values() if t.step == "hold"]
        assert hold.status != RUNNING and hold.start is not None
        assert hold.end == state.fold.finished == max(last_write, state.fold.last_seen)
        assert hold.start <= hold.end < hold.start + 60  # not a day (the window's now)
