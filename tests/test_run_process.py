"""RunProcess: real QProcess runs of real flows, followed through their event stream."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

import pytest
from conftest import WAIT_MS, process_alive

from flowdeck.engines.base import LaunchSpec
from flowdeck.engines.interpreter import Interpreter
from flowdeck.engines.launching import LaunchError, build_launch
from flowdeck_desktop.control.run_process import RunProcess, core_path
from flowdeck_desktop.models.run_state import RunState

pytest.importorskip("pytestqt")


def request_for(path: Path, flow: str, *args: str, interpreter: str = sys.executable
                ) -> LaunchSpec:
    return build_launch(str(path), flow, "flowdeck", ["run", *args],
                        interpreter=Interpreter(interpreter, "configured"), core_dir=core_path())


def collect(run: RunProcess) -> tuple[list[dict], list[tuple[str, str]], list[tuple[int, str]]]:
    events: list[dict] = []
    output: list[tuple[str, str]] = []
    ended: list[tuple[int, str]] = []
    run.event_arrived.connect(events.append)
    run.output.connect(lambda s, t: output.append((s, t)))
    run.ended.connect(lambda c, s: ended.append((c, s)))
    return events, output, ended



def test_run_streams_events_and_output(qtbot, flow_file) -> None:
    path = flow_file("train.py")
    run = RunProcess(request_for(path, "TrainFlow", "--rates", "0.2,0.05"))
    events, output, ended = collect(run)
    state = RunState()
    run.event_arrived.connect(state.apply)
    with qtbot.waitSignal(run.ended, timeout=WAIT_MS):
        run.start()
    assert ended == [(0, "succeeded")]
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert events[0]["run_id"] == run.spec.run_id
    text = "".join(t for s, t in output if s == "stdout")
    assert "best rate 0.05" in text
    assert state.steps["fit"].done == 2 and state.steps["fit"].total == 2
    assert all(s.status == "succeeded" for s in state.steps.values())


def test_partial_lines_and_bad_utf8_are_decoded_incrementally(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "noisy.py"
    path.write_text(
        "import sys, time\n"
        "from flowdeck import FlowSpec, step\n"
        "class NoisyFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        out = sys.stdout.buffer\n"
        "        out.write('caf'.encode()); out.flush(); time.sleep(0.05)\n"
        "        out.write('\\u00e9'.encode()[:1]); out.flush(); time.sleep(0.05)\n"
        "        out.write('\\u00e9'.encode()[1:] + b' ok \\xff\\n'); out.flush()\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
        "if __name__ == '__main__':\n"
        "    NoisyFlow().run()\n")
    run = RunProcess(request_for(path, "NoisyFlow"))
    _, output, ended = collect(run)
    with qtbot.waitSignal(run.ended, timeout=WAIT_MS):
        run.start()
    text = "".join(t for s, t in output if s == "stdout")
    assert "café ok \ufffd" in text
    assert ended[0][1] == "succeeded"


def test_stop_ends_the_run_and_every_child(qtbot, flow_file) -> None:
    """Stop ends the run as cancelled, its tasks and a step's forked helper with it. How
    long that takes is measured in bench/bench_desktop.py, not asserted here."""
    path = flow_file("sleepy.py")
    run = RunProcess(request_for(path, "SleepyFlow"))
    events, output, ended = collect(run)
    run.start()
    qtbot.waitUntil(lambda: "napping with helper" in "".join(t for _, t in output),
                    timeout=WAIT_MS)
    helper = int("".join(t for _, t in output).split("napping with helper")[1].split()[0])
    workers = [e["pid"] for e in events if e["type"] == "task_started"]
    with qtbot.waitSignal(run.ended, timeout=WAIT_MS):
        run.stop()
    assert ended[0][1] == "cancelled"
    qtbot.waitUntil(lambda: not any(process_alive(p) for p in [run.pid, helper, *workers]),
                    timeout=WAIT_MS)


def test_killed_from_outside_is_crashed_not_running(qtbot, flow_file) -> None:
    path = flow_file("sleepy.py")
    run = RunProcess(request_for(path, "SleepyFlow"))
    events, _, ended = collect(run)
    run.start()
    qtbot.waitUntil(lambda: any(e["type"] == "task_started" and e["step"] == "nap_b"
                                for e in events), timeout=WAIT_MS)
    with qtbot.waitSignal(run.ended, timeout=WAIT_MS):
        os.kill(run.pid, signal.SIGKILL)
    assert ended[0][1] == "crashed"


def test_missing_interpreter_is_refused_before_launch(flow_file) -> None:
    path = flow_file("train.py")
    with pytest.raises(LaunchError, match="/nonexistent/python3 does not exist"):
        request_for(path, "TrainFlow", interpreter="/nonexistent/python3")


def test_interpreter_vanishing_after_the_check_gives_a_clear_message(qtbot, flow_file) -> None:
    path = flow_file("train.py")
    spec = dataclasses.replace(request_for(path, "TrainFlow"), program="/nonexistent/python3")
    run = RunProcess(spec)
    messages: list[str] = []
    run.failed_to_start.connect(messages.append)
    with qtbot.waitSignal(run.ended, timeout=WAIT_MS):
        run.start()
    assert messages and "/nonexistent/python3" in messages[0]
    assert run.status == "failed"
