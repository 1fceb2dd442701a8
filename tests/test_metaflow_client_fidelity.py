"""The client reads runs as Metaflow's does, and steps fail (or do not) as in Metaflow.

Client: `Task(pathspec)`, `task.exception` as an exception, `loglines`, `metadata`
(a list) and `metadata_dict`, `origin_pathspec`, `parent_tasks`/`child_tasks`,
`Run.parent`, a missing step is a KeyError, client objects survive pickling as
artifacts (`current.task`). Semantics: assigning a parameter is a lint warning and an
AttributeError at run time, `self._foreach_stack`/`self._current_step`, @catch after
@retry on a killed task, @timeout's exception name, a segfault named in stderr,
merge_artifacts' exceptions.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from conftest import child_env, run_flow

from flowdeck import Flow, Task, default_namespace
from flowdeck.client import Metadata, TaskException
from flowdeck.exception import MetaflowNotFound

HEADER = """import os, signal
from flowdeck import FlowSpec, step, Parameter, current, retry, catch, timeout
from flowdeck.exception import (MetaflowException, UnhandledInMergeArtifactsException,
                                MissingInMergeArtifactsException)
"""


def env(**extra: str) -> dict[str, str]:
    return child_env(METAFLOW_USER="tester", **extra)


@pytest.fixture(autouse=True)
def tester_namespace(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("METAFLOW_USER", "tester")
    default_namespace()
    yield
    default_namespace()


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "flow.py"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def latest(tmp_path: Path, flow: str):
    return Flow(flow, root=tmp_path / ".flowdeck").latest_run


FOREACH_FLOW = """
class LineFlow(FlowSpec):
    @step
    def start(self):
        self.xs = ["a", "b"]
        self.ys = [1, 2]
        self.next(self.outer, foreach="xs")

    @step
    def outer(self):
        self.next(self.inner, foreach="ys")

    @step
    def inner(self):
        self.frames = [(f.step, f.var, f.num_splits, f.index, f.value)
                       for f in self._foreach_stack]
        self.me = (self._current_step, current.pathspec)
        self.task_obj = current.task
        self.run_obj = current.run
        print("line one")
        print("line two")
        self.next(self.join_inner)

    @step
    def join_inner(self, inputs):
        self.next(self.join_outer)

    @step
    def join_outer(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LineFlow()
"""


def test_tasks_by_pathspec_their_family_logs_and_pickled_client_objects(tmp_path: Path) -> None:
    path = write(tmp_path, FOREACH_FLOW)
    result = run_flow(path, env=env())
    assert result.returncode == 0, result.stderr
    run = latest(tmp_path, "LineFlow")
    root = tmp_path / ".flowdeck"
    inner = run["inner"].tasks()[3]
    assert inner.data.frames == [("start", "xs", 2, 1, "b"), ("outer", "ys", 2, 1, 2)]
    step_name, pathspec = inner.data.me
    assert step_name == "inner" and Task(pathspec, root=root) == inner
    assert inner.data.task_obj.pathspec == inner.pathspec
    assert inner.data.run_obj == run and run.parent == Flow("LineFlow", root=root)
    assert [t.step_name for t in inner.parent_tasks] == ["outer"]
    assert inner in inner.parent_tasks[0].child_tasks
    assert [t.step_name for t in inner.child_tasks] == ["join_inner"]
    assert [line for _, line in inner.loglines("stdout")] == ["line one", "line two"]
    assert [s.id for s in run["outer"].child_steps] == ["inner"]
    with pytest.raises(KeyError):
        run["no_such_step"]
    assert inner.path_components == pathspec.split("/")


def test_times_are_datetimes_steps_come_latest_first_and_artifacts_by_name(
        tmp_path: Path) -> None:
    path = write(tmp_path, FOREACH_FLOW)
    assert run_flow(path, env=env()).returncode == 0
    root = tmp_path / ".flowdeck"
    run = latest(tmp_path, "LineFlow")
    # Metaflow lists a run's steps newest first: the end first, the start last.
    assert [s.id for s in run] == ["end", "join_outer", "join_inner", "inner", "outer",
                                   "start"]
    assert isinstance(run.created_at, datetime) and isinstance(run.finished_at, datetime)
    assert run.created_at <= run.finished_at
    assert run.duration == pytest.approx((run.finished_at - run.created_at).total_seconds(),
                                         abs=1e-3)
    task = run["inner"].tasks()[0]
    assert isinstance(task.finished_at, datetime) and task.created_at <= task.finished_at
    assert task.current_attempt == 0
    assert run["inner"].created_at <= run["inner"].finished_at <= run.finished_at
    # task.artifacts is a tuple whose items are attributes by name (Metaflow's namedtuple).
    assert task.artifacts.frames.data == [("start", "xs", 2, 0, "a"), ("outer", "ys", 2, 0, 1)]
    assert "frames" in task.artifacts._fields and len(task.artifacts) == len(list(task))
    assert task.artifacts.frames.created_at == task.finished_at
    with pytest.raises(AttributeError, match="no artifact 'nope'"):
        getattr(task.artifacts, "nope")  # noqa: B009 (the attribute access is the test)
    # A flow that never ran is not found, as in Metaflow, and the message says where we looked.
    with pytest.raises(MetaflowNotFound, match=r"Flow\('NeverRan'\) does not exist.*"
                                                r"Run the flow first"):
        Flow("NeverRan", root=root)


BRANCH_FLOW = """
class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.b, self.c, self.d)

    @step
    def b(self):
        self.next(self.join)

    @step
    def c(self):
        self.next(self.join)

    @step
    def d(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    BranchFlow()
"""


def test_branches_are_listed_as_metaflow_lists_them(tmp_path: Path) -> None:
    """Metaflow lists steps newest first, so branches started b, c, d come d, c, b (checked
    against Metaflow 2.19.39 by hand: ['end', 'join', 'd', 'c', 'b', 'start'])."""
    assert run_flow(write(tmp_path, BRANCH_FLOW), env=env()).returncode == 0
    run = latest(tmp_path, "BranchFlow")
    assert [s.id for s in run] == ["end", "join", "d", "c", "b", "start"]


RETRY_FLOW = """
class RetryFlow(FlowSpec):
    @retry(times=2)
    @step
    def start(self):
        if current.retry_count < 2:
            raise ValueError("again")
        self.next(self.killed)

    @catch(var="caught", print_exception=False)
    @retry(times=1)
    @step
    def killed(self):
        os.kill(os.getpid(), signal.SIGKILL)
        self.next(self.slow)

    @catch(var="late", print_exception=False)
    @timeout(seconds=1)
    @step
    def slow(self):
        import time
        time.sleep(5)
        self.next(self.end)

    @step
    def end(self):
        self.kinds = (self.caught.type, self.late.type)

if __name__ == "__main__":
    RetryFlow()
"""


def test_metadata_lists_attempts_and_catch_handles_a_killed_task(tmp_path: Path) -> None:
    path = write(tmp_path, RETRY_FLOW)
    result = run_flow(path, env=env())
    assert result.returncode == 0, result.stderr
    run = latest(tmp_path, "RetryFlow")
    start = run["start"].task
    assert all(isinstance(m, Metadata) for m in start.metadata)
    assert sorted(m.value for m in start.metadata if m.type == "attempt") == ["0", "1", "2"]
    assert start.metadata_dict["attempt"] == "2" and start.metadata["status"] == "succeeded"
    killed = run["killed"].task
    # two attempts killed (1 + 1 retry), then @catch's own attempt, which runs no user code
    assert sorted(m.value for m in killed.metadata if m.type == "attempt") == ["0", "1", "2"]
    assert run["end"].task.data.kinds == (
        "metaflow.plugins.catch_decorator.FailureHandledByCatch",
        "metaflow.plugins.timeout_decorator.TimeoutException")


FAIL_FLOW = """
class FailFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        try:
            self.alpha = 2
        except AttributeError:
            self.refused = True
        self.next(self.end)

    @step
    def end(self):
        print("Crash and burn!", flush=True)
        if self.alpha == 1:
            raise KeyError("Something has gone wrong")
        import ctypes
        ctypes.string_at(0)

if __name__ == "__main__":
    FailFlow()
"""


def test_a_failed_task_s_exception_and_a_segfault_named_in_stderr(tmp_path: Path) -> None:
    path = write(tmp_path, FAIL_FLOW)
    result = run_flow(path, env=env())
    assert result.returncode == 1
    assert "warning: Step `start` assigns `self.alpha`" in result.stderr  # lint warns only
    run = latest(tmp_path, "FailFlow")
    assert run["start"].task.data.refused
    exc = run["end"].task.exception
    assert isinstance(exc, TaskException) and "KeyError" in str(exc)
    assert exc.exception == "'Something has gone wrong'" and exc["type"] == "KeyError"
    crashed = run_flow(path, "--alpha", "2", env=env())
    assert crashed.returncode == 1
    end = latest(tmp_path, "FailFlow")["end"].task
    assert "Crash and burn!" in end.stdout
    assert "segmentation fault" in end.stderr


RESUME_FLOW = """
class ResumeFlow(FlowSpec):
    @step
    def start(self):
        self.origin = current.pathspec
        self.next(self.end)

    @step
    def end(self):
        if current.origin_run_id is None:
            raise RuntimeError("resume me")

if __name__ == "__main__":
    ResumeFlow()
"""


def test_a_resumed_run_says_where_its_tasks_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, RESUME_FLOW)
    assert run_flow(path, env=env()).returncode == 1
    resumed = run_flow(path, "resume", env=env())
    assert resumed.returncode == 0, resumed.stderr
    run = latest(tmp_path, "ResumeFlow")
    start = run["start"].task
    assert start.origin_pathspec == start.data.origin
    assert run["start"].origin_pathspec == start.data.origin.rsplit("/", 1)[0]
    assert run.origin_pathspec == start.data.origin.rsplit("/", 2)[0]
    clone, again = start.metadata_dict, run["end"].task.metadata_dict
    assert clone["origin-run-id"] == again["origin-run-id"] == run.origin_run_id
    assert "origin-task-id" in clone and "origin-task-id" not in again
    original = Task(start.data.origin, root=tmp_path / ".flowdeck").metadata_dict
    assert {k: v for k, v in original.items() if not k.startswith("origin")} == \
        {k: v for k, v in clone.items() if not k.startswith("origin")}


MERGE_FLOW = """
class MergeFlow(FlowSpec):
    @step
    def start(self):
        self.same = 1
        self.next(self.a, self.b)

    @step
    def a(self):
        self.differ = "a"
        self.next(self.join)

    @step
    def b(self):
        self.differ = "b"
        self.next(self.join)

    @step
    def join(self, inputs):
        try:
            self.merge_artifacts(inputs)
        except UnhandledInMergeArtifactsException as exc:
            self.unhandled = exc.artifact_names
        self.untouched = not hasattr(self, "same")  # a failed merge sets nothing
        try:
            self.merge_artifacts(inputs, include=["nope"])
        except MissingInMergeArtifactsException:
            self.missing = True
        try:
            self.merge_artifacts(inputs, include=["same"], exclude=["differ"])
        except MetaflowException:
            self.both = True
        self.merge_artifacts(inputs, exclude=["differ"])
        self.next(self.end)

    @step
    def end(self):
        try:
            self.merge_artifacts([])
        except MetaflowException:
            self.not_a_join = True

if __name__ == "__main__":
    MergeFlow()
"""


def test_merge_artifacts_raises_metaflow_s_exceptions_and_is_all_or_nothing(
        tmp_path: Path) -> None:
    path = write(tmp_path, MERGE_FLOW)
    result = run_flow(path, env=env())
    assert result.returncode == 0, result.stderr
    run = latest(tmp_path, "MergeFlow")
    join = run["join"].task.data
    assert (join.unhandled, join.untouched, join.missing, join.both, join.same) == (
        ["differ"], True, True, True, 1)
    assert run["end"].task.data.not_a_join


PRIVATE_FLOW = """
class PrivateFlow(FlowSpec):
    @step
    def start(self):
        self.shown = 1
        self._private = 2
        self.__mangled = 3
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PrivateFlow()
"""


def test_private_artifacts_are_read_by_name_but_not_listed(tmp_path: Path) -> None:
    """As Metaflow's client: a name starting with `_` is left out of `task.data`,
    `.artifacts` and iteration, and `task['_name']` still reads it."""
    path = write(tmp_path, PRIVATE_FLOW)
    assert run_flow(path, env=env()).returncode == 0
    task = latest(tmp_path, "PrivateFlow")["start"].task
    assert [a.id for a in task] == ["shown"] and task.artifacts._fields == ("shown",)
    assert repr(task.data) == "<MetaflowData: shown>" and "_private" not in task.data
    assert task["_private"].data == 2 and task["_PrivateFlow__mangled"].data == 3


def test_small_parts_of_metaflows_client(tmp_path: Path) -> None:
    """Log sizes, the runtime's name, a flow's place at the top, namespace checks of any
    object, and default_metadata() undoing metadata(PATH)."""
    import flowdeck
    from flowdeck import namespace
    path = write(tmp_path, PRIVATE_FLOW.replace("self.shown = 1", "print('héllo')\n        "
                                                "self.shown = 1"))
    assert run_flow(path, env=env()).returncode == 0
    flow = Flow("PrivateFlow", root=tmp_path / ".flowdeck")
    task = flow.latest_run["start"].task
    assert task.stdout_size == len("héllo\n".encode()) and task.stderr_size == 0
    assert task.runtime_name == "dev"
    assert flow.parent is None and flow.origin_pathspec is None
    assert flow.is_in_namespace() and task.is_in_namespace()
    namespace("user:someone-else")
    assert not task.is_in_namespace() and not flow.is_in_namespace()
    namespace(None)
    assert task.is_in_namespace()
    usual = flowdeck.get_metadata()
    other = tmp_path / "other"
    other.mkdir()
    assert flowdeck.metadata(str(other)) == f"local@{other.resolve()}" != usual
    assert flowdeck.default_metadata() == usual
