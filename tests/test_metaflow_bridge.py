"""The Metaflow bridge: its pure log parser, real Metaflow runs through it, the graph check."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FLOWS, WAIT_S, child_env, process_alive
from metaflow_output_raw import MetaflowOutputRaw

from flowdeck import Flow, namespace
from flowdeck.analysis.command_line import split_top_level
from flowdeck.analysis.flowfile import analyze_file
from flowdeck.client import ClientError
from flowdeck.engines.metaflow_bridge import (
    FALLBACK_USER,
    MetaflowLogParser,
    UsageError,
    caught_error,
    error_from_lines,
    metaflow_env,
    parse_args,
    split_records,
)
from flowdeck.observe.fold import RunFold
from flowdeck.store.events import read_events
from flowdeck.store.records import RunRecord

MF_FLOWS = FLOWS / "metaflow"
SAMPLES = sorted(MF_FLOWS.glob("*.py"))
FIELDS = ("name", "type", "next", "foreach_artifact", "matching_join")

# -- the parser, fed text -----------------------------------------------------------------

R = "1795631788219631"
TS = "2026-11-25 18:36:30.001"
TRANSCRIPT = f"""\
2026-11-25 18:36:28.221 Workflow starting (run-id {R}):
2026-11-25 18:36:28.235 [{R}/start/1 (pid 10)] Task is starting.
2026-11-25 18:36:28.443 [{R}/start/1 (pid 10)] hello start
2026-11-25 18:36:28.489 [{R}/start/1 (pid 10)] Foreach yields 2 child steps.
2026-11-25 18:36:28.489 [{R}/start/1 (pid 10)] Task finished successfully.
2026-11-25 18:36:28.493 [{R}/each/2 (pid 11)] Task is starting.
2026-11-25 18:36:28.495 [{R}/each/3 (pid 12)] Task is starting.
2026-11-25 18:36:29.111 [{R}/each/3 (pid 12)] <flow FeFlow step each[1] (input: 1)> failed:
2026-11-25 18:36:29.128 [{R}/each/3 (pid 12)] Traceback (most recent call last):
2026-11-25 18:36:29.128 [{R}/each/3 (pid 12)] File "/usr/lib/python3/site-packages/metaflow/cli.py", line 739, in main
2026-11-25 18:36:29.128 [{R}/each/3 (pid 12)] start(auto_envvar_prefix="METAFLOW", obj=state)
2026-11-25 18:36:29.130 [{R}/each/3 (pid 12)] File "/tmp/fe.py", line 19, in each
2026-11-25 18:36:29.130 [{R}/each/3 (pid 12)] raise ValueError("boom once")
2026-11-25 18:36:29.130 [{R}/each/3 (pid 12)] ValueError: boom once
2026-11-25 18:36:29.130 [{R}/each/3 (pid 12)] 
2026-11-25 18:36:29.160 [{R}/each/2 (pid 11)] Task finished successfully.
2026-11-25 18:36:29.241 [{R}/each/3 (pid 12)] Task failed.
2026-11-25 18:36:29.259 [{R}/each/3 (pid 13)] Task is starting (retry).
2026-11-25 18:36:29.565 [{R}/each/3 (pid 13)] Task finished successfully.
2026-11-25 18:36:29.572 [{R}/join/4 (pid 14)] Task is starting.
2026-11-25 18:36:29.831 [{R}/join/4 (pid 14)] Task finished successfully.
2026-11-25 18:36:30.100 Done!
"""


def feed_all(parser: MetaflowLogParser, text: str) -> list[dict]:
    events = []
    for line in text.splitlines():
        events += parser.feed(line).events
    return events


def test_parser_turns_a_transcript_into_events() -> None:
    parser = MetaflowLogParser()
    events = feed_all(parser, TRANSCRIPT)
    assert parser.metaflow_run_id == R
    summary = [(e["type"], e.get("step"), e.get("task_id"), e.get("attempt"), e.get("status"))
               for e in events if e["type"] != "metaflow_run"]
    assert summary == [
        ("task_started", "start", "1", 0, None),
        ("task_finished", "start", "1", 0, "succeeded"),
        ("task_started", "each", "2", 0, None),
        ("task_started", "each", "3", 0, None),
        ("task_finished", "each", "2", 0, "succeeded"),
        ("task_finished", "each", "3", 0, "failed"),
        ("task_started", "each", "3", 1, None),
        ("task_finished", "each", "3", 1, "succeeded"),
        ("task_started", "join", "4", 0, None),
        ("task_finished", "join", "4", 0, "succeeded"),
    ]
    start_done = events[2]
    assert start_done["foreach_splits"] == 2 and start_done["duration"] == pytest.approx(0.254)
    failed = next(e for e in events if e.get("status") == "failed")
    assert failed["will_retry"] is True
    assert failed["error"]["type"] == "ValueError"
    assert failed["error"]["message"] == "boom once"
    assert "metaflow/cli.py" not in failed["error"]["traceback"]
    assert '  File "/tmp/fe.py", line 19, in each' in failed["error"]["traceback"]
    assert parser.first_error is None  # the failure was retried, so the run did not fail


def test_parser_holds_a_failure_until_it_knows_there_is_no_retry() -> None:
    parser = MetaflowLogParser()
    events = feed_all(parser, f"""\
2026-11-25 18:36:36.479 [{R}/divide/2 (pid 306)] Task is starting.
2026-11-25 18:36:36.740 [{R}/divide/2 (pid 306)] ZeroDivisionError: division by zero
2026-11-25 18:36:36.741 [{R}/divide/2 (pid 306)] Task failed.
""")
    assert [e["type"] for e in events] == ["task_started"]
    final = parser.feed("2026-11-25 18:36:36.742 Workflow failed.").events
    assert final[0]["status"] == "failed" and final[0]["will_retry"] is False
    assert final[0]["error"]["type"] == "TaskFailed"
    assert parser.first_error["step"] == "divide"


def test_parser_maps_cloned_and_killed_tasks() -> None:
    parser = MetaflowLogParser(origin_splits={"start/1": 4}, origin_ids={"17": "first"})
    events = feed_all(parser, f"""\
2026-11-25 18:36:37.098 [{R}/start/1] Cloning previously run task 17/start/1
2026-11-25 18:37:33.430 [{R}/a/2 (pid 1821)] Task is starting.
2026-11-25 18:37:33.434 [{R}/b/3 (pid 1822)] Task is starting.
2026-11-25 18:37:33.935 [{R}/b/3 (pid 1822)] [KILLED BY ORCHESTRATOR]
2026-11-25 18:37:34.083 [{R}/b/3 (pid 1822)] Task failed.
""")
    assert events[0]["reused"] is True and events[1]["status"] == "reused"
    assert events[1]["origin"] == "first/start/1" and events[1]["foreach_splits"] == 4
    assert events[-1]["step"] == "b" and events[-1]["status"] == "cancelled"
    closing = parser.finish(cancelled=True)
    assert [(e["step"], e["status"]) for e in closing] == [("a", "cancelled")]


def test_parser_passes_garbage_through_as_text() -> None:
    parser = MetaflowLogParser()
    rng = random.Random(7)
    alphabet = "[]()/ .:-0123456789abcTaskpid\t\x00é"
    lines = ["", "   ", "[", "2026-11-25 18:36:28.221 [", "2026-11-25 99:99:99.999 [a/b/c] x",
             "2026-11-25 18:36:28.221 [r/s/t (pid x)] Task finished successfully.",
             "2026-11-25 18:36:28.221 [r/s/9 (pid 1)] Task finished successfully.",
             "2026-11-25 18:36:28.221 [r/s/9 (pid 1)] Task failed.",
             "2026-11-25 18:36:28.221 Foreach yields lots child steps.",
             "Task is starting.", "\udcff broken surrogate"]
    lines += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
              for _ in range(2000)]
    for line in lines:
        parsed = parser.feed(line)
        assert isinstance(parsed.events, list)
        assert parsed.text is not None
    parser.finish(cancelled=False)


def test_error_without_traceback_keeps_the_text() -> None:
    error = error_from_lines(["Internal error", "something odd"])
    assert error["type"] == "TaskFailed" and "something odd" in error["traceback"]
    assert error_from_lines([])["message"]


def test_username_is_supplied_only_when_missing_or_root() -> None:
    assert metaflow_env({"USER": "root"})["METAFLOW_USER"] == "flowdeck"
    assert metaflow_env({})["METAFLOW_USER"] == "flowdeck"
    assert "METAFLOW_USER" not in metaflow_env({"USER": "ada"})
    assert metaflow_env({"METAFLOW_USER": "bob"})["METAFLOW_USER"] == "bob"


def test_arguments_split_between_bridge_and_metaflow(monkeypatch) -> None:
    monkeypatch.setenv("FLOWDECK_RUN_ID", "abc")
    args = parse_args(["f.py", "resume", "divide", "--origin-run-id", "12"])
    assert (args.command, args.run_id, args.origin_run_id) == ("resume", "abc", "12")
    assert args.metaflow_args == ["divide", "--origin-run-id", "12"]
    args = parse_args(["f.py", "--run-id", "x1", "--count", "2"])
    assert (args.command, args.run_id, args.metaflow_args) == ("run", "x1", ["--count", "2"])
    with pytest.raises(UsageError):
        parse_args(["f.py", "--run-id", "no spaces allowed"])
    with pytest.raises(UsageError):
        parse_args([])


def test_metaflows_top_level_options_go_before_the_command() -> None:
    top, rest = split_top_level(["--tag", "a", "--with", "retry", "--environment=local",
                                 "--config", "cfg", "c.json", "--no-pylint", "--greeting", "hi",
                                 "--branch", "b1"])
    assert top == ["--with", "retry", "--environment=local", "--config", "cfg", "c.json",
                   "--no-pylint", "--branch", "b1"]
    assert rest == ["--tag", "a", "--greeting", "hi"]
    # a flow's own parameter named like @project's option stays with the command
    assert split_top_level(["--branch", "b1"], {"--branch"}) == ([], ["--branch", "b1"])


# -- real Metaflow runs ------------------------------------------------------------------

@pytest.fixture
def mf_flow(tmp_path: Path):
    """Copy a sample Metaflow flow into a fresh folder (its .metaflow and .flowdeck go there)."""
    pytest.importorskip("metaflow")

    def copy(name: str) -> Path:
        target = tmp_path / name
        target.write_text((MF_FLOWS / name).read_text())
        return target

    return copy


def shared_bridge_run(tmp_path_factory: pytest.TempPathFactory, name: str
                      ) -> tuple[Path, subprocess.CompletedProcess[str], list[dict]]:
    """A sample run once through the bridge with its defaults (run id r1), in a folder and
    a home of its own, for tests that only read it or resume from it (a Metaflow run costs
    seconds; a resume adds a run beside r1 and leaves r1 as it was)."""
    pytest.importorskip("metaflow")
    folder = tmp_path_factory.mktemp(Path(name).stem)
    path = folder / name
    path.write_text((MF_FLOWS / name).read_text())
    with pytest.MonkeyPatch.context() as patch:  # the per-test home is not set up yet
        patch.setenv("HOME", str(folder / "home"))
        patch.setenv("XDG_CONFIG_HOME", str(folder / "home" / ".config"))
        result, events = run_bridge(path)
    return path, result, events


@pytest.fixture(scope="module")
def branch_run(tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, subprocess.CompletedProcess[str], list[dict]]:
    """branch.py run once: the branch test checks it, a resume starts from it."""
    return shared_bridge_run(tmp_path_factory, "branch.py")


def bridge_env(run_id: str) -> dict[str, str]:
    env = child_env(FLOWDECK_RUN_ID=run_id)
    for name in ("USER", "USERNAME", "METAFLOW_USER"):
        env.pop(name, None)  # the bridge must supply a user name itself
    return env


def run_bridge(path: Path, *args: str, run_id: str = "r1"
               ) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    result = subprocess.run([sys.executable, "-m", "flowdeck.engines.metaflow_bridge", str(path),
                             *args], cwd=path.parent, env=bridge_env(run_id),
                            capture_output=True, text=True, timeout=WAIT_S)
    return result, read_events(events_path(path, run_id))


def events_path(path: Path, run_id: str) -> Path:
    flow = analyze_file(path).flows[0].name
    return path.parent / ".flowdeck" / flow / "runs" / run_id / "events.jsonl"


def tasks(events: list[dict], step: str, kind: str = "task_finished") -> list[dict]:
    return [e for e in events if e["type"] == kind and e["step"] == step]


def check_stream(events: list[dict]) -> None:
    """First run_started, last run_finished, every finish after its start, ids unique."""
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert events[0]["engine"] == "metaflow"
    open_attempts = set()
    assert [e["type"] for e in events].count("engine_run_id") == 1  # Metaflow's own id, once
    for e in events[1:-1]:
        if e["type"] == "engine_run_id":
            continue
        key = (e["task_id"], e["attempt"])
        if e["type"] == "task_started":
            assert key not in open_attempts
            open_attempts.add(key)
        else:
            assert e["type"] == "task_finished" and key in open_attempts
            open_attempts.remove(key)
    assert not open_attempts


def test_linear_run_passes_output_and_parameters(mf_flow) -> None:
    path = mf_flow("linear.py")
    result, events = run_bridge(path, "run", "--greeting", "hi")
    assert result.returncode == 0, result.stderr
    check_stream(events)
    assert "message: HI WORLD" in result.stdout and "Task is starting." in result.stdout
    assert events[0]["params"] == {"greeting": "hi"}
    assert events[0]["graph"] == analyze_file(path).flows[0].graph.as_dict()
    assert [e["step"] for e in events if e["type"] == "task_finished"] == \
        ["start", "shout", "end"]
    assert all(e["status"] == "succeeded" and e["duration"] > 0
               for e in events if e["type"] == "task_finished")
    shout = tasks(events, "shout", "task_started")[0]
    log = events_path(path, "r1").parent / shout["logs"]["stdout"]
    assert "message: HI WORLD" in log.read_text()
    assert "end" not in log.read_text().split("message")[0]  # only this task's lines
    assert events[-1]["status"] == "succeeded" and events[-1]["exit_code"] == 0
    info = json.loads((events_path(path, "r1").parent / "run.json").read_text())
    assert info["engine"] == "metaflow" and info["status"] == "succeeded"
    record = RunRecord.read(events_path(path, "r1").parent / "run.json")
    assert info["metaflow_run_id"] and record.param_values == {"greeting": "hi"}
    assert record.cli_args() == ["--greeting", "hi"]
    assert set(info["step_hashes"]) == {"start", "shout", "end"}


def test_run_options_meant_for_metaflows_top_level_are_accepted(mf_flow) -> None:
    """The window's run options come after `run`; `--with retry` and `--metadata local`
    belong before it, where Metaflow accepts them."""
    path = mf_flow("linear.py")
    result, events = run_bridge(path, "run", "--with", "retry", "--metadata=local",
                                "--tag", "nightly", "--greeting", "hi")
    assert result.returncode == 0, result.stdout + result.stderr
    check_stream(events)
    assert "message: HI WORLD" in result.stdout


def test_branch_run(branch_run) -> None:
    _, result, events = branch_run
    assert result.returncode == 0, result.stderr
    check_stream(events)
    done = {e["step"] for e in events if e["type"] == "task_finished"}
    assert done == {"start", "left", "right", "join", "end"}
    assert "total 5" in result.stdout


def test_foreach_run_counts_splits(mf_flow) -> None:
    result, events = run_bridge(mf_flow("foreach.py"), "run", "--count", "4")
    assert result.returncode == 0, result.stderr
    check_stream(events)
    assert tasks(events, "start")[0]["foreach_splits"] == 4
    assert len(tasks(events, "square")) == 4 and len(tasks(events, "join")) == 1
    assert len({e["task_id"] for e in events if e["type"] == "task_started"}) == 7


def test_flowdecks_client_tells_a_metaflow_engine_run_as_it_is(mf_flow) -> None:
    """Flowdeck's client lists a run of Metaflow's engine with its status from the events
    (finished and successful agree, and each task's state), and asking for
    its artifacts says where they are instead of showing a task that has none."""
    path = mf_flow("foreach.py")
    result, events = run_bridge(path, "run", "--count", "3", "--tag", "nightly")
    assert result.returncode == 0, result.stderr
    name = analyze_file(path).flows[0].name
    namespace(None)
    run = Flow(name, root=path.parent / ".flowdeck").latest_run
    engine_id = json.loads((events_path(path, "r1").parent / "run.json").read_text())[
        "metaflow_run_id"]
    assert run.metaflow_pathspec == f"{name}/{engine_id}"
    assert run.successful and run.finished
    assert "nightly" in run.user_tags and f"user:{FALLBACK_USER}" in run.system_tags
    end = run["end"].task
    assert end.successful and end.finished
    squares = list(run["square"])
    assert len(squares) == 3 and all(t.successful and t.finished for t in squares)
    with pytest.raises(ClientError, match="ran on Metaflow's engine") as caught:
        _ = run.data
    assert f"Task('{name}/{engine_id}/end/{end.id}').data" in str(caught.value)
    with pytest.raises(ClientError, match="Metaflow's client"):
        _ = end["values"]


def test_nested_foreach_run(mf_flow) -> None:
    result, events = run_bridge(mf_flow("nested_foreach.py"), "run", "--max-workers", "8")
    assert result.returncode == 0, result.stderr
    check_stream(events)
    assert events[0]["max_workers"] == 8
    assert [e["foreach_splits"] for e in tasks(events, "pick")] == [3, 3]
    assert len(tasks(events, "combine")) == 6 and len(tasks(events, "inner_join")) == 2
    assert len(tasks(events, "outer_join")) == 1
    assert "pairs ['a1', 'a2', 'a3', 'b1', 'b2', 'b3']" in result.stdout


def test_retrying_run_reports_both_attempts(mf_flow) -> None:
    result, events = run_bridge(mf_flow("retrying.py"))
    assert result.returncode == 0, result.stderr
    check_stream(events)
    flaky = tasks(events, "flaky")
    assert [(e["attempt"], e["status"], e["will_retry"]) for e in flaky] == \
        [(0, "failed", True), (1, "succeeded", False)]
    assert flaky[0]["error"]["type"] == "RuntimeError"
    assert [e["attempt"] for e in tasks(events, "flaky", "task_started")] == [0, 1]
    assert events[-1]["status"] == "succeeded"


def test_failing_then_resumed_run(mf_flow) -> None:
    path = mf_flow("failing.py")
    result, events = run_bridge(path, run_id="first")
    assert result.returncode == 1
    check_stream(events)
    divide = tasks(events, "divide")
    assert [(e["status"], e["will_retry"]) for e in divide] == [("failed", False)]
    error = divide[0]["error"]
    assert error["type"] == "ZeroDivisionError" and error["message"] == "division by zero"
    assert f'File "{path}", line 17, in divide' in error["traceback"]
    assert "metaflow" not in error["traceback"].replace(str(path), "")
    finished = events[-1]
    assert (finished["status"], finished["exit_code"]) == ("failed", 1)
    assert finished["error"]["step"] == "divide"
    assert not tasks(events, "end", "task_started")

    path.write_text(path.read_text().replace("FIX_ME = False", "FIX_ME = True"))
    result, events = run_bridge(path, "resume", "--origin-run-id", "first", run_id="second")
    assert result.returncode == 0, result.stderr + result.stdout
    check_stream(events)
    assert events[0]["origin_run_id"] == "first"
    start = tasks(events, "start")
    assert [(e["status"], e["attempt"]) for e in start] == [("reused", 0)]
    assert start[0]["origin"] == "first/start/1"  # our run id, so the window finds its logs
    assert tasks(events, "start", "task_started")[0]["reused"] is True
    assert [e["status"] for e in tasks(events, "divide")] == ["succeeded"]
    assert events[-1]["status"] == "succeeded"
    assert "result 1.0" in result.stdout


def test_resume_from_a_chosen_step(metaflow_linear_run) -> None:
    path, result, _ = metaflow_linear_run
    assert result.returncode == 0, result.stderr
    result, events = run_bridge(path, "resume", "shout", "end", "--origin-run-id", "r1",
                                run_id="again")
    assert result.returncode == 0, result.stderr
    assert "resuming from shout" in result.stderr
    assert [e["status"] for e in tasks(events, "start")] == ["reused"]
    assert [e["status"] for e in tasks(events, "shout")] == ["succeeded"]


def test_usage_errors_say_what_to_do(tmp_path: Path) -> None:
    env = bridge_env("x")
    missing = subprocess.run([sys.executable, "-m", "flowdeck.engines.metaflow_bridge",
                              str(tmp_path / "nope.py"), "run"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    (tmp_path / "plain.py").write_text("x = 1\n")
    plain = subprocess.run([sys.executable, "-m", "flowdeck.engines.metaflow_bridge",
                            str(tmp_path / "plain.py")], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode == 2 and "defines no flow" in plain.stderr
    assert not (tmp_path / ".flowdeck").exists()


TWO_FLOWS = """\
from metaflow import FlowSpec, step


class FirstFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self):
        self.next(self.end)

    @step
    def end(self):
        print("first end")


class SecondFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass{second_end}


if __name__ == "__main__":
    FirstFlow()
"""


def test_the_bridge_takes_the_flow_the_file_starts_not_the_last(tmp_path: Path) -> None:
    """`python FILE run` runs FirstFlow; the bridge took the last class (SecondFlow), and a
    lint error in SecondFlow, which never runs, refused the run."""
    from flowdeck.engines.metaflow_bridge import load_flow
    good, bad = tmp_path / "two.py", tmp_path / "two_bad.py"
    good.write_text(TWO_FLOWS.format(second_end=""))
    bad.write_text(TWO_FLOWS.format(second_end="\n        self.next(self.start)"))
    assert load_flow(str(good)).name == "FirstFlow"
    assert load_flow(str(bad)).name == "FirstFlow"
    none = tmp_path / "none.py"
    none.write_text(TWO_FLOWS.format(second_end="").split("if __name__")[0])
    with pytest.raises(UsageError, match="runs none of them"):
        load_flow(str(none))


def test_a_launch_of_the_started_flow_is_recorded_where_its_launcher_follows(
        tmp_path: Path) -> None:
    """The window's and `flowdeck run`'s path (build_launch, then the bridge): the run's
    events land where the launch follows them, under the flow Metaflow ran."""
    pytest.importorskip("metaflow")
    from flowdeck.engines.launching import build_launch
    path = tmp_path / "two.py"
    path.write_text(TWO_FLOWS.format(second_end=""))
    spec = build_launch(str(path), "FirstFlow", "metaflow", ["run"])
    env = {**child_env(), **spec.env}
    for name in ("USER", "USERNAME", "METAFLOW_USER"):
        env.pop(name, None)
    result = subprocess.run(spec.argv, cwd=spec.cwd, env=env, capture_output=True,
                            text=True, timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    events = read_events(Path(spec.events_path))
    assert events and events[-1]["type"] == "run_finished", result.stderr
    assert events[-1]["status"] == "succeeded"
    assert {e["step"] for e in events if e.get("step")} == {"start", "middle", "end"}
    assert not (tmp_path / ".flowdeck" / "SecondFlow").exists()


def _start_sleepy(path: Path, run_id: str, new_session: bool = False,
                  own_group: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flowdeck.engines.metaflow_bridge", str(path), "run"],
                            cwd=path.parent, env=bridge_env(run_id), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            start_new_session=new_session,
                            process_group=0 if own_group else None)


def _wait_for_naps(proc: subprocess.Popen[str], path: Path, run_id: str) -> list[int]:
    """Task pids of nap_a and nap_b once both are running (from the event stream)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        started = [e for e in read_events(events_path(path, run_id))
                   if e["type"] == "task_started" and e["step"].startswith("nap")]
        if len(started) == 2:
            return [int(e["pid"]) for e in started]
        assert proc.poll() is None, "the bridge ended before its tasks started"
        time.sleep(0.05)
    raise AssertionError("the nap tasks never started")


def _kill_group(pgid: int) -> None:
    """Test clean-up: whatever a failed assertion left running of a run's group."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture
def sleepy_runs():
    """Bridges started by a stop test; their groups are killed even if the test fails."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        _kill_group(proc.pid)
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_sigint_to_the_group_stops_everything(mf_flow, sleepy_runs) -> None:
    path = mf_flow("sleepy.py")
    proc = _start_sleepy(path, "stop1", new_session=True)
    sleepy_runs.append(proc)
    task_pids = _wait_for_naps(proc, path, "stop1")
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGINT
    events = read_events(events_path(path, "stop1"))
    check_stream(events)
    assert events[-1]["status"] == "cancelled"
    assert {e["status"] for e in events if e["type"] == "task_finished"
            and e["step"].startswith("nap")} == {"cancelled"}
    deadline = time.monotonic() + 10
    while any(process_alive(p) for p in task_pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(process_alive(p) for p in task_pids)
    assert _group_gone_within(proc.pid, 10), "a process of the run's group survived the stop"


def _group_gone_within(pgid: int, seconds: float) -> bool:
    """The group disappears once its last member is reaped (zombies still count for a moment)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_sigterm_to_the_bridge_alone_stops_everything(mf_flow, sleepy_runs) -> None:
    path = mf_flow("sleepy.py")
    proc = _start_sleepy(path, "stop2", new_session=False)
    sleepy_runs.append(proc)
    task_pids = _wait_for_naps(proc, path, "stop2")
    proc.terminate()
    proc.communicate(timeout=30)
    events = read_events(events_path(path, "stop2"))
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while any(process_alive(p) for p in task_pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(process_alive(p) for p in task_pids)


def test_artifacts_of_a_metaflow_task_come_from_metaflows_client(metaflow_linear_run) -> None:
    path, result, _ = metaflow_linear_run
    assert result.returncode == 0, result.stderr
    root = path.parent / ".flowdeck"
    answer = subprocess.run([sys.executable, "-m", "flowdeck.engines.inspect_task", str(root),
                             "MfLinearFlow", "r1", "shout", "2"], env=child_env(),
                            cwd=Path("/"), capture_output=True, text=True, timeout=60)
    assert answer.returncode == 0, answer.stderr
    data = json.loads(answer.stdout)
    assert data["error"] is None
    by_name = {a["name"]: a for a in data["artifacts"]}
    assert by_name["message"]["preview"] == "'HELLO WORLD'"
    assert by_name["words"]["type"] == "list"


# -- our static graph equals Metaflow's own ----------------------------------------------


def metaflow_graph(source: Path, tmp_path: Path, output_raw: MetaflowOutputRaw) -> dict:
    path = tmp_path / source.name
    path.write_text(source.read_text())
    return output_raw.run(path, tmp_path).graph()


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_static_graph_equals_metaflows_output_raw(path: Path, tmp_path: Path,
                                                  metaflow_output_raw: MetaflowOutputRaw) -> None:
    ours = analyze_file(path).flows
    assert len(ours) == 1 and ours[0].ok and ours[0].engine == "metaflow"
    theirs = metaflow_graph(path, tmp_path, metaflow_output_raw)
    mine = ours[0].graph.as_dict()
    assert {n: {k: v.get(k) for k in FIELDS} for n, v in mine["graph"].items()} == \
        {n: {k: v.get(k) for k in FIELDS} for n, v in theirs["graph"].items()}
    assert mine["graph_structure"] == theirs["graph_structure"]


def test_a_file_that_never_starts_its_flow_fails_with_the_fix(mf_flow) -> None:
    path = mf_flow("linear.py")
    path.write_text(path.read_text().replace("    MfLinearFlow()", "    pass"))
    result, events = run_bridge(path)
    assert result.returncode == 1
    assert events[-1]["status"] == "failed"
    assert 'if __name__ == "__main__": MfLinearFlow()' in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="process groups are POSIX")
def test_sigterm_to_a_group_leading_bridge_spares_other_members(mf_flow) -> None:
    """Like `bridge ... | tee log`: the bridge leads the group, but only its own tree is killed."""
    path = mf_flow("sleepy.py")
    proc = _start_sleepy(path, "stop3", own_group=True)
    neighbour = None
    try:
        neighbour = subprocess.Popen(["sleep", "60"], process_group=proc.pid)
        task_pids = _wait_for_naps(proc, path, "stop3")
        proc.terminate()
        proc.communicate(timeout=30)
        events = read_events(events_path(path, "stop3"))
        assert events[-1]["status"] == "cancelled"
        deadline = time.monotonic() + 10
        while any(process_alive(p) for p in task_pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(process_alive(p) for p in task_pids)
        assert neighbour.poll() is None
    finally:
        _kill_group(proc.pid)
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()


def test_records_sharing_one_line_are_read_apart() -> None:
    """Parallel clones write at the same moment; two records can arrive on one line."""
    parser = MetaflowLogParser()
    line = (f"{TS} [{R}/left/2 (pid 11)] Cloning previously run task 9/left/2"
            f"{TS} [{R}/right/3 (pid 12)] Cloning previously run task 9/right/3")
    events = [e for part in split_records(line) for e in parser.feed(part).events]
    assert [(e["step"], e["status"]) for e in events if e["type"] == "task_finished"] == [
        ("left", "reused"), ("right", "reused")]


def test_a_resumed_run_accounts_for_every_task_metaflow_recorded(branch_run) -> None:
    """Whatever the log lines said, a finished resume leaves no step without its tasks."""
    path, result, _ = branch_run
    assert result.returncode == 0, result.stderr
    result, events = run_bridge(path, "resume", "end", "--origin-run-id", "r1", run_id="again")
    assert result.returncode == 0, result.stderr
    fold = RunFold()
    for event in events:
        fold.apply(event)
    assert fold.status == "succeeded"
    assert {s: v.status for s, v in fold.steps.items()} == {
        "start": "reused", "left": "reused", "right": "reused", "join": "reused",
        "end": "succeeded"}


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_output_dot_prints_the_graph_metaflow_prints(path: Path, tmp_path: Path) -> None:
    """`output-dot` on Flowdeck's engine prints Metaflow's Graphviz text, byte for byte."""
    pytest.importorskip("metaflow")
    copy = tmp_path / path.name
    copy.write_text(path.read_text())
    env = child_env(METAFLOW_USER="tester")
    theirs = subprocess.run([sys.executable, str(copy), "output-dot"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=WAIT_S)
    ours = subprocess.run([sys.executable, "-m", "flowdeck.engines.as_metaflow", str(copy),
                           "output-dot"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=WAIT_S)
    assert theirs.returncode == 0 and ours.returncode == 0, theirs.stderr + ours.stderr
    assert ours.stdout == theirs.stdout and ours.stdout.startswith("digraph ")


def test_flowdeck_run_of_a_metaflow_run_refused_before_its_tasks_says_run_again(
        mf_flow) -> None:
    """Metaflow refused the parameter before any task: `flowdeck run` said "Resume it", and
    that resume continued Metaflow's latest run, another one, to a success (review)."""
    path = mf_flow("foreach.py")
    done = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", "--engine",
                           "metaflow", str(path), "--count", "abc"], cwd=path.parent,
                          env=child_env(), capture_output=True, text=True, timeout=WAIT_S)
    assert done.returncode != 0
    told = done.stdout + done.stderr
    assert "Run it again once fixed" in told and "flowdeck resume" not in told, told


# -- how each of Metaflow's failure shapes reads -------------------------------------------

def write_flow(folder: Path, name: str, source: str) -> Path:
    """A Metaflow flow of the test's own in a fresh folder (not a sample: the samples are
    compared with Metaflow's graph by other tests, which need no failing flows)."""
    pytest.importorskip("metaflow")
    path = folder / name
    path.write_text(source)
    return path


TIMING_OUT = """\
import time
from metaflow import FlowSpec, step, timeout


class TimingOut(FlowSpec):
    @timeout(seconds=1)
    @step
    def start(self):
        time.sleep(30)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TimingOut()
"""


def test_a_timeout_reads_as_metaflow_names_it(tmp_path: Path) -> None:
    """@timeout's failure is a MetaflowException printed as its headline and a `>` stack,
    not a traceback: it reads as TimeoutException with Metaflow's message and the step's
    own line (it read `TaskFailed: >      time.sleep(30)`, with Metaflow's frames)."""
    path = write_flow(tmp_path, "timing_out.py", TIMING_OUT)
    result, events = run_bridge(path)
    assert result.returncode == 1
    error = tasks(events, "start")[0]["error"]
    assert error["type"] == "TimeoutException"
    assert error["message"] == "Step start timed out after 0 hours, 0 minutes, 1 seconds"
    assert error["traceback"].splitlines() == [
        "Traceback (most recent call last):",
        f'  File "{path}", line 9, in start',
        "    time.sleep(30)",
        f"TimeoutException: {error['message']}"]
    assert events[-1]["error"]["type"] == "TimeoutException"


def test_metaflows_other_failure_shapes_read_as_what_they_are() -> None:
    """A MetaflowException the step raises, and click's `Aborted!` for a
    KeyboardInterrupt, as Metaflow 2.19 prints them for a task."""
    raised = error_from_lines(["<flow S step start> failed:", "Flow failed:", "custom msg", ""])
    assert (raised["type"], raised["message"]) == ("MetaflowException", "custom msg")
    other = error_from_lines(["<flow S step start[0] (input: 1)> failed:",
                              "Not found in file /f.py on line 3:", "no such thing"])
    assert other["type"] == "MetaflowException"
    assert other["message"] == "Not found: no such thing"
    assert 'File "/f.py", line 3' in other["traceback"]
    aborted = error_from_lines(["", "Aborted!"])
    assert aborted["type"] == "Aborted" and "KeyboardInterrupt" in aborted["message"]


CAUGHT_AFTER_RETRY = """\
from metaflow import FlowSpec, catch, retry, step


class CaughtAfterRetry(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.work, foreach="items")

    @catch(var="err")
    @retry(times=1, minutes_between_retries=0)
    @step
    def work(self):
        if self.input == 1:
            raise ValueError("always fails for 1")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CaughtAfterRetry()
"""


def test_a_failure_catch_kept_going_after_is_recorded(tmp_path: Path) -> None:
    """Metaflow ends a task whose every attempt failed under @catch "successfully"; its
    client says successful=False. The bridge records the caught error as Flowdeck's engine
    does (`caught_error`), so Flowdeck's client says the same (it read as a plain success)."""
    path = write_flow(tmp_path, "caught_after_retry.py", CAUGHT_AFTER_RETRY)
    result, events = run_bridge(path)
    assert result.returncode == 0, result.stderr + result.stdout
    work = tasks(events, "work")
    failing = [e for e in work if e["attempt"] == 1]
    assert len(failing) == 1 and failing[0]["status"] == "succeeded"
    caught = failing[0]["caught_error"]
    assert (caught["type"], caught["message"]) == ("ValueError", "always fails for 1")
    assert f'File "{path}", line 15, in work' in caught["traceback"]
    assert [e.get("caught_error") for e in work if e["attempt"] == 0 and
            e["status"] == "succeeded"] == [None]  # the item that passed
    namespace(None)
    run = Flow("CaughtAfterRetry", root=path.parent / ".flowdeck").latest_run
    by_id = {t.id: t for t in run["work"]}
    assert not by_id[failing[0]["task_id"]].successful
    assert by_id[failing[0]["task_id"]].finished
    assert sum(t.successful for t in by_id.values()) == 1 and run.successful


def test_a_caught_timeout_reads_up_to_its_own_line() -> None:
    """@catch prints format_exc() behind `>  `; a timeout's message is followed by its own
    `>`-marked stack, which is not the exception's message."""
    caught = caught_error([
        "sleeping", "@catch caught an exception from <flow T step start>",
        ">  Traceback (most recent call last):",
        '>    File "/x/metaflow/task.py", line 113, in _exec_step_function',
        ">      step_function()",
        '>    File "/f.py", line 11, in start',
        ">      time.sleep(30)",
        ">  metaflow.plugins.timeout_decorator.TimeoutException: Step start timed out",
        ">  Stack when the timeout was raised:",
        '>  >    File "/f.py", line 19, in <module>'])
    assert caught is not None
    assert caught["type"] == "metaflow.plugins.timeout_decorator.TimeoutException"
    assert caught["message"] == "Step start timed out"
    assert caught["traceback"].splitlines()[1:3] == [
        '  File "/f.py", line 11, in start', "    time.sleep(30)"]
    assert caught_error(["Task is starting.", "no catch here"]) is None


FAILS_UNTIL_FIXED = """\
import os
from metaflow import FlowSpec, Parameter, step


class FailsUntilFixed(FlowSpec):
    alpha = Parameter("alpha", default=0.5, type=float)
    count = Parameter("count", default=1, type=int)
    word = Parameter("word", default="hi")

    @step
    def start(self):
        self.v = self.alpha * self.count
        self.next(self.work)

    @step
    def work(self):
        if not os.path.exists("fixed"):
            raise KeyError("not fixed yet")
        self.next(self.end)

    @step
    def end(self):
        print("v", self.v, self.word)


if __name__ == "__main__":
    FailsUntilFixed()
"""


def flowdeck_cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`flowdeck ARGS` in the flow's folder, as a user types it in a terminal."""
    return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", *args], cwd=path.parent,
                          env=child_env(METAFLOW_USER="tester"), capture_output=True,
                          text=True, timeout=WAIT_S)


def run_records(path: Path, flow: str) -> list[RunRecord]:
    """The flow's run records, oldest first."""
    runs = path.parent / ".flowdeck" / flow / "runs"
    return sorted((RunRecord.read(p) for p in runs.glob("*/run.json")), key=lambda r: r.start)


def test_flowdeck_resume_on_metaflow_records_its_origin(tmp_path: Path) -> None:
    """`flowdeck resume --engine metaflow` names no origin: Metaflow picks its latest run,
    and the bridge records that run as the origin (it wrote `origin_run_id: null`)."""
    path = write_flow(tmp_path, "fails_until_fixed.py", FAILS_UNTIL_FIXED)
    failed = flowdeck_cli(path, "run", "--engine", "metaflow", str(path))
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    (tmp_path / "fixed").write_text("")
    resumed = flowdeck_cli(path, "resume", "--engine", "metaflow", str(path))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    first, second = run_records(path, "FailsUntilFixed")
    assert second.origin_run_id == first.run_id and first.origin_run_id is None
    events = read_events(path.parent / ".flowdeck" / "FailsUntilFixed" / "runs" /
                         second.run_id / "events.jsonl")
    assert events[0]["origin_run_id"] == first.run_id
    assert tasks(events, "start")[0]["origin"] == f"{first.run_id}/start/1"


def test_a_resumed_run_records_the_origins_parameter_values_typed(tmp_path: Path) -> None:
    """Metaflow's resume reuses the origin's parameter values; the bridge recorded the
    defaults (alpha 0.5 for a run of `--alpha 2`), from the resume's command line, which
    has none. Given values are typed as defaults are (2.0, not '2'), and the record's
    command line gives them back."""
    path = write_flow(tmp_path, "fails_until_fixed.py", FAILS_UNTIL_FIXED)
    failed = flowdeck_cli(path, "run", "--engine", "metaflow", str(path), "--alpha", "2",
                          "--word", "yo")
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    (tmp_path / "fixed").write_text("")
    resumed = flowdeck_cli(path, "resume", "--engine", "metaflow", str(path))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "v 2.0 yo" in resumed.stdout  # what Metaflow's resume computed with
    first, second = run_records(path, "FailsUntilFixed")
    expected = {"alpha": 2.0, "count": 1, "word": "yo"}
    assert first.param_values == expected and second.param_values == expected
    assert isinstance(first.param_values["alpha"], float)
    assert second.cli_args() == ["--alpha", "2", "--count", "1", "--word", "yo"]
    events = read_events(path.parent / ".flowdeck" / "FailsUntilFixed" / "runs" /
                         second.run_id / "events.jsonl")
    assert events[0]["params"] == expected
    # the window's resume names the origin by our id: the same values
    again, events = run_bridge(path, "resume", "work", "--origin-run-id", second.run_id,
                               run_id="third")
    assert again.returncode == 0, again.stderr + again.stdout
    assert events[0]["params"] == expected and events[0]["origin_run_id"] == second.run_id


def test_a_resume_naming_no_origin_leaves_the_pick_to_metaflow(tmp_path: Path,
                                                              monkeypatch) -> None:
    """With Metaflow's datastore set in its config, a stale `.metaflow/latest_run` beside
    the flow named another run: the bridge forced it on Metaflow, which "could not find
    run id" it (second review). Metaflow picks; its clone lines name the origin recorded."""
    path = write_flow(tmp_path, "fails_until_fixed.py", FAILS_UNTIL_FIXED)
    home = tmp_path / "mfhome"
    home.mkdir()
    (home / "config.json").write_text(json.dumps(
        {"METAFLOW_DATASTORE_SYSROOT_LOCAL": str(tmp_path / "configured")}))
    monkeypatch.setenv("METAFLOW_HOME", str(home))
    stale = tmp_path / ".metaflow" / "FailsUntilFixed"
    stale.mkdir(parents=True)
    (stale / "latest_run").write_text("1234567890")  # a run of another datastore
    failed = flowdeck_cli(path, "run", "--engine", "metaflow", str(path), "--alpha", "2")
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    (tmp_path / "fixed").write_text("")
    resumed = flowdeck_cli(path, "resume", "--engine", "metaflow", str(path))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "could not find run id" not in resumed.stdout + resumed.stderr
    first, second = run_records(path, "FailsUntilFixed")
    assert second.origin_run_id == first.run_id
    assert second.param_values["alpha"] == 2.0


def test_a_timeout_reads_the_same_whatever_line_lands_inside_it() -> None:
    """@timeout's logger line, on the task's other stream, arrived between "failed:" and
    "@timeout:" in one run of three: it read "TaskFailed: > time.sleep(10)" (second
    review). The lines as Metaflow 2.19 printed them that time."""
    lines = ["<flow TFlow step start> failed:",
             "2026-12-05 09:12:12.035 Step start timed out after 0 hours, 0 minutes, 2 seconds",
             "@timeout:",
             "Step start timed out after 0 hours, 0 minutes, 2 seconds",
             "Stack when the timeout was raised:",
             '>    File "/tmp/mf/tflow.py", line 11, in start',
             ">      helper()",
             '>    File "/tmp/mf/tflow.py", line 5, in helper',
             ">      time.sleep(10)", ""]
    for shown in (lines, [lines[0], *lines[2:]]):
        error = error_from_lines(shown)
        assert error is not None and error["type"] == "TimeoutException", error
        assert error["message"] == "Step start timed out after 0 hours, 0 minutes, 2 seconds"
        assert 'File "/tmp/mf/tflow.py", line 11, in start' in error["traceback"]


def test_a_json_parameter_is_recorded_as_its_value_given_or_not(tmp_path: Path) -> None:
    """A JSONType left at its default was recorded as its text ('{"a": 1}') and a given
    one as a dict: two runs of one flow recorded two types; a `separator=` parameter was
    recorded unsplit (second review). Both are the value now, as Flowdeck's engine
    records them (`parameter_text.separated`, one rule for both)."""
    from flowdeck.engines.metaflow_bridge import param_records_of
    path = tmp_path / "jsonflow.py"
    path.write_text(
        "from metaflow import FlowSpec, JSONType, Parameter, step\n\n\n"
        "class JsonFlow(FlowSpec):\n"
        "    cfg = Parameter(\"cfg\", type=JSONType, default='{\"a\": 1}')\n"
        "    words = Parameter(\"words\", default=\"x,y\", separator=\",\")\n\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n")
    flow = analyze_file(path).flows[0]
    assert [r.value for r in param_records_of(flow, [])] == [{"a": 1}, ["x", "y"]]
    assert [r.value for r in param_records_of(flow, ["--cfg", '{"b": 2}', "--words", "p,q"])
            ] == [{"b": 2}, ["p", "q"]]  # split at separator=, as the engine splits it
