"""`flow._graph`: the static graph with the node attributes Metaflow's `FlowGraph` has.

Flows and checks written for Metaflow read `flow._graph[step].type`,
`.in_funcs`, `.out_funcs`, `.parallel_step` and iterate `flow._graph`. The
graph is the one the engine runs (from the file's AST, `engine.launch`); this
module only presents it. Built once per flow class, when first asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flowdeck.authoring.values import PARALLEL_VAR


class NodeView:
    """One step as Metaflow's DAGNode describes it."""

    def __init__(self, node: Any):
        self._node = node
        self.name: str = node.name
        self.type: str | None = node.type
        self.in_funcs: list[str] = list(node.in_funcs)
        self.out_funcs: list[str] = list(node.out_funcs)
        self.foreach_param: str | None = node.foreach_param
        self.matching_join: str | None = node.matching_join
        self.split_parents: list[str] = list(node.split_parents)
        self.func_lineno: int = node.line
        self.doc: str = node.doc
        self.decorators = [d.name for d in node.decorators]
        self.parallel_step: bool = "parallel" in self.decorators
        self.parallel_foreach: bool = node.foreach_param == PARALLEL_VAR
        self.num_args: int = node.num_args

    def __repr__(self) -> str:
        return f"<step {self.name} ({self.type}) -> {', '.join(self.out_funcs) or '-'}>"


class GraphView:
    """Nodes by name; iterates in Metaflow's order (`sorted_nodes`)."""

    def __init__(self, graph: Any):
        self._graph = graph
        self.nodes = {name: NodeView(node) for name, node in graph.nodes.items()}
        self.sorted_nodes: list[str] = list(graph.sorted_nodes or graph.nodes)
        self.name: str = graph.name

    def __getitem__(self, name: str) -> NodeView:
        return self.nodes[name]

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[NodeView]:
        order = self.sorted_nodes + [n for n in self.nodes if n not in self.sorted_nodes]
        return iter(self.nodes[n] for n in order)

    def __len__(self) -> int:
        return len(self.nodes)


def graph_view(flow_cls: type) -> GraphView:
    """The view of a flow class's graph: the engine's own when the class is running (set
    before its tasks fork), else read from the class's source file now."""
    view = flow_cls.__dict__.get("_fd_graph_view")
    if view is None:
        graph = flow_cls.__dict__.get("_fd_graph")
        if graph is None:
            from flowdeck.authoring import runner
            graph = runner.entry().static_graph(flow_cls)
        view = GraphView(graph)
        flow_cls._fd_graph_view = view  # type: ignore[attr-defined]
    return view

