"""Lint rules for a flow graph: Metaflow's rules, collected instead of raised.

A registry of small `check_*` functions, as in Metaflow's `lint.py`; each
yields `Diagnostic`s with the file, the line and a sentence that says what to
do. Checks are grouped in stages: when a stage finds errors, later stages
(which assume a well-formed graph) are skipped rather than cascading.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from flowdeck.analysis.diagnostics import Diagnostic
from flowdeck.analysis.graph import FlowGraph, StepNode, marked_steps
from flowdeck.authoring.definitions import (
    HIDDEN_FLOW_METHODS,
    READ_ONLY_FLOW_ATTRIBUTES,
    RESERVED_STEP_NAMES,
    catch_var_clash,
    separator_message,
)
from flowdeck.store.layout import MAX_ID_LENGTH, InvalidId, check_id

if TYPE_CHECKING:  # pragma: no cover
    from flowdeck.analysis.flowfile import ParameterInfo

Check = Callable[["Linter"], Iterable[Diagnostic]]

STEP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: A path component's limit where the file system cannot be asked (Linux's NAME_MAX).
NAME_MAX_BYTES = 255

#: Codes a flow written for Metaflow gets as warnings (Metaflow's engine runs the flow)
#: that Flowdeck's engine cannot run: `engine.launch.prepare` refuses them as errors.
FLOWDECK_ENGINE_NEEDS = frozenset({"foreach-name-unknown"})

_STAGES: list[list[Check]] = [[], [], []]


def check(stage: int) -> Callable[[Check], Check]:
    def register(func: Check) -> Check:
        _STAGES[stage].append(func)
        return func
    return register


class Linter:
    """Holds what the checks share: the graph, the parameters, a diagnostic factory."""

    def __init__(self, graph: FlowGraph, parameters: list["ParameterInfo"],
                 engine: str = "flowdeck"):
        self.graph = graph
        self.parameters = parameters
        #: The API the file imports ("flowdeck" or "metaflow"): which engine runs it by
        #: default, so which of Flowdeck's own rules apply.
        self.engine = engine

    @property
    def for_metaflow(self) -> bool:
        return self.engine == "metaflow"

    def diag(self, line: int, code: str, message: str, step: str | None = None,
             severity: str = "error") -> Diagnostic:
        node = self.graph.nodes.get(step) if step else None  # a base class's step: its file
        return Diagnostic(node.source_file if node is not None and node.source_file
                          else self.graph.file, line, message, code, severity=severity,
                          flow=self.graph.name, step=step)

    def at_step(self, node: StepNode, code: str, message: str,
                severity: str = "error") -> Diagnostic:
        return self.diag(node.line, code, message, node.name, severity)

    def at_next(self, node: StepNode, code: str, message: str) -> Diagnostic:
        return self.diag(node.tail_next_line or node.line, code, message, node.name)


def lint_graph(graph: FlowGraph, parameters: list["ParameterInfo"] | None = None,
               engine: str = "flowdeck") -> list[Diagnostic]:
    """Every diagnostic for a flow, in stage order, de-duplicated. `engine` is the API the
    file imports: a flow written for Metaflow is held to Metaflow's rules only."""
    linter = Linter(graph, parameters or [], engine)
    found: list[Diagnostic] = []
    for stage in _STAGES:
        stage_found: list[Diagnostic] = []
        for func in stage:
            for d in func(linter):
                if d not in found and d not in stage_found:
                    stage_found.append(d)
        found.extend(stage_found)
        if any(d.severity == "error" for d in stage_found):
            break
    return found


# -- stage 0: the fundamentals --------------------------------------------

@check(0)
def check_has_steps(lint: Linter) -> Iterator[Diagnostic]:
    if not lint.graph.nodes:
        yield lint.diag(lint.graph.line, "no-steps",
                        f"Flow {lint.graph.name} has no steps. Add methods decorated "
                        "with @step, starting with `start` and ending with `end`.")


@check(0)
def check_basic_steps(lint: Linter) -> Iterator[Diagnostic]:
    """Metaflow 2.19: one start and one end step, by name or by `@step(start=True)`."""
    graph = lint.graph
    if not graph.nodes:
        return
    for which, code, verb in (("start", "no-start", "begins"), ("end", "no-end", "finishes")):
        if (graph.start_step if which == "start" else graph.end_step) is not None:
            continue
        marked = marked_steps(graph, which)
        if len(marked) > 1:
            names = ", ".join(f"`{n}`" for n in sorted(marked))
            yield lint.at_step(graph[sorted(marked)[1]], code,
                               f"Steps {names} are all marked `@step({which}=True)`; a flow "
                               f"has exactly one {which} step. Keep the mark on one of them.")
            continue
        also = (f" (Metaflow 2.19 also takes `@step({which}=True)` on another step)"
                if lint.for_metaflow else "")
        yield lint.diag(graph.line, code,
                        f"Flow {graph.name} has no {which} step. Add a step named "
                        f"`{which}`{also}: every flow {verb} there.")


@check(0)
def check_annotation_name_conflict(lint: Linter) -> Iterator[Diagnostic]:
    """A step marked `@step(start=True)` while another is named `start` (Metaflow refuses
    the ambiguity; likewise for `end`)."""
    graph = lint.graph
    for which, chosen in (("start", graph.start_step), ("end", graph.end_step)):
        if chosen is not None and chosen != which and which in graph.nodes \
                and chosen in marked_steps(graph, which):
            yield lint.at_step(graph[chosen], f"ambiguous-{which}",
                               f"Step `{chosen}` is marked `@step({which}=True)`, but a step "
                               f"named `{which}` (line {graph[which].line}) exists too, so "
                               f"the {which} step is ambiguous. Rename that step or remove "
                               "the mark.")


@check(0)
def check_reserved_words(lint: Linter) -> Iterator[Diagnostic]:
    """Metaflow's reserved step names are errors; a step hiding another method of
    Flowdeck's FlowSpec runs, and a flow written for Flowdeck is warned what it loses."""
    for node in lint.graph:
        if node.name in RESERVED_STEP_NAMES:
            yield lint.at_step(node, "reserved-name",
                               f"Step name `{node.name}` is a reserved word. Rename the step.")
        elif node.name in HIDDEN_FLOW_METHODS and not lint.for_metaflow:
            lost = HIDDEN_FLOW_METHODS[node.name].format(
                flow=lint.graph.name, file=os.path.basename(lint.graph.file) or "FILE")
            yield lint.at_step(node, "hides-flow-method",
                               f"Step `{node.name}` hides the flow's own `{node.name}` "
                               f"method: {lost}.", severity="warning")


@check(0)
def check_step_names(lint: Linter) -> Iterator[Diagnostic]:
    for node in lint.graph:
        if node.name not in RESERVED_STEP_NAMES and not STEP_NAME.match(node.name):
            yield lint.at_step(node, "invalid-name",
                               f"Step `{node.name}` has an invalid name. Use lowercase ASCII "
                               "letters, digits and underscores, starting with a letter.")


def name_limit(file: str) -> int:
    """The longest file name, in bytes, of the file system a flow file's runs go to.

    Asked of the nearest existing folder at or above the file's; 255 bytes where the
    system cannot tell (`os.pathconf` is missing or refuses).
    """
    folder = os.path.dirname(os.path.abspath(file)) if file else os.getcwd()
    while folder and not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return NAME_MAX_BYTES


def _shortened(name: str) -> str:
    return name if len(name) <= 40 else f"{name[:20]}…{name[-8:]}"


@check(0)
def check_name_lengths(lint: Linter) -> Iterator[Diagnostic]:
    """Flow and step names become folders of every run. A name the file system (or the
    store, at MAX_ID_LENGTH) cannot hold passed lint before and then stopped the run half-way
    with `OSError: [Errno 36] File name too long`; here it is one line that says what to do."""
    limit = name_limit(lint.graph.file)
    allowed = min(limit, MAX_ID_LENGTH)
    named: list[tuple[str, str, int, str | None]] = [
        ("flow", lint.graph.name, lint.graph.line, None)]
    named += [("step", node.name, node.line, node.name) for node in lint.graph]
    for kind, name, line, step in named:
        size = len(name.encode("utf-8", "surrogatepass"))
        if size <= allowed:
            continue
        yield lint.diag(line, "name-too-long",
                        f"The {kind} name `{_shortened(name)}` is {size} bytes long; each run "
                        f"stores its {kind} in a folder of that name, and the store takes at "
                        f"most {MAX_ID_LENGTH} (this file system at most {limit} bytes per "
                        f"name). Rename the {kind} to {_fitting(name, allowed)}.", step)


def _fitting(name: str, allowed: int) -> str:
    """How short a name must be, said in what the user counts: characters for an ASCII
    name; bytes (and how many characters that is for this name's letters) otherwise, as a
    letter such as `Ä` takes two (a 53-letter name of 102 bytes was told "100 characters
    or fewer")."""
    if name.isascii():
        return f"{allowed} characters or fewer"
    fits = 0
    used = 0
    for char in name:
        used += len(char.encode("utf-8", "surrogatepass"))
        if used > allowed:
            break
        fits += 1
    return (f"{allowed} bytes or fewer in UTF-8 (letters outside ASCII take 2 to 4 bytes: "
            f"the first {fits} characters of this name fit)")


@check(0)
def check_flow_name(lint: Linter) -> Iterator[Diagnostic]:
    """A flow's runs live in a folder named after it, so its name must be a store id
    (`layout.is_id`: any Python identifier the file system's encoding can write, as in
    Metaflow); a name refused there only when run, after `check` said "no errors", was
    worse than this line."""
    name = lint.graph.name
    if len(name.encode("utf-8", "surrogatepass")) > MAX_ID_LENGTH:
        return  # check_name_lengths says so
    try:
        check_id("flow name", name)
    except InvalidId:
        yield lint.diag(lint.graph.line, "invalid-flow-name",
                        f"Flow name `{name}` cannot name the folder its runs are stored in "
                        f"(this file system's encoding is {sys.getfilesystemencoding()}). "
                        "Use ASCII letters, digits and underscores in the class name.")


@check(0)
def check_num_args(lint: Linter) -> Iterator[Diagnostic]:
    for node in lint.graph:
        if node.num_args > 2:
            yield lint.at_step(node, "too-many-args",
                               f"Step `{node.name}` has too many arguments. A step takes only "
                               "`self`; a join step takes `self, inputs`.")
        elif node.num_args == 2 and node.type == "end":  # Metaflow's own words for it
            yield lint.at_step(node, "end-join",
                               f"The last step `{node.name}` takes `inputs`, but the end step "
                               "cannot be a join. Add a join step before it, and end with "
                               f"`def {node.name}(self):`.")
        elif node.num_args == 2 and node.type not in ("join", None):
            yield lint.at_step(node, "join-and-split",
                               f"Step `{node.name}` is both a join (it takes `inputs`) and a "
                               "split (it fans out). Add a separate step after the join for "
                               "the split.")
        elif node.num_args == 0:
            why = (" (Metaflow does not count an argument before `/`)"
                   if node.positional_only else "")
            yield lint.at_step(node, "missing-self",
                               f"Step `{node.name}` is missing the `self` argument{why}. "
                               f"Write `def {node.name}(self):`.")


#: Names the run command line uses itself: Metaflow's reserved parameter names, exactly
#: (`--origin-run-id` is an option of `resume` only, which takes no parameters).
RESERVED_PARAMETER_NAMES = {
    "params", "with", "tag", "namespace", "obj", "tags", "decospecs", "run-id-file",
    "max-num-splits", "max-workers", "max-log-size", "user-namespace", "run-id", "task-id",
    "runner-attribute-file",
}


@check(0)
def check_catch_var(lint: Linter) -> Iterator[Diagnostic]:
    """`@catch(var=...)` naming a parameter or a step of the flow (definitions.catch_var_clash)."""
    parameters = {n for p in lint.parameters for n in (p.name, p.attribute)}
    for node in lint.graph:
        deco = node.decorator("catch")
        problem = catch_var_clash(deco.attributes.get("var"), parameters,
                                  lint.graph.nodes) if deco is not None else None
        if problem and deco is not None:
            yield lint.diag(deco.line or node.line, "decorator-argument", problem, node.name)


@check(0)
def check_parameter_names(lint: Linter) -> Iterator[Diagnostic]:
    steps = lint.graph.nodes
    first_of: dict[str, "ParameterInfo"] = {}
    for param in lint.parameters:
        option = param.name.replace("_", "-")
        earlier = first_of.setdefault(option, param)
        if earlier is not param:  # Metaflow: "Parameter alpha is specified twice."
            yield lint.diag(param.line, "parameter-twice",
                            f"Parameter name `{param.name}` is given twice: to `{param.attribute}`"
                            f" here and to `{earlier.attribute}` (line {earlier.line}), so "
                            f"--{param.name} could set only one of them. Give each its own "
                            "name.")
        if param.separator and param.type != "str":
            yield lint.diag(param.line, "separator-not-string",
                            separator_message(param.name, param.typed))
        if option in RESERVED_PARAMETER_NAMES:
            yield lint.diag(param.line, "reserved-parameter",
                            f"Parameter name `{param.name}` is reserved: the run command "
                            f"line has its own `--{option}` option. Rename the parameter.")
        if param.attribute in steps:  # the command-line name may be a step's: Metaflow too
            attr = param.attribute
            yield lint.diag(param.line, "parameter-clash",
                            f"Parameter `{attr}` and step `{attr}` (line {steps[attr].line}) "
                            "share one name in the class, where Python keeps only the later "
                            "of the two. Rename the parameter's attribute (its command-line "
                            f"name can stay: `{attr}_param = Parameter(\"{param.name}\", "
                            "...)`) or the step.")
        for node in lint.graph:
            line = node.assigned_attrs.get(param.attribute)
            if line is not None:
                # A warning, not an error: the assignment may be one the step expects to
                # fail (`try: self.p = 5 except AttributeError`), as Metaflow lets it run;
                # run time raises AttributeError at that line.
                yield lint.diag(line, "parameter-assigned",
                                f"Step `{node.name}` assigns `self.{param.attribute}`, but "
                                f"`{param.attribute}` is a Parameter (line {param.line}) and "
                                "parameters are read-only, so that line raises AttributeError "
                                "when it runs. Store the value under another name.",
                                node.name, severity="warning")


@check(0)
def check_read_only_flow_attributes(lint: Linter) -> Iterator[Diagnostic]:
    """`self.name = ...` in a step: the flow's own read-only attribute (a warning, as for a
    Parameter: the step may expect the AttributeError)."""
    for node in lint.graph:
        for name, what in READ_ONLY_FLOW_ATTRIBUTES.items():
            line = node.assigned_attrs.get(name)
            if line is not None:
                yield lint.diag(line, "flow-attribute-assigned",
                                f"Step `{node.name}` assigns `self.{name}`, but `{name}` is "
                                f"read-only in a step ({what}), so that line raises "
                                "AttributeError when it runs. Store the value under another "
                                "name.", node.name, severity="warning")


# -- stage 1: transitions -------------------------------------------------

@check(1)
def check_that_end_is_end(lint: Linter) -> Iterator[Diagnostic]:
    end = lint.graph.end_step
    if end is None:
        return
    node = lint.graph[end]
    if node.has_tail_next or node.out_funcs:  # its `inputs`: check_num_args, "end-join"
        yield lint.at_next(node, "end-has-next",
                           f"The end step `{end}` must not call self.next(). Remove that call.")


@check(1)
def check_static_transitions(lint: Linter) -> Iterator[Diagnostic]:
    for node in lint.graph:
        if node.type == "end" or node.name == lint.graph.end_step:
            continue
        if node.dynamic_next:
            yield lint.at_next(node, "dynamic-next",
                               f"Step `{node.name}` calls self.next() with a target that is not "
                               "statically known. Name the steps directly, as "
                               "`self.next(self.step_name)`.")
        elif not node.has_tail_next:
            yield lint.at_step(node, "missing-next",
                               f"Step `{node.name}` does not end with a self.next() transition. "
                               "Add `self.next(self.<next_step>)` as its last line.")


@check(1)
def check_valid_transitions(lint: Linter) -> Iterator[Diagnostic]:
    for node in lint.graph:
        if node.name == lint.graph.end_step or node.dynamic_next:
            continue
        if node.has_tail_next and node.switch_problem:
            yield lint.at_next(node, "invalid-switch",
                               f"Step `{node.name}` {node.switch_problem}. A switch is "
                               "`self.next({\"case\": self.step_a, \"other\": self.step_b}, "
                               "condition=\"artifact_name\")`.")
        elif node.has_tail_next and node.invalid_tail_next:
            yield lint.at_next(node, "invalid-next",
                               f"Step `{node.name}` has an invalid self.next() call. Use "
                               "`self.next(self.a)`, `self.next(self.a, self.b)`, "
                               "`self.next(self.a, foreach=\"artifact_name\")` or a switch, "
                               "`self.next({\"case\": self.a, ...}, condition=\"artifact\")`.")


@check(1)
def check_foreach_names(lint: Linter) -> Iterator[Diagnostic]:
    """`foreach=` given an expression whose value the graph cannot read (a string literal
    or a module-level constant it can): Metaflow accepts it and finds the name when the
    step runs; Flowdeck's engine needs it before (FLOWDECK_ENGINE_NEEDS)."""
    for node in lint.graph:
        if node.type != "foreach" or node.parallel_foreach or node.foreach_param is not None \
                or node.invalid_tail_next or node.dynamic_next:
            continue
        if lint.for_metaflow:
            what = ("Metaflow's engine runs it, but Flowdeck's engine (`--engine flowdeck`) "
                    "cannot. To run it there,")
        else:
            what = "Flowdeck's engine needs to know which artifact it splits over, so"
        yield lint.diag(node.tail_next_line or node.line, "foreach-name-unknown",
                        f"Step `{node.name}` gives foreach= a value that is known only when "
                        f"the step runs. {what} write the artifact's name, as "
                        "foreach=\"items\", or a constant set once at the file's top level "
                        "(ITEMS = \"items\").", node.name,
                        severity="warning" if lint.for_metaflow else "error")


@check(1)
def check_unknown_transitions(lint: Linter) -> Iterator[Diagnostic]:
    for node in lint.graph:
        for target in node.out_funcs:
            if target not in lint.graph:
                yield lint.at_next(node, "unknown-step",
                                   f"Step `{node.name}` calls self.next() to `{target}`, which "
                                   "is not a step of this flow. Define it with @step or fix "
                                   "the name.")


# -- stage 2: structure ---------------------------------------------------

@check(2)
def check_for_acyclicity(lint: Linter) -> Iterator[Diagnostic]:
    """One diagnostic per loop, found by a depth-first search (linear time).

    Enumerating every path from every step, as a naive search does, is
    exponential in the number of splits in sequence.
    """
    graph = lint.graph
    reported: set[frozenset[str]] = set()
    color: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in graph.nodes:
        if root in color:
            continue
        color[root] = 1
        path: list[str] = [root]
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root].out_funcs))]
        while stack:
            name, children = stack[-1]
            child = next(children, None)
            if child is None:
                color[name] = 2
                stack.pop()
                path.pop()
                continue
            if child not in graph.nodes or (child == name and graph[name].is_recursive_switch):
                continue  # a switch case that reruns the step itself is a loop Metaflow runs
            if color.get(child) == 1:
                loop = path[path.index(child):] + [child]
                key = frozenset(loop)
                if key not in reported:
                    reported.add(key)
                    yield lint.at_next(graph[name], "cycle",
                                       f"There is a loop in the flow: {' -> '.join(loop)}. "
                                       "Flows must be acyclic: change a self.next() so that "
                                       "no step leads back to an earlier one.")
            elif child not in color:
                color[child] = 1
                path.append(child)
                stack.append((child, iter(graph[child].out_funcs)))


@check(2)
def check_for_orphans(lint: Linter) -> Iterator[Diagnostic]:
    graph = lint.graph
    if graph.start_step is None:
        return
    reachable = graph.descendants([graph.start_step])
    for node in graph:
        if node.name not in reachable:
            yield lint.at_step(node, "unreachable",
                               f"Step `{node.name}` is unreachable from `{graph.start_step}`. Call "
                               f"`self.next(self.{node.name})` from another step or remove it.")


def _branch_context(node: StepNode) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The open splits and branches a step hands on to its children."""
    if node.type == "join":
        return tuple(node.split_parents[:-1]), tuple(node.split_branches)
    return tuple(node.split_parents), tuple(node.split_branches)


def merges_branches(graph: FlowGraph, node: StepNode) -> bool:
    """Whether a step with several parents gets them from parallel branches (a join).

    Parents that are alternatives of switches (each run takes one case) share one
    branch context; parallel branches of a split differ in it. Metaflow reads a
    step reached from several switch cases as a plain step, not a join.
    """
    parents = [graph[n] for n in node.in_funcs if n in graph.nodes]
    return len({_branch_context(p) for p in parents}) > 1


def _is_join_input(lint: Linter, node: StepNode) -> bool:
    """A step other than the end step that merges branches without taking `inputs` (for the
    end step the fix is a join before it: check_split_join_balance says so)."""
    return node.type != "end" and len(node.in_funcs) > 1 and node.num_args < 2 \
        and merges_branches(lint.graph, node)


@check(2)
def check_join_inputs(lint: Linter) -> Iterator[Diagnostic]:
    for node in lint.graph:
        if _is_join_input(lint, node):
            sources = ", ".join(node.in_funcs)
            yield lint.at_step(node, "join-without-inputs",
                               f"Step `{node.name}` joins branches ({sources}) but does not take "
                               f"`inputs`. Declare it as `def {node.name}(self, inputs):`.")


@check(2)
def check_empty_foreaches(lint: Linter) -> Iterator[Diagnostic]:
    for node in lint.graph:
        if node.type == "foreach":
            joins = [n for n in node.out_funcs if lint.graph[n].type == "join"]
            if joins:
                yield lint.at_step(node, "empty-foreach",
                                   f"Step `{node.name}` is a foreach that goes straight to the "
                                   f"join `{joins[0]}`. Add at least one step between them.")


@check(2)
def check_catch_on_foreach(lint: Linter) -> Iterator[Diagnostic]:
    for node in lint.graph:
        if node.type == "foreach" and node.decorator("catch"):
            yield lint.at_step(node, "catch-on-foreach",
                               f"@catch is not supported on the foreach step `{node.name}`. "
                               "Move the risky code into the steps inside the foreach.")


@check(2)
def check_switch_cases(lint: Linter) -> Iterator[Diagnostic]:
    """Metaflow's switch rules: at least two cases; no case straight into a join."""
    graph = lint.graph
    for node in graph:
        if node.type != "split-switch":
            continue
        if len(node.out_funcs) < 2:
            yield lint.at_next(node, "switch-one-case",
                               f"Step `{node.name}` is a switch with {len(node.out_funcs)} "
                               "case; a switch needs at least two. Add a case, or use "
                               f"`self.next(self.{node.out_funcs[0] if node.out_funcs else 'x'})`.")
        for case, target in node.switch_cases.items():
            if target in graph.nodes and graph[target].type == "join":
                yield lint.at_next(node, "switch-to-join",
                                   f"Switch `{node.name}` leads its case {case!r} straight to "
                                   f"the join `{target}`; a conditional path cannot end in a "
                                   "join directly. Add a plain step on that case before the "
                                   "join.")


@check(2)
def check_parallel_steps(lint: Linter) -> Iterator[Diagnostic]:
    """Metaflow's @parallel rules: `num_parallel=` leads to @parallel steps only, which it
    alone calls, and each goes to a join (Flowdeck's engine ran the other forms silently)."""
    graph = lint.graph
    for node in graph:
        plain = [graph[n] for n in node.out_funcs if n in graph.nodes
                 and graph[n].decorator("parallel") is None]
        if node.parallel_foreach and plain:
            yield lint.at_next(node, "parallel-without-decorator",
                               f"Step `{node.name}` calls self.next(num_parallel=...) to "
                               f"`{plain[0].name}`, which has no @parallel decorator (line "
                               f"{plain[0].line}). Add @parallel above @step on "
                               f"`{plain[0].name}`, or split with foreach= instead.")
        if node.decorator("parallel") is None:
            continue
        callers = [graph[n] for n in node.in_funcs if not graph[n].parallel_foreach]
        if callers:
            yield lint.at_step(node, "parallel-not-called",
                               f"Step `{node.name}` has a @parallel decorator, but "
                               f"`{callers[0].name}` (line {callers[0].line}) calls it without "
                               f"num_parallel. Write `self.next(self.{node.name}, "
                               "num_parallel=N)` there, or remove @parallel.")
        after = node.out_funcs[0] if node.out_funcs else None
        if after in graph.nodes and graph[after].type != "join":
            yield lint.at_next(node, "parallel-not-joined",
                               f"The @parallel step `{node.name}` goes to `{after}`, which "
                               "is not a join. Make the next step a join, "
                               f"`def {after}(self, inputs):`.")


@check(2)
def check_catch_on_switch(lint: Linter) -> Iterator[Diagnostic]:
    for node in lint.graph:
        if node.type == "split-switch" and node.decorator("catch"):
            yield lint.at_step(node, "catch-on-switch",
                               f"@catch is not supported on the switch step `{node.name}` (a "
                               "caught failure leaves no condition to pick a case; Metaflow "
                               "refuses it too). Move the risky code into a step before it.")


@check(2)
def check_split_join_balance(lint: Linter) -> Iterator[Diagnostic]:
    """Metaflow's balance rule: every split joined exactly once, in order."""
    graph = lint.graph
    if graph.start_step is None or graph.end_step is None:
        return
    if any(_is_join_input(lint, n) for n in graph):
        return  # check_join_inputs already names the step to fix
    seen_errors: set[tuple[str, str]] = set()
    stack: list[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]] = [(graph.start_step, ())]
    visited: set[tuple[str, tuple]] = set()
    while stack:
        name, splits = stack.pop()
        if (name, splits) in visited:
            continue
        visited.add((name, splits))
        node = graph[name]
        problem = _balance_problem(lint, node, splits)
        if problem is not None:
            key = (problem.code, name)
            if key not in seen_errors:
                seen_errors.add(key)
                yield problem
            continue
        new_splits = splits
        if node.type in ("split", "foreach"):
            new_splits = splits + ((name, tuple(node.out_funcs)),)
        elif node.type == "join":
            new_splits = splits[:-1]
        for child in node.out_funcs:
            if child in graph.nodes and child not in {s for s, _ in splits}:
                stack.append((child, new_splits))


def _balance_problem(lint: Linter, node: StepNode,
                     splits: tuple[tuple[str, tuple[str, ...]], ...]) -> Diagnostic | None:
    graph = lint.graph
    if node.type == "end" and splits:
        open_branches = ", ".join(splits[-1][1])
        return lint.at_step(node, "unjoined-split",
                            f"The end step `{node.name}` is reached before the split at "
                            f"`{splits[-1][0]}` (branches {open_branches}) is joined. Add a join step "
                            f"(`def join(self, inputs):`) before `{node.name}`.")
    if node.type != "join":
        return None
    if not splits:
        return lint.at_step(node, "join-without-split",
                            f"Step `{node.name}` takes an argument after `self`, as a join takes "
                            "`inputs`, but no split comes before it. Remove the argument or add "
                            "a split before it.")
    if any(graph[n].type == "foreach" for n in node.in_funcs):
        return None  # check_empty_foreaches names this one
    split_name, roots = splits[-1]
    branches = {graph[n].split_branches[-1] for n in node.in_funcs
                if graph[n].split_branches}
    if branches != set(roots):
        return lint.at_step(node, "join-mismatch",
                            f"Join `{node.name}` receives branches {sorted(branches)} but the "
                            f"split at `{split_name}` opened {list(roots)}. Join every branch "
                            "of a split in one join step.")

    def parents(n: str) -> tuple[str, ...]:
        sp = graph[n].split_parents
        return tuple(sp[:-1]) if graph[n].type == "join" else tuple(sp)
    if len({parents(n) for n in node.in_funcs}) > 1:
        return lint.at_step(node, "cross-join",
                            f"Join `{node.name}` joins steps from unrelated splits. Join each "
                            "split's branches before joining an outer split.")
    return None
