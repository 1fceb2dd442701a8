"""Metaflow's `show`: a flow's steps, their docs and transitions, as text."""

from __future__ import annotations

from flowdeck.analysis.graph import FlowGraph


def format_show(graph: FlowGraph) -> str:
    """Metaflow's `show`, line for line: the flow's doc, then each step with its
    decorators, its doc (a lone `?` without one) and where it goes (not for `end`)."""
    lines = ["", graph.doc or ""]
    for name in graph.sorted_nodes or list(graph.nodes):
        node = graph[name]
        lines.append("")
        lines += [f"@{deco.name}" for deco in node.decorators]
        lines.append(f"Step {name}")
        lines += [f"    {line}".rstrip() for line in (node.doc or "?").splitlines()]
        if node.type != "end":
            lines.append("    => " + ", ".join(node.out_funcs))
    return "\n".join(lines) + "\n"  # and print()'s: the blank line Metaflow ends with


# -- entry points used by FlowSpec ------------------------------------------
