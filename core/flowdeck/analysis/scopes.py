"""Which foreach each step runs inside, computed once from a graph in Metaflow's JSON shape.

Both engines' events carry the graph as `output-raw --json` (a `graph` mapping of
nodes with `type`, `next` and `matching_join`), so this works for our flows and for
Metaflow's alike. The run fold uses it for k/N counts and the DAG view for which
steps are drawn with a counter: one answer for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowdeck.compiled_dataclasses import dataclass

#: Fan-outs whose next step runs as several tasks: a foreach, and a `num_parallel` one
#: (Metaflow's @parallel, `split-parallel`: N tasks of the same step, a foreach inside).
FOREACH_TYPES = ("split-foreach", "foreach", "split-parallel")
SPLIT_TYPES = ("split-static", "split", "split-and")
JOIN_TYPES = ("join",)


@dataclass(frozen=True)
class Scopes:
    """For every step, the stack of splits it runs inside (outermost first)."""

    stacks: dict[str, tuple[tuple[str, str], ...]]  # step -> ((kind, split step), ...)

    def foreach_of(self, step: str) -> str | None:
        """The innermost foreach step whose items `step` runs once per, or None."""
        for kind, split in reversed(self.stacks.get(step, ())):
            if kind == "foreach":
                return split
        return None

    def foreach_bodies(self) -> set[str]:
        """Steps that run once per foreach item."""
        return {step for step in self.stacks if self.foreach_of(step) is not None}


def nodes_of(graph: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The node mapping of a graph dict (`{"graph": {...}}` or the mapping itself)."""
    if not graph:
        return {}
    nodes = graph.get("graph", graph)
    return {str(k): v for k, v in nodes.items() if isinstance(v, dict)} \
        if isinstance(nodes, Mapping) else {}


def foreach_scopes(graph: Mapping[str, Any] | None) -> Scopes:
    """Walk from `start` carrying the open splits: a foreach or split opens one for its
    children, a join closes the innermost. A step reached twice keeps its first stack
    (a well-formed graph gives every path the same one)."""
    nodes = nodes_of(graph)
    start = "start" if "start" in nodes else next(iter(nodes), None)
    stacks: dict[str, tuple[tuple[str, str], ...]] = {}
    if start is None:
        return Scopes(stacks)
    pending: list[tuple[str, tuple[tuple[str, str], ...]]] = [(start, ())]
    while pending:
        step, stack = pending.pop()
        if step in stacks or step not in nodes:
            continue
        stacks[step] = stack
        node = nodes[step]
        kind = str(node.get("type") or "")
        inner = stack
        if kind in FOREACH_TYPES:
            inner = stack + (("foreach", step),)
        elif kind in SPLIT_TYPES:
            inner = stack + (("split", step),)
        for child in node.get("next") or []:
            child_kind = str((nodes.get(child) or {}).get("type") or "")
            pending.append((child, inner[:-1] if child_kind in JOIN_TYPES and inner else inner))
    return Scopes(stacks)


SWITCH_TYPES = ("split-switch",)


def switch_conditional(graph: Mapping[str, Any] | None) -> dict[str, set[str]]:
    """Step -> the switch steps it depends on: the steps a switch's case may or may not reach.

    A step after a switch runs only on some of its cases unless every path from the
    switch to the end goes through it (it post-dominates the switch: where the cases
    meet again). Inside a foreach, such a step runs for only some items, so the run
    fold cannot expect one task per item there.
    """
    nodes = nodes_of(graph)
    nexts = {name: [str(c) for c in node.get("next") or [] if c in nodes and c != name]
             for name, node in nodes.items()}
    sinks = {name for name, outs in nexts.items() if not outs}
    out: dict[str, set[str]] = {}
    for switch, node in nodes.items():
        if str(node.get("type") or "") not in SWITCH_TYPES:
            continue
        for step in _reach(nexts, switch, None) - {switch}:
            if _reach(nexts, switch, step) & sinks:  # the end is reachable around it
                out.setdefault(step, set()).add(switch)
    return out


def _reach(nexts: dict[str, list[str]], start: str, avoid: str | None) -> set[str]:
    """Steps reachable from `start` without passing `avoid`."""
    seen = {start}
    stack = [start]
    while stack:
        for child in nexts[stack.pop()]:
            if child != avoid and child not in seen:
                seen.add(child)
                stack.append(child)
    return seen
