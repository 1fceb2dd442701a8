"""Read Metaflow's core test suite and generate its (test, graph) flows with its own formatter.

The suite is third-party input data (see its ORIGIN.md): it is read from the
folder given on the command line and never copied into the project. Its own
`metaflow_test.formatter.FlowFormatter` turns a graph (`graphs/*.json`) and a
test (`tests/*.py`) into `test_flow.py` and `check_flow.py`; the test's
ONLY_GRAPHS / SKIP_GRAPHS / `required` steps decide whether the pair is valid,
and the context (`contexts.json`) disables some tests.

Importing the formatter needs `metaflow` names, so this module installs the
generation stub (`_genstub`) first; Metaflow itself is never imported.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _genstub

CONTEXT_NAME = "python3-all-local"

#: Tests left out of the measurement, with the reason shown in the table.
EXCLUDED_TESTS = {
    "ExtensionsTest": "tests Metaflow's extension packaging (metaflow_extensions)",
    "FlowOptionsTest": "tests Metaflow's extension packaging (flow decorator from an extension)",
    "CardExtensionsImportTest": "tests Metaflow's extension packaging (card extensions)",
}
CARD_EXCLUSION = "card test: counted by the separate cards issue"


@dataclass
class Pair:
    """One valid (test, graph) combination with its generated code, as generated
    (`rewritten()` gives the same pair with its `metaflow` imports pointed at `flowdeck`)."""

    test: str
    graph: str
    flow_name: str
    flow_code: str
    check_code: str
    should_fail: bool
    should_resume: bool
    resume_step: str | None
    copy_files: list[str]

    @property
    def key(self) -> str:
        return f"{self.test}/{self.graph}"

    def rewritten(self) -> "Pair":
        """This pair with `rewrite_imports` applied to both files (the `rewrite` mode)."""
        return dataclasses.replace(self, flow_code=rewrite_imports(self.flow_code),
                                   check_code=rewrite_imports(self.check_code))


@dataclass
class TestInfo:
    name: str
    file: str
    priority: int
    excluded: str | None = None           # reason, when left out of the measurement
    disabled_in_context: bool = False     # the context's disabled_tests names it
    pairs: list[Pair] = field(default_factory=list)
    load_error: str | None = None


@dataclass
class Suite:
    root: Path
    context: dict[str, Any]
    graphs: list[dict[str, Any]]
    tests: list[TestInfo]

    def measured_pairs(self) -> list[Pair]:
        return [p for t in self.tests if not t.excluded and not t.disabled_in_context
                for p in t.pairs]


def _import_formatter(root: Path):
    """The suite's own FlowFormatter and MetaflowTest, imported from the suite folder."""
    _genstub.install()
    root_s = str(root)
    if root_s not in sys.path:
        sys.path.insert(0, root_s)
    package = importlib.import_module("metaflow_test")
    if not str(getattr(package, "__file__", "")).startswith(root_s):
        raise RuntimeError(f"imported metaflow_test from {package.__file__}, not from the "
                           f"suite at {root}")
    formatter = importlib.import_module("metaflow_test.formatter")
    return formatter.FlowFormatter, package.MetaflowTest


def _iter_test_classes(root: Path, base: type):
    """(file, class) for every MetaflowTest subclass in tests/*.py, as run_tests.py finds them."""
    tests_dir = root / "tests"
    for path in sorted(tests_dir.glob("*.py")):
        if path.name.startswith("."):
            continue
        mod_name = f"_flowdeck_compat_suite_tests.{path.stem}"
        try:
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        except Exception as exc:  # a broken test file is reported, not fatal
            yield path.name, None, f"{type(exc).__name__}: {exc}"
            continue
        for name in dir(module):
            obj = getattr(module, name)
            if (name != "MetaflowTest" and isinstance(obj, type) and issubclass(obj, base)
                    and obj.__module__ == mod_name):
                yield path.name, obj, None


def load_suite(root: str | os.PathLike[str], context_name: str = CONTEXT_NAME) -> Suite:
    root = Path(root).resolve()
    if not (root / "graphs").is_dir() or not (root / "tests").is_dir():
        raise FileNotFoundError(f"{root} is not Metaflow's core test suite (no graphs/ and tests/)")
    contexts = json.loads((root / "contexts.json").read_text(encoding="utf-8"))
    context = next((c for c in contexts["contexts"] if c["name"] == context_name), None)
    if context is None:
        raise KeyError(f"contexts.json has no context {context_name!r}")
    graphs = [json.loads(p.read_text(encoding="utf-8"))
              for p in sorted((root / "graphs").glob("*.json")) if not p.name.startswith(".")]
    FlowFormatter, MetaflowTest = _import_formatter(root)
    disabled = set(map(str, context.get("disabled_tests", [])))
    enabled = set(map(str, context.get("enabled_tests", [])))

    tests: list[TestInfo] = []
    for file, cls, error in _iter_test_classes(root, MetaflowTest):
        if cls is None:
            tests.append(TestInfo(name=f"<{file}>", file=file, priority=0, load_error=error))
            continue
        name = cls.__name__
        info = TestInfo(name=name, file=file, priority=getattr(cls, "PRIORITY", 0))
        if name in EXCLUDED_TESTS:
            info.excluded = EXCLUDED_TESTS[name]
        elif file.startswith("card_"):
            info.excluded = CARD_EXCLUSION
        info.disabled_in_context = name in disabled or bool(enabled and name not in enabled)
        test = cls()
        for graph in graphs:
            if context.get("disable_parallel") and any(
                    "num_parallel" in node for node in graph["graph"].values()):
                continue
            try:
                formatter = FlowFormatter(graph, test)
            except Exception as exc:
                info.load_error = f"formatter failed on graph {graph['name']}: {exc}"
                continue
            if not formatter.valid:
                continue
            info.pairs.append(Pair(
                test=name, graph=graph["name"], flow_name=formatter.flow_name,
                flow_code=formatter.flow_code, check_code=formatter.check_code,
                should_fail=bool(formatter.should_fail),
                should_resume=bool(formatter.should_resume),
                resume_step=formatter.resume_step,
                copy_files=list(formatter.copy_files),
            ))
        tests.append(info)
    tests.sort(key=lambda t: (t.priority, t.name))
    return Suite(root=root, context=context, graphs=graphs, tests=tests)


# -- import rewriting -----------------------------------------------------------

_FROM_RE = re.compile(r"from(\s+)metaflow\b")


def rewrite_imports(source: str) -> str:
    """Point the generated code's `metaflow` import statements at `flowdeck`; nothing else.

    `from metaflow[.x] import ...` -> `from flowdeck[.x] import ...`
    `import metaflow`             -> `import flowdeck as metaflow`
    `import metaflow.x [as y]`    -> `import flowdeck.x as y` (`as metaflow` becomes
                                     `import flowdeck.x; import flowdeck as metaflow`)
    Only statements found by the parser are touched (never strings or comments);
    `metaflow_test` (the suite's helper package) is a different name and stays.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.split("\n")
    edits: dict[int, list[ast.stmt]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "metaflow" or node.module.startswith("metaflow.")):
            edits.setdefault(node.lineno - 1, []).append(node)
        elif isinstance(node, ast.Import) and any(
                a.name == "metaflow" or a.name.startswith("metaflow.") for a in node.names):
            edits.setdefault(node.lineno - 1, []).append(node)
    for index, nodes in edits.items():
        line = lines[index]
        for node in sorted(nodes, key=lambda n: n.col_offset, reverse=True):
            head, tail = line[:node.col_offset], line[node.col_offset:]
            if isinstance(node, ast.ImportFrom):
                tail = _FROM_RE.sub(r"from\1flowdeck", tail, count=1)
            else:
                end = (node.end_col_offset - node.col_offset
                       if node.end_lineno == node.lineno else len(tail))
                rest = tail[end:]
                tail = _rewrite_import_stmt(node) + rest
            line = head + tail
        lines[index] = line
    return "\n".join(lines)


def _rewrite_import_stmt(node: ast.Import) -> str:
    parts = []
    for alias in node.names:
        name, asname = alias.name, alias.asname
        if name == "metaflow" or name.startswith("metaflow."):
            new = "flowdeck" + name[len("metaflow"):]
            if asname:
                parts.append(f"{new} as {asname}")
            elif new == "flowdeck":
                parts.append("flowdeck as metaflow")
            else:  # `import metaflow.x` binds `metaflow`: import the module, bind the package
                parts.append(new)
                parts.append("flowdeck as metaflow")
        else:
            parts.append(f"{name} as {asname}" if asname else name)
    return "import " + ", ".join(parts)
