"""Property-based fuzzing of discovery on mutated flow sources: nothing escapes, ever.

Hypothesis takes real flow sources (the named cases and generated flows),
applies random edits (insertions of risky tokens, deletions, duplicated and
swapped lines, truncation, raw byte damage) and checks that static analysis
and the catalog always return a result: no exception, no internal error, JSON
that serialises, and a `FlowSpec` prefilter that never hides a flow.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from discovery_helpers import ALIASED, CASES, NIGHTLY, SHARED, flow_source
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdeck.analysis.flowfile import analyze_bytes
from flowdeck.discovery.catalog import FlowCatalog, _analyze_bytes

BRANCHY = '''
from flowdeck import FlowSpec, Parameter, step, retry, catch


class BranchyFlow(FlowSpec):
    """Splits, a foreach and parameters."""

    alpha = Parameter("alpha", default=0.5, help="A number.")
    names = Parameter("names", default=["a", "b"], type=list)

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.left, self.right)

    @retry(times=2)
    @step
    def left(self):
        self.x = 1
        self.next(self.join)

    @catch(var="oops")
    @step
    def right(self):
        self.x, (self.y, *self.z) = 2, (3, 4)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.value = self.input * 2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.values = [i.value for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        """Done."""
'''

BASES = [BRANCHY, flow_source("PlainFlow", steps=3), flow_source("MetaFlow", engine="metaflow")]
BASES += [p.read_text() for p in sorted(CASES.glob("*.py"))]

TOKENS = [
    "self.next(", "self.", "@step", "@step\n", "def ", "class ", "(FlowSpec)", "FlowSpec",
    "Parameter(", "foreach=", ", ", ":", "(", ")", "[", "]", "{", "}", "\n", "\n    ", "    ",
    "\t", "'", '"""', "#", "\\", "\x00", "é", "\ufeff", "ＦｌｏｗＳｐｅｃ", "\u2028",
    "from metaflow import *\n", "import flowdeck as fd\n", "from flowdeck import FlowSpec as F\n",
    "inputs", "lambda: ", "-" * 600, "(" * 150, "[" * 150, "async ", "await ", "yield ",
    "match x:\n    case 1:\n        pass\n", "\r\n", "\r", "if True:\n", "try:\n",
    "del self.x\n", "self.next(*a)", "self.next(self.a, foreach=f)", "self.next(**k)",
    "@retry(times=", "# -*- coding: latin-1 -*-\n", "# coding: utf-16\n", "# coding: bogus\n",
    "class A(A):\n", "class B(B, FlowSpec):\n", "start", "end", "join", "self.next(self.start)",
    "default=" + "-" * 900 + "1", "x = " + "+".join(["1"] * 3000) + "\n",
    # a base class from `shared.py` beside the file (test_prefilter_never_hides_...)
    "Pipeline", "(Pipeline)", "from shared import Pipeline\n", "import shared as s\n",
    "(s.Pipeline)", "from shared import (\n    Pipeline,\n)\n", "class C(Pipeline, Mixin):\n",
    "from metaflow import step as s\n", "@s\n",
]
#: Flows that inherit from `shared.py`'s Pipeline and never say FlowSpec.
CHILDREN = [textwrap.dedent(s).lstrip() for s in (NIGHTLY, ALIASED)]

OPS = st.sampled_from(["insert", "delete", "dup_line", "swap_lines", "replace", "truncate"])


def _mutate(text: str, op: str, a: int, b: int, token: str) -> str:
    if not text:
        return token
    i, j = a % (len(text) + 1), b % (len(text) + 1)
    lines = text.splitlines(keepends=True) or [text]
    if op == "insert":
        return text[:i] + token + text[i:]
    if op == "delete":
        lo, hi = sorted((i, j))
        return text[:lo] + text[min(hi, lo + 40):]
    if op == "dup_line":
        k = a % len(lines)
        return "".join(lines[:k + 1] + [lines[k]] + lines[k + 1:])
    if op == "swap_lines":
        k, m = a % len(lines), b % len(lines)
        lines[k], lines[m] = lines[m], lines[k]
        return "".join(lines)
    if op == "replace":
        return text[:i] + token + text[i + len(token):]
    return text[:i]


@st.composite
def mutated_sources(draw: st.DrawFn, sources: list[str] = BASES) -> bytes:
    text = draw(st.sampled_from(sources))
    tokens = st.sampled_from(TOKENS) | st.text(max_size=6)
    for op, a, b, token in draw(st.lists(st.tuples(OPS, st.integers(0, 10**6),
                                                   st.integers(0, 10**6), tokens),
                                         max_size=6)):
        text = _mutate(text, op, a, b, token)
    data = text.encode("utf-8", "surrogatepass")
    for position, junk in draw(st.lists(st.tuples(st.integers(0, 10**6),
                                                   st.binary(min_size=1, max_size=3)),
                                         max_size=2)):
        k = position % (len(data) + 1)
        data = data[:k] + junk + data[k:]
    return data


def _check_analysis(analysis, path: str) -> None:
    for diag in analysis.all_diagnostics():
        assert diag.code != "internal-error", diag.message
        assert diag.file == path and diag.line >= 0 and diag.message.strip()
    for flow in analysis.flows:
        json.dumps(flow.as_dict(), default=repr)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_sources())
def test_static_analysis_never_raises(data: bytes) -> None:
    full = analyze_bytes(data, "fuzz.py")
    _check_analysis(full, "fuzz.py")
    filtered = _analyze_bytes(data, "fuzz.py", prefilter=True)
    _check_analysis(filtered, "fuzz.py")
    # The prefilter only skips files that cannot define a flow.
    assert [f.name for f in filtered.flows] == [f.name for f in full.flows]


@pytest.fixture(scope="module")
def beside_shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `shared.py`, the module the children's base class comes from."""
    folder = tmp_path_factory.mktemp("beside")
    (folder / "shared.py").write_text(textwrap.dedent(SHARED).lstrip())
    return folder


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutated_sources(CHILDREN))
def test_prefilter_never_hides_a_flow_inheriting_from_a_module_beside_it(
        beside_shared: Path, data: bytes) -> None:
    """Beside the module their base comes from, whatever the edits: the prefilter keeps
    every flow the full analysis finds, though the file never says FlowSpec."""
    path = str(beside_shared / "child.py")
    full = analyze_bytes(data, path)
    filtered = _analyze_bytes(data, path, prefilter=True)
    assert [f.name for f in filtered.flows] == [f.name for f in full.flows]


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(mutated_sources(), min_size=1, max_size=3))
def test_catalog_on_mutated_files_never_raises(fuzz_folder: Path, versions: list[bytes]) -> None:
    """The same files rewritten with each version in turn, as an editor would save them."""
    catalog = FlowCatalog([fuzz_folder])
    paths = [fuzz_folder / f"f{i}.py" for i in range(2)]
    for i, data in enumerate(versions):
        paths[i % 2].write_bytes(data)
        snapshot, diff = catalog.refresh(paths)
        json.dumps(snapshot.as_dict(), default=repr)
        json.dumps(diff.as_dict(), default=repr)
        for entry in snapshot.entries:
            assert entry.file in {str(p) for p in paths}
            assert all(d.code != "internal-error" for d in entry.diagnostics)
        for problem in snapshot.problems:
            assert all(d.code != "internal-error" for d in problem.diagnostics)
    scanned, _ = FlowCatalog([fuzz_folder]).scan()
    assert {e.key for e in scanned.entries} == {e.key for e in catalog.snapshot.entries
                                               if not e.stale}
    for path in paths:
        path.unlink(missing_ok=True)
