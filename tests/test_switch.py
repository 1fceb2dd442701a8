"""Switch steps (`self.next({...}, condition=...)`, Metaflow 2.18+), end to end.

Real `python flow.py` processes and real run folders, read back with the client;
the static graph, lint, the run fold and the DAG scene each on the same flows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import child_env, run_flow
from test_dag_layout import crossings, overlaps

from flowdeck import Flow
from flowdeck.analysis.flowfile import analyze_file
from flowdeck.observe.fold import RunFold
from flowdeck.store.events import read_events
from flowdeck.store.status import SKIPPED, SUCCEEDED

BASIC = '''\
from flowdeck import FlowSpec, Parameter, step


class PickFlow(FlowSpec):
    route = Parameter("route", default="b")

    @step
    def start(self):
        self.choice = self.route
        self.next(self.pick)

    @step
    def pick(self):
        self.next({"a": self.a, "b": self.b, "c": self.c}, condition="choice")

    @step
    def a(self):
        self.result = "A"
        self.next(self.end)

    @step
    def b(self):
        self.result = "B"
        self.next(self.end)

    @step
    def c(self):
        self.result = "C"
        self.next(self.end)

    @step
    def end(self):
        print("result", self.result)


if __name__ == "__main__":
    PickFlow()
'''

LOOP = '''\
import os

from flowdeck import FlowSpec, Parameter, step


class LoopFlow(FlowSpec):
    rounds = Parameter("rounds", default=4)

    @step
    def start(self):
        self.count = 0
        self.next(self.loop)

    @step
    def loop(self):
        self.count += 1
        if os.environ.get("FAIL_AT") == str(self.count):
            raise RuntimeError("planned failure in round %d" % self.count)
        self.status = "again" if self.count < self.rounds else "done"
        self.next({"again": self.loop, "done": self.after}, condition="status")

    @step
    def after(self):
        self.next(self.end)

    @step
    def end(self):
        print("count", self.count)


if __name__ == "__main__":
    LoopFlow()
'''


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    return path


def latest(path: Path, flow: str) -> Any:
    return Flow(flow, root=path.parent / ".flowdeck").latest_run


# --------------------------------------------------------------------------- engine


def test_only_the_taken_case_runs(tmp_path: Path) -> None:
    path = write(tmp_path, "pick.py", BASIC)
    result = run_flow(path, "run", "--route", "c")
    assert result.returncode == 0, result.stderr
    run = latest(path, "PickFlow")
    assert run.successful
    assert {s.id for s in run.steps()} == {"start", "pick", "c", "end"}
    assert run.data.result == "C"
    assert run["pick"].task.info["next"] == ["c"]
    events = read_events(run.dir / "events.jsonl")
    assert {e["step"] for e in events if e["type"] == "task_started"} == \
        {"start", "pick", "c", "end"}


def test_recursive_switch_loops_n_times_then_leaves(tmp_path: Path) -> None:
    path = write(tmp_path, "loop.py", LOOP)
    result = run_flow(path, "run", "--rounds", "5")
    assert result.returncode == 0, result.stderr
    run = latest(path, "LoopFlow")
    tasks = run["loop"].tasks()
    assert [t.data.count for t in tasks] == [1, 2, 3, 4, 5]
    assert len({t.id for t in tasks}) == 5  # a new task id every round
    assert run["after"].task.data.count == 5 and run.data.count == 5
    # each round starts from the one before it
    for before, after in zip(tasks, tasks[1:]):
        assert after.info["input_paths"] == [f"{run.id}/loop/{before.id}"]


def test_resume_of_a_loop_reuses_the_rounds_that_finished(tmp_path: Path) -> None:
    path = write(tmp_path, "loop.py", LOOP)
    failed = run_flow(path, "run", "--rounds", "5", env=child_env(FAIL_AT="3"))
    assert failed.returncode == 1
    assert "planned failure in round 3" in failed.stderr
    resumed = run_flow(path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    run = latest(path, "LoopFlow")
    assert run.successful
    tasks = run["loop"].tasks()
    assert [t.data.count for t in tasks] == [1, 2, 3, 4, 5]
    assert [t.origin_pathspec is not None for t in tasks] == [True, True, False, False, False]
    assert run.data.count == 5


@pytest.mark.parametrize("route, words", [
    ("z", ["`pick`", "self.choice", "'z'", "['a', 'b', 'c']"]),
])
def test_a_condition_value_outside_the_cases_fails_clearly(tmp_path: Path, route: str,
                                                           words: list[str]) -> None:
    path = write(tmp_path, "pick.py", BASIC)
    result = run_flow(path, "run", "--route", route)
    assert result.returncode == 1
    for word in words:
        assert word in result.stderr, result.stderr
    output = result.stdout + result.stderr
    assert "flowdeck/authoring" not in output  # the traceback shows the user's line, not ours
    assert f'{path}", line 14' in output  # the self.next(...) line
    run = latest(path, "PickFlow")
    assert run.status == "failed"
    assert {s.id for s in run.steps()} == {"start", "pick"}


def test_a_missing_condition_artifact_fails_clearly(tmp_path: Path) -> None:
    path = write(tmp_path, "pick.py", BASIC.replace('condition="choice"', 'condition="chosen"'))
    result = run_flow(path, "run")
    assert result.returncode == 1
    assert "Step `pick` switches on self.chosen, which is not set" in result.stderr
    assert "['a', 'b', 'c']" in result.stderr


# --------------------------------------------------------------------------- static graph, lint


def test_graph_has_metaflows_switch_fields(tmp_path: Path) -> None:
    graph = analyze_file(write(tmp_path, "pick.py", BASIC)).flows[0].graph.as_dict()
    node = graph["graph"]["pick"]
    assert node["type"] == "split-switch"
    assert node["condition"] == "choice"
    assert node["switch_cases"] == {"a": "a", "b": "b", "c": "c"}
    assert node["next"] == ["a", "b", "c"]
    assert graph["graph_structure"] == ["start", "pick", [["a"], ["b"], ["c"]], "end"]
    loop = analyze_file(write(tmp_path, "loop.py", LOOP)).flows[0].graph.as_dict()
    assert loop["graph"]["loop"]["next"] == ["loop", "after"]
    assert loop["graph"]["loop"]["switch_cases"] == {"again": "loop", "done": "after"}
    assert loop["graph_structure"] == ["start", "loop", [["after"]], "end"]


@pytest.mark.parametrize("source", [BASIC, LOOP], ids=["basic", "recursive"])
def test_switch_flows_lint_clean(tmp_path: Path, source: str) -> None:
    flow = analyze_file(write(tmp_path, "flow.py", source)).flows[0]
    assert flow.diagnostics == []


SWITCH_MISTAKES = {
    # (what replaces the pick step's self.next line, expected code)
    "no_condition": ('self.next({"a": self.a, "b": self.b})', "invalid-switch"),
    "variable_key": ('self.next({key: self.a, "b": self.b}, condition="choice")',
                     "invalid-switch"),
    "not_a_step": ('self.next({"a": "a", "b": self.b}, condition="choice")', "invalid-switch"),
    "with_foreach": ('self.next({"a": self.a, "b": self.b}, condition="choice", foreach="x")',
                     "invalid-switch"),
    "one_case": ('self.next({"a": self.a}, condition="choice")', "switch-one-case"),
    "back_to_start": ('self.next({"a": self.a, "s": self.start}, condition="choice")',
                      "cycle"),
}


@pytest.mark.parametrize("name", sorted(SWITCH_MISTAKES))
def test_switch_mistakes_metaflow_rejects_are_reported(tmp_path: Path, name: str) -> None:
    line, code = SWITCH_MISTAKES[name]
    source = BASIC.replace(
        'self.next({"a": self.a, "b": self.b, "c": self.c}, condition="choice")', line)
    path = write(tmp_path, "flow.py", source)
    diagnostics = analyze_file(path).flows[0].diagnostics
    assert code in [d.code for d in diagnostics], diagnostics
    found = next(d for d in diagnostics if d.code == code)
    assert found.file == str(path) and found.line == 14 and found.step == "pick"
    assert found.message.endswith(".") and "self.next" in found.message or code == "cycle"


def test_a_switch_case_straight_into_a_join_is_reported(tmp_path: Path) -> None:
    source = '''\
from flowdeck import FlowSpec, step


class J(FlowSpec):
    @step
    def start(self):
        self.next(self.s, self.o)

    @step
    def s(self):
        self.k = "x"
        self.next({"x": self.x, "j": self.join}, condition="k")

    @step
    def x(self):
        self.next(self.join)

    @step
    def o(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
'''
    diagnostics = analyze_file(write(tmp_path, "j.py", source)).flows[0].diagnostics
    found = [d for d in diagnostics if d.code == "switch-to-join"]
    assert found and found[0].line == 12 and "Add a plain step" in found[0].message


def test_catch_on_a_switch_is_reported(tmp_path: Path) -> None:
    source = BASIC.replace("    @step\n    def pick(self):",
                           "    @catch\n    @step\n    def pick(self):").replace(
        "import FlowSpec, Parameter, step", "import FlowSpec, Parameter, catch, step")
    diagnostics = analyze_file(write(tmp_path, "flow.py", source)).flows[0].diagnostics
    assert [d.code for d in diagnostics] == ["catch-on-switch"]


def test_parallel_branches_into_a_plain_step_are_still_an_error(tmp_path: Path) -> None:
    """Only switch alternatives may meet in a step without `inputs`. Here that step is
    `end`, which cannot be a join: the fix is a join before it (Metaflow's words)."""
    source = BASIC.replace(
        'self.next({"a": self.a, "b": self.b, "c": self.c}, condition="choice")',
        "self.next(self.a, self.b, self.c)")
    diagnostics = analyze_file(write(tmp_path, "flow.py", source)).flows[0].diagnostics
    assert [d.code for d in diagnostics] == ["unjoined-split"]
    source = source.replace("self.next(self.end)", "self.next(self.merge)").replace(
        "    @step\n    def end", "    @step\n    def merge(self):\n"
        "        self.next(self.end)\n\n    @step\n    def end")
    diagnostics = analyze_file(write(tmp_path, "flow.py", source)).flows[0].diagnostics
    assert [d.code for d in diagnostics] == ["join-without-inputs"]


# --------------------------------------------------------------------------- run fold


def fold_of(path: Path, flow: str) -> RunFold:
    run = latest(path, flow)
    fold = RunFold()
    for event in read_events(run.dir / "events.jsonl"):
        fold.apply(event)
    return fold


def test_fold_marks_the_cases_not_taken_as_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "pick.py", BASIC)
    assert run_flow(path).returncode == 0
    fold = fold_of(path, "PickFlow")
    assert fold.steps["pick"].taken == ("b",)
    assert fold.steps["b"].status == SUCCEEDED
    assert fold.steps["a"].status == SKIPPED and fold.steps["c"].status == SKIPPED
    assert fold.steps["end"].status == SUCCEEDED


def test_fold_skips_a_case_as_soon_as_the_switch_has_picked(tmp_path: Path) -> None:
    """While the run goes: once `pick` finished and `b` started, a and c are not taken."""
    path = write(tmp_path, "pick.py", BASIC)
    assert run_flow(path).returncode == 0
    run = latest(path, "PickFlow")
    fold = RunFold()
    for event in read_events(run.dir / "events.jsonl"):
        fold.apply(event)
        if event["type"] == "task_started" and event["step"] == "b":
            break
    assert fold.steps["a"].status == SKIPPED and fold.steps["c"].status == SKIPPED
    assert fold.steps["end"].status == "pending"


def test_fold_counts_every_round_of_a_loop(tmp_path: Path) -> None:
    path = write(tmp_path, "loop.py", LOOP)
    assert run_flow(path, "run", "--rounds", "3").returncode == 0
    fold = fold_of(path, "LoopFlow")
    assert fold.steps["loop"].done == 3 and fold.steps["loop"].status == SUCCEEDED
    assert fold.steps["loop"].taken == ("after", "loop")
    assert fold.steps["after"].status == SUCCEEDED


# --------------------------------------------------------------------------- DAG


def test_switch_graphs_lay_out_nested_without_crossings(tmp_path: Path) -> None:
    from flowdeck_desktop.views.dag_layout import layout_graph

    for name, source in (("pick.py", BASIC), ("loop.py", LOOP)):
        graph = analyze_file(write(tmp_path, name, source)).flows[0].graph.as_dict()
        layout = layout_graph(graph)
        assert layout.nested and crossings(layout) == [] and overlaps(layout) == []
    back = [e for e in layout.edges if e.back]
    assert [(e.source, e.target) for e in back] == [("loop", "loop")]


def test_dag_draws_a_switch_as_a_diamond_with_case_labels(qtbot, tmp_path: Path) -> None:
    from PySide6.QtCore import QPointF

    from flowdeck_desktop.views.dag_view import DagView, EdgeItem, StepItem

    path = write(tmp_path, "pick.py", BASIC)
    assert run_flow(path).returncode == 0
    view = DagView()
    qtbot.addWidget(view)
    scene = view.dag_scene()
    scene.set_graph(analyze_file(path).flows[0].graph.as_dict())
    view.show()
    qtbot.waitExposed(view)

    pick = scene.item_for("pick")
    assert isinstance(pick, StepItem) and pick.is_switch
    assert not scene.item_for("a").is_switch
    rect = pick.boundingRect().adjusted(6, 6, -6, -6)
    shape = pick.shape()
    assert shape.contains(rect.center())
    assert not shape.contains(rect.topLeft() + QPointF(3, 3))  # a diamond has no corners
    assert pick.text().splitlines()[1] == "choice"  # the artifact that picks the case
    assert "pick (switch choice)" in pick.toolTip()

    edges = {(e.route.source, e.route.target): e for e in scene.items()
             if isinstance(e, EdgeItem)}
    assert {k: e.case_label for k, e in edges.items() if e.case_label} == \
        {("pick", "a"): "a", ("pick", "b"): "b", ("pick", "c"): "c"}
    assert all(e.taken is None for e in edges.values())

    fold = fold_of(path, "PickFlow")
    for step, summary in fold.steps.items():
        scene.set_step_state(step, summary)
    assert edges[("pick", "b")].taken is True
    assert edges[("pick", "a")].taken is False and edges[("pick", "c")].taken is False
    assert edges[("a", "end")].taken is False  # out of a step that never ran: dimmed
    assert scene.item_for("a").skipped and "not taken" in scene.item_for("a").text()
    assert scene.item_for("a").opacity() < 1 and scene.item_for("b").opacity() == 1
    labels = [edges[("pick", t)].label_rect() for t in "abc"]
    assert all(not r.isEmpty() for r in labels)
    assert not any(a.intersects(b) for i, a in enumerate(labels) for b in labels[i + 1:])
    qtbot.waitUntil(lambda: pick.paint_count > 0)


def test_dag_draws_a_recursive_switch_with_its_labelled_loop(qtbot, tmp_path: Path) -> None:
    from flowdeck_desktop.views.dag_view import DagView, EdgeItem

    path = write(tmp_path, "loop.py", LOOP)
    view = DagView()
    qtbot.addWidget(view)
    scene = view.dag_scene()
    scene.set_graph(analyze_file(path).flows[0].graph.as_dict())
    loops = [e for e in scene.items() if isinstance(e, EdgeItem) and e.route.back]
    assert [(e.route.source, e.case_label) for e in loops] == [("loop", "again")]
    label = loops[0].label_rect()
    assert label.left() > scene.item_for("loop").sceneBoundingRect().right() - 6
    assert scene.sceneRect().contains(label)


FOREACH_SWITCH = '''\
from flowdeck import FlowSpec, step


class EachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3, 4]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.kind = "odd" if self.input % 2 else "even"
        self.next({"odd": self.odd, "even": self.even}, condition="kind")

    @step
    def odd(self):
        self.next(self.merge)

    @step
    def even(self):
        self.next(self.merge)

    @step
    def merge(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    EachFlow()
'''


def test_fold_counts_only_the_items_a_switch_inside_a_foreach_sent(tmp_path: Path) -> None:
    """Each item picks its own case: odd and even get 2 of 4 items, and finish at 2/2."""
    path = write(tmp_path, "each.py", FOREACH_SWITCH)
    assert run_flow(path).returncode == 0
    fold = fold_of(path, "EachFlow")
    for step in ("odd", "even"):
        assert (fold.steps[step].status, fold.steps[step].done, fold.steps[step].total) == \
            (SUCCEEDED, 2, 2)
    assert (fold.steps["merge"].done, fold.steps["merge"].total) == (4, 4)
    assert fold.steps["each"].taken == ("even", "odd")
