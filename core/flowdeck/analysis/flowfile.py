"""Static analysis of a flow source file: its flow classes, steps and parameters.

Nothing here imports or executes the file. Import statements are resolved
only far enough to know which names mean `FlowSpec`, `step` and `Parameter`
of Flowdeck or of Metaflow, under any spelling the user chose, and which base
class a flow inherits from a module beside the file (`from base import BaseFlow`
with `base.py` in the file's folder, as `python FILE` finds it): that module is
read the same way, never imported.
"""

from __future__ import annotations

import ast
import builtins
import io
import os
import tokenize
from _blake2 import blake2b
from collections.abc import Sequence
from dataclasses import asdict, field, replace
from pathlib import Path
from typing import Any

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
from flowdeck.authoring.definitions import (
    ARGUMENT_CHECKS,
    BUILT_IN_STEP_DECORATORS,
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
    #: The flow classes it inherits from, nearest first: [file, class name] each.
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
        return FileAnalysis(path, diagnostics=[Diagnostic(
            path, 0, f"Cannot read the file: {exc.strerror or exc}. Check that it exists "
            "and that you may read it.", "unreadable")])
    return analyze_bytes(data, path)


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
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        line = exc.lineno or 1
        col = exc.offset or 0
        msg = exc.msg or "invalid syntax"
        return FileAnalysis(path, diagnostics=[Diagnostic(
            path, line, f"Syntax error: {msg}. Fix the code at line {line}, column {col}.",
            "syntax-error", column=col)])
    except (ValueError, RecursionError, MemoryError) as exc:
        return FileAnalysis(path, diagnostics=[Diagnostic(
            path, 1, f"Python cannot parse this file ({exc}). Simplify or fix it.",
            "unparsable")])
    try:
        return _FileAnalyzer(tree, source, path).run()
    except (RecursionError, MemoryError) as exc:
        return FileAnalysis(path, diagnostics=[Diagnostic(
            path, 1, f"The file nests expressions too deeply for flowdeck to analyse "
            f"({type(exc).__name__}). Split the deepest expression into smaller ones.",
            "unparsable")])


def _parsed_module(path: str, depth: int, base_modules: dict[str, _FileAnalyzer | None],
                   looked_for: set[str]) -> _FileAnalyzer | None:
    """A module beside a flow file, parsed for its flow classes (None if unreadable: the
    flow's own analysis then finds no base there, as before)."""
    try:
        source, _ = decode_source(Path(path).read_bytes(), path)
        if source is None:
            return None
        analyzer = _FileAnalyzer(ast.parse(source, filename=path), source, path, depth,
                                 base_modules, looked_for)
        analyzer.find_flows()
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return analyzer


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
        self.local_classes: set[str] = set()  # every top-level class name of this file
        # flow class name -> (class, engine, its base flow class in this file or None)
        self.flows: dict[str, tuple[ast.ClassDef, str, str | None]] = {}
        # flow class name -> (the module's analyzer, class name) of a base flow class
        # defined in another module
        self.external_bases: dict[str, tuple[_FileAnalyzer, str]] = {}
        self._bound: set[str] | None = None  # `_bound_names`, once
        self._star_import = False

    def find_flows(self) -> None:
        """Fill `flows`: classes deriving from FlowSpec, directly, through a flow class of
        this file (whatever order they appear in) or through one of a module beside it."""
        self._collect_imports()
        classes = [c for c in self._top_level_classes()]
        self.local_classes = {c.name for c in classes}
        changed = True
        while changed:
            changed = False
            for cls in classes:
                if cls.name in self.flows:
                    continue
                found = self._flow_base(cls, self.flows)
                if found is not None:
                    self.flows[cls.name] = (cls, found[0], found[1])
                    changed = True

    def run(self) -> FileAnalysis:
        self.find_flows()
        flows = self.flows
        infos = [self._flow_info(cls, engine)
                 for cls, engine, _ in sorted(flows.values(), key=lambda f: f[0].lineno)]
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
        found: list[ast.ClassDef] = []
        pending: list[ast.stmt] = list(self.tree.body)
        while pending:
            stmt = pending.pop(0)
            if isinstance(stmt, ast.ClassDef):
                found.append(stmt)
            elif isinstance(stmt, (ast.If, ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for sub in getattr(stmt, block, []) or []:
                        if isinstance(sub, ast.ExceptHandler):
                            pending.extend(sub.body)
                        else:
                            pending.append(sub)
        return found

    def _flow_base(self, cls: ast.ClassDef,
                   flows: dict[str, tuple[ast.ClassDef, str, str | None]]
                   ) -> tuple[str, str | None] | None:
        for base in cls.bases:
            resolved = self.resolve(base)
            if resolved and resolved[1] == "FlowSpec":
                return resolved[0], None
            if isinstance(base, ast.Name) and base.id in flows and base.id != cls.name:
                return flows[base.id][1], base.id
            external = self._external_flow(base)
            if external is not None:
                self.external_bases[cls.name] = external
                return external[0].flows[external[1]][1], None
        return None

    def _external_flow(self, base: ast.expr) -> tuple[_FileAnalyzer, str] | None:
        """The module and name of a flow class `base` names from a module beside this file
        (`BaseFlow` from `from base import BaseFlow`, or `base.BaseFlow`), if it is one. A
        class of this file by that name shadows the import (no flow, as Python sees it)."""
        if isinstance(base, ast.Name) and base.id in self.local_classes:
            return None
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
        return (other, name) if other is not None and name in other.flows else None

    def _module_analyzer(self, module: str, level: int) -> _FileAnalyzer | None:
        """The flows of `module` as `python FILE` would import it: from the file's own
        folder (or, relative, its package), read and parsed, never run."""
        if self.depth >= MAX_BASE_MODULES:
            return None
        folder = os.path.dirname(os.path.abspath(self.path))
        for _ in range(max(level - 1, 0)):
            folder = os.path.dirname(folder)
        stem = os.path.join(folder, *module.split("."))
        candidates = (stem + ".py", os.path.join(stem, "__init__.py")) if module else (
            os.path.join(folder, "__init__.py"),)  # `from . import BaseFlow`: the package
        for candidate in candidates:
            candidate = os.path.abspath(candidate)
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
        chain = self._class_chain(cls.name)
        steps: dict[str, StepNode] = {}
        params: dict[str, ParameterInfo] = {}
        problems: list[Diagnostic] = []
        misspelt_steps: set[str] = set()  # methods whose decorator is not defined
        for klass, owner in chain:  # base first, so subclasses override
            defined_here: dict[str, int] = {}
            for stmt in klass.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    undefined = owner._undefined_decorators(stmt, cls.name)
                    problems += undefined
                    if undefined:
                        misspelt_steps.add(stmt.name)
                    decos = owner._step_decorators(stmt)
                    if stmt.name in defined_here and decos is not None:
                        problems.append(Diagnostic(  # a warning: Python (and Metaflow) run it
                            owner.path, stmt.lineno, f"Step `{stmt.name}` is defined twice in "
                            f"{klass.name} (lines {defined_here[stmt.name]} and {stmt.lineno}); "
                            f"Python keeps only the one at line {stmt.lineno}, so the one at "
                            f"line {defined_here[stmt.name]} never runs. Rename or remove one.",
                            "duplicate-step", severity="warning", flow=cls.name,
                            step=stmt.name))
                    defined_here[stmt.name] = stmt.lineno
                    if decos is not None:
                        problems += owner._decorator_problems(stmt, cls.name)
                        node = extend_step(stmt, parse_step(stmt, owner.source, decos))
                        node.source_file = owner.path if owner is not self else ""
                        steps[stmt.name] = node
                    else:
                        steps.pop(stmt.name, None)
                param = owner._parameter(stmt)
                if param is not None:
                    params[param.attribute] = param
                    if param.nameless:
                        problems.append(Diagnostic(owner.path, stmt.lineno,
                                                     PARAMETER_NAME_MESSAGE, "parameter-name",
                                                     flow=cls.name))
        doc = deindent_docstring(ast.get_docstring(cls, clean=False))
        graph = build_graph(cls.name, self.path, cls.lineno, doc, list(steps.values()),
                            outside_hash=self._chain_outside_hash(chain, steps.values()))
        info = FlowInfo(cls.name, self.path, cls.lineno, doc, engine, graph,
                        parameters=list(params.values()),
                        bases=[[owner.path, klass.name] for klass, owner in chain[-2::-1]])
        graph_problems = lint_graph(graph, info.parameters, engine)
        unmade = {"no-start": "start", "no-end": "end"}
        # `start` or `end` whose decorator is misspelt is no step (a lone other step would
        # even pass for a single-step flow): the flow cannot run without it.
        lost = {name for name in misspelt_steps & {"start", "end"} if name not in steps}
        if lost:
            # "No start step" would send the user astray: the decorator's line says what
            # is wrong there, and is an error then (without its step the flow cannot run).
            graph_problems = [d for d in graph_problems
                              if not (d.code in unmade and unmade[d.code] in lost)]
            problems = [replace(d, severity="error")
                        if d.code == UNDEFINED_DECORATOR and d.step in lost else d
                        for d in problems]
        info.diagnostics = (problems + self.missing_imports + self._relative_imports()
                            + graph_problems)
        return info

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

    def _class_chain(self, name: str) -> list[tuple[ast.ClassDef, _FileAnalyzer]]:
        """The flow class and its flow base classes, the farthest base first, each with the
        analyzer of the module that defines it."""
        chain: list[tuple[ast.ClassDef, _FileAnalyzer]] = []
        owner: _FileAnalyzer = self
        current: str | None = name
        seen: set[tuple[str, str]] = set()
        while current and (owner.path, current) not in seen and current in owner.flows:
            seen.add((owner.path, current))
            klass, _, base = owner.flows[current]
            chain.insert(0, (klass, owner))
            external = owner.external_bases.get(current)
            owner, current = external if external is not None else (owner, base)
        return chain

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

    def _step_decorators(self, func: ast.FunctionDef | ast.AsyncFunctionDef
                         ) -> list[DecoratorInfo] | None:
        """The step's other decorators, or None when `func` is not a step."""
        is_step = False
        decos: list[DecoratorInfo] = []
        for deco in func.decorator_list:
            resolved = self.resolve(deco)
            name = resolved[1] if resolved else _plain_name(deco)
            if name == "step":
                is_step = True
            elif name:
                decos.append(DecoratorInfo(name, _literal_kwargs(deco), deco.lineno))
        return decos[::-1] if is_step else None

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

    def _chain_outside_hash(self, chain: list[tuple[ast.ClassDef, _FileAnalyzer]],
                            steps: Any) -> str:
        """`_outside_hash` of this file, and of each module a base class comes from."""
        mine = [n for n in steps if not n.source_file]
        owners = list({id(owner): owner for _, owner in chain if owner is not self}.values())
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


#: The artifact a `num_parallel` fan-out iterates (authoring.spec.PARALLEL_VAR).
PARALLEL_VAR = "_parallel_ubf_iter"


def extend_step(func: ast.FunctionDef | ast.AsyncFunctionDef, node: StepNode) -> StepNode:
    """Recognise transitions `parse_step` leaves invalid that Flowdeck runs.

    `self.next(self.x, num_parallel=N)` (Metaflow's @parallel) is a foreach
    over the artifact `_parallel_ubf_iter`, which `FlowSpec.next` sets to
    `range(N)`; so the graph, lint and the runtime treat it as one.
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


def _literal_kwargs(deco: ast.AST) -> dict[str, Any]:
    if not isinstance(deco, ast.Call):
        return {}
    out: dict[str, Any] = {}
    for kw in deco.keywords:
        if kw.arg:
            value = literal(kw.value)
            out[kw.arg] = value if value is not None else _unparse(kw.value)
    return out
