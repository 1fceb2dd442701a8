"""`flowdeck run` and the run it starts end together (found by reliability/bad_inputs.py).

Killing `flowdeck run` (SIGKILL, a closed terminal) used to leave its run going, unseen,
to its end. Its run now gets the engine's stop signal when `flowdeck run` dies, and
cancels itself as on Ctrl+C: recorded as cancelled, with nothing left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import child_env, process_alive

from flowdeck.store.events import read_events
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout


def _wait_for(condition, limit: float = 60.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _marked(run_id: str) -> list[int]:
    needle = f"FLOWDECK_RUN_ID={run_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0") and process_alive(int(name)):
                    found.append(int(name))
        except (OSError, ValueError):
            continue
    return found


def test_a_killed_flowdeck_run_cancels_its_run(flow_file) -> None:
    path = flow_file("sleepy.py")
    layout = RunLayout(path.parent / ".flowdeck", "SleepyFlow")
    headless = subprocess.Popen([sys.executable, "-m", "flowdeck.cli.main", "run", str(path)],
                                cwd=path.parent, env=child_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def napping() -> bool:
        runs = RunIndex(layout).runs()
        if not runs:
            return False
        started = [e for e in read_events(layout.events(runs[0].run_id))
                   if e.get("type") == "task_started"]
        return {e.get("step") for e in started} >= {"nap_a", "nap_b"}

    try:
        assert _wait_for(napping)
        run_id = RunIndex(layout).runs()[0].run_id
        os.kill(headless.pid, signal.SIGKILL)
        headless.wait()
        assert _wait_for(lambda: RunIndex(layout).read(run_id).status != "running")
        assert RunIndex(layout).read(run_id).status == "cancelled"
        assert _wait_for(lambda: not _marked(run_id), limit=10)
    finally:
        if headless.poll() is None:
            headless.kill()
        for pid in _marked(RunIndex(layout).runs()[0].run_id) if RunIndex(layout).runs() else []:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sigterm-thrice"])
def test_a_stopped_flowdeck_run_shows_the_run_end_and_exits_as_a_stopped_command(
        flow_file, how: str) -> None:
    """Ctrl+C (SIGINT to the terminal's process group) exits 130 and SIGTERM to `flowdeck
    run` alone exits 143, as a shell expects; both after the run's own last lines. Before,
    Ctrl+C gave the run's 143, and SIGTERM ended `flowdeck run` at once, the run
    cancelling itself unseen."""
    path = flow_file("sleepy.py")
    layout = RunLayout(path.parent / ".flowdeck", "SleepyFlow")
    headless = subprocess.Popen([sys.executable, "-m", "flowdeck.cli.main", "run", str(path)],
                                cwd=path.parent, env=child_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, text=True)

    def napping() -> bool:
        runs = RunIndex(layout).runs()
        return bool(runs) and any(e.get("type") == "task_started" and e.get("step") == "nap_a"
                                  for e in read_events(layout.events(runs[0].run_id)))

    try:
        assert _wait_for(napping)
        if how == "ctrl-c":
            os.killpg(headless.pid, signal.SIGINT)
        else:  # three at once: the second must not escape while the first is handled
            for _ in range(3 if how == "sigterm-thrice" else 1):
                os.kill(headless.pid, signal.SIGTERM)
        out, _ = headless.communicate(timeout=60)
    finally:
        if headless.poll() is None:
            os.killpg(headless.pid, signal.SIGKILL)
    expected = 128 + (signal.SIGINT if how == "ctrl-c" else signal.SIGTERM)
    assert headless.returncode == expected, out[-2000:]
    run_id = RunIndex(layout).runs()[0].run_id
    assert RunIndex(layout).read(run_id).status == "cancelled"
    assert f"Run {run_id} was cancelled after" in out  # the run's own last line
    assert f"The run was cancelled (exit code {expected})." in out
    assert "Traceback" not in out
