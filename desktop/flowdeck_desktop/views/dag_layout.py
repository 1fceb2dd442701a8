"""Layered, top-to-bottom layout of a flow's DAG. Pure Python: no Qt here.

Input is the graph dict in Metaflow's `output-raw --json` shape (what
`flowdeck.analysis.graph.FlowGraph.as_dict()` produces). Output is plain dataclasses
the Qt scene turns into items, so the geometry can be tested without a
display and reused by any other front end.

Two strategies, chosen per graph:

* **Nested** (every well-formed flow). A Metaflow flow is series-parallel:
  each split has a matching join and its branches do not touch each other.
  The graph is parsed into that tree of blocks and each block gets its own
  column, branches side by side and centred under the split. Edges of one
  block then stay inside its column, which makes crossings impossible by
  construction rather than merely unlikely.
  A switch (`split-switch`) nests the same way: its cases are branches that meet
  where they reconverge (often `end`, or the join of an enclosing split, which
  then closes both blocks); a case back to the switch itself (a recursive
  switch, a loop) is drawn as a back edge beside the box.
* **Layered fallback** (cycles, unknown targets, no start, unmatched splits).
  A small Sugiyama pipeline: break cycles, longest-path layers, dummy nodes
  for long edges, barycenter ordering, then x placement. It never raises and
  always terminates; it lays out whatever nodes and edges exist.

Layers are the longest path from `start` in both cases (in the nested case
the block tree yields exactly that), so a join sits below its longest branch.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import field
from typing import Any

from flowdeck.analysis import scopes
from flowdeck.analysis.scopes import foreach_scopes
from flowdeck.compiled_dataclasses import dataclass

#: Steps that open a block closed by their `matching_join` (a `split-parallel` too: its
#: N tasks meet in the join, as a foreach's do), named once in `analysis.scopes`.
SPLIT_TYPES = frozenset(scopes.SPLIT_TYPES + scopes.FOREACH_TYPES)
FOREACH_TYPES = frozenset(scopes.FOREACH_TYPES)
MAX_NESTING = 200  # deeper nesting falls back to the iterative layered layout (no recursion limit)

Point = tuple[float, float]


@dataclass(frozen=True)
class LayoutOptions:
    """Geometry knobs, in scene units (pixels at zoom 1)."""

    node_width: float = 160.0
    node_height: float = 56.0
    layer_gap: float = 44.0
    column_gap: float = 28.0
    lane_width: float = 16.0
    margin: float = 24.0
    port_spacing: float = 14.0
    back_edge_gap: float = 14.0
    #: Room kept right of a step that loops on itself (a recursive switch): its loop and
    #: the loop's label. Its column is widened by this much on both sides (it stays centred).
    loop_room: float = 60.0
    max_sweeps: int = 16


@dataclass
class NodePlacement:
    """Where one step goes: `x`, `y` are the top-left corner of its box."""

    name: str
    layer: int
    x: float
    y: float
    width: float
    height: float

    @property
    def center_x(self) -> float:
        """Edges attach at the horizontal centre (or at ports spread around it)."""
        return self.x + self.width / 2

    @property
    def center_y(self) -> float:
        """Back edges attach at mid-height on the right side."""
        return self.y + self.height / 2

    @property
    def right(self) -> float:
        """Right edge of the box, for overlap checks and back-edge lanes."""
        return self.x + self.width

    @property
    def bottom(self) -> float:
        """Where outgoing edges leave the box."""
        return self.y + self.height


@dataclass
class EdgeRoute:
    """A polyline from the source box's bottom to the target box's top.

    `back` marks edges that close a cycle or loop on one step (malformed
    flows only); those are routed around the right side and point upwards.
    """

    source: str
    target: str
    points: list[Point]
    back: bool = False


@dataclass
class DagLayout:
    """The whole picture: placements by step name, edge routes, overall size."""

    nodes: dict[str, NodePlacement]
    edges: list[EdgeRoute]
    width: float
    height: float
    layer_count: int = 0
    nested: bool = False  # True: placed by split/join nesting, crossing-free by construction
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- input


@dataclass
class _Graph:
    """The graph dict reduced to what layout needs, with bad references dropped."""

    order: list[str]
    next: dict[str, list[str]]
    types: dict[str, str]
    joins: dict[str, str]
    start: str | None
    problems: list[str]

    def parents(self) -> dict[str, list[str]]:
        """In-edges; computed on demand because only some passes need them."""
        result: dict[str, list[str]] = {name: [] for name in self.order}
        for name in self.order:
            for child in self.next[name]:
                if child != name:
                    result[child].append(name)
        return result


def node_table(graph: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The `graph` mapping of node dicts, tolerating a bare node mapping or junk.

    Public so the view reads node fields the same forgiving way the layout does.
    """
    if not isinstance(graph, Mapping):
        return {}
    table = graph.get("graph", graph)
    return table if isinstance(table, Mapping) else {}


def _parse(graph: Mapping[str, Any] | None) -> _Graph:
    """Normalise the dict: unknown targets and duplicate edges dropped, each noted once."""
    table = node_table(graph)
    order = [name for name, node in table.items() if isinstance(name, str) and isinstance(node, Mapping)]
    known = set(order)
    problems: list[str] = []
    nexts: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    joins: dict[str, str] = {}
    for name in order:
        node = table[name]
        raw = node.get("next") or []
        targets: list[str] = []
        for target in raw if isinstance(raw, (list, tuple)) else []:
            if not isinstance(target, str) or target not in known:
                problems.append(f"{name} -> {target!r}: unknown step")
            elif target not in targets:
                targets.append(target)
        nexts[name] = targets
        types[name] = str(node.get("type") or "unknown")
        join = node.get("matching_join")
        if isinstance(join, str) and join in known:
            joins[name] = join
    start = "start" if "start" in known else None
    if start is None and order:
        problems.append("no step named 'start'")
    return _Graph(order, nexts, types, joins, start, problems)


def _roots(g: _Graph) -> list[str]:
    """Where walks begin: `start`, then steps nothing points to, then everything else."""
    parents = g.parents()
    first = [g.start] if g.start else []
    sources = [n for n in g.order if not parents[n] and n != g.start]
    return first + sources + [n for n in g.order if n != g.start and n not in sources]


# --------------------------------------------------------------------------- public entry


def layout_graph(graph: Mapping[str, Any] | None,
                 node_width: Callable[[str], float] | None = None,
                 options: LayoutOptions | None = None) -> DagLayout:
    """Lay out a flow graph dict; never raises on malformed input.

    `node_width(step)` lets the view size boxes from real font metrics
    while this module stays free of Qt; by default every box is
    `options.node_width` wide.
    """
    opts = options or LayoutOptions()
    g = _parse(graph)
    widths = {n: max(opts.lane_width, float(node_width(n)) if node_width else opts.node_width)
              for n in g.order}
    if not g.order:
        return DagLayout({}, [], 2 * opts.margin, 2 * opts.margin, 0, False, g.problems)
    placed = _nested_placement(g, widths, opts)
    nested = placed is not None
    if placed is None:
        placed = _layered_placement(g, widths, opts)
    layers, centers, waypoints, back = placed
    return _assemble(g, widths, opts, layers, centers, waypoints, back, nested)


def foreach_body_steps(graph: Mapping[str, Any] | None) -> set[str]:
    """Steps that run once per foreach item: the view draws them once with a k/N counter.

    The answer is the core's (`analysis.scopes`), the same one the run fold counts by.
    """
    return foreach_scopes(graph).foreach_bodies()


# --------------------------------------------------------------------------- nested layout


class _Unnested(Exception):
    """The graph is not a clean split/join nesting; use the layered fallback."""


@dataclass
class _Par:
    """The branches between a split and its join; an empty branch is a direct edge."""

    split: str
    join: str
    branches: list[list["_Item"]]


_Item = str | _Par
_Placed = tuple[dict[str, int], dict[Hashable, float], dict[tuple[str, str], list[float]], set[tuple[str, str]]]


def _infer_join(g: _Graph, split: str) -> str | None:
    """For a split without `matching_join`: the first step every branch reaches."""
    reach: list[dict[str, int]] = []
    for child in g.next[split]:
        dist = {child: 0}
        frontier = [child]
        while frontier:
            nxt: list[str] = []
            for node in frontier:
                for c in g.next[node]:
                    if c not in dist and c != split:
                        dist[c] = dist[node] + 1
                        nxt.append(c)
            frontier = nxt
        reach.append(dist)
    if len(reach) < 2:
        return None
    common = set(reach[0]).intersection(*reach[1:])
    if not common:
        return None
    return min(common, key=lambda n: (max(r[n] for r in reach), g.order.index(n)))


def _nested_placement(g: _Graph, widths: dict[str, float], opts: LayoutOptions) -> _Placed | None:
    """Block-tree placement, or None when the graph is not a clean nesting."""
    top = g.start
    if top is None:
        parents = g.parents()
        sources = [n for n in g.order if not parents[n]]
        top = sources[0] if len(sources) == 1 else None
    if top is None:
        return None
    seen: set[str] = set()
    try:
        tree = _build_seq(g, top, None, seen, 0)
    except _Unnested:
        return None
    if len(seen) != len(g.order):
        return None
    layers: dict[str, int] = {}
    centers: dict[Hashable, float] = {}
    runs: dict[tuple[str, str], list[float]] = {}
    width_of: dict[int, float] = {}
    loops = {(n, n) for n in g.order if n in g.next[n]}  # recursive switches: drawn beside
    columns = {n: w + (2 * opts.loop_room if (n, n) in loops else 0.0) for n, w in widths.items()}
    _seq_width(tree, columns, opts, width_of)
    _place_seq(tree, 0, 0.0, columns, opts, width_of, layers, centers, runs)
    return layers, centers, runs, loops


def _build_seq(g: _Graph, first: str, stop: str | None, seen: set[str], depth: int) -> list[_Item]:
    """Steps from `first` up to (not including) `stop`; every edge must fit the nesting."""
    if depth > MAX_NESTING:
        raise _Unnested("nesting too deep")
    items: list[_Item] = []
    cur: str | None = first
    while cur is not None and cur != stop:
        if cur in seen:
            raise _Unnested(f"{cur} reached twice")
        seen.add(cur)
        items.append(cur)
        outs = [c for c in g.next[cur] if c != cur]  # a loop on itself is not a branch
        if g.types[cur] in SPLIT_TYPES or len(outs) > 1:
            join = g.joins.get(cur) or _infer_join(g, cur)
            if join is None or not outs:
                raise _Unnested(f"split {cur} has no join")
            branches = [[] if child == join else _build_seq(g, child, join, seen, depth + 1)
                        for child in outs]
            items.append(_Par(cur, join, branches))
            cur = join
        else:
            cur = outs[0] if outs else None
    if cur != stop:
        raise _Unnested(f"branch from {first} never reaches {stop}")
    return items


def _seq_width(seq: list[_Item], widths: dict[str, float], opts: LayoutOptions,
               memo: dict[int, float]) -> float:
    """Column width of a sequence: its widest item (memoised by list identity)."""
    width = opts.lane_width
    for item in seq:
        if isinstance(item, str):
            width = max(width, widths[item])
        else:
            width = max(width, _par_width(item, widths, opts, memo))
    memo[id(seq)] = width
    return width


def _par_width(par: _Par, widths: dict[str, float], opts: LayoutOptions,
               memo: dict[int, float]) -> float:
    """Branches side by side, one column each, with a gap between columns."""
    parts = [_seq_width(b, widths, opts, memo) for b in par.branches]
    return sum(parts) + opts.column_gap * (len(parts) - 1)


_Tails = list[tuple[str, float]]  # (step, x of its column): edges still to reach a join


def _place_seq(seq: list[_Item], layer: int, cx: float, widths: dict[str, float],
               opts: LayoutOptions, memo: dict[int, float], layers: dict[str, int],
               centers: dict[Hashable, float], runs: dict[tuple[str, str], list[float]],
               stop: str | None = None, tails: _Tails | None = None) -> int:
    """Centre every item of a sequence on `cx`, stacking layers; returns the next free layer.

    A sequence that ends with a block whose join is `stop` (switch cases meeting at the
    join of the split around them) leaves that block's last edges open: they go into
    `tails`, and the caller routes them once it knows the join's layer.
    """
    for index, item in enumerate(seq):
        if isinstance(item, str):
            layers[item] = layer
            centers[item] = cx
            layer += 1
        elif tails is not None and index == len(seq) - 1 and item.join == stop:
            layer = _place_par(item, layer, cx, widths, opts, memo, layers, centers, runs,
                               tails)
        else:
            layer = _place_par(item, layer, cx, widths, opts, memo, layers, centers, runs)
    return layer


def _place_par(par: _Par, layer: int, cx: float, widths: dict[str, float], opts: LayoutOptions,
               memo: dict[int, float], layers: dict[str, int], centers: dict[Hashable, float],
               runs: dict[tuple[str, str], list[float]], open_tails: _Tails | None = None) -> int:
    """Branches left to right, the group centred under the split; long edges get a run x.

    With `open_tails`, the edges into the join are handed back instead of routed here
    (an enclosing block shares the join and places it lower).
    """
    left = cx - _par_width(par, widths, opts, memo) / 2
    ends: list[int] = []
    tails: _Tails = []
    for branch in par.branches:
        width = memo[id(branch)]
        bx = left + width / 2
        inner: _Tails = []
        ends.append(_place_seq(branch, layer, bx, widths, opts, memo, layers, centers, runs,
                               par.join, inner))
        if branch and isinstance(branch[-1], _Par) and branch[-1].join == par.join:
            tails += inner  # the branch's own block meets at this join too
        else:
            # A branch ends with a step (a join follows every _Par); an empty one is the split.
            last = branch[-1] if branch else par.split
            assert isinstance(last, str)
            tails.append((last, bx))
        left += width + opts.column_gap
    join_layer = max(ends)
    if open_tails is not None:
        open_tails += tails
        return join_layer
    for last, bx in tails:
        runs[(last, par.join)] = [bx] * max(0, join_layer - layers[last] - 1)
    return join_layer


# --------------------------------------------------------------------------- layered fallback


def _back_edges(g: _Graph) -> set[tuple[str, str]]:
    """Edges that close a cycle in a DFS from the roots (iterative: no recursion limit)."""
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    for root in _roots(g):
        if root in state:
            continue
        state[root] = 1
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            name, i = stack.pop()
            outs = g.next[name]
            if i >= len(outs):
                state[name] = 2
                continue
            stack.append((name, i + 1))
            child = outs[i]
            if state.get(child) == 1:
                back.add((name, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, 0))
    return back


def _longest_path_layers(g: _Graph, forward: list[tuple[str, str]]) -> dict[str, int]:
    """Kahn's order over the acyclic edges; each step one layer below its lowest parent."""
    indegree = {n: 0 for n in g.order}
    children: dict[str, list[str]] = {n: [] for n in g.order}
    for u, v in forward:
        indegree[v] += 1
        children[u].append(v)
    layer = {n: 0 for n in g.order}
    ready = [n for n in _roots(g) if indegree[n] == 0]
    queued = set(ready)
    while ready:
        u = ready.pop(0)
        for v in children[u]:
            layer[v] = max(layer[v], layer[u] + 1)
            indegree[v] -= 1
            if indegree[v] == 0 and v not in queued:
                queued.add(v)
                ready.append(v)
    return layer


@dataclass
class _Layered:
    """The proper layered graph: real steps plus one dummy per layer a long edge crosses."""

    rows: list[list[Hashable]]
    up: dict[Hashable, list[Hashable]]
    down: dict[Hashable, list[Hashable]]
    chains: dict[tuple[str, str], list[Hashable]]


def _with_dummies(g: _Graph, layer: dict[str, int], forward: list[tuple[str, str]]) -> _Layered:
    """Split every edge longer than one layer into a chain of dummy nodes."""
    count = max(layer.values()) + 1
    rows: list[list[Hashable]] = [[] for _ in range(count)]
    up: dict[Hashable, list[Hashable]] = {}
    down: dict[Hashable, list[Hashable]] = {}
    for name in _dfs_order(g):
        rows[layer[name]].append(name)
        up[name], down[name] = [], []
    chains: dict[tuple[str, str], list[Hashable]] = {}
    for index, (u, v) in enumerate(forward):
        prev: Hashable = u
        chain: list[Hashable] = []
        for lay in range(layer[u] + 1, layer[v]):
            dummy = ("~dummy", index, lay)
            rows[lay].append(dummy)
            up[dummy], down[dummy] = [prev], []
            down[prev].append(dummy)
            chain.append(dummy)
            prev = dummy
        down[prev].append(v)
        up[v].append(prev)
        chains[(u, v)] = chain
    return _Layered(rows, up, down, chains)


def _dfs_order(g: _Graph) -> list[str]:
    """Preorder from the roots: a starting order that keeps branches together."""
    seen: set[str] = set()
    out: list[str] = []
    for root in _roots(g):
        stack = [root]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            out.append(name)
            stack.extend(reversed(g.next[name]))
    return out


def _crossings(upper: list[Hashable], lower: list[Hashable], down: dict[Hashable, list[Hashable]]) -> int:
    """Straight-line crossings between two adjacent rows (pairwise; rows are small)."""
    pos = {n: i for i, n in enumerate(lower)}
    pairs = [(i, pos[c]) for i, n in enumerate(upper) for c in down[n] if c in pos]
    return sum(1 for a in range(len(pairs)) for b in range(a + 1, len(pairs))
               if (pairs[a][0] - pairs[b][0]) * (pairs[a][1] - pairs[b][1]) < 0)


def _total_crossings(lg: _Layered) -> int:
    """Crossings over all adjacent row pairs: the score the sweeps minimise."""
    return sum(_crossings(lg.rows[i], lg.rows[i + 1], lg.down) for i in range(len(lg.rows) - 1))


def _sweep(rows: list[list[Hashable]], neighbours: dict[Hashable, list[Hashable]],
           indices: Iterable[int], ref_offset: int) -> None:
    """One barycenter pass: sort each row by the mean position of its neighbours in the row before."""
    for i in indices:
        ref = {n: k for k, n in enumerate(rows[i + ref_offset])}
        row = rows[i]

        def key(item: tuple[int, Hashable], ref: dict[Hashable, int] = ref) -> float:
            """Mean neighbour position; a node without neighbours keeps its place."""
            k, n = item
            found = [ref[m] for m in neighbours[n] if m in ref]
            return sum(found) / len(found) if found else float(k)

        rows[i] = [n for _, n in sorted(enumerate(row), key=key)]


def _order_rows(lg: _Layered, opts: LayoutOptions) -> None:
    """Barycenter sweeps down and up, keeping the ordering with the fewest crossings."""
    best = [list(r) for r in lg.rows]
    best_count = _total_crossings(lg)
    for _ in range(opts.max_sweeps):
        if best_count == 0:
            break
        _sweep(lg.rows, lg.up, range(1, len(lg.rows)), -1)
        _sweep(lg.rows, lg.down, range(len(lg.rows) - 2, -1, -1), 1)
        count = _total_crossings(lg)
        if count < best_count:
            best, best_count = [list(r) for r in lg.rows], count
    lg.rows = best


def _resolve_row(row: list[Hashable], desired: dict[Hashable, float], size: dict[Hashable, float],
                 gap: float) -> None:
    """Move a row toward desired centres keeping order and spacing (mean of two greedy packs)."""
    if not row:
        return
    sep = [(size[row[i - 1]] + size[row[i]]) / 2 + gap for i in range(1, len(row))]
    left = [desired[row[0]]]
    for i in range(1, len(row)):
        left.append(max(desired[row[i]], left[-1] + sep[i - 1]))
    right = [desired[row[-1]]]
    for i in range(len(row) - 2, -1, -1):
        right.append(min(desired[row[i]], right[-1] - sep[i]))
    right.reverse()
    for i, n in enumerate(row):
        desired[n] = (left[i] + right[i]) / 2


def _assign_x(lg: _Layered, size: dict[Hashable, float], opts: LayoutOptions) -> dict[Hashable, float]:
    """Pack rows, then relax each node toward its neighbours' mean, down then up."""
    x: dict[Hashable, float] = {}
    for row in lg.rows:
        total = sum(size[n] for n in row) + opts.column_gap * (len(row) - 1)
        left = -total / 2
        for n in row:
            x[n] = left + size[n] / 2
            left += size[n] + opts.column_gap
    for _ in range(4):
        for rows, nbrs in ((lg.rows, lg.up), (list(reversed(lg.rows)), lg.down)):
            for row in rows:
                for n in row:
                    if nbrs[n]:
                        x[n] = sum(x[m] for m in nbrs[n]) / len(nbrs[n])
                _resolve_row(row, x, size, opts.column_gap)
    return x


def _layered_placement(g: _Graph, widths: dict[str, float], opts: LayoutOptions) -> _Placed:
    """Sugiyama-style placement for graphs the nesting cannot describe."""
    back = _back_edges(g)
    selfs = {(n, n) for n in g.order if n in g.next[n]}
    if back - selfs:
        g.problems.append("cycle: " + ", ".join(f"{u} -> {v}" for u, v in sorted(back - selfs)))
    forward = [(u, v) for u in g.order for v in g.next[u] if (u, v) not in back and u != v]
    layer = _longest_path_layers(g, forward)
    lg = _with_dummies(g, layer, forward)
    _order_rows(lg, opts)
    size: dict[Hashable, float] = {n: widths.get(n, opts.lane_width) if isinstance(n, str) else opts.lane_width
                                   for row in lg.rows for n in row}
    x = _assign_x(lg, size, opts)
    runs = {edge: [x[d] for d in chain] for edge, chain in lg.chains.items()}
    return layer, x, runs, back | selfs


# --------------------------------------------------------------------------- geometry


def _assemble(g: _Graph, widths: dict[str, float], opts: LayoutOptions, layers: dict[str, int],
              centers: dict[Hashable, float], runs: dict[tuple[str, str], list[float]],
              back: set[tuple[str, str]], nested: bool) -> DagLayout:
    """Turn layers and centres into boxes and routed polylines, shifted to start at the margin."""
    left = min(centers[n] - widths[n] / 2 for n in g.order)
    left = min([left] + [x - opts.lane_width / 2 for xs in runs.values() for x in xs])
    shift = opts.margin - left
    pitch = opts.node_height + opts.layer_gap
    nodes = {n: NodePlacement(n, layers[n], centers[n] - widths[n] / 2 + shift,
                              opts.margin + layers[n] * pitch, widths[n], opts.node_height)
             for n in g.order}
    forward = [(u, v) for u in g.order for v in g.next[u] if (u, v) not in back]
    hops = {e: [x + shift for x in runs.get(e, [])] for e in forward}
    edges = _route_forward(nodes, forward, hops, opts)
    right = max([p.right for p in nodes.values()] + [x + opts.lane_width / 2 for xs in hops.values() for x in xs]
                + [nodes[u].right + opts.loop_room for u, v in back if u == v])
    closing = [(u, v) for u in g.order for v in g.next[u] if (u, v) in back]
    edges += _route_back(nodes, closing, right, opts)
    width = max([right] + [x for e in edges for x, _ in e.points]) + opts.margin
    height = max(p.bottom for p in nodes.values()) + opts.margin
    return DagLayout(nodes, edges, width, height, max(layers.values()) + 1, nested, g.problems)


def _ports(count: int, center: float, width: float, opts: LayoutOptions) -> list[float]:
    """Evenly spread attachment points so arrows into one box do not pile up."""
    if count <= 1:
        return [center] * count
    spacing = min(opts.port_spacing, width * 0.8 / (count - 1))
    return [center + (i - (count - 1) / 2) * spacing for i in range(count)]


def _route_forward(nodes: dict[str, NodePlacement], edges: list[tuple[str, str]],
                   hops: dict[tuple[str, str], list[float]], opts: LayoutOptions) -> list[EdgeRoute]:
    """Polylines: source port, down each crossed layer at the hop x, target port."""
    first = {e: (hops[e][0] if hops[e] else nodes[e[1]].center_x) for e in edges}
    last = {e: (hops[e][-1] if hops[e] else nodes[e[0]].center_x) for e in edges}
    out_port: dict[tuple[str, str], float] = {}
    in_port: dict[tuple[str, str], float] = {}
    for name, node in nodes.items():
        outs = sorted((e for e in edges if e[0] == name), key=lambda e: first[e])
        out_port.update(zip(outs, _ports(len(outs), node.center_x, node.width, opts)))
        ins = sorted((e for e in edges if e[1] == name), key=lambda e: last[e])
        in_port.update(zip(ins, _ports(len(ins), node.center_x, node.width, opts)))
    pitch = opts.node_height + opts.layer_gap
    routes = []
    for u, v in edges:
        src, dst = nodes[u], nodes[v]
        points: list[Point] = [(out_port[(u, v)], src.bottom)]
        for k, x in enumerate(hops[(u, v)]):
            top = src.y + (k + 1) * pitch
            points += [(x, top), (x, top + opts.node_height)]
        points.append((in_port[(u, v)], dst.y))
        routes.append(EdgeRoute(u, v, _simplify(points)))
    return routes


def _route_back(nodes: dict[str, NodePlacement], edges: list[tuple[str, str]], right: float,
                opts: LayoutOptions) -> list[EdgeRoute]:
    """Cycle-closing edges: out of the source's right side, up a lane beyond the drawing, in."""
    routes = []
    for i, (u, v) in enumerate(edges):
        src, dst = nodes[u], nodes[v]
        lane = right + opts.back_edge_gap * (i + 1)
        if u == v:  # a recursive switch: a loop beside the box, ending on its right half
            # Leaves and enters at a quarter of the width from the right edge, half-way up
            # each half: on a diamond's right sides, and hidden under a box's right part.
            lane = src.right + opts.back_edge_gap
            ax, dy = src.right - src.width / 4, src.height / 4
            points = [(ax, src.center_y + dy), (lane, src.center_y + dy),
                      (lane, src.center_y - dy), (ax, src.center_y - dy)]
        else:
            points = [(src.right, src.center_y + 6), (lane, src.center_y + 6),
                      (lane, dst.center_y - 6), (dst.right, dst.center_y - 6)]
        routes.append(EdgeRoute(u, v, points, back=True))
    return routes


def _simplify(points: list[Point]) -> list[Point]:
    """Drop middle points of straight vertical runs and repeated points."""
    out: list[Point] = []
    for p in points:
        if out and out[-1] == p:
            continue
        if len(out) >= 2 and out[-2][0] == out[-1][0] == p[0]:
            out[-1] = p
            continue
        out.append(p)
    return out
