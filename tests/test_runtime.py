"""The engine end to end: real `python flow.py` processes, real files, read back with the client."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import WAIT_S, child_env, process_alive, run_flow, stored_runs

from flowdeck import Flow, Run
from flowdeck.client import ClientError
from flowdeck.store.events import read_events


def runs_of(path: Path, flow: str) -> Flow:
    return Flow(flow, root=path.parent / ".flowdeck")


def assert_complete_stream(run: Run, status: str) -> list[dict]:
    """Every run, whatever its end, writes a parseable stream closed by run_finished."""
    events = read_events(run.dir / "events.jsonl")
    assert events[0]["type"] == "run_started" and events[-1]["type"] == "run_finished"
    assert events[-1]["status"] == status
    for e in events:
        assert e["v"] == 1 and isinstance(e["t"], float) and e["run_id"] == run.id
    started = {(e["task_id"], e["attempt"]) for e in events if e["type"] == "task_started"}
    finished = {(e["task_id"], e["attempt"]) for e in events if e["type"] == "task_finished"}
    assert started == finished
    return events


def test_readme_flow_runs_with_plain_python(flow_file) -> None:
    path = flow_file("train.py")
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    assert "best rate 0.01" in result.stdout
    run = runs_of(path, "TrainFlow").latest_run
    assert run.successful and run.data.best == 0.01
    assert [t.data.rate for t in run["fit"].tasks()] == [0.1, 0.01]
    assert run.parameters == {"rates": "0.1,0.01"}
    events = assert_complete_stream(run, "succeeded")
    started = events[0]
    assert started["params"] == {"rates": "0.1,0.01"}
    assert set(started["graph"]["graph"]) == {"start", "fit", "pick", "end"}
    fit_events = [e for e in events if e["type"] == "task_started" and e["step"] == "fit"]
    assert [e["foreach"] for e in fit_events] == [{"index": 0, "num_splits": 2},
                                                  {"index": 1, "num_splits": 2}]
    start_done = next(e for e in events if e["type"] == "task_finished" and e["step"] == "start")
    assert start_done["foreach_splits"] == 2
    assert {a["name"] for a in start_done["artifacts"]} >= {"grid", "rates"}


def test_parameters_from_the_command_line(flow_file) -> None:
    path = flow_file("train.py")
    result = run_flow(path, "run", "--rates", "0.3,0.04")
    assert result.returncode == 0, result.stderr
    run = runs_of(path, "TrainFlow").latest_run
    assert run.data.best == 0.04
    assert run.parameters == {"rates": "0.3,0.04"}


def test_datastore_sits_beside_the_flow_not_the_cwd(flow_file, tmp_path: Path) -> None:
    path = flow_file("train.py")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_flow(path, cwd=elsewhere).returncode == 0
    assert (path.parent / ".flowdeck" / "TrainFlow").is_dir()
    assert not (elsewhere / ".flowdeck").exists()
    home = tmp_path / "custom-home"
    assert run_flow(path, env=child_env(FLOWDECK_HOME=str(home))).returncode == 0
    assert Flow("TrainFlow", root=home).latest_run.successful


def test_run_id_chosen_by_the_caller(flow_file) -> None:
    path = flow_file("train.py")
    assert run_flow(path, env=child_env(FLOWDECK_RUN_ID="my-run-7")).returncode == 0
    assert Run("TrainFlow/my-run-7", root=path.parent / ".flowdeck").successful
    again = run_flow(path, "run", "--run-id", "my-run-7")
    assert again.returncode != 0 and "Traceback" not in again.stderr


def test_metaflow_idiom_help_show_and_typed_parameters(flow_file) -> None:
    path = flow_file("metaflow_idiom.py")
    help_text = run_flow(path, "--help")
    assert help_text.returncode == 0
    for word in ("run", "resume", "show", "--who", "whom to greet", "required"):
        assert word in help_text.stdout
    show = run_flow(path, "show")
    assert show.returncode == 0 and "Step start" in show.stdout and "=> end" in show.stdout
    assert "Build the greeting." in show.stdout
    missing = run_flow(path)
    assert missing.returncode == 2
    assert "Missing required parameter --extra" in missing.stderr
    bad = run_flow(path, "--times", "many", "--extra", "x")
    assert bad.returncode == 2 and "--times" in bad.stderr and "Traceback" not in bad.stderr
    ok = run_flow(path, "--who", "flowdeck", "--times", "2", "--loud", "--extra", "!")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("HELLO FLOWDECK !") == 2
    run = runs_of(path, "HelloFlow").latest_run
    flow_name, run_id, step_name, task_id = run["start"].task.data.info
    assert (flow_name, run_id, step_name, task_id) == ("HelloFlow", run.id, "start",
                                                       run["start"].task.id)
    assert run.parameters == {"who": "flowdeck", "times": 2, "loud": True, "extra": "!"}


def test_a_bare_call_in_a_function_of_the_script_runs_the_flow(tmp_path: Path) -> None:
    """`def main(): MyFlow()` then `main()`, as Metaflow runs it (it ran nothing, silently),
    also through a flow's own `__init__`; `MyFlow().run()` there runs once, as before."""
    path = tmp_path / "mainflow.py"
    source = (
        "from flowdeck import FlowSpec, step\n\n\n"
        "class MainFlow(FlowSpec):\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        super().__init__(*args, **kwargs)\n\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        print('end ran')\n\n\n"
        "def main():\n    MainFlow()\n    print('not reached: the call ends the script')\n\n\n"
        "if __name__ == \"__main__\":\n    main()\n")
    path.write_text(source)
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    assert "end ran" in result.stdout and "not reached" not in result.stdout
    assert len(runs_of(path, "MainFlow").runs()) == 1
    path.write_text(source.replace("    MainFlow()\n    print('not reached: the call ends the script')",
                                   "    MainFlow().run()\n    print('after the run')"))
    again = run_flow(path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("end ran") == 1 and "after the run" in again.stdout
    assert len(runs_of(path, "MainFlow").runs()) == 2


@pytest.mark.parametrize("start", [
    "flow = StartFlow()",                        # assigned
    "for cls in [StartFlow]:\n        cls()",    # a loop over flow classes
])
def test_making_the_flow_in_the_script_runs_it(tmp_path: Path, start: str) -> None:
    """As Metaflow runs them (they ran nothing and exited 0: a CI job passed without a
    run): the flow made in the script being run runs its command line, argv honoured."""
    path = tmp_path / "startflow.py"
    path.write_text(
        "from flowdeck import FlowSpec, Parameter, step\n\n\n"
        "class StartFlow(FlowSpec):\n"
        "    lr = Parameter('lr', default=0.1)\n\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        print('lr', self.lr)\n\n\n"
        f"if __name__ == '__main__':\n    {start}\n")
    result = run_flow(path, "run", "--lr", "3")
    assert result.returncode == 0, result.stderr
    assert "lr 3.0" in result.stdout and len(runs_of(path, "StartFlow").runs()) == 1


def test_a_flow_made_then_run_with_parameters_runs_once_with_them(tmp_path: Path) -> None:
    """`flow = MyFlow()` then `flow.run(lr=1)` (Flowdeck's API, two lines): the making
    does not run the command line first (it ran with the default and exited), and a flow
    made inside another call's arguments is found by its own position."""
    path = tmp_path / "twoline.py"
    body = (
        "from flowdeck import FlowSpec, Parameter, step\n\n\n"
        "class TwoFlow(FlowSpec):\n"
        "    lr = Parameter('lr', default=0.5)\n\n"
        "    @step\n    def start(self):\n        print('lr is', self.lr)\n"
        "        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n")
    path.write_text(body + "if __name__ == '__main__':\n    flow = TwoFlow()\n"
                    "    run = flow.run(lr=1)\n    print('RUN', run.successful)\n")
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    assert "lr is 1" in result.stdout and "RUN True" in result.stdout
    assert len(runs_of(path, "TwoFlow").runs()) == 1
    path.write_text(body + "if __name__ == '__main__':\n    print(repr(\n        TwoFlow()))\n")
    wrapped = run_flow(path, "run", "--lr", "2")
    assert wrapped.returncode == 0 and "lr is 2.0" in wrapped.stdout  # ran as Metaflow runs it


def test_a_flow_class_imported_into_the_script_runs_its_command_line(tmp_path: Path) -> None:
    package = tmp_path / "pkgflows"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(
        "from flowdeck import FlowSpec, Parameter, step\n\n\n"
        "class PkgFlow(FlowSpec):\n"
        "    lr = Parameter('lr', default=0.1)\n\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        print('lr', self.lr)\n")
    script = tmp_path / "launch.py"
    script.write_text("from pkgflows.train import PkgFlow\n\n"
                      "if __name__ == '__main__':\n    PkgFlow()\n")
    result = run_flow(script, "run", "--lr", "3")
    assert result.returncode == 0, result.stderr
    assert "lr 3.0" in result.stdout


def test_run_from_another_program_ignores_its_argv(flow_file, tmp_path: Path) -> None:
    flow_file("train.py")
    caller = tmp_path / "caller.py"
    caller.write_text(
        "import sys\n"
        "sys.argv = ['caller.py', '--unrelated', 'option']\n"
        "from train import TrainFlow\n"
        "run = TrainFlow().run(rates='0.5,0.06')\n"
        "print('RESULT', run.successful, run.data.best, len(run['fit'].tasks()), run.id)\n")
    result = subprocess.run([sys.executable, str(caller)], cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    assert line.split()[1:4] == ["True", "0.06", "2"]


def test_branches_nested_foreach_merge_retry_catch(flow_file) -> None:
    path = flow_file("branches.py")
    result = run_flow(path, "run", "--size", "3")
    assert result.returncode == 0, result.stderr
    run = runs_of(path, "BranchFlow").latest_run
    assert run.data.all_values == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert run.data.all_problems == ["builtins.ValueError: b2 is bad"]  # as Metaflow names it
    assert run.data.common == "same"
    join = run["join_sides"].task
    assert join.data.sides == ["L", "R"] and join.data.right_attempts == 1
    assert "side" not in join.data
    stacks = [t.data.stack for t in run["inner_each"].tasks()]
    assert stacks[:2] == [[(0, 2), (0, 3)], [(0, 2), (1, 3)]]
    right = run["right"].task
    assert right.attempt == 1 and right.successful
    events = assert_complete_stream(run, "succeeded")
    retried = [e for e in events if e["type"] == "task_finished" and e["step"] == "right"]
    assert [(e["status"], e["will_retry"]) for e in retried] == [("failed", True),
                                                                 ("succeeded", False)]
    caught = [e for e in events if e["type"] == "task_finished" and e.get("caught_error")]
    assert len(caught) == 1 and caught[0]["caught_error"]["message"] == "b2 is bad"


def test_a_failure_shows_the_exception_it_was_raised_from(tmp_path: Path) -> None:
    """`raise ... from err` (a library wrapping a KeyError): the cause is in the terminal,
    the task's stderr and the client's exception, as Python prints it; no engine frames."""
    path = tmp_path / "chained.py"
    path.write_text(
        "from flowdeck import FlowSpec, step\n\n\n"
        "class ValidationError(Exception):\n    pass\n\n\n"
        "class ChainFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n"
        "        try:\n            {}['columns']\n"
        "        except KeyError as err:\n"
        "            raise ValidationError('the config has no columns') from err\n"
        "        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    ChainFlow()\n")
    failed = run_flow(path)
    assert failed.returncode == 1
    cause = "The above exception was the direct cause of the following exception:"
    for text in (failed.stderr, runs_of(path, "ChainFlow").latest_run["start"].task.stderr,
                 runs_of(path, "ChainFlow").latest_run["start"].task.exception["traceback"]):
        assert "KeyError: 'columns'" in text and cause in text, text
        assert text.index("KeyError: 'columns'") < text.index(cause)
        assert 'chained.py", line 12, in start' in text and "flowdeck/" not in text


def test_failure_short_traceback_then_resume_reuses_finished_tasks(flow_file) -> None:
    path = flow_file("failing.py")
    failed = run_flow(path)
    assert failed.returncode == 1
    assert "ZeroDivisionError" in failed.stderr
    assert 'failing.py", line 16, in divide' in failed.stderr
    assert "flowdeck/" not in failed.stderr  # no engine frames
    origin = runs_of(path, "FailingFlow").latest_run
    assert origin.status == "failed"
    assert origin["divide"].task.exception["type"] == "ZeroDivisionError"
    assert_complete_stream(origin, "failed")
    path.write_text(path.read_text().replace("FIX_ME = False", "FIX_ME = True"))
    resumed = run_flow(path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    run = runs_of(path, "FailingFlow").latest_run
    assert run.origin_run_id == origin.id
    assert run["start"].task.status == "reused"
    assert run["start"].task.origin == f"{origin.id}/start/1"
    assert run["divide"].task.status == "succeeded"
    assert run.data.ratios == [1.0, 2.0, 3.0]
    events = assert_complete_stream(run, "succeeded")
    assert [e["status"] for e in events if e["type"] == "task_finished"] == [
        "reused", "succeeded", "succeeded"]
    named = run_flow(path, "resume", "end", "--origin-run-id", run.id)
    assert named.returncode == 0
    latest = runs_of(path, "FailingFlow").latest_run
    assert [latest[s].task.status for s in ("start", "divide", "end")] == [
        "reused", "reused", "succeeded"]
    unknown = run_flow(path, "resume", "nope")
    assert unknown.returncode == 2 and "no step nope" in unknown.stderr


def test_step_hashes_recorded_per_run_and_task(flow_file) -> None:
    path = flow_file("failing.py")
    run_flow(path)
    first = runs_of(path, "FailingFlow").latest_run
    path.write_text(path.read_text().replace("divisor = 1 if FIX_ME else 0",
                                             "divisor = 1 if FIX_ME else 1"))
    run_flow(path)
    second = runs_of(path, "FailingFlow").latest_run
    changed = {s for s in first.step_hashes if first.step_hashes[s] != second.step_hashes[s]}
    assert changed == {"divide"}
    assert second["divide"].task.metadata["source_hash"] == second.step_hashes["divide"]


@pytest.mark.parametrize("mode, message", [
    ("exit", "called sys.exit(3)"),
    ("unpicklable", "Artifact `lock` of type _thread.lock cannot be pickled"),
    ("missing", "self.items is not set"),
    ("scalar", "self.items is an int, not a list or other sequence. For 42 items, use list(range(42))."),
    ("unsized", "self.items (Unsized) has no length: len() raised TypeError: len() of "
                "unsized object. Give it a list or another sequence of the items."),
    ("empty", "self.items is empty"),
    ("generator", "Wrap it in list(...)"),
    ("crash", "exited with code 7"),
])
def test_misbehaving_steps_fail_with_a_clear_message(flow_file, mode: str, message: str) -> None:
    path = flow_file("misbehaving.py")
    result = run_flow(path, "--mode", mode)
    assert result.returncode == 1
    assert message in result.stderr
    assert "flowdeck/runtime.py" not in result.stderr and "flowdeck/task.py" not in result.stderr
    run = runs_of(path, "MisbehavingFlow").latest_run
    assert run.status == "failed"
    assert_complete_stream(run, "failed")


def test_binary_garbage_output_is_kept_and_printed_safely(flow_file) -> None:
    path = flow_file("misbehaving.py")
    result = run_flow(path, "--mode", "garbage")
    assert result.returncode == 0, result.stderr
    assert "partial line without newline" in result.stdout
    assert "\x07" not in result.stdout and "\x1b[0m" not in result.stdout
    task = runs_of(path, "MisbehavingFlow").latest_run["each"].tasks()[0]
    raw = (task.dir / "attempt-0.out").read_bytes()
    assert bytes(range(256)) in raw  # the log keeps the exact bytes


def test_parallel_workers_overlap_and_respect_the_limit(flow_file) -> None:
    path = flow_file("timing.py")
    result = run_flow(path, "--max-workers", "2", "--items", "4", "--work", "0.4")
    assert result.returncode == 0, result.stderr
    spans = runs_of(path, "TimingFlow").latest_run["join"].task.data.spans

    def concurrent_at(t: float) -> int:
        return sum(1 for began, ended in spans if began <= t < ended)
    peak = max(concurrent_at(began) for began, _ in spans)
    assert peak == 2


def test_timeout_fails_the_step_after_its_retries(flow_file) -> None:
    path = flow_file("timing.py")
    result = run_flow(path, "--items", "1", "--work", "0", "--hang", "true")
    assert result.returncode == 1
    assert "timed out after 1 s" in result.stderr
    run = runs_of(path, "TimingFlow").latest_run
    assert run["maybe_hang"].task.attempts == [0, 1]


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _start_sleepy(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(path)], cwd=path.parent, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _both_napping(path: Path) -> bool:
    runs = stored_runs("SleepyFlow", path.parent / ".flowdeck")
    if not runs:
        return False
    events = runs[0].events
    return sum(1 for e in events if e["type"] == "task_started" and
               e["step"] in ("nap_a", "nap_b")) == 2


def _has_printed(run: Run, step: str) -> bool:
    """The step's task has written output (its folder appears when the worker starts, a
    moment after its task_started event)."""
    try:
        return (run[step].task.dir / "attempt-0.out").exists()
    except ClientError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_cancels_cleanly(flow_file, sig: int) -> None:
    path = flow_file("sleepy.py")
    proc = _start_sleepy(path)
    _wait_for(lambda: _both_napping(path))
    run = runs_of(path, "SleepyFlow").latest_run
    _wait_for(lambda: _has_printed(run, "nap_a"))
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig
    assert "cancelled" in err and "Traceback" not in err
    events = assert_complete_stream(run, "cancelled")
    assert run.status == "cancelled"
    cancelled = {e["step"] for e in events if e["type"] == "task_finished"
                 and e["status"] == "cancelled"}
    assert cancelled == {"nap_a", "nap_b"}
    workers = [e["pid"] for e in events if e["type"] == "task_started"]
    for pid in workers:
        assert not process_alive(pid)
    assert run["start"].task.data.payload == list(range(1000))
    helper = int(out.split("napping with helper")[1].split()[0])
    assert not process_alive(helper)  # what a step started ends with its task



def test_sigkill_mid_run_leaves_finished_tasks_readable(flow_file) -> None:
    path = flow_file("sleepy.py")
    proc = _start_sleepy(path)
    _wait_for(lambda: _both_napping(path))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    run = runs_of(path, "SleepyFlow").latest_run
    assert run.status == "crashed" and not run.successful and not run.finished  # no end task
    assert run["start"].task.data.payload == list(range(1000))
    events = read_events(run.dir / "events.jsonl")
    assert events[0]["type"] == "run_started" and events[-1]["type"] != "run_finished"
    leftovers = [p for p in run.layout.root.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_large_array_round_trips_without_compression(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    path = tmp_path / "big.py"
    path.write_text(
        "import numpy as np\n"
        "from flowdeck import FlowSpec, step\n"
        "class BigFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.arr = np.random.default_rng(0).random(2_500_000)\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        self.arr[0] = -1.0\n"
        "        self.total = float(self.arr.sum())\n"
        "if __name__ == '__main__':\n"
        "    BigFlow().run()\n")
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    run = Flow("BigFlow", root=tmp_path / ".flowdeck").latest_run
    arr = run["start"].task.data.arr
    assert arr.shape == (2_500_000,) and arr.dtype == np.float64
    assert arr.flags.writeable
    assert np.array_equal(arr, np.random.default_rng(0).random(2_500_000))
    size = run["start"].task["arr"].size
    assert arr.nbytes <= size < arr.nbytes + 4096  # raw buffer, no compression
    assert run["end"].task.data.arr[0] == -1.0


def test_graph_command_prints_metaflow_shaped_json(tmp_path: Path) -> None:
    from conftest import EXAMPLES
    result = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "graph",
                             str(EXAMPLES / "train.py"), "--json"], env=child_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["graph_structure"] == ["start", [["fit"]], "pick", "end"]
    start = data["graph"]["start"]
    assert start["type"] == "split-foreach" and start["foreach_artifact"] == "grid"
    assert start["matching_join"] == "pick" and start["next"] == ["fit"]
    missing = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "graph",
                              str(tmp_path / "nope.py")], env=child_env(),
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_artifacts_defined_in_the_script_load_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "local_types.py"
    path.write_text(
        "from dataclasses import dataclass\n"
        "from flowdeck import FlowSpec, step\n"
        "@dataclass\n"
        "class Point:\n"
        "    x: int\n"
        "    y: int\n"
        "class LocalTypesFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.point = Point(1, 2)\n"
        "        self.double = lambda v: v * 2\n"
        "        self.plain = {'a': [1, 2]}\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        print(self.point.x + self.double(self.point.y))\n"
        "if __name__ == '__main__':\n"
        "    LocalTypesFlow().run()\n")
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    assert "5" in result.stdout
    data = Flow("LocalTypesFlow", root=tmp_path / ".flowdeck").latest_run.data
    assert (data.point.x, data.point.y) == (1, 2)  # a class from the script's __main__
    assert data.double(21) == 42
    assert data.plain == {"a": [1, 2]}


def test_a_damaged_blob_is_reported_not_misread(tmp_path: Path) -> None:
    from flowdeck.store.blobs import BlobStore
    store = BlobStore(tmp_path)
    ref = store.put("x", [1, 2, 3])
    assert store.get(ref.sha) == [1, 2, 3]
    store.path(ref.sha).write_bytes(b"not a blob at all")
    with pytest.raises(ValueError, match="is not a Flowdeck artifact blob"):
        store.get(ref.sha)


def test_a_bare_interpreter_runs_flows_with_only_the_core_on_its_path(tmp_path: Path) -> None:
    """A user's venv without flowdeck, cloudpickle or xxhash: the window puts core/ on PYTHONPATH."""
    import venv

    from conftest import CORE, EXAMPLES
    env_dir = tmp_path / "bare-venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    flow = tmp_path / "train.py"
    flow.write_text((EXAMPLES / "train.py").read_text())
    env = {k: v for k, v in child_env().items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(CORE)
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; "
                            "print([m for m in ('cloudpickle', 'xxhash', 'numpy') "
                            "if u.find_spec(m)])"], env=env, capture_output=True, text=True)
    assert probe.stdout.strip() == "[]"
    result = subprocess.run([str(python), str(flow)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert Flow("TrainFlow", root=tmp_path / ".flowdeck").latest_run.data.best == 0.01


SCRIPT_CLASSES_FLOW = '''
import dataclasses
import enum
import os

from flowdeck import FlowSpec, step


class Mode(enum.Enum):
    TRAIN = "train"
    EVAL = "eval"


@dataclasses.dataclass
class Settings:
    lr: float

    class Schedule:
        steps = 3


class Registry:
    def describe(self):
        return "registry"


class ClassesFlow(FlowSpec):
    @step
    def start(self):
        self.mode = Mode.TRAIN
        self.registry = Registry()
        self.schedule = Settings.Schedule()
        self.next(self.left, self.right)

    @step
    def left(self):
        self.settings = Settings(0.1)
        self.next(self.join)

    @step
    def right(self):
        self.settings = Settings(0.1)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.check)

    @step
    def check(self):
        if os.path.exists(MARK):  # a file: the environment does not reach Dask's workers
            raise RuntimeError("failing on purpose")
        assert self.mode is Mode.TRAIN, type(self.mode)
        assert isinstance(self.registry, Registry) and self.registry.describe() == "registry"
        assert isinstance(self.schedule, Settings.Schedule)
        assert self.settings == Settings(0.1)
        print("classes kept")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ClassesFlow()
'''


def test_the_scripts_classes_stay_themselves_from_task_to_task(tmp_path: Path) -> None:
    """An Enum member, an instance and dataclasses made in one task are of the script's own
    classes in the next (as in Metaflow, whose tasks import the script again): `is`,
    isinstance and a join's merge of equal dataclasses hold, also in a resumed run (a new
    process, the reused tasks' values); the client, without the script, still reads them."""
    path = tmp_path / "classes.py"
    mark = tmp_path / "fail-now"
    path.write_text(SCRIPT_CLASSES_FLOW.replace("MARK", repr(str(mark))))
    done = run_flow(path)
    assert done.returncode == 0, done.stderr
    assert "classes kept" in done.stdout
    mark.touch()
    failed = run_flow(path)
    assert failed.returncode == 1 and "failing on purpose" in failed.stderr
    mark.unlink()
    resumed = run_flow(path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "classes kept" in resumed.stdout
    run = runs_of(path, "ClassesFlow").latest_run
    assert run.successful and run.data.mode.value == "train"
    assert type(run.data.settings).__name__ == "Settings" and run.data.settings.lr == 0.1


FIXED_CLASS_FLOW = """
from flowdeck import FlowSpec, step


class Scaler:
    def __init__(self, k):
        self.k = k

    def apply(self, x):
        return x / self.k


class ScaleFlow(FlowSpec):
    @step
    def start(self):
        self.scaler = Scaler(0)
        self.next(self.end)

    @step
    def end(self):
        print("result", self.scaler.apply(10))


if __name__ == "__main__":
    ScaleFlow()
"""


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_resumed_run_runs_the_scripts_class_as_fixed(tmp_path: Path, executor: str) -> None:
    """The value stored by `start` carries its class's methods as they were; after the
    user fixed `apply`, resume ran the stored copy again (a traceback at <dynamic-code>).
    The script's class keeps what the script now says, as in Metaflow; on Dask's workers
    (which get the class by value) too."""
    if executor == "dask":
        pytest.importorskip("distributed")
    path = tmp_path / "scale.py"
    path.write_text(FIXED_CLASS_FLOW)
    failed = run_flow(path, "run", "--executor", executor, timeout=WAIT_S)
    assert failed.returncode == 1 and "ZeroDivisionError" in failed.stderr
    assert f'File "{path}", line 10, in apply' in failed.stderr  # the file, not dynamic code
    path.write_text(FIXED_CLASS_FLOW.replace("x / self.k", "x / (self.k or 1)"))
    resumed = run_flow(path, "resume", "--executor", executor, timeout=WAIT_S)
    assert resumed.returncode == 0, resumed.stderr
    assert "result 10.0" in resumed.stdout and "<dynamic-code>" not in resumed.stderr


def test_a_default_goes_through_its_parameters_type(tmp_path: Path) -> None:
    """As in Metaflow (click converts a default with the parameter's type): a string default
    of a float parameter is a float in the step, an int default of a float one is 1.0; a
    default the type refuses is named as the file's mistake, before any task runs."""
    path = tmp_path / "typed.py"
    path.write_text(
        "from flowdeck import FlowSpec, Parameter, step\n\n\n"
        "class TypedFlow(FlowSpec):\n"
        "    lr = Parameter('lr', default='0.01', type=float)\n"
        "    epochs = Parameter('epochs', default='10', type=int)\n"
        "    ratio = Parameter('ratio', default=1, type=float)\n"
        "    shuffle = Parameter('shuffle', default='false', type=bool)\n"
        "    tag_name = Parameter('tag_name', default=5, type=str)\n\n"
        "    @step\n    def start(self):\n"
        "        print('got', repr(self.lr), repr(self.epochs), repr(self.ratio),\n"
        "              repr(self.shuffle), repr(self.tag_name))\n"
        "        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    TypedFlow()\n")
    done = run_flow(path)
    assert done.returncode == 0, done.stderr
    assert "got 0.01 10 1.0 False '5'" in done.stdout
    assert runs_of(path, "TypedFlow").latest_run.data.lr == 0.01
    path.write_text(path.read_text().replace("default='0.01'", "default='abc'"))
    wrong = run_flow(path)
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
    assert "Parameter `lr` has type float, but its default 'abc' is not a valid float" \
        in wrong.stderr


def test_a_failed_task_keeps_what_it_set_and_resume_runs_it_again(tmp_path: Path) -> None:
    """As in Metaflow, a step that raised has its artifacts stored (`task.data` shows the
    state it failed in); it is still a failure, and resume runs it again."""
    path = tmp_path / "partial.py"
    mark = tmp_path / "fail-now"
    mark.touch()
    path.write_text(
        "import os\nfrom flowdeck import FlowSpec, Parameter, step\n\n\n"
        "class PartialFlow(FlowSpec):\n    lr = Parameter('lr', default=0.5)\n\n"
        "    @step\n    def start(self):\n        self.partial = [1, 2, 3]\n"
        f"        if os.path.exists({str(mark)!r}):\n"
        "            raise ValueError('boom')\n"
        "        self.done = True\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    PartialFlow()\n")
    failed = run_flow(path)
    assert failed.returncode == 1 and "ValueError: boom" in failed.stderr
    task = runs_of(path, "PartialFlow").latest_run["start"].task
    assert not task.successful
    assert task.data.partial == [1, 2, 3] and task.data.lr == 0.5
    assert not hasattr(task.data, "done")
    mark.unlink()
    resumed = run_flow(path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    again = runs_of(path, "PartialFlow").latest_run["start"].task
    assert again.successful and again.data.done is True


@pytest.mark.parametrize("failure, message", [
    ("raise KeyboardInterrupt", "raised KeyboardInterrupt"),
    ("self.lock = threading.Lock()", "Artifact `lock` of type _thread.lock cannot be pickled"),
])
def test_a_task_failed_by_an_interrupt_or_an_unstorable_value_keeps_the_rest(
        tmp_path: Path, failure: str, message: str) -> None:
    """A KeyboardInterrupt the step raised (no stop) fails it like any exception, and a
    value that cannot be stored fails it too: both kept nothing of what the step had set.
    The storable values are kept; the unstorable one is left out."""
    path = tmp_path / "partial.py"
    path.write_text(
        "import threading\nfrom flowdeck import FlowSpec, step\n\n\n"
        "class PartialFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.partial = [1, 2, 3]\n"
        f"        {failure}\n"
        "        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    PartialFlow()\n")
    failed = run_flow(path)
    assert failed.returncode == 1 and message in failed.stderr, failed.stderr
    run = runs_of(path, "PartialFlow").latest_run
    assert run.status == "failed"
    task = run["start"].task
    assert not task.successful and task.data.partial == [1, 2, 3]
    assert not hasattr(task.data, "lock")


def test_current_tempdir_is_metaflows_configured_folder(tmp_path: Path) -> None:
    """`os.path.join(current.tempdir, name)` works as in Metaflow: "." unless
    $METAFLOW_TEMPDIR says otherwise (it was None, and the join raised TypeError)."""
    path = tmp_path / "temp.py"
    path.write_text(
        "from flowdeck import FlowSpec, current, step\n\n\n"
        "class TempFlow(FlowSpec):\n    @step\n    def start(self):\n"
        "        self.tempdir = current.tempdir\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    TempFlow()\n")
    assert run_flow(path).returncode == 0
    assert runs_of(path, "TempFlow").latest_run.data.tempdir == "."
    assert run_flow(path, env=child_env(METAFLOW_TEMPDIR=str(tmp_path))).returncode == 0
    assert runs_of(path, "TempFlow").latest_run.data.tempdir == str(tmp_path)


GRAPH_FLOW = '''import json, os
from metaflow import FlowSpec, Parameter, current, project, retry, step, timeout


@project(name="demo")
class GraphInfoFlow(FlowSpec):
    """Branches, a foreach, a parameter and a constant."""

    alpha = Parameter("alpha", default=1)
    K = 3

    @step
    def start(self):
        with open(os.environ["GRAPH_OUT"], "w") as out:
            json.dump(current.graph, out, default=str)
        self.items = [1, 2]
        self.next(self.a, self.b)

    @retry(times=2)
    @timeout(seconds=30)
    @step
    def a(self):
        """Side a."""
        self.next(self.j)

    @step
    def b(self):
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.jb)

    @step
    def jb(self, inputs):
        self.next(self.j)

    @step
    def j(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GraphInfoFlow()
'''


def test_current_graph_is_metaflows_graph_info(tmp_path: Path) -> None:
    """`current.graph` in a step: the dict real Metaflow gives for the same file (it
    raised AttributeError). Compared field by field against Metaflow 2.19 itself."""
    from flowdeck.engines.as_metaflow import ENTRY_MODULE
    path = tmp_path / "graph_info.py"
    path.write_text(GRAPH_FLOW)
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    for command, out in (([sys.executable, "-m", ENTRY_MODULE], ours), ([sys.executable], theirs)):
        env = child_env(METAFLOW_USER="tester", USER="tester", GRAPH_OUT=str(out))
        proc = subprocess.run([*command, path.name, "run"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    mine, real = json.loads(ours.read_text()), json.loads(theirs.read_text())
    for key in ("file", "start_step", "end_step", "parameters", "constants",
                "graph_structure", "doc"):
        assert mine[key] == real[key], key
    assert [d["name"] for d in mine["decorators"]] == [d["name"] for d in real["decorators"]]
    assert set(mine["steps"]) == set(real["steps"])
    for name, step in real["steps"].items():
        for field in ("name", "type", "line", "doc", "next", "foreach_artifact",
                      "matching_join"):
            assert mine["steps"][name].get(field) == step.get(field), (name, field)
        # the decorators a file gives, with every attribute, defaults too (Metaflow keeps
        # some defaults as strings, "2" where Flowdeck has 2: compared as text)
        assert [(d["name"], {k: str(v) for k, v in d["attributes"].items()})
                for d in mine["steps"][name]["decorators"]] == [
            (d["name"], {k: str(v) for k, v in d["attributes"].items()})
            for d in step["decorators"]], name
    assert [{k: str(v) for k, v in d["attributes"].items()} for d in mine["decorators"]] == [
        {k: str(v) for k, v in d["attributes"].items()} for d in real["decorators"]]


def test_a_progress_bar_shows_its_last_state_in_the_terminal(tmp_path: Path) -> None:
    """Carriage returns in a task's output act as a terminal's: each update overwrites the
    line, so the prefixed line shows what the bar showed last (they were U+FFFD marks
    between every update). Other control characters are still replaced."""
    from flowdeck.engine.terminal import clean_line
    assert clean_line(b"abcdef\rXY\r") == "XYcdef"  # a line, without its newline
    assert clean_line(b"bell\x07") == "bell\ufffd"
    assert clean_line(b"downloading 100 files\r\x1b[Kdone") == "done"  # erase-line
    assert clean_line(b"\x1b[31mAAAA\r\x1b[0mB") == "BAAA"  # escapes take no columns
    assert clean_line(b"\x1b[32mok\x1b[0m") == "\x1b[32mok\x1b[0m"  # colour kept otherwise
    path = tmp_path / "progress.py"
    path.write_text(
        "import sys\nfrom flowdeck import FlowSpec, step\n\n\n"
        "class BarFlow(FlowSpec):\n    @step\n    def start(self):\n"
        "        for i in range(5):\n"
        "            sys.stderr.write(f'\\rprogress {i * 25}%')\n"
        "            sys.stderr.flush()\n"
        "            time.sleep(0.05 if i == 0 else 0)\n"
        "        sys.stderr.write('\\n')\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    BarFlow()\n")
    path.write_text("import time\n" + path.read_text())
    # bytes as written: text mode's universal newlines would turn each \r into a line break
    result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=child_env(),
                            capture_output=True, timeout=WAIT_S)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    bar = [line for line in stderr.split("\n") if "progress" in line]
    # what a terminal shows of it: its live states (0% came apart) overwritten in place
    assert len(bar) == 1 and bar[0].split("\r")[-1].endswith("/start/1] progress 100%"), bar
    assert "\ufffd" not in stderr
    stored = runs_of(path, "BarFlow").latest_run["start"].task.stderr
    assert stored.startswith("\rprogress 0%\rprogress 25%")  # the log keeps every byte


def test_a_progress_bar_is_shown_while_it_runs(tmp_path: Path) -> None:
    """A bar redrawn with carriage returns (tqdm's, on stderr) shows its state as it goes,
    redrawn in place, not only once its line ends: a long step looked hung."""
    gate = tmp_path / "gate"
    path = tmp_path / "live.py"
    path.write_text(
        "import os, sys, time\nfrom flowdeck import FlowSpec, step\n\n\n"
        "class LiveBarFlow(FlowSpec):\n    @step\n    def start(self):\n"
        "        for i in range(3):\n"
        "            sys.stderr.write(f'\\rtraining {i * 50}%')\n"
        "            sys.stderr.flush()\n"
        "            time.sleep(0.05)\n"
        f"        while not os.path.exists({str(gate)!r}):\n"
        "            time.sleep(0.02)\n"
        "        sys.stderr.write('\\rtraining done\\n')\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    LiveBarFlow()\n")
    proc = subprocess.Popen([sys.executable, str(path)], cwd=tmp_path, env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + WAIT_S  # a liveness guard: the gate stays shut till then
    try:
        while b"training 100%" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.1)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 4096)
                assert chunk, seen  # the run ended without showing the bar's state
                seen += chunk
        assert b"training 100%" in seen, seen  # shown before its line ended
        assert b"\n" not in seen.split(b"training 0%")[-1]  # each state on the same line
    finally:
        gate.touch()
        rest = proc.communicate(timeout=WAIT_S)[1]
    final = (seen + rest).decode().split("\n")
    assert any(line.split("\r")[-1].rstrip().endswith("/start/1] training done")
               for line in final), final
    assert proc.returncode == 0


def test_the_next_line_covers_a_progress_bar_of_any_task() -> None:
    """Two tasks on one stream: a bar's state ends with a carriage return, so the next
    text written there, another task's line included, starts over it and covers it
    whole (a shorter line left the bar's end showing, in a terminal and in the log)."""
    import io

    from flowdeck.engine.terminal import TerminalEcho
    err = io.StringIO()
    echo = TerminalEcho("r", out=io.StringIO(), err=err)
    echo.output("train", "2", True, b"\repoch 1 of 10, loss 0.123456")
    echo.output("train", "3", True, b"ok\n")
    shown = err.getvalue()
    bar, line = shown.split("\r")[0], shown.split("\r")[1].split("\n")[0]
    assert bar.endswith("[r/train/2] epoch 1 of 10, loss 0.123456")
    assert line.rstrip().endswith("[r/train/3] ok") and len(line) >= len(bar)


def test_setting_a_read_only_flow_attribute_says_what_it_is(tmp_path: Path) -> None:
    """`self.name = "resnet50"`: a warning with its line before the run, then the step's
    error names the attribute and what it is (Python said "property 'name' of ... has no
    setter")."""
    path = tmp_path / "named.py"
    path.write_text("from flowdeck import FlowSpec, step\n\n\nclass NamedFlow(FlowSpec):\n"
                    "    @step\n    def start(self):\n        self.name = 'resnet50'\n"
                    "        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n\n\n"
                    "if __name__ == '__main__':\n    NamedFlow()\n")
    result = run_flow(path)
    assert result.returncode == 1
    assert f"{path}:7: warning: Step `start` assigns `self.name`" in result.stderr
    assert "AttributeError: `self.name` is read-only in a step: it is the flow's name. " \
        "Store the value under another name (say `self.my_name`)." in result.stderr
    assert "has no setter" not in result.stderr


CAUGHT_JOIN = """from flowdeck import FlowSpec, catch, step


class CatchJoinFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.train, foreach="items")

    @catch(var="err")
    @step
    def train(self):
        if self.input == 2:
            raise ValueError("diverged")
        self.score = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.best = max(inputs, key=lambda i: i.score).score
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CatchJoinFlow()
"""


def test_a_join_reading_a_caught_input_is_told_that_input_failed(tmp_path: Path) -> None:
    """The artifact is missing because the input's step failed under @catch, not because no
    step assigns it ("Assign self.score in this step or a step before it" sent the user
    looking for the wrong mistake)."""
    path = tmp_path / "caught.py"
    path.write_text(CAUGHT_JOIN)
    result = run_flow(path)
    assert result.returncode == 1
    assert ("has no artifact `score` in input `train/3`. That task failed (ValueError: "
            "diverged) and @catch kept the run going") in result.stderr
    assert "Assign self.score" not in result.stderr


def test_a_retried_failure_reads_as_two_sentences(tmp_path: Path) -> None:
    """"...: transient network error. Retrying." (it read "error Retrying.")."""
    path = tmp_path / "flaky.py"
    path.write_text(
        "from flowdeck import FlowSpec, current, retry, step\n\n\n"
        "class FlakyFlow(FlowSpec):\n"
        "    @retry(times=1)\n    @step\n    def start(self):\n"
        "        if current.retry_count == 0:\n"
        "            raise ConnectionError('transient network error')\n"
        "        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    FlakyFlow()\n")
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    assert "Task failed: ConnectionError: transient network error. Retrying." in \
        result.stdout + result.stderr
