"""The static graph of a flow, built from the AST of its source file.

Like Metaflow's `graph.py`, each step is classified by its last statement,
which must be `self.next(...)`. Unlike Metaflow, nothing is imported: the
nodes come from `ast` alone, so the same graph serves the linter, discovery
and the runtime without ever running a user's code.
"""

from __future__ import annotations

import ast
import os
import re
from _blake2 import blake2b
from collections.abc import Iterator
from dataclasses import field
from typing import Any

from flowdeck.authoring.definitions import metaflow_attributes
from flowdeck.compiled_dataclasses import dataclass

#: Internal node types, and the names Metaflow's `output-raw --json` uses.
METAFLOW_TYPE_NAMES = {
    "start": "start",
    "linear": "linear",
    "join": "join",
    "end": "end",
    "split": "split-static",
    "foreach": "split-foreach",
    "split-switch": "split-switch",
}
#: Metaflow's name for a `num_parallel` fan-out (a "foreach" inside, as in Metaflow).
PARALLEL_TYPE_NAME = "split-parallel"


def to_pod(value: Any) -> Any:
    """Metaflow's `util.to_pod`, which `output-raw` applies to decorator attributes:
    strings and numbers (booleans too) stay, containers become dicts and lists, anything
    else its text (so a None default is "None" there, and here)."""
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, dict):
        return {to_pod(k): to_pod(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [to_pod(v) for v in value]
    return str(value)


@dataclass
class DecoratorInfo:
    """A decorator on a step, with its literal keyword arguments."""

    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    #: Imported from metaflow or flowdeck. Another (the user's own function, a library's)
    #: is kept for the analysis but is no step decorator Metaflow lists.
    builtin: bool = True

    def as_dict(self) -> dict[str, Any]:
        """Metaflow's listing: every attribute, defaults included (`metaflow_attributes`)."""
        return {
            "name": self.name,
            "attributes": to_pod(metaflow_attributes(self.name, self.attributes)),
            "statically_defined": True,
            "inserted_by": None,
        }


@dataclass
class StepNode:
    """One `@step` method, as the source describes it."""

    name: str
    line: int
    end_line: int
    first_line: int = 0  # first decorator line: where the step's text begins
    doc: str = ""
    decorators: list[DecoratorInfo] = field(default_factory=list)
    #: Arguments Metaflow counts: `self` (and a join's `inputs`), not positional-only ones.
    num_args: int = 1
    #: `def start(self, /)`: Metaflow does not count arguments before `/` (lint says so).
    positional_only: bool = False
    #: `@step(start=True)` / `@step(end=True)`: Metaflow 2.19's explicit first/last step.
    is_start_step: bool = False
    is_end_step: bool = False
    type: str | None = None
    out_funcs: list[str] = field(default_factory=list)
    in_funcs: list[str] = field(default_factory=list)
    has_tail_next: bool = False
    invalid_tail_next: bool = False
    dynamic_next: bool = False
    tail_next_line: int = 0
    foreach_param: str | None = None
    #: `self.next(self.x, num_parallel=N)`: the fan-out of a @parallel step (Metaflow's).
    parallel_foreach: bool = False
    #: Its N when the source writes a constant, else None (as Metaflow's graph has it).
    num_parallel: Any = None
    #: A switch (`self.next({"a": self.x, ...}, condition="artifact")`): case -> step, and
    #: the artifact whose value picks the case (Metaflow's `switch_cases`, `condition`).
    switch_cases: dict[Any, str] = field(default_factory=dict)
    condition: str | None = None
    #: Why a dict given to self.next() is no switch Flowdeck can read (lint says it).
    switch_problem: str | None = None
    matching_join: str | None = None
    split_parents: list[str] = field(default_factory=list)
    split_branches: list[str] = field(default_factory=list)
    source_hash: str = ""
    assigned_attrs: dict[str, int] = field(default_factory=dict)
    #: The file that defines the step when it is not the flow's own (a base flow class
    #: imported from a module beside it); its line is a line of that file.
    source_file: str = ""

    def decorator(self, name: str) -> DecoratorInfo | None:
        return next((d for d in self.decorators if d.name == name), None)

    @property
    def is_recursive_switch(self) -> bool:
        """A switch with a case that runs the step itself again: a loop (Metaflow's
        "recursive switch"); each round is a new task of the same step."""
        return self.type == "split-switch" and self.name in self.out_funcs

    @property
    def metaflow_type(self) -> str:
        """The type `output-raw --json` gives (a `num_parallel` fan-out is its own)."""
        if self.parallel_foreach:
            return PARALLEL_TYPE_NAME
        return METAFLOW_TYPE_NAMES.get(self.type or "", "unknown")

    def as_dict(self, source_file: str) -> dict[str, Any]:
        """The node in the shape of Metaflow's `output-raw --json` (`source_file` absolute,
        as Metaflow's, which is the function's file as Python loaded it)."""
        d: dict[str, Any] = {
            "name": self.name,
            "type": self.metaflow_type,
            "line": self.line,
            "source_file": os.path.abspath(self.source_file or source_file),
            "doc": self.doc,
            "decorators": [deco.as_dict() for deco in self.decorators if deco.builtin],
            "next": list(self.out_funcs),
            "node_info": {},
        }
        if self.parallel_foreach:
            d["num_parallel"] = self.num_parallel
        elif self.type == "foreach":
            d["foreach_artifact"] = self.foreach_param
        elif self.type == "split-switch":
            d["condition"] = self.condition
            d["switch_cases"] = dict(self.switch_cases)
        if self.matching_join:
            d["matching_join"] = self.matching_join
        return d


@dataclass
class FlowGraph:
    """Steps of one flow class and how they connect."""

    name: str
    file: str
    line: int
    doc: str
    nodes: dict[str, StepNode]
    start_step: str | None = None
    end_step: str | None = None
    sorted_nodes: list[str] = field(default_factory=list)
    outside_hash: str = ""

    def __getitem__(self, name: str) -> StepNode:
        return self.nodes[name]

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[StepNode]:
        return iter(self.nodes.values())

    def step_hashes(self) -> dict[str, str]:
        return {name: node.source_hash for name, node in self.nodes.items()}

    def topological(self) -> list[str]:
        """Steps in an order where each comes after all its parents (cycle-safe)."""
        order: list[str] = []
        indegree = {n: 0 for n in self.nodes}
        for node in self:
            for child in node.out_funcs:
                if child in indegree and child != node.name:
                    indegree[child] += 1
        ready = [n for n, d in indegree.items() if d == 0]
        while ready:
            name = ready.pop(0)
            order.append(name)
            for child in self.nodes[name].out_funcs:
                if child in indegree:
                    indegree[child] -= 1
                    if indegree[child] == 0:
                        ready.append(child)
        order.extend(n for n in self.nodes if n not in order)
        return order

    def descendants(self, roots: list[str]) -> set[str]:
        """The given steps and every step reachable from them."""
        seen: set[str] = set()
        stack = [r for r in roots if r in self.nodes]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(c for c in self.nodes[name].out_funcs if c in self.nodes)
        return seen

    def as_dict(self, *, unreachable: bool = False) -> dict[str, Any]:
        """Metaflow's `output-raw --json` shape: `graph`, `graph_structure`, plus `doc`.

        As Metaflow's, `graph` holds the steps its walk from `start` meets, in that
        order, and `end`: a step nothing leads to is left out. `unreachable=True` keeps
        every step (after those), for a view that draws the file as written (the window
        shows such a step, which lint reports)."""
        structure, met = self._walk()
        listed = list(self.sorted_nodes or self.nodes)
        listed += [n for n in self.nodes if n not in listed]
        if structure:
            # A malformed split the walk skips (lint's error) keeps its reachable steps.
            reachable = self.descendants([self.start_step] if self.start_step else [])
            order = met + [n for n in listed if n in reachable and n not in met]
            order += [n for n in [self.end_step] if n and n not in order]
        else:  # no start or end: Metaflow stops; show what there is
            order = listed
        if unreachable:
            order += [n for n in listed if n not in order]
        steps = {name: self.nodes[name].as_dict(self.file) for name in order}
        return {
            "graph": steps,
            "graph_structure": structure,
            "doc": self.doc,
            "name": self.name,
            "file": self.file,
            "line": self.line,
        }

    def structure(self) -> list[Any]:
        """Nested list of blocks, as Metaflow's `graph_structure` (empty if malformed)."""
        return self._walk()[0]

    def _walk(self) -> tuple[list[Any], list[str]]:
        """Metaflow's `populate_block` walk from `start`: the nested `graph_structure`,
        and the steps it met in order (those `output-raw` lists). A `num_parallel`
        fan-out is walked as a straight line, as Metaflow does."""
        if not self.start_step or not self.end_step:
            return [], []
        budget = [len(self.nodes) * 4 + 8]  # guards malformed graphs against loops
        met: list[str] = []

        def block(start: str, stop: str | None) -> list[Any]:
            out: list[Any] = []
            cur: str | None = start
            while cur is not None and cur != stop and cur in self.nodes and budget[0] > 0:
                budget[0] -= 1
                node = self.nodes[cur]
                out.append(cur)
                if cur not in met:
                    met.append(cur)
                if node.type in ("split", "foreach") and node.matching_join \
                        and not node.parallel_foreach:
                    out.append([block(s, node.matching_join) for s in node.out_funcs])
                    cur = node.matching_join
                elif node.type == "split-switch":
                    # Metaflow: each case (but a loop back to the switch itself) runs
                    # to the end of the enclosing block, and the block ends there.
                    out.append([block(s, stop) for s in node.out_funcs if s != cur])
                    break
                elif node.out_funcs and node.type != "end":
                    cur = node.out_funcs[0]
                else:
                    break
            return out

        result = block(self.start_step, self.end_step)
        if self.end_step not in result:
            result.append(self.end_step)
        return result, met


def deindent_docstring(doc: str | None) -> str:
    """Metaflow's docstring clean-up, so `doc` fields compare equal."""
    if not doc:
        return ""
    saw_first_line = False
    matched_indent = None
    for line in doc.splitlines():
        if line:
            matched_indent = re.match("[\t ]+", line)
            if matched_indent is not None or saw_first_line:
                break
            saw_first_line = True
    if matched_indent:
        return re.sub(r"\n" + matched_indent.group(), "\n", doc).strip()
    return doc


def literal(node: ast.AST | None) -> Any:
    """The value of a literal expression, or None when it is not one."""
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _self_attr(node: ast.AST) -> str | None:
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    ):
        return node.attr
    return None


def code_fingerprint(source: str) -> str | None:
    """Hash of a file's code without its comments and blank lines: two texts with the
    same fingerprint run the same. The window compares it before rerunning on a save (a
    saved comment must not stop a two-hour run); tokenizing costs about 1 ms per 70
    lines, too much for every run's start, so a step's hash is the `text_hash` of its
    text without blank and comment-only lines (`_without_comment_lines`). None
    for text Python cannot tokenize (a save with errors: it is not run anyway)."""
    import io
    import tokenize
    skipped = (tokenize.COMMENT, tokenize.NL)
    try:
        tokens = [f"{t.type}:{t.string}" for t in
                  tokenize.generate_tokens(io.StringIO(source).readline) if t.type not in skipped]
    except (tokenize.TokenError, SyntaxError):
        return None
    return text_hash("\n".join(tokens))


def _without_comment_lines(text: str) -> str:
    """A step's text without its blank and comment-only lines, for its hash: a comment
    added to a finished step made a resume (and a rerun on save) run it again. Cheap
    (no tokenizing on every run's start), and the text itself when it has no such lines,
    so the hashes recorded before stay equal. A trailing comment still counts."""
    lines = text.split("\n")
    kept = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return text if len(kept) == len(lines) else "\n".join(kept)


def text_hash(text: str) -> str:
    """Short content hash of source text (step hashes, the outside-of-steps hash).

    The window and a flow's own interpreter (which may lack our optional
    dependencies) must agree on these, so this uses the standard library's
    BLAKE2 (`_blake2` loads without OpenSSL, keeping start-up fast).
    """
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def parse_step(func: ast.FunctionDef | ast.AsyncFunctionDef, source: str,
               decorators: list[DecoratorInfo]) -> StepNode:
    """Classify one step by its tail `self.next(...)`, as Metaflow does."""
    body = func.body
    doc = deindent_docstring(ast.get_docstring(func, clean=False))
    segment = _function_source(func, source)
    node = StepNode(
        name=func.name,
        line=func.lineno,
        end_line=func.end_lineno or func.lineno,
        first_line=min([func.lineno] + [d.lineno for d in func.decorator_list]),
        doc=doc,
        decorators=decorators,
        num_args=len(func.args.args),
        positional_only=bool(func.args.posonlyargs),
        source_hash=text_hash(_without_comment_lines(segment)),
        assigned_attrs=_assigned_self_attrs(func),
    )
    node.is_start_step, node.is_end_step = _start_end_annotations(func)
    tail = body[-1] if body else None
    if not (isinstance(tail, ast.Expr) and isinstance(tail.value, ast.Call)):
        return node
    call = tail.value
    if _self_attr(call.func) != "next":
        return node
    node.has_tail_next = True
    node.invalid_tail_next = True
    node.tail_next_line = tail.lineno
    if len(call.args) == 1 and isinstance(call.args[0], ast.Dict):
        _parse_switch(node, call)
        return node
    targets = [_self_attr(arg) for arg in call.args]
    if any(t is None for t in targets) or not targets:
        node.dynamic_next = bool(call.args) and any(t is None for t in targets)
        return node
    node.out_funcs = [t for t in targets if t is not None]
    keywords = {k.arg: k.value for k in call.keywords}
    if set(keywords) == {"foreach"}:
        # As Metaflow: valid whatever the expression; its name is known when it is a
        # string, here or in a module-level constant (lint says when it is not).
        node.type = "foreach"
        if len(node.out_funcs) == 1:
            node.foreach_param = _foreach_name(keywords["foreach"], func, source)
            node.invalid_tail_next = False
    elif not keywords:
        node.invalid_tail_next = False
        if len(node.out_funcs) > 1:
            node.type = "split"
        else:
            node.type = "join" if node.num_args > 1 else "linear"
    return node


def _start_end_annotations(func: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[bool, bool]:
    """Whether `@step(start=True)` / `@step(end=True)` marks the step: Metaflow 2.19 makes
    it the flow's first or last step whatever its name. The decorator is recognised by its
    name (`step`, `metaflow.step`), as the graph is built without resolving imports."""
    start = end = False
    for deco in func.decorator_list:
        if not isinstance(deco, ast.Call):
            continue
        called = deco.func
        name = called.id if isinstance(called, ast.Name) else (
            called.attr if isinstance(called, ast.Attribute) else None)
        if name != "step":
            continue
        for keyword in deco.keywords:
            if keyword.arg == "start" and literal(keyword.value):
                start = True
            elif keyword.arg == "end" and literal(keyword.value):
                end = True
    return start, end


def _foreach_name(value: ast.expr, func: ast.FunctionDef | ast.AsyncFunctionDef,
                  source: str) -> str | None:
    """The artifact `foreach=` names: a string literal, or a name the module binds once, at
    its top level, to a string (`FE = "items"`) and the step does not rebind. None when it
    cannot be known without running the code (Metaflow accepts that too)."""
    given = literal(value)
    if isinstance(given, str):
        return given
    if not isinstance(value, ast.Name) or value.id in _bound_in(func):
        return None
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    found = [stmt.value for stmt in module.body if isinstance(stmt, (ast.Assign, ast.AnnAssign))
             and value.id in _stored_names(stmt)]
    if len(found) != 1 or found[0] is None:
        return None
    constant = literal(found[0])
    return constant if isinstance(constant, str) else None


def _stored_names(stmt: ast.Assign | ast.AnnAssign) -> set[str]:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _bound_in(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names a step binds itself (assigned, or declared global: a constant it may change)."""
    bound = {a.arg for a in func.args.args + func.args.posonlyargs + func.args.kwonlyargs}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.Global):
            bound.update(node.names)
    return bound


def _parse_switch(node: StepNode, call: ast.Call) -> None:
    """`self.next({"case": self.step, ...}, condition="artifact")`, as Metaflow reads it.

    Case keys must be literals (strings, numbers) or `self.config.key` (kept as
    `"config:config.key"`, Metaflow's spelling); values must be `self.<step>`.
    Anything else leaves the transition invalid, with the reason in `switch_problem`.
    """
    keywords = {k.arg: k.value for k in call.keywords}
    if "condition" not in keywords:
        node.switch_problem = ("passes a dict of cases to self.next() without condition=. "
                               "Add condition=\"artifact_name\", naming the artifact whose "
                               "value picks the case")
        return
    if set(keywords) != {"condition"}:
        extra = ", ".join(sorted(str(k) for k in keywords if k != "condition"))
        node.switch_problem = (f"combines a switch with {extra}=. A switch takes only "
                               "condition=; put the foreach or num_parallel in a step the "
                               "case leads to")
        return
    condition = literal(keywords["condition"])
    if not isinstance(condition, str) or not condition:
        node.switch_problem = ("gives condition= something other than a string literal. "
                               "Write condition=\"artifact_name\"")
        return
    cases: dict[Any, str] = {}
    table = call.args[0]
    assert isinstance(table, ast.Dict)
    for key, value in zip(table.keys, table.values):
        case = _switch_key(key)
        step = _self_attr(value) if value is not None else None
        if case is None:
            node.switch_problem = ("has a switch case key that is not a literal. Case keys "
                                   "must be strings, numbers or self.config.<key>, not "
                                   "variables")
            return
        if step is None:
            node.switch_problem = ("has a switch case that is not a step. Each case must "
                                   "name a step, as {\"case\": self.step_name}")
            return
        cases[case] = step
    if not cases:
        node.switch_problem = ("passes an empty dict of cases to self.next(). Give at least "
                               "two cases, as {\"a\": self.step_a, \"b\": self.step_b}")
        return
    node.type = "split-switch"
    node.condition = condition
    node.switch_cases = cases
    node.out_funcs = list(cases.values())
    node.invalid_tail_next = False


def _switch_key(key: ast.expr | None) -> Any:
    """A switch case key as Metaflow records it, or None when it is not static."""
    if isinstance(key, ast.Constant) and key.value is not None:
        return key.value
    if (isinstance(key, ast.Attribute) and isinstance(key.value, ast.Attribute)
            and isinstance(key.value.value, ast.Name) and key.value.value.id == "self"):
        return f"config:{key.value.attr}.{key.attr}"
    return None


_LINES_CACHE: tuple[str, list[str]] = ("", [])


def _source_lines(source: str) -> list[str]:
    """`source.splitlines(keepends=True)`, split once per file rather than once per step."""
    global _LINES_CACHE
    cached = _LINES_CACHE
    if cached[0] is source:
        return cached[1]
    lines = source.splitlines(keepends=True)
    _LINES_CACHE = (source, lines)
    return lines


def _function_source(func: ast.FunctionDef | ast.AsyncFunctionDef, source: str) -> str:
    """The step's text including its decorators: what its hash covers."""
    lines = _source_lines(source)
    first = min([func.lineno] + [d.lineno for d in func.decorator_list])
    last = getattr(func, "end_lineno", None) or func.lineno
    return "".join(lines[first - 1:last])


def iter_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement in a block and in the blocks nested in it, in source order.

    Assignments and imports are statements, so looking for them need not
    visit every expression node as `ast.walk` does (several times faster).
    """
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.stmt):
            yield node
        kind = type(node)
        fields = _BLOCK_FIELDS.get(kind)
        if fields is None:
            fields = _BLOCK_FIELDS[kind] = tuple(
                f for f in ("body", "orelse", "finalbody", "handlers", "cases")
                if f in kind._fields)
        if fields:
            nested: list[ast.AST] = []
            for name in fields:
                block = getattr(node, name, None)
                if isinstance(block, list):
                    nested.extend(block)
            stack.extend(reversed(nested))


_BLOCK_FIELDS: dict[type, tuple[str, ...]] = {}


def _assigned_self_attrs(func: ast.AST) -> dict[str, int]:
    """`self.x = ...` targets in a step, with the line of the first assignment."""
    found: dict[str, int] = {}
    for sub in iter_statements(getattr(func, "body", [])):
        targets: list[ast.AST] = []
        if isinstance(sub, ast.Assign):
            targets = list(sub.targets)
        elif isinstance(sub, (ast.AugAssign, ast.AnnAssign)):
            targets = [sub.target]
        while targets:
            # Only a target itself, or an element of a tuple/list/starred target,
            # is stored to; `self.x[0] = ...` and `self.a.b = ...` load `self.x`, `self.a`.
            leaf = targets.pop()
            if isinstance(leaf, (ast.Tuple, ast.List)):
                targets.extend(leaf.elts)
            elif isinstance(leaf, ast.Starred):
                targets.append(leaf.value)
            else:
                name = _self_attr(leaf)
                if name is not None and isinstance(getattr(leaf, "ctx", None), ast.Store):
                    line = found.get(name)
                    lineno = getattr(leaf, "lineno", 0)
                    if line is None or lineno < line:
                        found[name] = lineno
    return found


def build_graph(name: str, file: str, line: int, doc: str,
                steps: list[StepNode], outside_hash: str = "") -> FlowGraph:
    """Link step nodes into a graph: start/end, in-edges, splits and joins."""
    graph = FlowGraph(
        name=name, file=file, line=line, doc=doc,
        nodes={s.name: s for s in steps}, outside_hash=outside_hash,
    )
    _identify_start_end(graph)
    _traverse(graph)
    return graph


def _identify_start_end(graph: FlowGraph) -> None:
    """Metaflow 2.19's rule: the one step marked `@step(start=True)` (`end=True`), else the
    step named `start` (`end`); a flow of a single step has it as both, typed `end`.
    None where no single step qualifies (lint says why)."""
    graph.start_step = _marked_or_named(graph, "start")
    graph.end_step = _marked_or_named(graph, "end")
    if len(graph.nodes) == 1:
        graph.start_step = graph.end_step = next(iter(graph.nodes))
    if graph.start_step and graph.start_step == graph.end_step:
        graph.nodes[graph.start_step].type = "end"
        return
    if graph.start_step:
        node = graph.nodes[graph.start_step]
        if node.type in (None, "linear"):
            node.type = "start"
    if graph.end_step:
        graph.nodes[graph.end_step].type = "end"


def marked_steps(graph: FlowGraph, which: str) -> list[str]:
    """Steps marked `@step(start=True)` (which="start") or `@step(end=True)` ("end")."""
    flag = "is_start_step" if which == "start" else "is_end_step"
    return [name for name, node in graph.nodes.items() if getattr(node, flag)]


def _marked_or_named(graph: FlowGraph, which: str) -> str | None:
    marked = marked_steps(graph, which)
    if marked:
        return marked[0] if len(marked) == 1 else None
    return which if which in graph.nodes else None


def _traverse(graph: FlowGraph) -> None:
    """Metaflow's traversal: split parents/branches, matching joins, in-edges.

    Iterative with an explicit stack so a pathological flow cannot exhaust
    Python's recursion limit inside the scanner. Metaflow walks every path
    from `start`, which is exponential in the number of splits in sequence
    (20 diamonds: a million paths). What a visit computes depends only on the
    node and the split context it arrives with, so each (node, context) is
    visited once; `sorted_nodes` keeps Metaflow's order (by last visit) via
    `_last_visit_order`.
    """
    in_funcs: dict[str, set[str]] = {n: set() for n in graph.nodes}
    if graph.start_step:
        stack: list[tuple[str, tuple[str, ...], list[str], list[str]]] = [
            (graph.start_step, (), [], [])
        ]
        done: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()
        visits = 0
        limit = max(10_000, len(graph.nodes) ** 2 * 4)
        while stack and visits < limit:
            name, seen, split_parents, split_branches = stack.pop()
            state = (name, tuple(split_parents), tuple(split_branches))
            if state in done:
                continue
            done.add(state)
            visits += 1
            node = graph.nodes[name]
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
                stack.append((
                    child, seen + (child,), split_parents,
                    split_branches + ([child] if add_branch else []),
                ))
    for name, node in graph.nodes.items():
        node.in_funcs = sorted(in_funcs[name])
    graph.sorted_nodes = _last_visit_order(graph)


def _last_visit_order(graph: FlowGraph) -> list[str]:
    """Reachable steps in the order of their last visit by Metaflow's path-by-path walk.

    Metaflow moves a step to the end of `sorted_nodes` each time a path
    reaches it, so the final order sorts steps by the last path (in
    depth-first order) that reaches them. Depth-first order of paths is the
    lexicographic order of their child-index sequences, a prefix first, which
    Python's list comparison gives; the last path to a step is computed in
    topological order. Back edges (loops, a lint error) are ignored.
    """
    start = graph.start_step
    if start is None:
        return []
    nodes = graph.nodes
    reachable: list[str] = []
    state: dict[str, int] = {start: 1}  # 1 on the current path, 2 finished
    back: set[tuple[str, int]] = set()
    stack: list[tuple[str, int]] = [(start, 0)]
    finished: list[str] = []
    while stack:
        name, i = stack.pop()
        outs = nodes[name].out_funcs
        if i == 0:
            reachable.append(name)
        if i < len(outs):
            stack.append((name, i + 1))
            child = outs[i]
            if child not in nodes:
                continue
            if state.get(child) == 1:
                back.add((name, i))
            elif child not in state:
                state[child] = 1
                stack.append((child, 0))
        else:
            state[name] = 2
            finished.append(name)
    best: dict[str, list[int]] = {start: []}
    for name in reversed(finished):  # reverse post-order: topological without back edges
        path = best.get(name)
        if path is None:
            continue
        for i, child in enumerate(nodes[name].out_funcs):
            if child in nodes and (name, i) not in back and child != name:
                candidate = path + [i]
                if child not in best or candidate > best[child]:
                    best[child] = candidate
    return sorted(reachable, key=lambda n: best.get(n, []))

