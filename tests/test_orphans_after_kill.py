"""Zero survivors when the orchestrator is killed from a plain shell, or `flowdeck run` kills it.

A SIGKILL of `python flow.py run` (its pid, or its whole process group) kills its workers
with it (PDEATHSIG), and what a step had started was then orphaned to init and ran on:
a plain `sleep 300` and one in a new session, 20 of 20 times. The run's guard process
(`processes.RunGuard`, forked at run start, in a session of its own) now ends them.

`flowdeck run` on a second Ctrl+C (or when the engine's grace runs out) used to kill only
the run's process, leaving a step that ignores SIGINT/SIGTERM and its new-session child
alive after it returned; it now kills the run's process group and every process marked
with the run id, as the window does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import child_env, process_alive

from flowdeck.engines import processes
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="process lifetime is enforced on Linux (prctl, /proc)")

FLOW = '''
import os
import signal
import subprocess
import time
from pathlib import Path

from flowdeck import FlowSpec, Parameter, step


class OrphanFlow(FlowSpec):
    stubborn = Parameter("stubborn", default=False, type=bool)

    @step
    def start(self):
        self.next(self.spawn)

    @step
    def spawn(self):
        if self.stubborn:  # ignores every stop; notes that one came
            note = lambda signum, frame: Path(os.environ["PIDS_FILE"] + ".signalled").touch()
            signal.signal(signal.SIGINT, note)
            signal.signal(signal.SIGTERM, note)
        plain = subprocess.Popen(["sleep", "300"])
        detached = subprocess.Popen(["sleep", "300"], start_new_session=True)
        pids = Path(os.environ["PIDS_FILE"])
        pids.with_suffix(".tmp").write_text(f"{os.getpid()} {plain.pid} {detached.pid}")
        pids.with_suffix(".tmp").rename(pids)
        while True:
            time.sleep(1)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    OrphanFlow()
'''

HELLO = '''
from flowdeck import FlowSpec, step


class HelloFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
'''


def wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_pids(pids_file: Path) -> list[int]:
    """The worker, its plain child and its new-session child, once the step started them."""
    assert wait_for(pids_file.exists), "the step never started its children"
    return [int(p) for p in pids_file.read_text().split()]


def kill_leftovers(pids: list[int]) -> None:
    """Test hygiene only (after the assertions): never leave a sleeper behind on failure."""
    for pid in pids:
        processes.signal_quietly(pid, signal.SIGKILL)


def start_plain_run(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`python flow.py run` from a shell: a session of its own, no run id in its environment."""
    path = tmp_path / "orphanflow.py"
    path.write_text(FLOW)
    pids_file = tmp_path / "pids"
    proc = subprocess.Popen([sys.executable, str(path), "run"], cwd=tmp_path,
                            env=child_env(PIDS_FILE=str(pids_file)), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    return proc, pids_file


@pytest.mark.parametrize("target", ["orchestrator", "group"])
def test_a_killed_orchestrator_leaves_no_grandchild(tmp_path: Path, target: str) -> None:
    proc, pids_file = start_plain_run(tmp_path)
    pids = read_pids(pids_file)
    try:
        if target == "orchestrator":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert wait_for(lambda: not any(process_alive(p) for p in pids)), \
            f"still alive after the kill: {[p for p in pids if process_alive(p)]}"
    finally:
        kill_leftovers(pids)


def test_the_guard_spares_what_was_marked_before_the_run(tmp_path: Path) -> None:
    """A shell that exported FLOWDECK_RUN_ID marks everything it starts: only what the run
    started dies with a killed orchestrator, not the shell's other commands."""
    path = tmp_path / "orphanflow.py"
    path.write_text(FLOW)
    pids_file = tmp_path / "pids"
    env = child_env(PIDS_FILE=str(pids_file), FLOWDECK_RUN_ID="exported")
    sibling = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    proc = subprocess.Popen([sys.executable, str(path), "run"], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    pids = read_pids(pids_file)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert wait_for(lambda: not any(process_alive(p) for p in pids))
        assert process_alive(sibling.pid)
    finally:
        kill_leftovers(pids + [sibling.pid])
        sibling.wait()


def test_an_in_process_run_leaves_no_guard_and_no_run_id(tmp_path: Path) -> None:
    """A program that runs flows itself keeps no zombie guard and gets its environment back."""
    (tmp_path / "helloflow.py").write_text(HELLO)
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import os\n"
        "from flowdeck.engines import processes\n"
        "from helloflow import HelloFlow\n"
        "for _ in range(3):\n"
        "    assert HelloFlow().run().successful\n"
        "print(processes.children(os.getpid()), os.environ.get('FLOWDECK_RUN_ID'))\n")
    result = subprocess.run([sys.executable, str(driver)], cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "[] None"


def start_stubborn_headless(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`flowdeck run` of a flow whose step ignores every stop, as from a terminal (the
    command leads a group of its own: a Ctrl+C goes to the group)."""
    path = tmp_path / "orphanflow.py"
    path.write_text(FLOW)
    pids_file = tmp_path / "pids"
    headless = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli.main", "run", str(path), "--stubborn", "true"],
        cwd=tmp_path, env=child_env(PIDS_FILE=str(pids_file)),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)
    return headless, pids_file


def test_flowdeck_run_kill_leaves_no_survivor(tmp_path: Path) -> None:
    """Ctrl+C twice in `flowdeck run`: when it returns, nothing of the run is alive."""
    headless, pids_file = start_stubborn_headless(tmp_path)
    pids = read_pids(pids_file)
    try:
        os.killpg(headless.pid, signal.SIGINT)
        assert wait_for(Path(f"{pids_file}.signalled").exists), "the stop never reached the step"
        os.killpg(headless.pid, signal.SIGINT)
        out, err = headless.communicate(timeout=60)
        alive = [p for p in pids if process_alive(p)]
        assert alive == [], f"alive after `flowdeck run` returned: {alive}"
        run_id = RunIndex(RunLayout(tmp_path / ".flowdeck", "OrphanFlow")).runs()[0].run_id
        assert processes.marked_processes("FLOWDECK_RUN_ID", run_id) == []
        assert "Traceback" not in err.decode(errors="replace")
        assert "The run was cancelled" in out.decode(errors="replace"), out
    finally:
        kill_leftovers(pids)


@pytest.mark.parametrize("gap_ms", [0.2, 1, 3, 10, 30])
def test_two_quick_ctrl_c_in_flowdeck_run_leave_no_survivor(tmp_path: Path,
                                                            gap_ms: float) -> None:
    """The second Ctrl+C a moment after the first: it raised wherever it landed, and
    one landing between two statements of the stop escaped it with a traceback, leaving
    the run's processes alive (seen once in CI). Stops are now counted, then acted on."""
    headless, pids_file = start_stubborn_headless(tmp_path)
    pids = read_pids(pids_file)
    try:
        time.sleep(0.3)  # the follower is in its loop, not reading the first events
        os.killpg(headless.pid, signal.SIGINT)
        time.sleep(gap_ms / 1000)
        os.killpg(headless.pid, signal.SIGINT)
        out, err = headless.communicate(timeout=60)
        assert "Traceback" not in err.decode(errors="replace"), err
        alive = [p for p in pids if process_alive(p)]
        assert alive == [], f"alive after `flowdeck run` returned: {alive}"
        assert headless.returncode == 130, (headless.returncode, out, err)
    finally:
        kill_leftovers(pids)
