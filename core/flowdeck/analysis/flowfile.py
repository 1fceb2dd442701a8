"""Static analysis of a flow source file: its flow classes, steps and parameters.

Nothing here imports or executes the file. Import statements are resolved
only far enough to know which names mean `FlowSpec`, `step` and `Parameter`
of Flowdeck or of Metaflow, under any spelling the user chose, and which base
classes (flows or plain mixins) a class inherits from a module beside the file
(`from base import BaseFlow` with `base.py` in the file's folder, as `python FILE`
finds it): that module is read the same way, never imported. A flow's steps and
parameters are collected over its classes in Python's method resolution order, as
the engines collect them at run time.
"""

from __future__ import annotations

import ast
import builtins
import io
import os
import tokenize
from _blake2 import blake2b
from collections.abc import Iterator, Sequence
from dataclasses import asdict, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from flowdeck.analysis.diagnostics import UNDEFINED_DECORATOR, Diagnostic, has_errors
from flowdeck.analysis.graph import (
    DecoratorInfo,
    FlowGraph,
    StepNode,
    build_graph,
    deindent_docstring,
    iter_statements,
    literal,
    parse_step,
    text_hash,
)
from flowdeck.analysis.lint import lint_graph
from flowdeck.analysis.mro import linearise
from flowdeck.authoring.definitions import (
    ARGUMENT_CHECKS,
    BUILT_IN_STEP_DECORATORS,
    PARALLEL_VAR,
    PARAMETER_NAME_MESSAGE,
    STEP_DECORATOR_ARGUMENTS,
    custom_start_end_message,
    unknown_arguments_message,
)
from flowdeck.compiled_dataclasses import dataclass

ENGINE_MODULES = {"flowdeck": "flowdeck", "metaflow": "metaflow"}
_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__",
                                         "__builtins__", "__loader__", "__package__"}
#: How many modules deep a flow's base classes are followed (import cycles end here too).
MAX_BASE_MODULES = 8
API_NAMES = {"FlowSpec", "step", "Parameter", "retry", "catch", "timeout", "JSONType",
             "current", "resources", "card", "conda", "pypi", "environment", "project",
             "schedule", "batch", "kubernetes", "secrets", "parallel", "IncludeFile",
             "Config", "config_expr"}


@dataclass
class ParameterInfo:
    """A `Parameter(...)` declared on a flow class."""

    name: str
    attribute: str
    line: int
    default: Any = None
    has_default: bool = False
    default_source: str | None = None
    type: str = "str"
    help: str = ""
    required: bool = False
    nameless: bool = False  # declared without its name, which Python refuses
    multiple: bool = False  # `multiple=True`: given once per value, read as a tuple
    separator: str | None = None  # `separator=`'s text: a given value is split at it
    typed: bool = False  # `type=` given

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FlowInfo:
    """One flow class found in a file."""

    name: str
    file: str
    line: int
    doc: str
    engine: str
    graph: FlowGraph
    parameters: list[ParameterInfo] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: Why `python FILE` would not run this flow (see `start_problem`), or None.
    start_problem: str | None = None
    #: The flow classes it inherits from, in method resolution order (nearest first; all
    #: the bases of a flow with several): [file, class name] each.
    bases: list[list[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "line": self.line,
            "doc": self.doc,
            "engine": self.engine,
            "steps": [
                {"name": n.name, "line": n.line, "doc": n.doc, "type": n.type}
                for n in self.graph
            ],
            "graph": self.graph.as_dict(),
            "parameters": [p.as_dict() for p in self.parameters],
            "diagnostics": [d.as_dict() for d in self.diagnostics],
            "status": "ok" if self.ok else "error",
            # a save that changes only a step's body must still count as a change
            "step_hashes": self.graph.step_hashes(),
            "outside_hash": self.graph.outside_hash,
            "bases": self.bases,
        }


@dataclass
class MainBlock:
    """What running the file as a script (`python FILE`) starts: its `if __name__ ==
    "__main__":` block (else its module-level calls of a flow), and the flow classes that
    calls by name (none known when it calls a function that starts one)."""

    line: int
    starts: list[str] = field(default_factory=list)
    #: Flows it calls only after a flow whose run ends the script (`FirstFlow()` then
    #: `SecondFlow()`): by name, the line of the call that ends it first.
    never_reached: dict[str, int] = field(default_factory=dict)


@dataclass
class FileAnalysis:
    """Everything static analysis learned from one file."""

    path: str
    flows: list[FlowInfo] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    content_hash: str = ""
    #: Modules beside the file that were read for its flows' base classes: a change to
    #: one of them changes this file's flows (the catalog analyses the file again).
    depends_on: list[str] = field(default_factory=list)

    def flow(self, name: str) -> FlowInfo | None:
        return next((f for f in self.flows if f.name == name), None)

    def all_diagnostics(self) -> list[Diagnostic]:
        out = list(self.diagnostics)
        for flow in self.flows:
            out.extend(flow.diagnostics)
        return out


def decode_source(data: bytes, path: str) -> tuple[str | None, Diagnostic | None]:
    """Bytes to text, honouring a PEP 263 coding line; a diagnostic if impossible."""
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        return None, Diagnostic(path, line, "The file contains a NUL byte, so it is not "
                                "Python source. Remove the byte or the file.", "binary-file")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding), None
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        bad_at = getattr(exc, "start", None)
        line = data[:bad_at].count(b"\n") + 1 if isinstance(bad_at, int) else 1
        return None, Diagnostic(path, line, f"The file is not valid UTF-8 text ({exc}). "
                                "Save it as UTF-8 or declare its encoding in a "
                                "`# -*- coding: ... -*-` line.", "encoding")


def analyze_file(path: str | Path) -> FileAnalysis:
    """Read and analyse a file; unreadable files yield a diagnostic, not an exception."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return FileAnalysis(path, diagnostics=[_unreadable_problem(path, exc)])
    return analyze_bytes(data, path)


def _unreadable_problem(path: str, exc: OSError) -> Diagnostic:
    return Diagnostic(path, 0, f"Cannot read the file: {exc.strerror or exc}. Check that it "
                      "exists and that you may read it.", "unreadable")


def analyze_bytes(data: bytes, path: str) -> FileAnalysis:
    content_hash = blake2b(data, digest_size=16).hexdigest()
    source, problem = decode_source(data, path)
    if source is None:
        return FileAnalysis(path, diagnostics=[problem] if problem else [],
                            content_hash=content_hash)
    result = analyze_source(source, path)
    result.content_hash = content_hash
    return result


def analyze_source(source: str, path: str) -> FileAnalysis:
    """Find the flow classes of a module's source and lint each of them."""
    tree, problem = _parse(source, path)
    if tree is None:
        return FileAnalysis(path, diagnostics=[problem] if problem else [])
    try:
        return _FileAnalyzer(tree, source, path).run()
    except (RecursionError, MemoryError) as exc:
        return FileAnalysis(path, diagnostics=[_too_deep_problem(path, exc)])


def _parse(source: str, path: str) -> tuple[ast.Module | None, Diagnostic | None]:
    """The module's AST, or why Python cannot parse it (a syntax error's line and column):
    for the analysed file, and for a module its flows' base classes come from."""
    try:
        return ast.parse(source, filename=path), None
    except SyntaxError as exc:
        line = exc.lineno or 1
        col = exc.offset or 0
        msg = exc.msg or "invalid syntax"
        return None, Diagnostic(
            path, line, f"Syntax error: {msg}. Fix the code at line {line}, column {col}.",
            "syntax-error", column=col)
    except (ValueError, RecursionError, MemoryError) as exc:
        return None, Diagnostic(path, 1, f"Python cannot parse this file ({exc}). Simplify "
                                "or fix it.", "unparsable")


def _too_deep_problem(path: str, exc: BaseException) -> Diagnostic:
    return Diagnostic(path, 1, f"The file nests expressions too deeply for flowdeck to "
                      f"analyse ({type(exc).__name__}). Split the deepest expression into "
                      "smaller ones.", "unparsable")


def _parsed_module(path: str, depth: int, base_modules: dict[str, _FileAnalyzer | None],
                   looked_for: set[str]) -> _FileAnalyzer:
    """A module beside a flow file, parsed for its classes. One that cannot be read is kept,
    with its `problem`: a flow inheriting from it stays a flow and says why (it vanished,
    "defines no flow", while its base module had a syntax error)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return _FileAnalyzer.unreadable(path, "", _unreadable_problem(path, exc))
    source, problem = decode_source(data, path)
    if source is None:
        assert problem is not None  # decode_source says why it gives no text
        return _FileAnalyzer.unreadable(path, data.decode("utf-8", "replace"), problem)
    tree, problem = _parse(source, path)
    if tree is None:
        assert problem is not None  # _parse says why it gives no tree
        return _FileAnalyzer.unreadable(path, source, problem)
    analyzer = _FileAnalyzer(tree, source, path, depth, base_modules, looked_for)
    try:
        analyzer.find_flows()
    except (RecursionError, MemoryError) as exc:
        return _FileAnalyzer.unreadable(path, source, _too_deep_problem(path, exc))
    return analyzer


def module_candidates(path: str, module: str, level: int) -> tuple[str, ...]:
    """The files (absolute) `python FILE` would import `module` from, for the file at
    `path`: beside it (or, `level` dots, in its package), the only place static analysis
    follows a base class to; the discovery prefilter asks the same."""
    folder = os.path.dirname(os.path.abspath(path))
    for _ in range(max(level - 1, 0)):
        folder = os.path.dirname(folder)
    stem = os.path.join(folder, *module.split("."))
    if not module:  # `from . import BaseFlow`: the package
        return (os.path.join(folder, "__init__.py"),)
    return (os.path.abspath(stem + ".py"), os.path.abspath(os.path.join(stem, "__init__.py")))


def no_flow_problem(analysis: FileAnalysis, file: str) -> str:
    """Why a command finds no flow in `file`: what keeps it from being read (a syntax error,
    an encoding, a NUL byte: its diagnostics, printed first), or that it defines none
    ("defines no flow" alone sent the user looking for the wrong thing)."""
    if analysis.diagnostics:
        return f"{file} cannot be read as a flow file; fix the errors above."
    return f"{file} defines no flow (a class deriving from FlowSpec)."


def pick_flow(flows: list[FlowInfo], name: str | None, file: str,
              to_run: bool = True) -> tuple[FlowInfo | None, str]:
    """The flow a command means: the one named; else the one `python FILE` starts (a base
    class or a second flow in the file is never it); else why not. `to_run`: the command
    runs it, so a file that starts none of its flows says that first (it asked for
    --flow, then said the file starts none)."""
    if not flows:
        return None, f"{file} defines no flow (a class deriving from FlowSpec)."
    if name is None:
        started = [f for f in flows if f.start_problem is None]
        if len(started) == 1:
            return started[0], ""
        if len(flows) == 1:
            return flows[0], ""
        if to_run and not started and all(
                f.start_problem == start_problem(file, None, f.name) for f in flows):
            return None, (f"{file} has several flows and runs none of them: it has no "
                          f"`if __name__ == \"__main__\":` block. Add one at its end that "
                          f"starts the flow to run, such as `if __name__ == \"__main__\": "
                          f"{flows[0].name}()`.")
    chosen = next((f for f in flows if f.name == name), None)
    if chosen is not None:
        return chosen, ""
    names = ", ".join(f.name for f in flows)
    what = f"has no flow {name}" if name else "has several flows"
    return None, f"{file} {what}; choose one with --flow ({names})."


def start_problem(path: str, main: MainBlock | None, flow: str) -> str | None:
    """Why `python FILE` would not run `flow` (every engine runs a flow that way), or None.

    A file whose script part starts another flow ran that one instead; one without a
    script part ran nothing and ended well: both looked like a run of `flow`."""
    if main is None:
        return (f"{path} does not start {flow} when it runs: it has no "
                f"`if __name__ == \"__main__\":` block. Add one at its end: "
                f"`if __name__ == \"__main__\": {flow}()`.")
    if flow in main.never_reached:
        first = ", ".join(main.starts)
        return (f"{path}:{main.never_reached[flow]}: running the file starts {first}, "
                f"whose run ends the script before {flow}() is reached. Start {flow} "
                f"alone in its `if __name__ == \"__main__\":` block (or put each flow in a "
                "file of its own).")
    if main.starts and flow not in main.starts:
        others = ", ".join(main.starts)
        return (f"{path}:{main.line}: running the file starts {others}, not "
                f"{flow}. Start {flow} in its `if __name__ == \"__main__\":` block (or put "
                "each flow in a file of its own).")
    return None


def _is_main_test(test: ast.expr) -> bool:
    """`__name__ == "__main__"`, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return any(isinstance(a, ast.Name) and a.id == "__name__" for a in sides) and \
        any(isinstance(a, ast.Constant) and a.value == "__main__" for a in sides)


def _reached_starts(line: int, body: Sequence[ast.stmt], flows: set[str]) -> MainBlock:
    """The flows the script part `body` starts, in order, up to the first statement that
    surely ends the script: a bare `Flow()` runs the flow's command line and exits, as
    Metaflow's does (`script_cli.bare_script_call`), so a flow called after it is never
    reached. Nothing else is sure to end it: `Flow().run()` returns the run when it
    succeeds, `flow = Flow()` waits for a `.run()` on it, `use_cli=` may turn the command
    line off, and a call inside a compound statement (`if`, `try`, a loop) may not run."""
    starts: list[str] = []
    never: dict[str, int] = {}
    ended_at: int | None = None
    for statement in body:
        called = _flows_called([statement], flows)
        if ended_at is not None:
            for name in called:
                if name not in starts:
                    never.setdefault(name, ended_at)
            continue
        starts.extend(n for n in called if n not in starts)
        if _ends_the_script(statement, flows):
            ended_at = statement.lineno
    return MainBlock(line, starts, never)


def _ends_the_script(statement: ast.stmt, flows: set[str]) -> bool:
    """A statement that is a bare call of a flow class, with no `use_cli=`."""
    if not isinstance(statement, ast.Expr) or not isinstance(statement.value, ast.Call):
        return False
    call = statement.value
    return isinstance(call.func, ast.Name) and call.func.id in flows and \
        not any(k.arg in ("use_cli", None) for k in call.keywords)


def _flows_called(body: Sequence[ast.stmt], flows: set[str]) -> list[str]:
    """The flow classes called by name in `body` (`Flow()`, `Flow().run()`), in order."""
    called: list[str] = []
    for statement in body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in flows and node.func.id not in called:
                called.append(node.func.id)
    return called


def provides(name: str) -> bool:
    """Whether `from flowdeck import name` works: the public API or a submodule."""
    import importlib.util

    import flowdeck
    if name in flowdeck.__all__ or hasattr(flowdeck, name):
        return True
    return importlib.util.find_spec(f"flowdeck.{name}") is not None


class _ClassRef(NamedTuple):
    """A class in a flow's MRO: one of a module analysis read (`owner` and `name`); one
    of a module beside the file that cannot be read (`owner.problem` says why); or one
    known by its name only (`owner` None: an engine's FlowSpec, with its `engine`, or a
    library's class, which adds no step analysis can see)."""

    owner: _FileAnalyzer | None
    name: str
    engine: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.owner.path if self.owner is not None else "", self.name)


def _linearised(ref: _ClassRef) -> list[_ClassRef]:
    """The MRO of a base: read from its module, or the class alone when it cannot be."""
    owner = ref.owner
    if owner is None or owner.problem is not None or ref.name not in owner.classes:
        return [ref]
    return owner.mro(ref.name)


def _readable(mro: list[_ClassRef]) -> list[tuple[ast.ClassDef, _FileAnalyzer]]:
    """The classes of an MRO whose source was read, each with its module's analyzer."""
    return [(ref.owner.classes[ref.name], ref.owner) for ref in mro
            if ref.owner is not None and ref.owner.problem is None
            and ref.name in ref.owner.classes]


def _unreadable_base(flow: str, ref: _ClassRef) -> Diagnostic:
    """A flow's error for a base class from a module that cannot be read, at the line that
    keeps it from being read (a syntax error's): the flow stays listed, and says why."""
    assert ref.owner is not None and ref.owner.problem is not None
    problem = ref.owner.problem
    return Diagnostic(problem.file, problem.line, f"{flow} inherits from {ref.name} of "
                      f"{os.path.basename(problem.file)}, which flowdeck cannot read (Python "
                      "stops at its import), so the steps and parameters it inherits are "
                      f"unknown. {problem.message}", "base-unreadable", column=problem.column,
                      flow=flow)


@dataclass
class _Members:
    """The steps and parameters a flow's classes define, collected over its MRO."""

    steps: dict[str, StepNode] = field(default_factory=dict)
    params: dict[str, ParameterInfo] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)
    misspelt: set[str] = field(default_factory=set)  # methods whose decorator is undefined
    #: Config attribute -> its `default_value=` when the source gives it as a literal
    #: dict, else None (its value is known only when the flow runs).
    configs: dict[str, Any] = field(default_factory=dict)


#: A method's definition in a class body, with the block (statement list) that holds it.
_Definition = tuple[ast.FunctionDef | ast.AsyncFunctionDef, list[ast.stmt]]


def _redefined_step(path: str, klass: str, flow: str, earlier: _Definition,
                    later: _Definition) -> list[Diagnostic]:
    """A step defined again in the same class. In the same block the second replaces the
    first: a warning (Python and Metaflow run the flow; one of the two is a mistake). In
    another block (`if`/`else`, `try`, `with`), which one Python keeps may depend on a
    condition static analysis does not evaluate:
    the later one is shown, with a warning when the two differ (the same one twice, in
    both branches, is one step)."""
    (first, first_block), (func, block) = earlier, later
    if block is first_block:  # a warning: Python (and Metaflow) run the flow
        return [Diagnostic(
            path, func.lineno, f"Step `{func.name}` is defined twice in {klass} (lines "
            f"{first.lineno} and {func.lineno}); Python keeps only the one at line "
            f"{func.lineno}, so the one at line {first.lineno} never runs. Rename or remove "
            "one.", "duplicate-step", severity="warning", flow=flow, step=func.name)]
    if ast.dump(first) == ast.dump(func):
        return []
    return [Diagnostic(
        path, func.lineno, f"Step `{func.name}` of {klass} is defined at lines {first.lineno} "
        f"and {func.lineno}, in different blocks (`if`/`else`, `try` or `with`): which one "
        "runs may depend on a condition static analysis does not evaluate, so it shows the "
        f"one at line {func.lineno}. Define the step once and branch inside it, or give "
        "the two different names.", "conditional-step", severity="warning", flow=flow,
        step=func.name)]


def _block_statements(body: list[ast.stmt]) -> Iterator[tuple[ast.stmt, list[ast.stmt]]]:
    """The statements of a module's or a class's body and of the `if`/`else`, `try` and
    `with` blocks in it, which Python runs as it reads the body (not those of functions
    or classes), in source order, each with the block that holds it."""
    for stmt in body:
        yield stmt, body
        if isinstance(stmt, (ast.If, ast.Try, ast.TryStar, ast.With)):
            blocks = [stmt.body, *(h.body for h in getattr(stmt, "handlers", ())),
                      stmt.orelse if not isinstance(stmt, ast.With) else [],
                      getattr(stmt, "finalbody", [])]
            for block in blocks:
                yield from _block_statements(block)


class _FileAnalyzer:
    """Walks one module's AST; small methods, one concern each."""

    def __init__(self, tree: ast.Module, source: str, path: str, depth: int = 0,
                 base_modules: dict[str, _FileAnalyzer | None] | None = None,
                 looked_for: set[str] | None = None):
        self.tree = tree
        self.source = source
        self.path = path
        self.depth = depth  # how many modules away from the analysed file (its bases')
        #: Modules read for base classes, by path (shared by the whole analysis: each is
        #: parsed once, and they are what the file depends on)
        self.base_modules: dict[str, _FileAnalyzer | None] = (
            {} if base_modules is None else base_modules)
        #: Every module path looked for as a base's module, found or not (shared too).
        self.looked_for: set[str] = set() if looked_for is None else looked_for
        # local name -> (engine, api name) for `from flowdeck import step as s`
        self.names: dict[str, tuple[str, str]] = {}
        # local name -> engine for `import metaflow as mf`
        self.modules: dict[str, str] = {}
        # local name -> (module, name, level) for `from base import BaseFlow` (other modules)
        self.imported: dict[str, tuple[str, str, int]] = {}
        # local name -> module for `import base` (other modules)
        self.imported_modules: dict[str, str] = {}
        # `from flowdeck import X` where flowdeck has no X: the file cannot run
        self.missing_imports: list[Diagnostic] = []
        #: Every top-level class of this file by name (the first, if two share one).
        self.classes: dict[str, ast.ClassDef] = {}
        #: flow class name -> (class, engine): the classes with FlowSpec in their MRO
        self.flows: dict[str, tuple[ast.ClassDef, str]] = {}
        self._mros: dict[str, list[_ClassRef]] = {}  # `mro`, once per class
        #: class name -> why Python cannot order its bases (it stops the file there)
        self.mro_problems: dict[str, Diagnostic] = {}
        #: Why this module, read for a base class, cannot be read (then it has no classes)
        self.problem: Diagnostic | None = None
        self._bound: set[str] | None = None  # `_bound_names`, once
        self._star_import = False

    @classmethod
    def unreadable(cls, path: str, text: str, problem: Diagnostic) -> _FileAnalyzer:
        """A module beside the file that Python cannot read (a syntax error): its text is
        kept to tell whether the class a flow inherits from it is a flow (see `_engine`)."""
        analyzer = cls(ast.Module(body=[], type_ignores=[]), text, path)
        analyzer.problem = problem
        return analyzer

    def find_flows(self) -> None:
        """Fill `flows`: the classes with FlowSpec in their MRO, through any of their bases
        (a flow class or a plain mixin, of this file, whatever order they appear in, or of
        a module beside it), as Python would make them."""
        self._collect_imports()
        for cls in self._top_level_classes():
            self.classes.setdefault(cls.name, cls)
        for name, cls in self.classes.items():
            engine = self._engine(self.mro(name))
            if engine is not None:
                self.flows[name] = (cls, engine)

    def run(self) -> FileAnalysis:
        self.find_flows()
        flows = self.flows
        infos = [self._flow_info(cls, engine)
                 for cls, engine in sorted(flows.values(), key=lambda f: f[0].lineno)]
        main = self._main_block(set(flows))
        for info in infos:
            info.start_problem = start_problem(self.path, main, info.name)
        return FileAnalysis(self.path, flows=infos, depends_on=sorted(self.looked_for))

    def _main_block(self, flows: set[str]) -> MainBlock | None:
        for node in self.tree.body:
            if isinstance(node, ast.If) and _is_main_test(node.test):
                return _reached_starts(node.lineno, node.body, flows)
        calls = [n for n in self.tree.body if isinstance(n, ast.Expr)]
        started = _flows_called(calls, flows)
        if not started:
            return None
        line = next(n.lineno for n in calls if _flows_called([n], flows))
        return _reached_starts(line, calls, flows)

    # -- imports -------------------------------------------------------------

    def _collect_imports(self) -> None:
        for node in iter_statements(self.tree.body):
            if isinstance(node, ast.ImportFrom) and (node.level or not node.module):
                for alias in node.names:  # relative: `from .base import BaseFlow`
                    self.imported[alias.asname or alias.name] = (node.module or "", alias.name,
                                                                 node.level)
            elif isinstance(node, ast.ImportFrom) and node.module:
                engine = ENGINE_MODULES.get(node.module.split(".")[0])
                if engine is None:
                    for alias in node.names:
                        self.imported[alias.asname or alias.name] = (node.module, alias.name, 0)
                    continue
                for alias in node.names:
                    if alias.name == "*":
                        for api in API_NAMES:
                            self.names.setdefault(api, (engine, api))
                    else:
                        self.names[alias.asname or alias.name] = (engine, alias.name)
                        self._check_flowdeck_name(node, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    engine = ENGINE_MODULES.get(alias.name.split(".")[0])
                    if engine is None:
                        if alias.asname or "." not in alias.name:
                            self.imported_modules[alias.asname or alias.name] = alias.name
                        continue
                    local = alias.asname or alias.name.split(".")[0]
                    self.modules[local] = engine

    def resolve(self, expr: ast.AST) -> tuple[str, str] | None:
        """(engine, api name) that an expression like `fd.step` or `s` names."""
        if isinstance(expr, ast.Call):
            expr = expr.func
        if isinstance(expr, ast.Name) and expr.id in self.names:
            return self.names[expr.id]
        if isinstance(expr, ast.Attribute):
            root: ast.expr = expr
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in self.modules:
                return self.modules[root.id], expr.attr
        return None

    # -- classes -------------------------------------------------------------

    def _top_level_classes(self) -> list[ast.ClassDef]:
        """The module's classes, also those under a top-level `if`, `try` or `with`."""
        return [s for s, _ in _block_statements(self.tree.body) if isinstance(s, ast.ClassDef)]

    def mro(self, name: str) -> list[_ClassRef]:
        """The method resolution order of this module's class `name`, as Python makes it
        (C3 over its bases, of this file and of modules beside it), so the steps and
        parameters found are the ones a run finds; a class analysis cannot read (FlowSpec,
        a library's) ends its branch. Where Python refuses the order (TypeError), the
        class gets an error in `mro_problems`, and its bases' classes depth first."""
        found = self._mros.get(name)
        if found is not None:
            return found
        me = _ClassRef(self, name)
        self._mros[name] = [me]  # a cycle of bases (NameError in Python) ends here
        bases = [self._base_ref(b, name) for b in self.classes[name].bases
                 if not self._is_object(b)]
        chains = {b.key: _linearised(b) for b in bases}
        refs = {r.key: r for chain in chains.values() for r in chain}
        refs[me.key] = me
        keys = linearise(me.key, [b.key for b in bases],
                         {key: [r.key for r in chain] for key, chain in chains.items()})
        if keys is None:
            self.mro_problems[name] = self._base_order_problem(self.classes[name])
            keys = [me.key, *dict.fromkeys(r.key for chain in chains.values() for r in chain)]
        self._mros[name] = [refs[key] for key in keys]
        return self._mros[name]

    def _base_order_problem(self, cls: ast.ClassDef) -> Diagnostic:
        bases = ", ".join(_unparse(b) for b in cls.bases)
        return Diagnostic(
            self.path, cls.lineno, f"Python cannot order the base classes of {cls.name} "
            f"({bases}) and stops the file here (TypeError: a duplicate base, or no "
            "consistent method resolution order). List each base once, and each class "
            "before the classes it derives from.", "base-order")

    def _is_object(self, base: ast.expr) -> bool:
        """`object` as a base adds nothing: every class derives from it, last."""
        return isinstance(base, ast.Name) and base.id == "object" and \
            base.id not in self.classes and base.id not in self.imported

    def _base_ref(self, base: ast.expr, name: str) -> _ClassRef:
        """The class a base of class `name` names: an engine's FlowSpec, a class of this file,
        one of a module beside it, or one known by its text only (a library's)."""
        resolved = self.resolve(base)
        if resolved is not None and resolved[1] == "FlowSpec":
            return _ClassRef(None, f"{resolved[0]}.FlowSpec", resolved[0])
        if isinstance(base, ast.Name) and base.id in self.classes and base.id != name:
            return _ClassRef(self, base.id)
        return self._external_class(base) or _ClassRef(None, _unparse(base))

    def _engine(self, mro: list[_ClassRef]) -> str | None:
        """The engine of the nearest FlowSpec in the MRO; None for a class that is no flow.

        A base from a module Python cannot parse may be a flow: it is taken as one (listed
        with that module's error instead of vanishing) when that module's text says
        `FlowSpec`, with the engine its text names."""
        for ref in mro:
            if ref.engine is not None:
                return ref.engine
        for ref in mro:
            if ref.owner is not None and ref.owner.problem and "FlowSpec" in ref.owner.source:
                return "metaflow" if "metaflow" in ref.owner.source else "flowdeck"
        return None

    def _external_class(self, base: ast.expr) -> _ClassRef | None:
        """The class `base` names from a module beside this file (`BaseFlow` from `from base
        import BaseFlow`, or `base.BaseFlow`), a flow or a mixin; or one of such a module
        that cannot be read (its `problem` says why). Not a class of this file: that
        shadows the import, as Python sees it, and `_base_ref` takes it first."""
        if isinstance(base, ast.Name) and base.id in self.imported:
            module, name, level = self.imported[base.id]
        elif isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
            local = base.value.id
            if local in self.imported_modules:
                module, level = self.imported_modules[local], 0
            elif local in self.imported:  # `from pkg import base`, then `base.BaseFlow`
                parent, submodule, level = self.imported[local]
                module = f"{parent}.{submodule}" if parent else submodule
            else:
                return None
            name = base.attr
        else:
            return None
        other = self._module_analyzer(module, level)
        if other is None or (other.problem is None and name not in other.classes):
            return None
        return _ClassRef(other, name)

    def _module_analyzer(self, module: str, level: int) -> _FileAnalyzer | None:
        """The classes of `module` as `python FILE` would import it: from the file's own
        folder (or, relative, its package), read and parsed, never run."""
        if self.depth >= MAX_BASE_MODULES:
            return None
        for candidate in module_candidates(self.path, module, level):
            if candidate == os.path.abspath(self.path):
                continue
            self.looked_for.add(candidate)  # created later, it may become the base
            if not os.path.isfile(candidate):
                continue
            if candidate not in self.base_modules:
                self.base_modules[candidate] = None  # an import cycle finds it being read
                self.base_modules[candidate] = _parsed_module(candidate, self.depth + 1,
                                                              self.base_modules, self.looked_for)
            return self.base_modules[candidate]
        return None

    def _flow_info(self, cls: ast.ClassDef, engine: str) -> FlowInfo:
        mro = self.mro(cls.name)
        classes = _readable(mro)  # nearest first
        found = _Members()
        for klass, owner in reversed(classes):  # the farthest first: nearer ones override
            found.configs.update(owner._config_defaults(klass))
        for klass, owner in reversed(classes):
            self._collect_members(klass, owner, cls.name, found)
        base_problems = [replace(owner.mro_problems[klass.name], flow=cls.name)
                         for klass, owner in classes if klass.name in owner.mro_problems]
        unread = [_unreadable_base(cls.name, ref) for ref in mro
                  if ref.owner is not None and ref.owner.problem is not None]
        doc = deindent_docstring(ast.get_docstring(cls, clean=False))
        owners = list({id(owner): owner for _, owner in classes if owner is not self}.values())
        graph = build_graph(cls.name, self.path, cls.lineno, doc, list(found.steps.values()),
                            outside_hash=self._chain_outside_hash(owners, found.steps.values()))
        info = FlowInfo(cls.name, self.path, cls.lineno, doc, engine, graph,
                        parameters=list(found.params.values()),
                        bases=[[owner.path, klass.name] for klass, owner in classes[1:]
                               if klass.name in owner.flows])
        # With a base unread, its steps are missing: "no start step" would mislead.
        graph_problems = [] if unread else lint_graph(graph, info.parameters, engine)
        problems = found.problems
        unmade = {"no-start": "start", "no-end": "end"}
        # `start` or `end` whose decorator is misspelt is no step (a lone other step would
        # even pass for a single-step flow): the flow cannot run without it.
        lost = {name for name in found.misspelt & {"start", "end"} if name not in found.steps}
        if lost:
            # "No start step" would send the user astray: the decorator's line says what
            # is wrong there, and is an error then (without its step the flow cannot run).
            graph_problems = [d for d in graph_problems
                              if not (d.code in unmade and unmade[d.code] in lost)]
            problems = [replace(d, severity="error")
                        if d.code == UNDEFINED_DECORATOR and d.step in lost else d
                        for d in problems]
        info.diagnostics = (unread + base_problems + problems + self.missing_imports
                            + self._relative_imports() + graph_problems)
        return info

    def _collect_members(self, klass: ast.ClassDef, owner: _FileAnalyzer, flow: str,
                         found: _Members) -> None:
        """Add the steps and parameters `klass` (of `owner`'s module) defines to `found`,
        also those under an `if`/`else`, `try` or `with` of its body (Python runs those
        blocks when it makes the class), replacing those of farther classes."""
        defined: dict[str, _Definition] = {}
        for stmt, block in _block_statements(klass.body):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                undefined = owner._undefined_decorators(stmt, flow)
                found.problems += undefined
                if undefined:
                    found.misspelt.add(stmt.name)
                decos = owner._step_decorators(stmt, found.configs)
                earlier = defined.get(stmt.name)
                if earlier is not None and decos is not None:
                    found.problems += _redefined_step(owner.path, klass.name, flow, earlier,
                                                      (stmt, block))
                defined[stmt.name] = (stmt, block)
                if decos is not None:
                    found.problems += owner._decorator_problems(stmt, flow)
                    node = extend_step(stmt, parse_step(stmt, owner.source, decos))
                    node.source_file = owner.path if owner is not self else ""
                    found.steps[stmt.name] = node
                else:
                    found.steps.pop(stmt.name, None)
            param = owner._parameter(stmt)
            if param is not None:
                found.params[param.attribute] = param
                if param.nameless:
                    found.problems.append(Diagnostic(owner.path, stmt.lineno,
                                                     PARAMETER_NAME_MESSAGE, "parameter-name",
                                                     flow=flow))

    def _undefined_decorators(self, func: ast.FunctionDef | ast.AsyncFunctionDef,
                              flow: str) -> list[Diagnostic]:
        """A decorator whose name the module never defines or imports (`@stpe`, `@retyr`):
        Python stops the file with NameError when it defines the class. Not judged in a
        module with a star import (any name may come from it)."""
        problems = []
        for deco in func.decorator_list:
            root = deco.func if isinstance(deco, ast.Call) else deco
            while isinstance(root, ast.Attribute):
                root = root.value
            if not isinstance(root, ast.Name) or self._imports_name(root.id):
                continue  # most decorators: no walk of the module at every run's start
            bound = self._bound_names()
            if bound is None or root.id in bound:
                continue
            import difflib  # only for a mistake: every run's start-up analyses its file
            known = sorted({"step", *BUILT_IN_STEP_DECORATORS} | bound)
            close = difflib.get_close_matches(root.id, known, n=1, cutoff=0.6)
            fix = (f"Write `@{close[0]}` if that is what you meant." if close
                   else "Import it, or define it above the class.")
            problems.append(Diagnostic(  # a warning: the file may bind it in a way the
                self.path, deco.lineno, f"Decorator `@{root.id}` is not defined, so Python "
                f"stops the file here (NameError). {fix}", UNDEFINED_DECORATOR,
                severity="warning",  # lint cannot see (`globals()[...]`): never blocks a run
                column=deco.col_offset, flow=flow, step=func.name))
        return problems

    def _imports_name(self, name: str) -> bool:
        """Whether an import of the module, or Python, binds `name` (known without a walk)."""
        return (name in self.names or name in self.modules or name in self.imported
                or name in self.imported_modules or name in _BUILTINS)

    def _bound_names(self) -> set[str] | None:
        """Every name the module binds anywhere (assignments, definitions, imports,
        arguments), or None when a star import may bind any."""
        if self._bound is not None or self._star_import:
            return self._bound
        bound: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name == "*":
                        self._star_import = True
                        return None
                    bound.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                bound.update(node.names)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                bound.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                bound.add(node.rest)
        self._bound = bound
        return bound

    def _relative_imports(self) -> list[Diagnostic]:
        """`from .base import BaseFlow` at the top of the file: `python FILE` runs it as a
        script, not as part of a package, so Python refuses the import (one inside a `try`
        may have a fallback, and is left alone)."""
        if self.depth:
            return []
        return [Diagnostic(
            self.path, node.lineno, "A relative import fails when the file runs as a script "
            f"(`python {os.path.basename(self.path)}`): import the module by its name "
            f"(`from {node.module or '...'} import ...`) from the file's folder.",
            "relative-import") for node in self.tree.body
            if isinstance(node, ast.ImportFrom) and node.level]

    def _check_flowdeck_name(self, node: ast.ImportFrom, name: str) -> None:
        """`from flowdeck import X` for an X flowdeck lacks fails at import: say so now."""
        if node.module != "flowdeck" or provides(name):
            return
        self.missing_imports.append(Diagnostic(
            self.path, node.lineno,
            f"flowdeck has no `{name}`, so this file stops at its import line. Remove "
            f"`{name}` from the import, or import it from metaflow and run the file with "
            "Metaflow's engine.", "unknown-import"))

    def _decorator_problems(self, func: ast.FunctionDef | ast.AsyncFunctionDef,
                            flow: str) -> list[Diagnostic]:
        """Keywords a Flowdeck or Metaflow step decorator does not take (`@retry(tims=3)`),
        which stop the file when Python defines the class."""
        problems = self._decorators_below_step(func, flow)
        for deco in func.decorator_list:
            resolved = self.resolve(deco) if isinstance(deco, ast.Call) else None
            if resolved is not None and resolved[1] == "step":
                assert isinstance(deco, ast.Call)
                if resolved[0] != "flowdeck":  # Metaflow 2.19 runs its own @step(start=True)
                    continue
                problems.extend(Diagnostic(self.path, deco.lineno,
                                           custom_start_end_message(str(k.arg)),
                                           "custom-start-end", flow=flow, step=func.name)
                                for k in deco.keywords
                                if k.arg in ("start", "end") and literal(k.value))
                continue
            if resolved is None or resolved[1] not in STEP_DECORATOR_ARGUMENTS:
                continue
            assert isinstance(deco, ast.Call)
            unknown = [k.arg for k in deco.keywords
                       if k.arg and k.arg not in STEP_DECORATOR_ARGUMENTS[resolved[1]]]
            if unknown:
                problems.append(Diagnostic(
                    self.path, deco.lineno, unknown_arguments_message(resolved[1], unknown),
                    "decorator-argument", flow=flow, step=func.name))
            problem = self._argument_problem(deco, resolved[1])
            if problem:
                problems.append(Diagnostic(self.path, deco.lineno, problem,
                                           "decorator-argument", flow=flow, step=func.name))
        return problems

    @staticmethod
    def _argument_problem(deco: ast.Call, name: str) -> str | None:
        """The decorator's own check of its literal arguments (`@catch(var=5)`), the one
        its definition runs; arguments that are no literal are left to that run."""
        check = ARGUMENT_CHECKS.get(name)
        if check is None:
            return None
        known = {k.arg: k.value for k in deco.keywords if k.arg}
        if not all(isinstance(v, ast.Constant) for v in known.values()):
            return None
        return check({key: literal(value) for key, value in known.items()})

    def _decorators_below_step(self, func: ast.FunctionDef | ast.AsyncFunctionDef,
                               flow: str) -> list[Diagnostic]:
        """A built-in step decorator written below `@step` (nearer the `def`): Flowdeck
        applies it, Metaflow refuses the file (BadStepDecoratorException), so a flow made
        here would not run there. A warning, with its line."""
        names = []  # only Flowdeck's and Metaflow's: a library's @retry (tenacity) may be below
        for deco in func.decorator_list:
            resolved = self.resolve(deco)
            names.append((resolved[1] if resolved else None, deco.lineno))
        at = next((i for i, (name, _) in enumerate(names) if name == "step"), None)
        if at is None:
            return []
        return [Diagnostic(self.path, line,
                           f"`@{name}` is below `@step`: Flowdeck applies it, but Metaflow "
                           f"refuses this order. Put `@{name}` above `@step`.",
                           "decorator-below-step", flow=flow, step=func.name,
                           severity="warning")
                for name, line in names[at + 1:] if name in BUILT_IN_STEP_DECORATORS]

    def _step_decorators(self, func: ast.FunctionDef | ast.AsyncFunctionDef,
                         configs: dict[str, Any] | None = None) -> list[DecoratorInfo] | None:
        """The step's other decorators, or None when `func` is not a step. `configs` (see
        `_Members.configs`) gives the value of an argument read from a config."""
        is_step = False
        decos: list[DecoratorInfo] = []
        for deco in func.decorator_list:
            resolved = self.resolve(deco)
            name = resolved[1] if resolved else _plain_name(deco)
            if name == "step":
                is_step = True
            elif name:
                decos.append(DecoratorInfo(name, self._decorator_kwargs(deco, configs or {}),
                                           deco.lineno, builtin=resolved is not None))
        return decos[::-1] if is_step else None

    def _decorator_kwargs(self, deco: ast.AST, configs: dict[str, Any]) -> dict[str, Any]:
        """A decorator's keyword arguments: literals as values, `config_expr("cfg.x")` or
        `cfg.x` of a config whose default the source gives as its value (what Metaflow
        resolves them to when no other config is given), anything else as source text."""
        if not isinstance(deco, ast.Call):
            return {}
        out: dict[str, Any] = {}
        for kw in deco.keywords:
            if kw.arg:
                value = literal(kw.value)
                if value is None:
                    value = _config_value(self._config_expression(kw.value), configs)
                out[kw.arg] = value if value is not None else _unparse(kw.value)
        return out

    def _config_expression(self, node: ast.expr) -> ast.expr | None:
        """The expression `config_expr("...")` holds (parsed), or `node` itself."""
        if not isinstance(node, ast.Call):
            return node
        resolved = self.resolve(node.func)
        if resolved is None or resolved[1] != "config_expr" or node.keywords or \
                len(node.args) != 1:
            return None
        text = literal(node.args[0])
        if not isinstance(text, str):
            return None
        try:
            return ast.parse(text.strip(), mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None

    def _config_defaults(self, klass: ast.ClassDef) -> dict[str, Any]:
        """The class's `x = Config("name", default_value={...})` attributes: a literal
        dict default is the value (see `_Members.configs`); any other default, None."""
        out: dict[str, Any] = {}
        for stmt, _ in _block_statements(klass.body):
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(stmt.value, ast.Call)):
                continue
            resolved = self.resolve(stmt.value.func)
            if resolved is None or resolved[1] != "Config":
                continue
            kwargs = {k.arg: k.value for k in stmt.value.keywords}
            value = literal(kwargs.get("default_value")) if set(kwargs) <= {
                "default_value", "help", "required"} and len(stmt.value.args) <= 1 else None
            out[stmt.targets[0].id] = value if isinstance(value, dict) else None
        return out

    def _parameter(self, stmt: ast.stmt) -> ParameterInfo | None:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Call)):
            return None
        resolved = self.resolve(stmt.value.func)
        if not resolved or resolved[1] not in ("Parameter", "IncludeFile"):  # a path, as text
            return None
        call = stmt.value
        kwargs = {k.arg: k.value for k in call.keywords if k.arg}
        name_node = call.args[0] if call.args else kwargs.get("name")
        name = literal(name_node)
        if not isinstance(name, str):
            name = stmt.targets[0].id
        unpacked = any(k.arg is None for k in call.keywords) or any(
            isinstance(a, ast.Starred) for a in call.args)  # `Parameter(**SPEC)`: unknown
        nameless = not unpacked and (name_node is None or name_node_is_empty(name_node))
        info = ParameterInfo(name=name, attribute=stmt.targets[0].id, line=stmt.lineno,
                             nameless=nameless)
        if "default" in kwargs:
            info.has_default = True
            info.default_source = _unparse(kwargs["default"])
            info.default = literal(kwargs["default"])
        info.help = literal(kwargs.get("help")) or ""
        info.required = bool(literal(kwargs.get("required")))
        info.multiple = bool(literal(kwargs.get("multiple")))
        separator = literal(kwargs.get("separator"))
        info.separator = str(separator) if separator is not None else None
        info.typed = "type" in kwargs
        typed_by = info.default
        if info.multiple and isinstance(typed_by, (list, tuple)):  # the items' type
            typed_by = typed_by[0] if typed_by else None
        if "type" in kwargs:
            info.type = _unparse(kwargs["type"]).split(".")[-1]
        elif typed_by is not None:
            info.type = type(typed_by).__name__
        return info

    def _chain_outside_hash(self, owners: list[_FileAnalyzer], steps: Any) -> str:
        """`_outside_hash` of this file, and of each other module a base class comes from."""
        mine = [n for n in steps if not n.source_file]
        if not owners:
            return self._outside_hash(mine)
        hashes = [self._outside_hash(mine)] + [
            owner._outside_hash([n for n in steps if n.source_file == owner.path])
            for owner in owners]
        return text_hash("".join(hashes))

    def _outside_hash(self, steps: Any) -> str:
        """Hash of the file without its step bodies: a change here reruns everything."""
        lines = self.source.splitlines(keepends=True)
        drop: set[int] = set()
        for node in steps:
            drop.update(range(node.first_line - 1, node.end_line))
        kept = "".join(line for i, line in enumerate(lines) if i not in drop)
        return text_hash(kept)


def extend_step(func: ast.FunctionDef | ast.AsyncFunctionDef, node: StepNode) -> StepNode:
    """Recognise transitions `parse_step` leaves invalid that Flowdeck runs.

    `self.next(self.x, num_parallel=N)` (Metaflow's @parallel) is a foreach
    over the artifact `_parallel_ubf_iter`, which `FlowSpec.next` sets to
    `range(N)`; so the graph, lint and the runtime treat it as one. Its JSON is
    Metaflow's (`split-parallel` with `num_parallel`: `StepNode.metaflow_type`).
    """
    tail = func.body[-1] if func.body else None
    if not (node.has_tail_next and isinstance(tail, ast.Expr)
            and isinstance(tail.value, ast.Call)):
        return node
    keywords = {k.arg for k in tail.value.keywords}
    if keywords == {"num_parallel"} and len(node.out_funcs) == 1 and not node.dynamic_next:
        node.type = "foreach"
        node.foreach_param = PARALLEL_VAR
        node.invalid_tail_next = False
        node.parallel_foreach = True
        count = tail.value.keywords[0].value  # Metaflow's graph keeps a constant only
        node.num_parallel = count.value if isinstance(count, ast.Constant) else None
    return node


def name_node_is_empty(node: ast.expr) -> bool:
    """A Parameter's name given as a literal that is no name (`""`, a number)."""
    return isinstance(node, ast.Constant) and not (isinstance(node.value, str) and node.value)


def _unparse(node: ast.AST) -> str:
    """`ast.unparse`, which recurses: a deeply nested expression gives a placeholder."""
    try:
        return ast.unparse(node)
    except (RecursionError, MemoryError, ValueError):
        return "<expression too deeply nested to show>"


def _plain_name(expr: ast.AST) -> str | None:
    if isinstance(expr, ast.Call):
        expr = expr.func
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return None


def _config_value(expr: ast.expr | None, configs: dict[str, Any]) -> Any:
    """The value of `cfg.a.b` / `cfg["a"]` for a config of known value, else None."""
    keys: list[Any] = []
    while isinstance(expr, (ast.Attribute, ast.Subscript)):
        if isinstance(expr, ast.Attribute):
            keys.append(expr.attr)
        elif isinstance(expr.slice, ast.Constant):
            keys.append(expr.slice.value)
        else:
            return None
        expr = expr.value
    if not isinstance(expr, ast.Name) or not keys:
        return None
    value = configs.get(expr.id)
    for key in reversed(keys):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value
