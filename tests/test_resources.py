"""@resources(memory=MB) is a guard: a step that allocates past it fails with a message that
says so, instead of taking the machine's memory. The limit itself keeps these tests safe:
the 2 GB allocation is refused by the kernel before a byte of it is touched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import child_env, run_flow

from flowdeck import Flow

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="memory limits are enforced on Linux (RLIMIT_DATA)")

FLOW = '''
import time
from flowdeck import FlowSpec, Parameter, resources, step
{imports}


class HungryFlow(FlowSpec):
    megabytes = Parameter("megabytes", default=2048)

    @resources(memory={limit})
    @step
    def start(self):
        self.size = len(bytearray(self.megabytes * 1024 * 1024))
        self.next(self.greedy)

    @step
    def greedy(self):  # no @resources: the run's default limit, if any
        self.size = len(bytearray(self.megabytes * 1024 * 1024))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HungryFlow()
'''


def write_flow(folder: Path, limit: str = "200", imports: str = "") -> Path:
    path = folder / "hungry.py"
    path.write_text(FLOW.format(limit=limit, imports=imports))
    return path


def failed_task_error(folder: Path, step: str) -> dict:
    run = Flow("HungryFlow", root=folder / ".flowdeck").latest_run
    assert run.status == "failed"
    task = run[step].task
    assert task.status == "failed"
    return task.exception


def test_a_step_past_its_memory_limit_fails_with_a_clear_message(tmp_path: Path) -> None:
    path = write_flow(tmp_path)
    result = run_flow(path)
    assert result.returncode == 1, result.stderr
    error = failed_task_error(tmp_path, "start")
    message = ("Step `start` exceeded its memory limit of 200 MB (@resources). Raise the "
               "limit or use less memory.")
    assert error["message"] == message
    assert message in result.stderr


def test_a_step_within_its_limit_runs_even_after_numpy_was_imported(tmp_path: Path) -> None:
    """What the worker inherits (numpy reserves ~90 MB at import) does not count against it."""
    pytest.importorskip("numpy")
    path = write_flow(tmp_path, imports="import numpy")
    result = run_flow(path, "--megabytes", "150")
    assert result.returncode == 0, result.stderr
    run = Flow("HungryFlow", root=tmp_path / ".flowdeck").latest_run
    assert run.successful and run["start"].task.data.size == 150 * 1024 * 1024


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_run_default_limit_guards_steps_without_resources(tmp_path: Path,
                                                              how: str) -> None:
    path = write_flow(tmp_path, limit="4096")  # start's own limit overrides the run's
    if how == "option":
        result = run_flow(path, "--memory-limit", "100", "--megabytes", "200")
        source = "--memory-limit"
    else:
        result = run_flow(path, "--megabytes", "200",
                          env=child_env(FLOWDECK_MEMORY_LIMIT_MB="100"))
        source = "FLOWDECK_MEMORY_LIMIT_MB"
    assert result.returncode == 1, result.stderr
    assert Flow("HungryFlow", root=tmp_path / ".flowdeck").latest_run["start"].task.successful
    error = failed_task_error(tmp_path, "greedy")
    assert error["message"] == (f"Step `greedy` exceeded its memory limit of 100 MB ({source})."
                                " Raise the limit or use less memory.")


def test_a_memory_limit_that_is_no_number_is_refused_before_the_run(tmp_path: Path) -> None:
    path = write_flow(tmp_path, limit='"lots"')
    result = run_flow(path)
    assert result.returncode == 2
    assert "@resources(memory='lots') on step `start`" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".flowdeck" / "HungryFlow" / "runs").exists()


CPU_FLOW = """
import os
import time
from pathlib import Path
from flowdeck import FlowSpec, resources, step


class WideFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @resources(cpu=2)
    @step
    def work(self):
        busy = Path(__file__).with_name("busy")
        try:  # another task holds the machine's two CPUs now: they would share them
            os.close(os.open(busy, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            Path(__file__).with_name("overlap").write_text("overlap")
        time.sleep(0.3)
        busy.unlink(missing_ok=True)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WideFlow()
"""


def test_cpu_counts_against_max_workers(tmp_path: Path) -> None:
    """Two workers' worth of CPUs per task: with --max-workers 2 they run one at a time."""
    path = tmp_path / "wide.py"
    path.write_text(CPU_FLOW)
    result = run_flow(path, "--max-workers", "2")
    assert result.returncode == 0, result.stderr
    assert Flow("WideFlow", root=tmp_path / ".flowdeck").latest_run.successful
    assert not (tmp_path / "overlap").exists()


def test_a_memory_error_s_own_words_are_kept_under_a_limit(tmp_path: Path) -> None:
    """A MemoryError with a message (a step's own, or a library's) was reported as the
    limit alone, its words dropped."""
    path = tmp_path / "hungry.py"
    path.write_text(FLOW.format(limit="4096", imports="")
                    .replace("self.size = len(bytearray(self.megabytes * 1024 * 1024))\n"
                             "        self.next(self.greedy)",
                             "raise MemoryError('the model needs 80 GB')\n"
                             "        self.next(self.greedy)"))
    result = run_flow(path)
    assert result.returncode == 1, result.stderr
    assert failed_task_error(tmp_path, "start")["message"] == (
        "Step `start` exceeded its memory limit of 4096 MB (@resources) (MemoryError: the "
        "model needs 80 GB). Raise the limit or use less memory.")
