"""The client and the programmatic Runner as a notebook user of Metaflow's expects them.

Found by using both side by side on the same flows: Metaflow's `Runner` (run, resume,
async), `Task(pathspec, attempt=N)`, a failed task's traceback in its stderr,
`DataArtifact(pathspec)`, `Metaflow().flows`, a flow outside the namespace, malformed
pathspecs, `run.code` and friends, `repr(run.data)`, exception types as Metaflow names
them, and `root=` given the flow's folder. Real flow processes; the client reads what
they stored.
"""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest
from conftest import child_env

from flowdeck import DataArtifact, Flow, Metaflow, Run, Runner, Task, namespace
from flowdeck.client import ClientError, default_namespace
from flowdeck.exception import MetaflowInvalidPathspec, MetaflowNamespaceMismatch

PARAM_FLOW = """
from metaflow import FlowSpec, Parameter, step


class ParamFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.result = self.alpha * 2
        print("result", self.result)
        self.next(self.end)

    @step
    def end(self):
        if self.result < 0:
            raise KeyError("negative")


if __name__ == "__main__":
    ParamFlow()
"""

RETRY_FLOW = """
from metaflow import FlowSpec, current, retry, step


class RetryFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=1)
    @step
    def flaky(self):
        print("attempt", current.retry_count)
        if current.retry_count == 0:
            raise ValueError("first time")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RetryFlow()
"""


@pytest.fixture(autouse=True)
def every_namespace(monkeypatch: pytest.MonkeyPatch):
    """The flows run as user `tester`; the client reads every namespace unless a test
    chooses one."""
    monkeypatch.setenv("METAFLOW_USER", "tester")
    monkeypatch.delenv("FLOWDECK_HOME", raising=False)
    namespace(None)
    yield
    namespace(None)


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def _run(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowdeck.engines.as_metaflow", str(path),
                           *args], cwd=path.parent, env=child_env(METAFLOW_USER="tester"),
                          capture_output=True, text=True, timeout=180)


def test_runner_runs_and_resumes_a_flow_file_and_hands_back_its_run(tmp_path: Path) -> None:
    path = _write(tmp_path, "param.py", PARAM_FLOW)
    runner = Runner(path, show_output=False, env={"METAFLOW_USER": "tester"})
    with runner.run(alpha=3, tags=["nightly", "v1"]) as running:
        assert running.status == "successful" and running.returncode == 0
        assert running.run.data.result == 6 and running.run.successful
        assert {"nightly", "v1"} <= set(running.run.tags)
        assert "result 6" in running.stdout
    failed = runner.run(alpha=-1)
    assert failed.status == "failed" and failed.returncode == 1
    assert not failed.run.successful and "negative" in failed.stdout + failed.stderr
    resumed = runner.resume(origin_run_id=failed.run.id)  # the same failure again
    assert resumed.status == "failed" and resumed.run.id != failed.run.id
    assert resumed.run["start"].task.origin_pathspec is not None  # start was reused


def test_runner_refuses_an_unknown_keyword_or_a_mistyped_value_before_running(
        tmp_path: Path) -> None:
    """As Metaflow's Runner: a misspelled keyword is a ValueError listing what it takes,
    a value the parameter's type refuses a TypeError, and no run starts (Flowdeck's ran
    and failed, the reason only in its stderr)."""
    path = _write(tmp_path, "param.py", PARAM_FLOW)
    runner = Runner(path, show_output=False)
    with pytest.raises(ValueError, match=r"Unknown argument: 'alpah', possible args are: .*"
                                         r"'alpha'.*'max_workers'"):
        runner.run(alpah=3)
    with pytest.raises(TypeError, match=r"Invalid type for 'alpha': 'three' is not a valid int"):
        runner.run(alpha="three")
    with pytest.raises(ValueError, match="Unknown argument: 'origin'"):
        runner.resume(origin="x")
    assert not (tmp_path / ".flowdeck").exists()  # nothing ran


INCLUDE_FLOW = """
from metaflow import FlowSpec, IncludeFile, step


class IncludeFlow(FlowSpec):
    data = IncludeFile("data", default="data.txt")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    IncludeFlow()
"""


def test_a_run_that_cannot_start_raises_as_in_metaflow(tmp_path: Path) -> None:
    """A process that ends before its run starts (no such origin run, a file parameter that
    cannot be read) is Metaflow's RuntimeError with the command and its output, not a
    "failed" ExecutingRun with no run; `resume` takes no flow parameter (a ValueError
    before any process, where the process refused `--alpha`)."""
    path = _write(tmp_path, "param.py", PARAM_FLOW)
    runner = Runner(path, show_output=False)
    with pytest.raises(RuntimeError, match=r"(?s)^Error executing: '.*param.py resume "
                                           r"--origin-run-id 999999 .*':\n\nStderr:\n.*"
                                           r"There is no run 999999 of ParamFlow"):
        runner.resume(origin_run_id="999999")
    with pytest.raises(ValueError, match=r"Unknown argument: 'alpha', possible args are: "
                                         r".*'origin_run_id'"):
        runner.resume(origin_run_id="999999", alpha=10)
    include = Runner(_write(tmp_path, "include.py", INCLUDE_FLOW), show_output=False)
    with pytest.raises(RuntimeError, match=r"(?s)Stderr:\n.*cannot read 'nofile.txt'"):
        include.run(data="nofile.txt")
    with pytest.raises(RuntimeError, match=r"(?s)Stderr:\n.*cannot read 'nofile.txt'"):
        asyncio.run(include.async_run(data="nofile.txt"))
    assert runner.run(alpha=-1).status == "failed"  # started, then failed: no exception


def test_a_flow_file_that_is_missing_or_broken_is_refused_with_its_reason(
        tmp_path: Path) -> None:
    """A syntax error said "fix the errors above" with nothing above; Metaflow raises the
    SyntaxError. It is a SyntaxError here too, its message the line and the cause; a
    missing file is a FileNotFoundError, as Metaflow's ("Flow file not present")."""
    broken = _write(tmp_path, "broken.py", """
        from metaflow import FlowSpec, step
        class B(FlowSpec):
            @step
            def start(self)
                pass
        """)
    with pytest.raises(SyntaxError) as caught:
        Runner(broken)
    assert str(caught.value).endswith(f"{broken}:5:20: error: Syntax error: expected ':'. "
                                      "Fix the code at line 5, column 20.")
    assert (caught.value.filename, caught.value.lineno) == (str(broken), 5)
    assert caught.value.text is not None and "def start(self)" in caught.value.text
    with pytest.raises(FileNotFoundError, match=r"nosuch.py: no such file"):
        Runner(tmp_path / "nosuch.py")


def test_runner_async_run_returns_once_started(tmp_path: Path) -> None:
    path = _write(tmp_path, "param.py", PARAM_FLOW)

    async def main() -> tuple[str, int, str]:
        running = await Runner(path, show_output=False).async_run(alpha=5)
        assert running.run is not None  # it has its id as soon as it started
        await running.wait()
        return running.status, running.run.data.result, running.run.id

    status, result, run_id = asyncio.run(main())
    assert (status, result) == ("successful", 10)
    assert Flow("ParamFlow", root=tmp_path).latest_run.id == run_id


TICK_FLOW = """
import time
from metaflow import FlowSpec, step


class TickFlow(FlowSpec):
    @step
    def start(self):
        for i in range(3):
            print("tick", i, flush=True)
            time.sleep(0.5)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TickFlow()
"""


def test_stream_log_yields_the_lines_as_the_run_writes_them(tmp_path: Path) -> None:
    """Metaflow's `async for position, line in running.stream_log("stdout")` (Flowdeck's
    ExecutingRun had none): lines without their newline while the run goes, ending with
    the run; a position given back goes on after that line, after the end too."""
    path = _write(tmp_path, "tick.py", TICK_FLOW)

    async def main() -> tuple[list[tuple[int, str, str]], list[str], str]:
        async with Runner(path, show_output=False) as runner:
            running = await runner.async_run()
            seen = [(position, line, running.status)
                    async for position, line in running.stream_log("stdout")]
            assert running.returncode is not None  # it ended with the run
            after_tick_0 = next(pos for pos, line, _ in seen if line.endswith("tick 0"))
            rest = [line async for _, line in running.stream_log("stdout", after_tick_0)]
            with pytest.raises(ValueError, match="No log file found for 'out'"):
                [line async for _, line in running.stream_log("out")]
            await running.wait()
            return seen, rest, running.status

    seen, rest, status = asyncio.run(main())
    assert status == "successful"
    lines = [line for _, line, _ in seen]
    ticks = [line for line in lines if "tick" in line]
    assert [t[-6:] for t in ticks] == ["tick 0", "tick 1", "tick 2"]
    assert next(state for _, line, state in seen if line == ticks[0]) == "running"
    assert rest == lines[lines.index(ticks[0]) + 1:]
    assert all(not line.endswith("\n") for line in lines)
    done = Runner(path, show_output=False).run()  # a run waited for streams after its end

    async def after_the_end() -> list[tuple[int, str]]:
        return [found async for found in done.stream_log("stdout")]

    streamed = asyncio.run(after_the_end())
    assert [line for _, line in streamed] == done.stdout.rstrip("\n").split("\n")
    assert streamed[-1][0] == len(done.stdout.encode())  # positions count bytes


def test_a_driver_script_uses_runner_through_the_metaflow_alias(tmp_path: Path) -> None:
    """`from metaflow import Runner` in a script that is no flow, run with the entry."""
    _write(tmp_path, "param.py", PARAM_FLOW)
    driver = _write(tmp_path, "driver.py", """
        from metaflow import Runner

        with Runner("param.py", show_output=False).run(alpha=4) as running:
            print("GOT", running.status, running.run.data.result)
        """)
    done = _run(driver)
    assert done.returncode == 0, done.stderr
    assert "GOT successful 8" in done.stdout
    deploy = _write(tmp_path, "deploy.py", "from metaflow import Deployer\n")
    refused = _run(deploy)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"{deploy} is not a flow: run it with plain `python {deploy}`" in refused.stderr


def test_earlier_attempts_and_failed_tasks_read_as_in_metaflow(tmp_path: Path) -> None:
    retry = _write(tmp_path, "retry.py", RETRY_FLOW)
    assert _run(retry, "run").returncode == 0
    task = Flow("RetryFlow", root=tmp_path).latest_run["flaky"].task
    first = Task(task.pathspec, attempt=0, root=tmp_path)
    assert first.stdout.strip() == "attempt 0" and not first.successful
    assert first.exception.type == "builtins.ValueError"
    assert "ValueError: first time" in first.stderr  # the traceback, as a process leaves it
    assert Task(task.pathspec, attempt=1, root=tmp_path).successful and task.successful
    assert pickle.loads(pickle.dumps(first)).stdout == first.stdout
    with pytest.raises(ClientError, match="has no attempt 5"):
        Task(task.pathspec, attempt=5, root=tmp_path)
    (tmp_path / "failing").mkdir()
    failing = _write(tmp_path / "failing", "param.py", PARAM_FLOW)
    assert _run(failing, "run", "--alpha", "-2").returncode == 1
    end = Flow("ParamFlow", root=failing.parent).latest_run["end"].task
    assert not end.finished and end.finished_at is not None and not end.successful
    assert "KeyError: 'negative'" in end.stderr
    assert end.exception.type == "builtins.KeyError" and repr(end.exception) == str(
        end.exception)


def test_client_objects_and_lookups_as_in_metaflow(tmp_path: Path) -> None:
    path = _write(tmp_path, "param.py", PARAM_FLOW)
    assert _run(path, "run").returncode == 0
    run = Flow("ParamFlow", root=tmp_path).latest_run  # the flow's folder as root
    assert DataArtifact(f"{run.pathspec}/start/1/result", root=tmp_path).data == 2
    for wrong in (lambda: Run("ParamFlow", root=tmp_path),
                  lambda: Task(f"{run.pathspec}/start", root=tmp_path),
                  lambda: DataArtifact(f"{run.pathspec}/start/1", root=tmp_path)):
        with pytest.raises(MetaflowInvalidPathspec):
            wrong()
    assert [f.id for f in Metaflow(root=tmp_path).flows] == ["ParamFlow"]
    assert run.code is None and run["start"].task.code is None
    assert run["start"].control_task is None and run["start"].task.environment_info is None
    assert isinstance(Flow("ParamFlow", root=tmp_path).created_at, datetime)
    assert run["start"].user_tags == run.user_tags and run["start"].task.system_tags
    assert repr(run.data) == "<MetaflowData: alpha, result>"
    facts = run["start"].task.metadata_dict  # what Metaflow's local metadata says too
    assert facts["script-name"] == "param.py" and facts["ds-type"] == "local"
    assert facts["user"] == "tester"  # Metaflow's user ($METAFLOW_USER), not the account
    namespace("user:someone-else")
    with pytest.raises(MetaflowNamespaceMismatch, match="has no run in namespace"):
        Flow("ParamFlow", root=tmp_path)


OPTIONS_FLOW = """
from metaflow import FlowSpec, JSONType, Parameter, step


class OptionsFlow(FlowSpec):
    on = Parameter("on", type=bool, default=True)
    lst = Parameter("lst", type=JSONType, default="[1]")
    rate = Parameter("learning-rate", default=0.1)
    names = Parameter("names", multiple=True, type=str)

    @step
    def start(self):
        self.seen = (self.on, self.lst, self.rate, self.names)
        self.next(self.end)

    @step
    def end(self):
        import time
        time.sleep(float(__import__("os").environ.get("NAP", "0")))


if __name__ == "__main__":
    OptionsFlow()
"""


def test_runner_writes_the_run_id_file_it_is_given(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`run(run_id_file="rid.txt")` writes that file, as Metaflow's Runner does (it was never
    written: the Runner's own --run-id-file came last and replaced it), relative to the
    run's `cwd`; the Runner still learns the id, never an older one left in the file."""
    path = _write(tmp_path, "param.py", PARAM_FLOW)
    monkeypatch.chdir(tmp_path)
    done = Runner(path, show_output=False).run(alpha=2, run_id_file="rid.txt")
    assert done.status == "successful" and done.run.data.result == 4
    assert (tmp_path / "rid.txt").read_text().strip() == done.run.id
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "rid.txt").write_text(done.run.id)  # an earlier run's

    async def main() -> tuple[str, str]:
        running = await Runner(path, show_output=False, cwd=tmp_path / "sub").async_run(
            run_id_file="rid.txt")
        started_as = running.run.id
        await running.wait()
        return started_as, running.status

    run_id, status = asyncio.run(main())
    assert status == "successful" and run_id != done.run.id
    assert (tmp_path / "sub" / "rid.txt").read_text().strip() == run_id


def test_runner_passes_parameters_as_metaflow_does(tmp_path: Path) -> None:
    """False, a JSON list, a dashed name, several values of a `multiple` parameter; a
    relative file run in another `cwd`; `env` choosing the store."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "elsewhere").mkdir()
    _write(tmp_path / "flows", "options.py", OPTIONS_FLOW)
    home = tmp_path / "home"
    import os
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        runner = Runner("flows/options.py", show_output=False, cwd=tmp_path / "elsewhere",
                        env={"FLOWDECK_HOME": str(home)})
    finally:
        os.chdir(here)
    done = runner.run(on=False, lst=[1, 2, 3], learning_rate=0.5, names=["a", "b c"])
    assert done.status == "successful", done.stderr
    assert done.run.data.seen == (False, [1, 2, 3], 0.5, ("a", "b c"))
    assert (home / "OptionsFlow").is_dir()  # the store `env` chose, read back from there


def test_runner_wait_with_a_timeout_stops_the_run(tmp_path: Path) -> None:
    path = _write(tmp_path, "options.py", OPTIONS_FLOW)

    async def main() -> str:
        running = await Runner(path, show_output=False, env={"NAP": "60"}).async_run()
        await running.wait(timeout=1.0)
        return running.status

    assert asyncio.run(main()) == "timeout"
    run = Flow("OptionsFlow", root=tmp_path).latest_run
    assert run.status == "cancelled"  # stopped as on Ctrl+C, its end recorded


def test_logs_read_back_as_metaflow_gives_them(tmp_path: Path) -> None:
    """Every line ended (output without a final newline too); a progress bar's \\r stays
    within its line."""
    path = _write(tmp_path, "progress.py", """
        import sys
        from metaflow import FlowSpec, step


        class ProgressFlow(FlowSpec):
            @step
            def start(self):
                sys.stdout.write("progress 1\\rprogress 2\\nno newline at end")
                self.next(self.end)

            @step
            def end(self):
                pass


        if __name__ == "__main__":
            ProgressFlow()
        """)
    assert _run(path, "run").returncode == 0
    task = Flow("ProgressFlow", root=tmp_path).latest_run["start"].task
    assert task.stdout == "progress 1\rprogress 2\nno newline at end\n"
    assert [line for _, line in task.loglines("stdout")] == [
        "progress 1\rprogress 2", "no newline at end"]


def test_a_notebook_reads_the_runs_its_runner_made_not_an_older_store(tmp_path: Path) -> None:
    """A notebook at a project's root runs `flows/param.py` with the Runner, then reads
    `Flow("ParamFlow")`: the client searched upward from the working directory and gave a
    run of an older store above it, silently (or none without one); Metaflow reads its
    working directory's store, where its Runner's run went."""
    older = _write(tmp_path, "param.py", PARAM_FLOW)
    assert _run(older, "run", "--alpha", "1").returncode == 0  # tmp_path/.flowdeck: stale
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    _write(project / "flows", "param.py", PARAM_FLOW)
    notebook = _write(project, "notebook.py", """
        from metaflow import Flow, Runner

        with Runner("flows/param.py", show_output=False).run(alpha=5) as running:
            made = running.run.id
        latest = Flow("ParamFlow").latest_run
        print("SAME", latest.id == made, latest.data.result)
        """)
    done = subprocess.run([sys.executable, "-m", "flowdeck.engines.as_metaflow", str(notebook)],
                          cwd=project, env=child_env(METAFLOW_USER="tester"),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "SAME True 10" in done.stdout


def test_a_notebook_beside_the_flows_folder_finds_their_runs(tmp_path: Path) -> None:
    """A notebook kernel has no `__main__.__file__`: a notebooks/ folder beside flows/
    found no store ("does not exist"), where a script there found it."""
    flows = tmp_path / "flows"
    flows.mkdir()
    flow = _write(flows, "param.py", PARAM_FLOW)
    assert _run(flow, "run", "--alpha", "7").returncode == 0
    (tmp_path / "notebooks").mkdir()
    code = ("from flowdeck import Flow, namespace; namespace(None); "
            "print('RESULT', Flow('ParamFlow').latest_run.data.result)")
    for cwd in (tmp_path / "notebooks", tmp_path):  # beside flows/, and above it
        done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=child_env(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "RESULT 14" in done.stdout


def test_runs_steps_and_tasks_are_iterators_as_metaflow_s_generators(tmp_path: Path) -> None:
    """`next(flow.runs())` raised "'list' object is not an iterator" (Metaflow returns
    generators); they still are lists too (len, indexing), as Flowdeck's code uses them."""
    path = _write(tmp_path, "param.py", PARAM_FLOW)
    for alpha in ("1", "2"):
        assert _run(path, "run", "--alpha", alpha).returncode == 0
    namespace(None)
    try:
        flow = Flow("ParamFlow", root=tmp_path / ".flowdeck")
        runs = flow.runs()
        newest = next(runs)
        assert newest.data.result == 4 and next(runs).data.result == 2
        with pytest.raises(StopIteration):
            next(runs)
        assert len(flow.runs()) == 2 and flow.runs()[0].id == newest.id
        assert [r.id for r in flow.runs()] == [r.id for r in list(flow.runs())]
        assert next(newest.steps()).id == "end"
        assert next(newest["start"].tasks()).data.result == 4
    finally:
        default_namespace()


def test_a_runner_reads_its_run_where_datastore_root_or_a_relative_home_put_it(
        tmp_path: Path) -> None:
    """`datastore_root=` and a relative $FLOWDECK_HOME (the run's, in `cwd=`) were missed:
    the Runner read the run elsewhere and raised "Error executing" for a run that
    succeeded (second review)."""
    path = _write(tmp_path, "param.py", PARAM_FLOW)
    chosen = tmp_path / "chosen store"
    done = Runner(path, show_output=False, env={"METAFLOW_USER": "tester"},
                  datastore_root=str(chosen)).run(alpha=2)
    assert done.status == "successful" and done.run.data.result == 4
    assert (chosen / "ParamFlow").is_dir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = Runner(path, show_output=False, cwd=elsewhere,
                  env={"METAFLOW_USER": "tester", "FLOWDECK_HOME": "relative"}).run(alpha=3)
    assert done.status == "successful" and done.run.data.result == 6
    assert (elsewhere / "relative" / "ParamFlow").is_dir()


def test_a_syntax_error_shows_the_line_as_the_file_now_has_it(tmp_path: Path) -> None:
    """A notebook fixes one syntax error and meets another: the error's text was the old
    line, from a cache of the file as first read (second review)."""
    from flowdeck.programmatic import FlowFileSyntaxError
    path = tmp_path / "broken.py"
    good = textwrap.dedent(PARAM_FLOW)
    for bad_line in ("    def start(self)\n", "    def start(self, x y):\n"):
        path.write_text(good.replace("    def start(self):\n", bad_line))
        with pytest.raises(FlowFileSyntaxError) as raised:
            Runner(path)
        assert raised.value.text == bad_line
