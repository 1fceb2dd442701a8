"""Metaflow's `show`: a flow's steps, their docs and transitions, as text."""

from __future__ import annotations

from flowdeck.analysis.graph import FlowGraph


def format_show(graph: FlowGraph) -> str:
    """Metaflow's `show`: the flow's doc, then each step, its doc and where it goes."""
    lines = [graph.name + (f": {graph.doc}" if graph.doc else ""), ""]
    for name in graph.sorted_nodes or list(graph.nodes):
        node = graph[name]
        kind = {"join": " (join)", "foreach": " (foreach)", "split": " (split)"}.get(
            node.type or "", "")
        lines.append(f"Step {name}{kind}")
        if node.doc:
            lines += [f"    ? {line}" for line in node.doc.splitlines()]
        if node.type == "foreach":
            lines.append(f"    => {node.out_funcs[0]} (foreach over {node.foreach_param})")
        elif node.out_funcs:
            lines.append("    => " + ", ".join(node.out_funcs))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# -- entry points used by FlowSpec ------------------------------------------
