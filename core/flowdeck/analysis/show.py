"""Metaflow's `show` and `output-dot`: a flow's steps, their docs and transitions, as text
and as a Graphviz graph."""

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


def format_dot(graph: FlowGraph) -> str:
    """Metaflow's `output-dot`, node for node: a record per step (its name and kind, a join
    for a step that takes inputs), a hexagon per switch with its labelled cases, then the
    edges, steps by name. `dot -Tpng -o graph.png` draws it."""
    nodes, edges = [], []
    for _, node in sorted(graph.nodes.items()):  # Metaflow's order: its steps by name
        if node.type == "split-switch":
            condition = f"switch: {node.condition}" if node.condition else "switch"
            nodes.append(f'"{node.name}" [ label = <<b>{node.name}</b><br/><font '
                         f'point-size="9">{condition}</font>>   fontname = "Helvetica"   '
                         'shape = "hexagon"   style = "filled" fillcolor = "lightgreen" ];')
            edges += [f'{node.name} -> {step} [label="{case}" color="blue" fontcolor="blue"];'
                      for case, step in node.switch_cases.items()]
            continue
        kind = "join" if node.num_args > 1 else node.type
        nodes.append(f'"{node.name}"[ label = <<b>{node.name}</b> | <font point-size="10">'
                     f'{kind}</font>>   fontname = "Helvetica"   shape = "record" ];')
        edges += [f"{node.name} -> {step};" for step in node.out_funcs]
    return f"digraph {graph.name} {{\n" + "\n".join(nodes) + "\n" + "\n".join(edges) + "\n}"

