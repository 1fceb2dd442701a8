"""DAG layout geometry: every step placed once, parents above children, no overlaps, no crossings.

Pure Python (no Qt). Real flows come from tests/flows and examples through the
same AST analysis the app uses; generated flows are built from a nested
`graph_structure`-like description so deep nesting and wide flows are cheap to
write down.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, FLOWS

from flowdeck.analysis.flowfile import analyze_file
from flowdeck_desktop.views.dag_layout import (
    DagLayout,
    EdgeRoute,
    LayoutOptions,
    NodePlacement,
    foreach_body_steps,
    layout_graph,
)

EPS = 1e-6


# --------------------------------------------------------------------------- graph builders


def graph_from_structure(structure: list[Any]) -> dict[str, Any]:
    """A Metaflow-shaped graph dict from a nested structure.

    `["start", [["a"], ["b"]], "join", "end"]`: a name followed by a list of
    branches is a split (one branch: a foreach), and the name after the list
    is its join, exactly as in Metaflow's `graph_structure`.
    """
    nodes: dict[str, dict[str, Any]] = {}

    def add(name: str, kind: str) -> None:
        nodes[name] = {"name": name, "type": kind, "next": [], "line": 0, "doc": ""}

    def walk(seq: list[Any]) -> tuple[str, str]:
        first: str | None = None
        prev: str | None = None
        i = 0
        while i < len(seq):
            item = seq[i]
            if isinstance(item, list):
                assert prev is not None
                join = seq[i + 1]
                split = nodes[prev]
                split["type"] = "split-foreach" if len(item) == 1 else "split-static"
                split["matching_join"] = join
                if len(item) == 1:
                    split["foreach_artifact"] = "items"
                ends = []
                for branch in item:
                    if branch:
                        b_first, b_last = walk(branch)
                        split["next"].append(b_first)
                        ends.append(b_last)
                    else:
                        split["next"].append(join)
                add(join, "join")
                for b_last in ends:
                    nodes[b_last]["next"].append(join)
                prev = join
                i += 2
                continue
            add(item, "linear")
            if prev is not None:
                nodes[prev]["next"].append(item)
            first = first or item
            prev = item
            i += 1
        assert first is not None and prev is not None
        return first, prev

    walk(structure)
    if nodes["start"]["type"] == "linear":
        nodes["start"]["type"] = "start"
    nodes["end"]["type"] = "end"
    return {"graph": nodes, "graph_structure": structure}


def random_structure(rng: random.Random, steps: int) -> list[Any]:
    """A random well-formed flow of roughly `steps` steps: chains, splits, foreaches, nesting."""
    names = (f"s{i}" for i in itertools.count())

    def seq(budget: int, depth: int) -> list[Any]:
        out: list[Any] = [next(names)]
        budget -= 1
        while budget > 0:
            roll = rng.random()
            if roll < 0.35 and depth < 5 and budget >= 3:
                width = rng.choice([1, 1, 2, 2, 3, 4])
                share = max(1, (budget - 1) // (width + 1))
                branches = [seq(rng.randint(1, share), depth + 1) if rng.random() > 0.05 or width == 1 else []
                            for _ in range(width)]
                out += [branches, next(names)]
                budget -= 1 + sum(_count(b) for b in branches)
            else:
                out.append(next(names))
                budget -= 1
        return out

    body = seq(max(1, steps - 2), 0)
    return ["start"] + ([[body], "start_join"] if rng.random() < 0.3 else body) + ["end"]


def _count(seq: list[Any]) -> int:
    return sum(_count(b) for item in seq if isinstance(item, list) for b in item) + sum(
        1 for item in seq if isinstance(item, str))


def sixty_steps() -> dict[str, Any]:
    """60 steps: a long spine with static splits of 2-5 branches and a few foreaches."""
    structure: list[Any] = ["start"]
    n = itertools.count()
    while _count(structure) < 56:
        k = next(n)
        if k % 3 == 0:
            structure += [f"split{k}", [[f"b{k}_{j}", f"c{k}_{j}"][: 1 + j % 2] for j in range(2 + k % 4)],
                          f"join{k}"]
        elif k % 3 == 1:
            structure += [f"each{k}", [[f"body{k}"]], f"gather{k}"]
        else:
            structure.append(f"step{k}")
    structure.append("end")
    return graph_from_structure(structure)


DEEP = ["start", [
    ["a", [["b", [["c1", "c1b"], ["c2", [["d"]], "dj"], []], "bj"]], "aj"],
    ["e"],
    ["f", [["g", [["h"], ["i"]], "ij"]], "gj"],
], "j", "end"]


def flow_files() -> list[Path]:
    return sorted(FLOWS.glob("*.py")) + sorted(EXAMPLES.glob("*.py"))


def real_graphs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in flow_files():
        for flow in analyze_file(path).flows:
            out.append((f"{path.name}:{flow.name}", flow.graph.as_dict()))
    return out


REAL = real_graphs()
GENERATED = [("deep", graph_from_structure(DEEP)), ("sixty", sixty_steps())] + [
    (f"random{seed}", graph_from_structure(random_structure(random.Random(seed), 12 + seed % 50)))
    for seed in range(40)
]


# --------------------------------------------------------------------------- geometry checks


def _orient(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a, b, p) -> bool:
    return (min(a[0], b[0]) - EPS <= p[0] <= max(a[0], b[0]) + EPS
            and min(a[1], b[1]) - EPS <= p[1] <= max(a[1], b[1]) + EPS)


def segments_touch(p1, p2, q1, q2) -> bool:
    """Closed segments share at least one point (proper crossing, touching or collinear overlap)."""
    d1, d2 = _orient(q1, q2, p1), _orient(q1, q2, p2)
    d3, d4 = _orient(p1, p2, q1), _orient(p1, p2, q2)
    if ((d1 > EPS and d2 < -EPS) or (d1 < -EPS and d2 > EPS)) and (
            (d3 > EPS and d4 < -EPS) or (d3 < -EPS and d4 > EPS)):
        return True
    return any(abs(d) <= EPS and _on_segment(a, b, p)
               for d, a, b, p in ((d1, q1, q2, p1), (d2, q1, q2, p2), (d3, p1, p2, q1), (d4, p1, p2, q2)))


def _segments(edge: EdgeRoute):
    return list(zip(edge.points, edge.points[1:]))


def crossings(layout: DagLayout) -> list[tuple[str, str]]:
    """Pairs of forward edges whose polylines meet anywhere but an endpoint they both have."""
    found = []
    edges = [e for e in layout.edges if not e.back]
    for e, f in itertools.combinations(edges, 2):
        shared = {e.points[0], e.points[-1]} & {f.points[0], f.points[-1]}
        for (p1, p2), (q1, q2) in itertools.product(_segments(e), _segments(f)):
            if not segments_touch(p1, p2, q1, q2):
                continue
            if any(_on_segment(p1, p2, s) and _on_segment(q1, q2, s) for s in shared) and not (
                    abs(_orient(p1, p2, q1)) <= EPS and abs(_orient(p1, p2, q2)) <= EPS):
                continue  # meet only at a common endpoint, not overlapping along a line
            found.append((f"{e.source}->{e.target}", f"{f.source}->{f.target}"))
    return found


def segment_hits_box(p, q, box: NodePlacement, inset: float = 1.0) -> bool:
    """Liang-Barsky: does the segment enter the box (shrunk by `inset`)?"""
    x0, y0, x1, y1 = box.x + inset, box.y + inset, box.right - inset, box.bottom - inset
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for pk, qk in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if abs(pk) < EPS:
            if qk < 0:
                return False
        else:
            t = qk / pk
            if pk < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
    return t0 <= t1


def edges_through_boxes(layout: DagLayout) -> list[tuple[str, str]]:
    bad = []
    for edge in (e for e in layout.edges if not e.back):
        for name, box in layout.nodes.items():
            if name in (edge.source, edge.target):
                continue
            if any(segment_hits_box(p, q, box) for p, q in _segments(edge)):
                bad.append((f"{edge.source}->{edge.target}", name))
    return bad


def overlaps(layout: DagLayout) -> list[tuple[str, str]]:
    boxes = list(layout.nodes.values())
    return [(a.name, b.name) for a, b in itertools.combinations(boxes, 2)
            if a.x < b.right and b.x < a.right and a.y < b.bottom and b.y < a.bottom]


def assert_clean(graph: dict[str, Any], layout: DagLayout) -> None:
    """The properties every well-formed flow's layout must have."""
    steps = graph["graph"]
    assert sorted(layout.nodes) == sorted(steps), "every step placed exactly once"
    assert layout.nested, layout.problems
    expected = {(u, v) for u, node in steps.items() for v in node["next"]}
    assert {(e.source, e.target) for e in layout.edges} == expected
    for edge in layout.edges:
        src, dst = layout.nodes[edge.source], layout.nodes[edge.target]
        assert dst.layer > src.layer, f"{edge.source} must sit above {edge.target}"
        assert edge.points[0][1] == pytest.approx(src.bottom) and edge.points[-1][1] == pytest.approx(dst.y)
        ys = [y for _, y in edge.points]
        assert ys == sorted(ys), "edges only run downwards"
    assert overlaps(layout) == []
    assert crossings(layout) == []
    assert edges_through_boxes(layout) == []
    for box in layout.nodes.values():
        assert 0 <= box.x and box.right <= layout.width and 0 <= box.y and box.bottom <= layout.height


# --------------------------------------------------------------------------- tests


def test_the_corpus_is_not_empty() -> None:
    assert len(REAL) >= 6 and any("branches" in name for name, _ in REAL)


@pytest.mark.parametrize("name,graph", REAL + GENERATED, ids=[n for n, _ in REAL + GENERATED])
def test_layout_is_clean(name: str, graph: dict[str, Any]) -> None:
    assert_clean(graph, layout_graph(graph))


@pytest.mark.parametrize("name,graph", REAL + GENERATED[:2], ids=[n for n, _ in REAL + GENERATED[:2]])
def test_layers_are_longest_paths_from_start(name: str, graph: dict[str, Any]) -> None:
    layout = layout_graph(graph)
    longest = {"start": 0}
    for _ in graph["graph"]:  # relax |V| times: enough for a DAG
        for u, node in graph["graph"].items():
            for v in node["next"]:
                if u in longest:
                    longest[v] = max(longest.get(v, 0), longest[u] + 1)
    assert {n: p.layer for n, p in layout.nodes.items()} == longest


def test_children_are_centred_under_their_parent() -> None:
    layout = layout_graph(graph_from_structure(DEEP))
    nodes = layout.nodes
    assert nodes["a"].center_x == pytest.approx(nodes["b"].center_x)  # foreach body straight below
    assert nodes["start"].center_x == pytest.approx(nodes["j"].center_x)
    assert nodes["b"].center_x == pytest.approx(nodes["bj"].center_x)
    for split, kids in (("start", "aef"), ("b", ["c1", "c2"])):
        xs = [nodes[k].center_x for k in kids]
        assert min(xs) < nodes[split].center_x < max(xs)
    # branches keep their written order left to right
    assert nodes["a"].center_x < nodes["e"].center_x < nodes["f"].center_x


def test_branches_flow_places_sides_apart_and_chain_straight() -> None:
    graph = next(g for n, g in REAL if n.startswith("branches.py"))
    nodes = layout_graph(graph).nodes
    assert nodes["left"].layer == nodes["right"].layer == 1
    assert nodes["left"].right < nodes["right"].x
    chain = ["join_sides", "fan_out", "outer_each", "inner_each", "inner_join", "outer_join", "end"]
    assert len({nodes[n].center_x for n in chain}) == 1


def test_sixty_steps_stay_readable() -> None:
    graph = sixty_steps()
    assert len(graph["graph"]) >= 60
    opts = LayoutOptions()
    layout = layout_graph(graph, options=opts)
    assert all(p.width == opts.node_width and p.height == opts.node_height for p in layout.nodes.values())
    widest = max(sum(1 for p in layout.nodes.values() if p.layer == k) for k in range(layout.layer_count))
    assert layout.width <= widest * (opts.node_width + opts.column_gap) + 2 * opts.margin + 1


def test_node_width_callback_sizes_boxes_without_overlap() -> None:
    graph = graph_from_structure(DEEP)
    layout = layout_graph(graph, node_width=lambda name: 60 + 25 * len(name))
    assert layout.nodes["c1b"].width == 60 + 75
    assert_clean(graph, layout)


def test_foreach_bodies() -> None:
    branches = next(g for n, g in REAL if n.startswith("branches.py"))
    assert foreach_body_steps(branches) == {"outer_each", "inner_each", "inner_join"}
    assert foreach_body_steps(graph_from_structure(DEEP)) == {"b", "c1", "c1b", "c2", "d", "dj", "bj",
                                                              "g", "h", "i", "ij"}


def test_a_parallel_fan_out_nests_and_counts_like_a_foreach() -> None:
    """The graph says a `num_parallel` fan-out as Metaflow does (`split-parallel`, a flat
    `graph_structure`): the window still draws its step in a block closed by the join,
    and counts its N tasks as a foreach body's, as it did when the type was a foreach."""
    (flow,) = analyze_file(FLOWS / "output_raw" / "parallel_fanout.py").flows
    graph = flow.graph.as_dict()
    assert graph["graph"]["start"]["type"] == "split-parallel"
    layout = layout_graph(graph)
    assert layout.nested and layout.problems == []
    assert_clean(graph, layout)
    assert foreach_body_steps(graph) == {"work"}


# --------------------------------------------------------------------------- malformed input


def _nodes(**edges: list[str]) -> dict[str, Any]:
    return {"graph": {n: {"name": n, "type": "linear", "next": nx} for n, nx in edges.items()},
            "graph_structure": []}


MALFORMED = {
    "cycle": _nodes(start=["a"], a=["b"], b=["a", "end"], end=[]),
    "all_cycle": _nodes(a=["b"], b=["c"], c=["a"]),
    "self_loop": _nodes(start=["start", "end"], end=[]),
    "unknown_target": _nodes(start=["nowhere", "a"], a=["end"], end=[]),
    "no_start": _nodes(begin=["mid"], mid=["end"], other=["end"], end=[]),
    "end_loops_back": _nodes(start=["end"], end=["start"]),
    "split_without_join": {"graph": {
        "start": {"type": "split-static", "next": ["a", "b"]},
        "a": {"type": "linear", "next": ["end"]}, "b": {"type": "linear", "next": []},
        "end": {"type": "end", "next": []}}},
    "wrong_matching_join": {"graph": {
        "start": {"type": "split-static", "next": ["a", "b"], "matching_join": "a"},
        "a": {"type": "linear", "next": ["j"]}, "b": {"type": "linear", "next": ["j"]},
        "j": {"type": "join", "next": ["end"]}, "end": {"type": "end", "next": []}}},
    "junk_fields": {"graph": {"start": {"next": "end", "type": None}, "end": {"next": [None, 3]},
                              "bad": "not a dict", 7: {"next": []}}},
    "empty": {"graph": {}},
    "no_graph_key": {},
    "none": None,
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_graphs_lay_out_without_raising(name: str) -> None:
    graph = MALFORMED[name]
    layout = layout_graph(graph)
    table = graph.get("graph", {}) if isinstance(graph, dict) else {}
    expected = {n for n, v in table.items() if isinstance(n, str) and isinstance(v, dict)}
    assert set(layout.nodes) == expected
    assert overlaps(layout) == []
    assert layout.width > 0 and layout.height > 0
    for edge in layout.edges:
        assert len(edge.points) >= 2


def test_malformed_graphs_report_their_problems() -> None:
    assert any("cycle" in p for p in layout_graph(MALFORMED["cycle"]).problems)
    assert any("nowhere" in p for p in layout_graph(MALFORMED["unknown_target"]).problems)
    assert any("start" in p for p in layout_graph(MALFORMED["no_start"]).problems)


def test_cycle_edge_is_routed_as_back_edge() -> None:
    layout = layout_graph(MALFORMED["cycle"])
    back = [e for e in layout.edges if e.back]
    assert [(e.source, e.target) for e in back] == [("b", "a")]
    forward = [e for e in layout.edges if not e.back]
    assert all(layout.nodes[e.target].layer > layout.nodes[e.source].layer for e in forward)


def test_split_without_matching_join_is_inferred() -> None:
    graph = {"graph": {
        "start": {"type": "split-static", "next": ["a", "b"]},
        "a": {"type": "linear", "next": ["j"]}, "b": {"type": "linear", "next": ["j"]},
        "j": {"type": "linear", "next": ["end"]}, "end": {"type": "end", "next": []}}}
    layout = layout_graph(graph)
    assert layout.nested and crossings(layout) == []


@pytest.mark.parametrize("path", sorted((FLOWS / "bad").glob("*.py")), ids=lambda p: p.name)
def test_bad_flow_corpus_lays_out(path: Path) -> None:
    for flow in analyze_file(path).flows:
        graph = flow.graph.as_dict()
        layout = layout_graph(graph)
        assert set(layout.nodes) == set(graph["graph"])
        assert overlaps(layout) == []


def test_very_deep_nesting_falls_back_without_recursion_error() -> None:
    # 400 foreaches nested inside each other: deeper than the nested layout recurses
    nodes: dict[str, Any] = {"start": {"type": "split-foreach", "next": ["f0"], "matching_join": "j_start"}}
    for k in range(400):
        nodes[f"f{k}"] = {"type": "split-foreach", "next": [f"f{k + 1}" if k < 399 else "leaf"],
                          "matching_join": f"j{k}"}
        nodes[f"j{k}"] = {"type": "join", "next": [f"j{k - 1}" if k else "j_start"]}
    nodes["leaf"] = {"type": "linear", "next": ["j399"]}
    nodes["j_start"] = {"type": "join", "next": ["end"]}
    nodes["end"] = {"type": "end", "next": []}
    layout = layout_graph({"graph": nodes})
    assert len(layout.nodes) == len(nodes) and overlaps(layout) == []


def test_random_malformed_graphs_terminate() -> None:
    rng = random.Random(7)
    for trial in range(30):
        names = [f"n{i}" for i in range(rng.randint(1, 60))] + (["start"] if trial % 2 else [])
        graph = {"graph": {n: {"type": rng.choice(["linear", "join", "split-static", "split-foreach"]),
                               "next": rng.sample(names + ["ghost"], k=rng.randint(0, 3)),
                               "matching_join": rng.choice(names)} for n in names}}
        layout = layout_graph(graph)
        assert set(layout.nodes) == set(names)
        assert overlaps(layout) == []


def test_the_checks_themselves_catch_bad_geometry() -> None:
    """Guard against vacuous passes: hand-made crossing, overlap and edge-through-box cases."""
    a, b = NodePlacement("a", 0, 0, 0, 100, 50), NodePlacement("b", 1, 50, 20, 100, 50)
    c = NodePlacement("c", 1, 400, 200, 100, 50)
    x = EdgeRoute("a", "c", [(0, 0), (100, 100)])
    y = EdgeRoute("b", "c", [(0, 100), (100, 0)])
    touching = EdgeRoute("a", "b", [(0, 0), (0, 100)])  # shares only its first point with `x`
    along = EdgeRoute("b", "a", [(0, 50), (0, 150)])  # overlaps `touching` along a line
    layout = DagLayout({"a": a, "b": b, "c": c}, [x, y], 600, 400)
    assert crossings(layout) == [("a->c", "b->c")]
    assert overlaps(layout) == [("a", "b")]
    assert crossings(DagLayout({}, [x, touching], 1, 1)) == []
    assert crossings(DagLayout({}, [touching, along], 1, 1)) == [("a->b", "b->a")]
    through = EdgeRoute("a", "c", [(50, 25), (450, 225)])
    assert ("a->c", "b") in edges_through_boxes(DagLayout({"a": a, "b": b, "c": c}, [through], 600, 400))
