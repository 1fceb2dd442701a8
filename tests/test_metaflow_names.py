"""Every name Metaflow's flows import from `metaflow` exists in flowdeck, with Metaflow's
meaning where a local run has one: configs, IncludeFile, @project, @parallel,
@environment, @secrets, the ignored cloud decorators, the 2.18 extension API, class
constants, `METAFLOW_RUN_*` parameters, `for step in flow` and `flow._graph`. Each is
checked on a real run of a real flow file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORE, child_env, run_flow

from flowdeck import Flow, default_namespace

HEADER = """import os
from flowdeck import (Config, config_expr, FlowSpec, step, Parameter, project, IncludeFile,
                      JSONType, current, parallel, FlowMutator, StepMutator, UserStepDecorator,
                      user_step_decorator, environment, secrets, kubernetes, card, retry, catch)
"""


def env(**extra: str) -> dict[str, str]:
    return child_env(METAFLOW_USER="tester", **extra)


@pytest.fixture(autouse=True)
def tester_namespace(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("METAFLOW_USER", "tester")
    default_namespace()
    yield
    default_namespace()


def write(tmp_path: Path, body: str, name: str = "flow.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def latest(tmp_path: Path, flow: str):
    return Flow(flow, root=tmp_path / ".flowdeck").latest_run


def test_importing_flowdeck_loads_none_of_the_new_modules() -> None:
    code = ("import sys, flowdeck; "
            "print(sorted(m for m in ('flowdeck.client', 'argparse', 'flowdeck.authoring.configs',"
            " 'flowdeck.authoring.decorators', 'flowdeck.authoring.mutators', "
            "'flowdeck.exception', 'flowdeck.authoring.runsetup') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


CONFIG_FLOW = """
def parse_kv(text):
    key, value = text.strip().split("=")
    return {key: value}

def plus_one(ctx):
    return ctx.configs.cfg.n + 1

@project(name=config_expr("cfg").project)
class ConfigFlow(FlowSpec):
    cfg = Config("cfg", default_value={"n": 41, "project": "demo", "who": "ann",
                                       "nested": {"deep": 1}})
    kv = Config("kv", default="kv.txt", parser=parse_kv)
    p = Parameter("p", default=plus_one, type=int)
    q = Parameter("q", default=config_expr("cfg").nested.deep, type=int)

    @environment(vars={"WHO": cfg.who, "TEXT": config_expr("str(cfg.n * 2)")})
    @step
    def start(self):
        self.seen = (self.cfg.n, self.cfg["nested"].deep, self.kv.a, self.p, self.q,
                     os.environ["WHO"], os.environ["TEXT"], current.project_name)
        try:
            self.cfg.n = 1
        except TypeError:
            self.immutable = True
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ConfigFlow()
"""


def test_configs_are_read_once_and_reach_decorators_parameters_and_steps(tmp_path: Path) -> None:
    (tmp_path / "kv.txt").write_text("a=from-file\n")
    path = write(tmp_path, CONFIG_FLOW)
    result = run_flow(path, env=env())
    assert result.returncode == 0, result.stderr
    start = latest(tmp_path, "ConfigFlow")["start"].task
    assert start.data.seen == (41, 1, "from-file", 42, 1, "ann", "82", "demo")
    assert start.data.immutable is True
    assert start.data.cfg == {"n": 41, "project": "demo", "who": "ann", "nested": {"deep": 1}}
    assert latest(tmp_path, "ConfigFlow")["end"].task.data.kv == {"a": "from-file"}


def test_a_config_value_on_the_command_line_and_in_the_environment(tmp_path: Path) -> None:
    (tmp_path / "kv.txt").write_text("a=from-file\n")
    (tmp_path / "other.txt").write_text("a=other\n")
    path = write(tmp_path, CONFIG_FLOW)
    value = json.dumps({"n": 1, "project": "cli", "who": "bo", "nested": {"deep": 5}})
    result = run_flow(path, "--config-value", "cfg", value, "--config", "kv", "other.txt",
                      "run", env=env())
    assert result.returncode == 0, result.stderr
    assert latest(tmp_path, "ConfigFlow")["start"].task.data.seen == (
        1, 5, "other", 2, 5, "bo", "2", "cli")
    by_env = run_flow(path, env=env(METAFLOW_FLOW_CONFIG_VALUE=json.dumps({"cfg": json.loads(
        value) | {"n": 7}})))
    assert by_env.returncode == 0, by_env.stderr
    assert latest(tmp_path, "ConfigFlow")["start"].task.data.seen[0] == 7


def test_a_missing_required_config_names_itself(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG_FLOW.replace(
        'Config("kv", default="kv.txt", parser=parse_kv)', 'Config("kv", required=True)'))
    result = run_flow(path, env=env())
    assert result.returncode == 2
    assert "Config `kv` is required. Pass `--config kv FILE`" in result.stderr
    assert "Traceback" not in result.stderr


INCLUDE_FLOW = """
class IncludeFlow(FlowSpec):
    text = IncludeFile("text", default="a.txt")
    raw = IncludeFile("raw", default="a.txt", is_text=False)
    absent = IncludeFile("absent")

    @step
    def start(self):
        self.got = (self.text, self.raw, self.absent)
        try:
            self.text = "x"
        except AttributeError:
            self.read_only = True
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    IncludeFlow()
"""


def test_include_file_stores_the_contents_and_records_the_path(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("é text", encoding="utf-8")
    (tmp_path / "b.txt").write_text("other", encoding="utf-8")
    path = write(tmp_path, INCLUDE_FLOW)
    result = run_flow(path, env=env())
    assert result.returncode == 0, result.stderr
    run = latest(tmp_path, "IncludeFlow")
    assert run["start"].task.data.got == ("é text", "é text".encode(), None)
    assert run["end"].task.data.text == "é text" and run["start"].task.data.read_only
    assert {p["name"]: p["cli"] for p in run.info["params"]}["text"] == "a.txt"
    again = run_flow(path, "--text", "b.txt", env=env(METAFLOW_RUN_RAW="b.txt"))
    assert again.returncode == 0, again.stderr
    assert latest(tmp_path, "IncludeFlow")["start"].task.data.got == ("other", b"other", None)
    missing = run_flow(path, "--text", "nope.txt", env=env())
    assert missing.returncode == 2 and "IncludeFile `text` cannot read 'nope.txt'" in \
        missing.stderr


PROJECT_FLOW = """
@project(name="shop")
class ProjectFlow(FlowSpec):
    @step
    def start(self):
        self.facts = (current.project_name, current.branch_name, current.is_production,
                      current.project_flow_name)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ProjectFlow()
"""


@pytest.mark.parametrize("args, extra, branch, production", [
    ((), {}, "user.tester", False),
    (("--branch", "feature"), {}, "test.feature", False),
    ((), {"METAFLOW_PRODUCTION": "True"}, "prod", True),
])
def test_project_names_the_branch_and_tags_the_run(tmp_path: Path, args: tuple[str, ...],
                                                   extra: dict[str, str], branch: str,
                                                   production: bool) -> None:
    path = write(tmp_path, PROJECT_FLOW)
    result = run_flow(path, *args, env=env(**extra))
    assert result.returncode == 0, result.stderr
    run = latest(tmp_path, "ProjectFlow")
    assert run["start"].task.data.facts == ("shop", branch, production,
                                            f"shop.{branch}.ProjectFlow")
    assert {"project:shop", f"project_branch:{branch}", "user:tester"} <= run.system_tags


PARALLEL_FLOW = """
class ParallelFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work, num_parallel=3)

    @parallel
    @step
    def work(self):
        self.node = (current.parallel.node_index, current.parallel.num_nodes, self.input)
        if current.parallel.node_index != 0:
            return  # only node 0 (the control task) must call next, as in Metaflow
        self.next(self.join)

    @step
    def join(self, inputs):
        self.nodes = [i.node for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ParallelFlow()
"""


def test_num_parallel_runs_one_task_per_node_with_a_control_task(tmp_path: Path) -> None:
    path = write(tmp_path, PARALLEL_FLOW)
    result = run_flow(path, env=env())
    assert result.returncode == 0, result.stderr
    run = latest(tmp_path, "ParallelFlow")
    assert run["join"].task.data.nodes == [(0, 3, 0), (1, 3, 1), (2, 3, 2)]
    assert len(run["work"].tasks()) == 3
    assert [t.metadata_dict.get("internal_task_type") for t in run["work"]] == \
        ["control", None, None]


SECRETS_FLOW = """
class EnvFlow(FlowSpec):
    @secrets(sources=[{"type": "inline", "options": {"env_vars": {"TOKEN": "s3cret"}}},
                      "vault-thing"])
    @environment(vars={"MODE": "fast"})
    @kubernetes(cpu=4)
    @card
    @step
    def start(self):
        self.env = (os.environ.get("TOKEN"), os.environ.get("MODE"))
        self.next(self.end)

    @step
    def end(self):
        self.env = os.environ.get("MODE")

if __name__ == "__main__":
    EnvFlow()
"""


def test_environment_inline_secrets_and_notices_for_what_runs_elsewhere(tmp_path: Path) -> None:
    path = write(tmp_path, SECRETS_FLOW)
    result = run_flow(path, env=env())
    assert result.returncode == 0, result.stderr
    run = latest(tmp_path, "EnvFlow")
    assert run["start"].task.data.env == ("s3cret", "fast")
    assert run["end"].task.data.env is None  # only the decorated step's process
    assert "@kubernetes on `start`: ignored in a local run" in result.stderr
    assert "@card on `start`" not in result.stderr  # cards are made now (tests/test_cards.py)
    assert "source 'vault-thing' is not fetched in a local run" in result.stderr
    quiet = run_flow(path, "--quiet", env=env())
    assert quiet.returncode == 0 and "ignored in a local run" not in quiet.stderr


EXTENSION_FLOW = """
class Stamp(UserStepDecorator):
    def init(self, label="x"):
        self.label = label

    def pre_step(self, step_name, flow, inputs=None):
        flow.before = f"{self.label}:{step_name}"

    def post_step(self, step_name, flow, exception=None):
        flow.after = exception is None

@user_step_decorator
def around(step_name, flow, inputs=None, attributes=None):
    flow.order = ["pre"]
    yield
    flow.order = flow.order + ["post"]

class AddRetry(StepMutator):
    def mutate(self, mutable_step):
        mutable_step.add_decorator(retry, deco_kwargs={"times": 1})

class RetryEverywhere(FlowMutator):
    def mutate(self, mutable_flow):
        for name, mutable_step in mutable_flow.steps:
            if name == "end":
                mutable_step.add_decorator(retry, deco_kwargs={"times": 2})

@RetryEverywhere
class ExtFlow(FlowSpec):
    @Stamp(label="L")
    @around
    @AddRetry
    @step
    def start(self):
        self.attempt = current.retry_count
        if current.retry_count == 0:
            raise ValueError("first attempt fails")
        self.next(self.end)

    @step
    def end(self):
        if current.retry_count < 2:
            raise ValueError("not yet")

if __name__ == "__main__":
    ExtFlow()
"""


def test_user_step_decorators_and_mutators_run(tmp_path: Path) -> None:
    path = write(tmp_path, EXTENSION_FLOW)
    result = run_flow(path, env=env())
    assert result.returncode == 0, result.stderr
    start = latest(tmp_path, "ExtFlow")["start"].task
    assert (start.data.before, start.data.after, start.data.order, start.data.attempt) == (
        "L:start", True, ["pre", "post"], 1)
    assert latest(tmp_path, "ExtFlow")["end"].task.attempt == 2


CONSTANT_FLOW = """
class ConstFlow(FlowSpec):
    LIMIT = 3
    NAMES = ["a"]
    a = Parameter("a", default="x")
    b = Parameter("b", default="p,q", separator=",")

    @step
    def start(self):
        try:
            self.LIMIT = 4
        except AttributeError:
            self.refused = True
        self.names = current.parameter_names
        self.next(self.end)

    @step
    def end(self):
        self.values = (self.a, self.b, self.LIMIT)

if __name__ == "__main__":
    ConstFlow()
"""


def test_class_constants_are_artifacts_and_read_only_parameters_come_from_the_environment(
        tmp_path: Path) -> None:
    path = write(tmp_path, CONSTANT_FLOW)
    result = run_flow(path, env=env(METAFLOW_RUN_A="from-env"))
    assert result.returncode == 0, result.stderr
    run = latest(tmp_path, "ConstFlow")
    assert run["start"].task.data.refused and run["start"].task.data.names == ["a", "b"]
    assert run["end"].task.data.values == ("from-env", ["p", "q"], 3)
    assert run["end"].task.data.NAMES == ["a"]
    assert {p["name"]: p["cli"] for p in run.info["params"]}["b"] == "p,q"
    given = run_flow(path, "--a", "cli", env=env(METAFLOW_RUN_A="from-env"))
    assert given.returncode == 0
    assert latest(tmp_path, "ConstFlow")["end"].task.data.values[0] == "cli"


def test_steps_iterate_and_the_graph_reads_as_metaflow_s(tmp_path: Path) -> None:
    write(tmp_path, PARALLEL_FLOW.replace('if __name__ == "__main__":\n    ParallelFlow()', ""))
    code = ("import sys; sys.path.insert(0, '.'); from flow import ParallelFlow; "
            "f = ParallelFlow(use_cli=False); g = f._graph; "
            "print([s.name for s in f], g['start'].type, g['work'].parallel_step, "
            "g['start'].parallel_foreach, g['join'].in_funcs)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env(),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("['start', 'work', 'join', 'end'] foreach True True "
                                  "['work']")


def test_metaflow_modules_resolve() -> None:
    code = ("from flowdeck.metaflow_current import current; "
            "from flowdeck.plugins import InternalTestUnboundedForeachInput as I; "
            "from flowdeck.exception import (MetaflowException, ExternalCommandFailed, "
            "UnhandledInMergeArtifactsException, MissingInMergeArtifactsException, "
            "MetaflowNotFound, MergeArtifactsException); "
            "assert issubclass(UnhandledInMergeArtifactsException, MergeArtifactsException); "
            "assert issubclass(MetaflowNotFound, KeyError); print(len(I(range(3))))")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(PYTHONPATH=str(CORE)),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"


def test_pypi_base_and_conda_base_are_noted_and_ignored_as_pypi_and_conda(
        tmp_path: Path) -> None:
    """A Metaflow file with @pypi_base/@conda_base on its flow (the usual companions of
    @pypi/@conda) runs unchanged on Flowdeck's engine, each noted once."""
    path = tmp_path / "based.py"
    path.write_text(
        "from metaflow import FlowSpec, step, pypi_base, conda_base, pypi\n\n\n"
        "@conda_base(python='3.11')\n"
        "@pypi_base(python='3.11', packages={'pandas': '2.0'})\n"
        "class BasedFlow(FlowSpec):\n"
        "    @pypi(packages={'requests': '2.31'})\n    @step\n    def start(self):\n"
        "        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    BasedFlow()\n")
    result = subprocess.run([sys.executable, "-m", "flowdeck.engines.as_metaflow", str(path),
                             "run"], cwd=tmp_path, env=env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "@conda_base on BasedFlow: ignored in a local run" in result.stderr
    assert "@pypi_base on BasedFlow: ignored in a local run" in result.stderr
    assert "@pypi on `start`: ignored in a local run" in result.stderr
    assert latest(tmp_path, "BasedFlow").successful
