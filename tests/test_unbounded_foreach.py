"""Metaflow's unbounded foreach and @catch on a killed @parallel step, on Flowdeck's engine.

An unbounded foreach (`self.next(self.inner, foreach="arr")` where `self.arr` is an
`UnboundedForeachInput`, run by `@unbounded_test_foreach_internal`) runs as Metaflow runs
it locally: one control task per fan-out, which runs no user code and is no input of the
join, plus one worker per item, whose `foreach_stack()` has no number of splits. A
`@parallel` step with `@catch` whose tasks are killed gives only its control task @catch's
extra attempt; the join then gets the control task alone. Every case is a real run of a
real flow file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import child_env, run_flow

from flowdeck import Flow, default_namespace

UBF_FLOW = """import os
from flowdeck import FlowSpec, step, unbounded_test_foreach_internal
from flowdeck.plugins import InternalTestUnboundedForeachInput


class UbfFlow(FlowSpec):
    @step
    def start(self):
        self.arr = InternalTestUnboundedForeachInput(["a", "b"])
        self.next(self.inner, foreach="arr")

    @unbounded_test_foreach_internal
    @step
    def inner(self):
        self.stack = self.foreach_stack()
        self.item = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        if os.environ.get("UBF_FAIL_JOIN") == "1":
            raise RuntimeError("join fails on purpose")
        self.items = sorted(i.item for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UbfFlow()
"""

PARALLEL_CATCH_FLOW = """import os
import signal
from flowdeck import FlowSpec, step, parallel, retry, catch


class KilledParallelFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work, num_parallel=3)

    @catch(var="ex", print_exception=False)
    @retry(times=1)
    @parallel
    @step
    def work(self):
        os.kill(os.getpid(), signal.SIGKILL)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.inputs = [i.ex.type for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    KilledParallelFlow()
"""


@pytest.fixture(autouse=True)
def default_ns(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("METAFLOW_USER", "tester")
    default_namespace()
    yield
    default_namespace()


def env(**extra: str) -> dict[str, str]:
    return child_env(METAFLOW_USER="tester", **extra)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.py"
    path.write_text(text, encoding="utf-8")
    return path


def attempts(task) -> list[str]:
    return sorted(m.value for m in task.metadata if m.type == "attempt")


def test_unbounded_foreach_runs_a_control_task_and_one_worker_per_item(tmp_path: Path) -> None:
    result = run_flow(write(tmp_path, UBF_FLOW), env=env())
    assert result.returncode == 0, result.stderr
    run = Flow("UbfFlow", root=tmp_path / ".flowdeck").latest_run
    assert run.successful
    tasks = run["inner"].tasks()
    assert len(tasks) == 3
    controls = run["inner"].control_tasks()
    assert len(controls) == 1
    control = controls[0]
    assert control.metadata_dict.get("internal_task_type")
    workers = [t for t in tasks if t.id != control.id]
    assert sorted(t.data.item for t in workers) == ["a", "b"]
    # the worker's innermost foreach has no number of splits, as in Metaflow
    assert sorted(t.data.stack for t in workers) == [[(0, None, "a")], [(1, None, "b")]]
    assert "stack" not in control.data  # the control task runs no user code
    join = run["join"].task
    assert join.data.items == ["a", "b"]
    assert sorted(join.parent_task_pathspecs) == sorted(t.pathspec for t in workers)


def test_resume_reuses_the_control_task_and_the_workers(tmp_path: Path) -> None:
    path = write(tmp_path, UBF_FLOW)
    first = run_flow(path, env=env(UBF_FAIL_JOIN="1"))
    assert first.returncode == 1
    assert "join fails on purpose" in first.stderr
    resumed = run_flow(path, "resume", env=env())
    assert resumed.returncode == 0, resumed.stderr
    run = Flow("UbfFlow", root=tmp_path / ".flowdeck").latest_run
    assert run.successful and run.origin_run_id
    tasks = run["inner"].tasks()
    assert len(tasks) == 3
    assert len(run["inner"].control_tasks()) == 1
    assert all(t.origin_pathspec for t in tasks)  # none ran again
    assert run["join"].task.data.items == ["a", "b"]


def test_unbounded_input_without_the_decorator_fails_naming_the_steps(tmp_path: Path) -> None:
    text = UBF_FLOW.replace("    @unbounded_test_foreach_internal\n", "")
    result = run_flow(write(tmp_path, text), env=env())
    assert result.returncode == 1
    assert "`start`" in result.stderr and "`inner`" in result.stderr
    assert "@unbounded_test_foreach_internal" in result.stderr
    assert "Traceback" not in result.stderr


def test_catch_on_a_killed_parallel_step_gives_only_the_control_task_a_fallback(
        tmp_path: Path) -> None:
    result = run_flow(write(tmp_path, PARALLEL_CATCH_FLOW), env=env())
    assert result.returncode == 0, result.stderr
    run = Flow("KilledParallelFlow", root=tmp_path / ".flowdeck").latest_run
    assert run.successful
    tasks = run["work"].tasks()
    assert len(tasks) == 3
    control, *workers = tasks
    assert control.metadata_dict.get("internal_task_type")
    # 1 attempt + 1 retry for every node; @catch's own attempt for the control task only
    assert attempts(control) == ["0", "1", "2"]
    assert [attempts(w) for w in workers] == [["0", "1"], ["0", "1"]]
    assert control.data.ex.type.endswith("FailureHandledByCatch")
    assert not any(w.successful for w in workers)
    join = run["join"].task
    assert join.parent_task_pathspecs == [control.pathspec]
    assert join.data.inputs == [control.data.ex.type]
