"""Metaflow's command-line options, run tags and client namespaces, on real runs.

The options Metaflow's own test contexts pass (`--metadata=local ... --quiet run
--max-workers=50 --max-num-splits=10000 --tag=...`) are accepted and honoured where a
local run has a meaning for them; tags are recorded in run.json and read back as
`Run.tags`, `user_tags` and `system_tags`; namespaces filter what the client opens.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env, run_flow

from flowdeck import Flow, Run, Task, default_namespace, get_namespace, namespace
from flowdeck.exception import MetaflowNamespaceMismatch, MetaflowTaggingError

FLOW = """from flowdeck import FlowSpec, step, current, retry

class TagFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.user_tags = sorted(current.tags)
        self.namespace = current.namespace
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        self.attempts = current.retry_count
        if current.retry_count == 0:
            raise RuntimeError("fails once")

if __name__ == "__main__":
    TagFlow()
"""

CONTEXT_TOP = ["--metadata=local", "--datastore=local", "--environment=local",
               "--event-logger=nullSidecarLogger", "--no-pylint", "--quiet"]


def env(**extra: str) -> dict[str, str]:
    return child_env(METAFLOW_USER="tester", **extra)


@pytest.fixture(autouse=True)
def tester_namespace(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("METAFLOW_USER", "tester")
    default_namespace()
    yield
    default_namespace()


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "tagflow.py"
    path.write_text(FLOW, encoding="utf-8")
    return path


def test_metaflow_s_test_context_options_run_the_flow(flow: Path, tmp_path: Path) -> None:
    result = run_flow(flow, *CONTEXT_TOP, "--with", "retry:times=1", "run", "--max-workers=50",
                      "--max-num-splits=10000", "--tag=刺身 means sashimi",
                      "--tag=multiple tags should be ok", "--run-id-file", "run-id", env=env())
    assert result.returncode == 0, result.stderr
    run_id = (tmp_path / "run-id").read_text()
    run = Flow("TagFlow", root=tmp_path / ".flowdeck")[run_id]
    assert run.successful and run["end"].task.data.attempts == 1  # --with retry took effect
    assert run.user_tags == {"刺身 means sashimi", "multiple tags should be ok"}
    assert {"user:tester", "runtime:dev"} <= run.system_tags
    assert run.tags == run.user_tags | run.system_tags
    assert run["start"].task.data.user_tags == sorted(run.user_tags)
    assert run["start"].task.data.namespace == "user:tester"
    record = json.loads((run.dir / "run.json").read_text())
    assert sorted(record["tags"]) == sorted(run.user_tags)


def test_max_num_splits_stops_a_wider_foreach_with_a_message(flow: Path) -> None:
    result = run_flow(flow, "run", "--max-num-splits", "3", env=env())
    assert result.returncode == 1
    assert "fans out over 4 items of self.items, more than --max-num-splits 3" in result.stderr


def test_unknown_with_decorator_and_bad_tag_are_user_errors(flow: Path) -> None:
    unknown = run_flow(flow, "--with", "nosuch", "run", env=env())
    assert unknown.returncode == 2 and "there is no step decorator `nosuch`" in unknown.stderr
    assert "retry" in unknown.stderr and "_internal" not in unknown.stderr  # Metaflow's tests'
    empty = run_flow(flow, "run", "--tag", "", env=env())
    assert empty.returncode == 2 and "--tag: Tags must not be empty strings." in empty.stderr
    for result in (unknown, empty):
        assert "Traceback" not in result.stderr


def test_resume_takes_tags_and_writes_the_run_id_file(flow: Path, tmp_path: Path) -> None:
    first = run_flow(flow, "run", env=env())
    assert first.returncode == 1  # end fails on its first attempt (no retry)
    resumed = run_flow(flow, "--with", "retry", "resume", "--tag", "again", "--run-id-file",
                       "rid", env=env())
    assert resumed.returncode == 0, resumed.stderr
    run = Run(f"TagFlow/{(tmp_path / 'rid').read_text()}", root=tmp_path / ".flowdeck")
    assert run.user_tags == {"again"} and run.origin_pathspec is not None


def test_tag_mutation_follows_metaflow_s_rules(flow: Path, tmp_path: Path) -> None:
    assert run_flow(flow, "--with", "retry", "run", "--tag", "keep", env=env()).returncode == 0
    run = Flow("TagFlow", root=tmp_path / ".flowdeck").latest_run
    run.add_tags(["a", "b", "user:tester"])  # a system tag is not added as a user tag
    assert run.user_tags == {"keep", "a", "b"}
    run.replace_tags(["a", "b"], ["b", "c"])
    assert run.user_tags == {"keep", "b", "c"}
    run.add_tag(["d", "e"])  # Metaflow's deprecated list form
    run.remove_tag(["d", "e"])
    for bad in ("", "x" * 600, 4):
        with pytest.raises(MetaflowTaggingError):
            run.add_tag(bad)
    with pytest.raises(MetaflowTaggingError):
        run.remove_tags(["b", "runtime:dev"])  # all or nothing
    with pytest.raises(MetaflowTaggingError):
        run.replace_tags([], [])
    assert run.user_tags == {"keep", "b", "c"}
    assert run.end_task is not None and run.end_task.tags == run.tags
    # as in Metaflow, a Run object reads the tags once and then follows its own changes
    other = Run(run.pathspec, root=tmp_path / ".flowdeck")
    other.add_tag("late")
    assert "late" in other.user_tags and "late" not in run.user_tags
    assert "late" in Run(run.pathspec, root=tmp_path / ".flowdeck").user_tags


def test_namespaces_filter_runs_and_pathspecs(flow: Path, tmp_path: Path) -> None:
    assert run_flow(flow, "--with", "retry", "run", "--tag", "nightly", env=env()).returncode == 0
    root = tmp_path / ".flowdeck"
    run_id = Flow("TagFlow", root=root).latest_run.id
    assert get_namespace() == "user:tester"
    assert [r.id for r in Flow("TagFlow", root=root)] == [run_id]
    namespace("user:nobody")
    with pytest.raises(MetaflowNamespaceMismatch):  # as Metaflow: no run of it is in there
        Flow("TagFlow", root=root)
    with pytest.raises(MetaflowNamespaceMismatch):
        Flow("TagFlow", root=root, _namespace_check=False)[run_id]
    with pytest.raises(MetaflowNamespaceMismatch):
        Task(f"TagFlow/{run_id}/start/1", root=root)
    namespace("nightly")  # any tag is a namespace
    assert Flow("TagFlow", root=root)[run_id].id == run_id
    assert Flow("TagFlow", root=root).runs("nightly", "no-such-tag") == []
    namespace(None)
    assert len(Flow("TagFlow", root=root).runs()) == 1
    assert default_namespace() == "user:tester"


NAMES_FLOW = """from flowdeck import FlowSpec, Parameter, step

class NamesFlow(FlowSpec):
    data = Parameter("data", default="a.csv")
    c = Parameter("c", default=1.0)
    scheduler = Parameter("scheduler", default="cosine")
    branch = Parameter("branch", default="main")
    version = Parameter("version", default="v1")

    @step
    def start(self):
        print("got", self.data, self.c, self.scheduler, self.branch, self.version)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    NamesFlow()
"""


@pytest.mark.parametrize("args, expect", [
    # a prefix of --datastore / --config was "ambiguous" before the run's own parser saw it
    (["run", "--data", "b.csv", "--c", "0.5"], "got b.csv 0.5 cosine main v1"),
    # a Flowdeck-only run option (--scheduler) yields to a parameter of that name
    (["run", "--scheduler", "linear"], "got a.csv 1.0 linear main v1"),
    # without a command, a parameter's flag is the run's, not the top-level option
    (["--branch", "dev", "--version", "v2"], "got a.csv 1.0 cosine dev v2"),
])
def test_a_parameter_keeps_its_name_on_the_command_line(tmp_path: Path, args: list[str],
                                                        expect: str) -> None:
    path = tmp_path / "names.py"
    path.write_text(NAMES_FLOW)
    done = run_flow(path, *args)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout


QUIET_FLOW = """from metaflow import FlowSpec, Parameter, step

class QuietFlow(FlowSpec):
    quiet = Parameter("quiet", default=1, type=int)
    limit = Parameter("memory-limit", default=3, type=int)

    @step
    def start(self):
        print("got", self.quiet, self.limit)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    QuietFlow()
"""


@pytest.mark.parametrize("args, expect, quiet", [
    # the run's --quiet and --memory-limit (Flowdeck's) yield to parameters of their names,
    # which Metaflow does not reserve: an unchanged Metaflow flow with them was refused
    (["run", "--quiet", "7", "--memory-limit", "5"], "got 7 5", False),
    # before the command, --quiet is the top-level option, as in Metaflow
    (["--quiet", "run", "--quiet", "8"], "got 8 3", True),
    (["--quiet", "9"], "got 9 3", False),
])
def test_run_options_of_flowdecks_own_yield_to_parameters(tmp_path: Path, args: list[str],
                                                          expect: str, quiet: bool) -> None:
    path = tmp_path / "quiet.py"
    path.write_text(QUIET_FLOW)
    done = subprocess.run([sys.executable, "-m", "flowdeck.engines.as_metaflow", str(path),
                           *args], cwd=tmp_path, env=child_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout
    assert ("Task finished" not in done.stdout + done.stderr) == quiet


def test_abbreviated_options_and_reserved_parameter_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "names.py"
    path.write_text(NAMES_FLOW)
    short = run_flow(path, "run", "--max-worker", "2")  # Metaflow (click) refuses it too
    assert short.returncode == 2
    assert "no option --max-worker (did you mean --max-workers?)" in short.stderr
    assert "usage:" not in short.stderr and "Traceback" not in short.stderr
    typo = run_flow(path, "run", "--schedular", "linear")  # a parameter's name mistyped
    assert typo.returncode == 2
    assert "no option --schedular (did you mean --scheduler?). The flow's parameters: " \
        "--branch, --c, --data, --scheduler, --version." in typo.stderr
    command = run_flow(path, "rn")
    assert command.returncode == 2 and "did you mean the command `run`?" in command.stderr
    late = run_flow(path, "--c", "2", "show")
    assert late.returncode == 2 and "`show` is a command: give it first" in late.stderr
    two = run_flow(path, "run", "--c", "2", "show")
    assert two.returncode == 2 and "one command at a time: `run` was given, then `show`" \
        in two.stderr
    path.write_text(NAMES_FLOW.replace('"version"', '"tag"'))
    for args in (["run"], ["run", "--tag", "x"]):
        refused = run_flow(path, *args)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert f"{path}:8: error: Parameter name `tag` is reserved" in refused.stderr


FLAKY_FLOW = """import os
from flowdeck import FlowSpec, step

class FlakyFlow(FlowSpec):
    @step
    def start(self):
        mark = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tried")
        if not os.path.exists(mark):
            open(mark, "w").close()
            raise RuntimeError("flaky on the first attempt")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    FlakyFlow()
"""


def test_with_after_run_and_its_mistakes_in_one_line(tmp_path: Path) -> None:
    """Metaflow's `run` takes `--with` too; a misspelt argument or a word for a number is a
    one-line usage error naming the file, never an engine traceback."""
    path = tmp_path / "flaky.py"
    path.write_text(FLAKY_FLOW)
    done = run_flow(path, "run", "--with", "retry:times=1")
    assert done.returncode == 0, done.stderr
    assert Flow("FlakyFlow", root=tmp_path / ".flowdeck").latest_run.successful
    for deco, says in (("retry:tims=2", "@retry has no argument `tims` (it takes "
                                        "minutes_between_retries, times)"),
                       ("retry:times=abc", "times='abc' is not a number; write for example "
                                           "--with retry:times=3")):
        wrong = run_flow(path, "--with", deco, "run")
        assert wrong.returncode == 2 and "Traceback" not in wrong.stderr  # a usage error
        assert f"error: {path}: --with {deco}: {says}" in wrong.stderr


def test_help_names_the_function_that_computes_a_default(tmp_path: Path) -> None:
    path = tmp_path / "seeded.py"
    path.write_text(NAMES_FLOW.replace(
        'class NamesFlow', 'def default_seed(ctx):\n    return 7\n\nclass NamesFlow').replace(
        'version = Parameter("version", default="v1")',
        'seed = Parameter("seed", default=default_seed, type=int)'))
    for args in (["run", "--help"], ["--help"]):
        helped = run_flow(path, *args)
        assert helped.returncode == 0, helped.stderr
        assert "computed by default_seed()" in helped.stdout and "<function" not in helped.stdout


@pytest.mark.parametrize("option, says", [
    ("--environment=conda", "--environment conda is not used: no environment is built (the "
                            "@conda/@pypi packages are not installed)"),
    ("--metadata=service", "--metadata service is not used: a local Flowdeck run keeps its "
                           "records in its own store"),
])
def test_a_metaflow_choice_a_local_run_cannot_honour_is_named(tmp_path: Path, option: str,
                                                              says: str) -> None:
    path = tmp_path / "quiet.py"
    path.write_text(QUIET_FLOW)
    done = subprocess.run([sys.executable, "-m", "flowdeck.engines.as_metaflow", str(path),
                           option, "run"], cwd=tmp_path, env=child_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert says in done.stderr
