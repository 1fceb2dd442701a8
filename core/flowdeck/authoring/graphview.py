"""`flow._graph`: the static graph with the node attributes Metaflow's `FlowGraph` has;
`current.graph` / `flow._graph_info`: the graph as the dict Metaflow stores for a run.

Flows and checks written for Metaflow read `flow._graph[step].type`,
`.in_funcs`, `.out_funcs`, `.parallel_step` and iterate `flow._graph`. The
graph is the one the engine runs (from the file's AST, `engine.launch`); this
module only presents it. Built once per flow class, when first asked for.
"""

from __future__ import annotations

import os
import sys
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


def graph_info(flow_cls: type) -> dict[str, Any]:
    """Metaflow's `_graph_info` of a flow class (what `current.graph` returns): the file,
    start and end steps, parameters and constants with their kinds, every step as
    `output-raw` shows it, the nested `graph_structure`, the doc and the flow decorators.
    Built once per class, when first asked for."""
    info = flow_cls.__dict__.get("_fd_graph_info")
    if info is None:
        from flowdeck.authoring.spec import flow_constants, flow_parameters
        graph = graph_view(flow_cls)._graph
        raw = graph.as_dict()
        parameters = flow_parameters(flow_cls)
        info = {
            "file": os.path.basename(os.path.abspath(sys.argv[0])) if sys.argv[0] else "",
            "start_step": graph.start_step, "end_step": graph.end_step,
            "parameters": [{"name": attr, "type": type(p).__name__}
                           for attr, p in parameters.items()],
            "constants": [{"name": name, "type": type(value).__name__}
                          for name, value in flow_constants(flow_cls).items()
                          if name not in parameters],
            "steps": raw["graph"], "graph_structure": raw["graph_structure"],
            "doc": raw["doc"],
            "decorators": _flow_decorators(flow_cls), "extensions": {},
        }
        flow_cls._fd_graph_info = info  # type: ignore[attr-defined]
    return info


def _flow_decorators(flow_cls: type) -> list[dict[str, Any]]:
    """The class's flow-level decorators in Metaflow's `_graph_info` shape."""
    found = []
    project = flow_cls.__dict__.get("_fd_project")
    if project:
        found.append(("project", {"name": project.get("name")}))
    found += [(name, {}) for name in flow_cls.__dict__.get("_fd_ignored_flow_decorators", ())]
    return [{"name": name, "attributes": attributes, "statically_defined": True,
             "inserted_by": None} for name, attributes in found]
