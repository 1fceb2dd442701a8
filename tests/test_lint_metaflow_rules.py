"""The lint holds a flow to Metaflow 2.19's rules, not stricter or looser ones.

`flowdeck run` refuses a Metaflow flow the static analysis finds an error in, so a rule
Metaflow does not have blocks a working flow, and a rule it has but the lint lacks lets a
flow Metaflow refuses run here. Each case is a flow from the review of Metaflow 2.19.39;
where Flowdeck's engine is concerned, the flow is also run on it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import child_env, run_flow

from flowdeck.analysis.diagnostics import Diagnostic
from flowdeck.analysis.flowfile import FlowInfo, analyze_file

HEAD = "from {api} import FlowSpec, Parameter, parallel, step\n{extra}\n\nclass {name}(FlowSpec):\n"
LINEAR_END = ("    @step\n    def end(self):\n        print('done')\n\n\n"
              "if __name__ == '__main__':\n    {name}()\n")


def write(tmp_path: Path, body: str, api: str = "metaflow", extra: str = "",
          name: str = "RulesFlow", end: bool = True) -> Path:
    """A flow file: the header (line 1 imports, line 2 `extra`, the class at line 4, its
    first step at line 5), `body` (its steps), then an `end` step and the script's call."""
    path = tmp_path / "rules_flow.py"
    text = HEAD.format(api=api, extra=extra, name=name) + body
    if end:
        text += LINEAR_END.format(name=name)
    else:
        text += f"\n\nif __name__ == '__main__':\n    {name}()\n"
    path.write_text(text)
    return path


def only_flow(path: Path) -> FlowInfo:
    flows = analyze_file(path).flows
    assert len(flows) == 1
    return flows[0]


def found(path: Path) -> list[tuple[str, str, int]]:
    return [(d.code, d.severity, d.line) for d in only_flow(path).diagnostics]


def on_flowdeck(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A Metaflow flow run on Flowdeck's engine (`python -m flowdeck.engines.as_metaflow`)."""
    return subprocess.run([sys.executable, "-m", "flowdeck.engines.as_metaflow", str(path),
                           "run", *args], cwd=path.parent, env=child_env(),
                          capture_output=True, text=True, timeout=120)


def said(diagnostic: Diagnostic) -> str:
    return diagnostic.format()


FOREACH = ("    @step\n    def start(self):\n        self.items = [1, 2, 3]\n"
           "        self.next(self.each, foreach={given})\n\n"
           "    @step\n    def each(self):\n        self.v = self.input\n"
           "        self.next(self.join)\n\n"
           "    @step\n    def join(self, inputs):\n"
           "        self.total = sum(i.v for i in inputs)\n        print('total', self.total)\n"
           "        self.next(self.end)\n\n")


# -- 3: foreach= given a name, not a string ----------------------------------------

def test_foreach_given_a_module_constant_is_read_and_runs(tmp_path: Path) -> None:
    """Metaflow accepts `foreach=FE`; the lint called it an invalid self.next() and the
    run was refused. The constant is read statically, and Flowdeck's engine runs it."""
    path = write(tmp_path, FOREACH.format(given="FE"), extra='FE = "items"')
    info = only_flow(path)
    assert info.diagnostics == []
    assert info.graph["start"].foreach_param == "items"
    result = on_flowdeck(path)
    assert result.returncode == 0, result.stderr
    assert "total 6" in result.stdout


def test_a_module_constant_changed_by_the_step_is_refused_naming_both_artifacts(
        tmp_path: Path) -> None:
    """A step that rebinds the module constant its foreach= names fans out over another
    artifact than the one planned: the run refused it saying `self.next(self.each)` at
    run time but `self.next(self.each)` on its last line (the same text); it names the two
    artifacts and what to do (second review)."""
    body = FOREACH.format(given="FE").replace(
        "        self.items = [1, 2, 3]\n",
        "        self.items = [1, 2, 3]\n        self.others = [4]\n"
        "        globals()['FE'] = 'others'\n")
    path = write(tmp_path, body, extra='FE = "items"')
    result = on_flowdeck(path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "fans out over `others` at run time" in result.stderr
    assert "to fan out over `items`" in result.stderr
    assert "self.next(self.each) at run time, but its last line says self.next(self.each)" \
        not in result.stderr


def test_foreach_known_only_at_run_time_is_metaflows_and_refused_by_flowdecks_engine(
        tmp_path: Path) -> None:
    """An expression Metaflow evaluates when the step runs: a warning for a Metaflow flow
    (its engine runs it), an error for Flowdeck's engine, said once with its line."""
    path = write(tmp_path, FOREACH.format(given="FE.lower()"), extra='FE = "items"')
    assert found(path) == [("foreach-name-unknown", "warning", 8)]
    result = on_flowdeck(path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{path}:8: error: Step `start` gives foreach= a value" in result.stderr
    flowdeck_flow = write(tmp_path, FOREACH.format(given="FE.lower()"), api="flowdeck",
                          extra='FE = "items"')
    assert found(flowdeck_flow) == [("foreach-name-unknown", "error", 8)]


# -- 4: Flowdeck-only naming rules --------------------------------------------------

STEP_RUN = ("    @step\n    def start(self):\n        self.next(self.run)\n\n"
            "    @step\n    def run(self):\n        self.x = 1\n        self.next(self.end)\n\n")


def test_a_step_named_run_is_no_error(tmp_path: Path) -> None:
    """Metaflow reserves only name, next, input, index and cmd. A Flowdeck flow's step
    `run` runs on Flowdeck's engine; it is warned that `MyFlow().run()` is then gone."""
    assert found(write(tmp_path, STEP_RUN)) == []
    path = write(tmp_path, STEP_RUN, api="flowdeck")
    assert found(path) == [("hides-flow-method", "warning", 10)]
    assert "`RulesFlow().run(...)` no longer starts the flow" in \
        only_flow(path).diagnostics[0].message
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    assert "/run/" in result.stdout and "done" in result.stdout


def test_metaflows_reserved_step_names_stay_errors(tmp_path: Path) -> None:
    body = STEP_RUN.replace("self.run", "self.cmd").replace("def run", "def cmd")
    assert found(write(tmp_path, body)) == [("reserved-name", "error", 10)]


def test_a_parameter_named_origin_run_id_runs(tmp_path: Path) -> None:
    """Metaflow does not reserve origin_run_id (`--origin-run-id` is `resume`'s, which takes
    no parameters); Flowdeck's `run` takes it as the parameter."""
    body = ("    origin_run_id = Parameter('origin_run_id', default='none')\n\n"
            "    @step\n    def start(self):\n        print('origin', self.origin_run_id)\n"
            "        self.next(self.end)\n\n")
    path = write(tmp_path, body)
    assert found(path) == []
    result = on_flowdeck(path, "--origin_run_id", "abc")
    assert result.returncode == 0, result.stderr
    assert "origin abc" in result.stdout


PARAM_STEP = ("    train_param = Parameter('train', default=5)\n\n"
              "    @step\n    def start(self):\n        self.next(self.train)\n\n"
              "    @step\n    def train(self):\n        print('epochs', self.train_param)\n"
              "        self.next(self.end)\n\n")


def test_a_parameters_command_line_name_may_be_a_steps(tmp_path: Path) -> None:
    """`train_param = Parameter("train")` beside a step `train`: Metaflow runs it (--train 7);
    only the attribute shares the class's namespace with the steps."""
    path = write(tmp_path, PARAM_STEP)
    assert found(path) == []
    result = on_flowdeck(path, "--train", "7")
    assert result.returncode == 0, result.stderr
    assert "epochs 7" in result.stdout
    clash = write(tmp_path, PARAM_STEP.replace("train_param", "train"))
    assert [(c, s) for c, s, _ in found(clash)] == [("parameter-clash", "error")]


def test_a_step_defined_twice_is_a_warning_and_the_later_one_runs(tmp_path: Path) -> None:
    """Python keeps the second definition and Metaflow runs it: a warning naming both
    lines, and the graph and the run use the later one."""
    body = ("    @step\n    def start(self):\n        self.x = 1\n        self.next(self.end)\n\n"
            "    @step\n    def start(self):\n        self.x = 2\n        print('x', self.x)\n"
            "        self.next(self.end)\n\n")
    path = write(tmp_path, body)
    info = only_flow(path)
    assert [(d.code, d.severity, d.line) for d in info.diagnostics] == [
        ("duplicate-step", "warning", 11)]
    assert "lines 6 and 11" in info.diagnostics[0].message
    assert "keeps only the one at line 11" in info.diagnostics[0].message
    assert info.graph["start"].line == 11
    result = on_flowdeck(path)
    assert result.returncode == 0, result.stderr
    assert "x 2" in result.stdout


# -- 8: a split not joined before `end` ----------------------------------------------

SPLIT = ("    @step\n    def start(self):\n        self.next(self.a, self.b)\n\n"
         "    @step\n    def a(self):\n        self.next(self.end)\n\n"
         "    @step\n    def b(self):\n        self.next(self.end)\n\n"
         "    @step\n    def end(self{inputs}):\n        pass\n")


def test_a_split_reaching_end_says_add_a_join_before_end(tmp_path: Path) -> None:
    """One message, Metaflow's advice (a join step before `end`), not "declare end with
    inputs", which the next check refuses."""
    path = write(tmp_path, SPLIT.format(inputs=""), end=False)
    info = only_flow(path)
    assert [(d.code, d.line) for d in info.diagnostics] == [("unjoined-split", 18)]
    assert "Add a join step" in info.diagnostics[0].message
    assert "before `end`" in info.diagnostics[0].message
    fixed_as_told_before = write(tmp_path, SPLIT.format(inputs=", inputs"), end=False)
    assert [(d.code, d.line) for d in only_flow(fixed_as_told_before).diagnostics] == [
        ("end-join", 18)]
    assert "Add a join step before it" in only_flow(fixed_as_told_before).diagnostics[0].message


# -- 9: Metaflow 2.19's start and end ------------------------------------------------

def test_a_single_step_flow_is_its_start_and_end_and_runs(tmp_path: Path) -> None:
    body = "    @step\n    def only(self):\n        print('single step')\n"
    path = write(tmp_path, body, end=False)
    info = only_flow(path)
    assert info.diagnostics == []
    assert (info.graph.start_step, info.graph.end_step) == ("only", "only")
    assert info.graph["only"].type == "end"
    ours = tmp_path / "ours"
    ours.mkdir()
    for result in (on_flowdeck(path), run_flow(write(ours, body, api="flowdeck", end=False))):
        assert result.returncode == 0, result.stderr
        assert "single step" in result.stdout


START_KW = ("    @step(start=True)\n    def begin(self):\n        self.next(self.finish)\n\n"
            "    @step(end=True)\n    def finish(self):\n        print('finished')\n")


def test_step_start_and_end_marks_are_metaflows_start_and_end(tmp_path: Path) -> None:
    """A Metaflow flow is accepted (Metaflow runs it); a Flowdeck flow gets only the
    "not supported yet" error at each mark, not also "no start step" and "no end step"."""
    info = only_flow(write(tmp_path, START_KW, end=False))
    assert info.diagnostics == []
    assert (info.graph.start_step, info.graph.end_step) == ("begin", "finish")
    ours = write(tmp_path, START_KW, api="flowdeck", end=False)
    assert found(ours) == [("custom-start-end", "error", 5), ("custom-start-end", "error", 9)]


def test_start_marks_that_disagree_are_said_as_metaflow_says_them(tmp_path: Path) -> None:
    two = START_KW.replace("@step(end=True)", "@step(start=True)") + \
        "\n    @step\n    def end(self):\n        pass\n"
    assert [(c, s) for c, s, _ in found(write(tmp_path, two, end=False))] == [
        ("no-start", "error")]
    named_too = START_KW + "\n    @step\n    def start(self):\n        self.next(self.finish)\n"
    assert [c for c, _, _ in found(write(tmp_path, named_too, end=False))] == ["ambiguous-start"]


# -- 10: flows Metaflow refuses --------------------------------------------------------

PARALLEL = ("    @step\n    def start(self):\n        self.next(self.work, num_parallel=2)\n\n"
            "{deco}    @step\n    def work(self):\n        self.next(self.join)\n\n"
            "    @step\n    def join(self, inputs):\n        self.next(self.end)\n\n")


def test_num_parallel_to_a_step_without_parallel_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, PARALLEL.format(deco=""))
    assert found(path) == [("parallel-without-decorator", "error", 7)]
    assert "Add @parallel above @step on `work`" in only_flow(path).diagnostics[0].message
    result = on_flowdeck(path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{path}:7: error:" in result.stderr
    assert found(write(tmp_path, PARALLEL.format(deco="    @parallel\n"))) == []


def test_a_step_whose_self_is_positional_only_is_missing_self(tmp_path: Path) -> None:
    """`def start(self, /)`: Metaflow counts no argument and says 'self' is missing."""
    body = "    @step\n    def start(self, /):\n        self.next(self.end)\n\n"
    path = write(tmp_path, body)
    assert found(path) == [("missing-self", "error", 6)]
    assert "Write `def start(self):`" in only_flow(path).diagnostics[0].message
