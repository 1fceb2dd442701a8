"""The linear-time graph traversal and loop check agree with Metaflow's path-by-path walk.

`graph._traverse` and `lint.check_for_acyclicity` used to enumerate every path
from `start` (as Metaflow's graph.py does), which is exponential in the number
of splits in sequence: a flow of 16 diamonds took 1.5 s to list and 20 took
half a minute, and a visit cap made 12 diamonds report a false join-mismatch.
Discovery runs on every save, so these are now linear; this file proves that
the results are unchanged, against the old walk kept here as the reference.
"""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.analysis.diagnostics import has_errors
from flowdeck.analysis.flowfile import analyze_source
from flowdeck.analysis.graph import FlowGraph, StepNode, build_graph
from flowdeck.analysis.lint import lint_graph


def reference_traverse(graph: FlowGraph) -> None:
    """The previous implementation: Metaflow's walk over every path (exponential)."""
    in_funcs: dict[str, set[str]] = {n: set() for n in graph.nodes}
    sorted_nodes: list[str] = []
    if graph.start_step:
        stack = [(graph.start_step, (), [], [])]
        while stack:
            name, seen, split_parents, split_branches = stack.pop()
            node = graph.nodes[name]
            if name in sorted_nodes:
                sorted_nodes.remove(name)
            sorted_nodes.append(name)
            add_branch = False
            if node.type in ("split", "foreach"):
                node.split_parents = split_parents
                node.split_branches = split_branches
                add_branch = True
                split_parents = split_parents + [name]
            elif node.type == "join":
                if split_parents:
                    graph.nodes[split_parents[-1]].matching_join = name
                    node.split_parents = split_parents
                    node.split_branches = split_branches[:-1]
                    split_parents = split_parents[:-1]
                    split_branches = split_branches[:-1]
            else:
                node.split_parents = split_parents
                node.split_branches = split_branches
            for child in reversed(node.out_funcs):
                if child in seen or child not in graph.nodes:
                    continue
                in_funcs[child].add(name)
                stack.append((child, seen + (child,), split_parents,
                              split_branches + ([child] if add_branch else [])))
    for name, node in graph.nodes.items():
        node.in_funcs = sorted(in_funcs[name])
    graph.sorted_nodes = sorted_nodes


def _nodes(spec: list[tuple[str, list[str], bool, int]]) -> list[StepNode]:
    nodes = []
    for line, (name, outs, foreach, args) in enumerate(spec, start=1):
        node = StepNode(name=name, line=line, end_line=line, num_args=args,
                        out_funcs=list(outs), has_tail_next=bool(outs))
        if foreach and len(outs) == 1:
            node.type, node.foreach_param = "foreach", "items"
        elif len(outs) > 1:
            node.type = "split"
        elif outs:
            node.type = "join" if args > 1 else "linear"
        nodes.append(node)
    return nodes


def _graph(spec, traverse_reference: bool) -> FlowGraph:
    graph = build_graph("F", "f.py", 1, "", _nodes(spec))
    if traverse_reference:
        for node in graph:
            node.split_parents, node.split_branches, node.matching_join = [], [], None
        reference_traverse(graph)
    return graph


def _facts(graph: FlowGraph) -> dict:
    return {
        "sorted": graph.sorted_nodes,
        "nodes": {n.name: (n.split_parents, n.split_branches, n.matching_join,
                           n.in_funcs) for n in graph},
    }


@st.composite
def dags(draw):
    """Random acyclic step graphs, well-formed or not: edges only go forward."""
    count = draw(st.integers(3, 9))
    names = ["start"] + [f"s{i}" for i in range(1, count - 1)] + ["end"]
    spec = []
    for i, name in enumerate(names[:-1]):
        later = names[i + 1:]
        outs = draw(st.lists(st.sampled_from(later), min_size=1, max_size=3))
        spec.append((name, outs, draw(st.booleans()), draw(st.sampled_from([1, 1, 2]))))
    spec.append(("end", [], False, 1))
    return spec


@st.composite
def any_graphs(draw):
    """Random step graphs with loops and unknown targets."""
    count = draw(st.integers(2, 7))
    names = ["start"] + [f"s{i}" for i in range(1, count - 1)] + ["end"]
    spec = []
    for name in names:
        outs = draw(st.lists(st.sampled_from(names + ["ghost"]), max_size=3))
        spec.append((name, outs, draw(st.booleans()), draw(st.sampled_from([1, 2]))))
    return spec


@settings(max_examples=300, deadline=None)
@given(dags())
def test_traversal_matches_metaflow_walk_on_acyclic_graphs(spec):
    ours = _graph(copy.deepcopy(spec), traverse_reference=False)
    ref = _graph(copy.deepcopy(spec), traverse_reference=True)
    assert ours.sorted_nodes == ref.sorted_nodes
    if not _has_ambiguous_context(spec):
        # Every step reached with one split context (as in any well-formed flow):
        # every fact and every diagnostic is the same.
        assert _facts(ours) == _facts(ref)
        assert lint_graph(ours) == lint_graph(ref)
    else:
        assert has_errors(lint_graph(ours)) and has_errors(lint_graph(ref))


def _has_ambiguous_context(spec) -> bool:
    """A step reached with two split contexts, or a split closed by two joins: malformed.

    Metaflow keeps whichever context its walk saw last; the linear traversal
    may keep another. Either way the flow has lint errors (checked below).
    """
    graph = _graph(copy.deepcopy(spec), traverse_reference=False)
    contexts: dict[str, set] = {}
    joins: dict[str, set] = {}  # split -> joins that close it
    stack: list[tuple[str, tuple, tuple]] = [(graph.start_step, (), ())]
    seen = set()
    while stack:
        name, parents, branches = stack.pop()
        if (name, parents, branches) in seen:
            continue
        seen.add((name, parents, branches))
        node = graph[name]
        if node.type == "join" and parents:
            joins.setdefault(parents[-1], set()).add(name)
            contexts.setdefault(name, set()).add((parents, branches[:-1]))
            parents, branches = parents[:-1], branches[:-1]
        else:
            contexts.setdefault(name, set()).add((parents, branches))
        split = node.type in ("split", "foreach")
        for child in node.out_funcs:
            if child in graph.nodes:
                stack.append((child, parents + (name,) if split else parents,
                              branches + (child,) if split else branches))
    return any(len(c) > 1 for c in contexts.values()) or any(len(j) > 1 for j in joins.values())


@settings(max_examples=300, deadline=None)
@given(any_graphs())
def test_loop_check_and_traversal_terminate_on_any_graph(spec):
    graph = _graph(spec, traverse_reference=False)
    codes = [d.code for d in lint_graph(graph)]
    if "cycle" in codes:
        assert _reference_has_loop(graph)
    elif _reference_has_loop(graph):
        assert codes, "a loop must be reported unless an earlier lint stage stopped"


def _reference_has_loop(graph: FlowGraph) -> bool:
    for root in graph.nodes:
        stack = [(root, (root,))]
        while stack:
            name, path = stack.pop()
            for child in graph[name].out_funcs:
                if child in path:
                    return True
                if child in graph.nodes:
                    stack.append((child, path + (child,)))
    return False


def test_well_formed_flows_have_identical_graphs():
    """Diamonds, foreach and nested splits: every fact equal to the reference walk."""
    spec = [
        ("start", ["a", "b"], False, 1), ("a", ["j"], False, 1), ("b", ["fe"], False, 1),
        ("fe", ["body"], True, 1), ("body", ["fj"], False, 1), ("fj", ["j"], False, 2),
        ("j", ["end"], False, 2), ("end", [], False, 1),
    ]
    ours = _graph(copy.deepcopy(spec), traverse_reference=False)
    ref = _graph(copy.deepcopy(spec), traverse_reference=True)
    assert _facts(ours) == _facts(ref)
    assert lint_graph(ours) == lint_graph(ref) == []


def diamonds_source(count: int) -> str:
    out = ["from flowdeck import FlowSpec, step", "class Chain(FlowSpec):",
           "    @step", "    def start(self):", "        self.next(self.a0)"]
    for i in range(count):
        nxt = f"a{i + 1}" if i + 1 < count else "end"
        out += ["    @step", f"    def a{i}(self):", f"        self.next(self.b{i}, self.c{i})",
                "    @step", f"    def b{i}(self):", f"        self.next(self.j{i})",
                "    @step", f"    def c{i}(self):", f"        self.next(self.j{i})",
                "    @step", f"    def j{i}(self, inputs):", f"        self.next(self.{nxt})"]
    out += ["    @step", "    def end(self):", "        pass"]
    return "\n".join(out) + "\n"


def test_forty_splits_in_sequence_are_valid_and_analysed_at_once():
    """2**40 paths: the old walk never finished (and capped, reported a false error)."""
    flow = analyze_source(diamonds_source(40), "chain.py").flows[0]
    assert flow.diagnostics == []
    assert flow.graph.sorted_nodes[:6] == ["start", "a0", "b0", "c0", "j0", "a1"]
    assert flow.graph["a39"].matching_join == "j39"
