"""Static analysis of flows built from several classes: mixins, several flow bases, steps
under an `if` of the class body, a base module that does not parse, and the discovery
prefilter on flows that never say FlowSpec. What the analysis finds must be what a run
finds (the engines collect steps and parameters over `reversed(flow.__mro__)`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from discovery_helpers import ALIASED, NIGHTLY, SHARED, names

from flowdeck.analysis.flowfile import FlowInfo, analyze_file, analyze_source
from flowdeck.discovery.catalog import FlowCatalog, _analyze_bytes, entry_key


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def only_flow(path: Path, name: str) -> FlowInfo:
    flow = analyze_file(path).flow(name)
    assert flow is not None, f"{name} not found in {path}"
    return flow


def steps(flow: FlowInfo) -> list[str]:
    return sorted(node.name for node in flow.graph)


def errors(flow: FlowInfo) -> list[str]:
    return [d.code for d in flow.diagnostics if d.severity == "error"]


# -- defect 1: steps and parameters from every base, in Python's MRO ------------------------

def test_a_plain_mixin_gives_its_steps(tmp_path: Path) -> None:
    path = write(tmp_path, "mixin_steps.py", """
        from metaflow import FlowSpec, step


        class StartMixin:
            @step
            def start(self):
                self.next(self.middle)


        class MixinFlow(StartMixin, FlowSpec):
            @step
            def middle(self):
                self.next(self.end)

            @step
            def end(self):
                pass


        if __name__ == "__main__":
            MixinFlow()
        """)
    flow = only_flow(path, "MixinFlow")
    assert (steps(flow), errors(flow)) == (["end", "middle", "start"], [])
    assert [f.name for f in analyze_file(path).flows] == ["MixinFlow"]  # a mixin is no flow


def test_a_mixin_from_a_module_beside_the_file_gives_its_steps(tmp_path: Path) -> None:
    write(tmp_path, "steps_lib.py", """
        from metaflow import step


        class EndMixin:
            @step
            def end(self):
                print("done from mixin")
        """)
    path = write(tmp_path, "flow_with_ext_mixin.py", """
        from metaflow import FlowSpec, step
        from steps_lib import EndMixin


        class ExtMixinFlow(FlowSpec, EndMixin):
            @step
            def start(self):
                self.next(self.end)
        """)
    flow = only_flow(path, "ExtMixinFlow")
    assert (steps(flow), errors(flow)) == (["end", "start"], [])
    assert flow.graph["end"].source_file == str(tmp_path / "steps_lib.py")
    assert str(tmp_path / "steps_lib.py") in analyze_file(path).depends_on


def test_a_parameter_from_a_mixin_is_a_parameter(tmp_path: Path) -> None:
    path = write(tmp_path, "mixin_params.py", """
        from metaflow import FlowSpec, step, Parameter


        class CommonParams:
            lr = Parameter("lr", default=0.1, help="learning rate")


        class ParamMixinFlow(FlowSpec, CommonParams):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                print("lr", self.lr)
        """)
    flow = only_flow(path, "ParamMixinFlow")
    assert [(p.name, p.default) for p in flow.parameters] == [("lr", 0.1)]


MULTI_BASE = """
    from metaflow import FlowSpec, step, Parameter


    class StartPart(FlowSpec):
        alpha = Parameter("alpha", default=1)

        @step
        def start(self):
            self.next(self.end)


    class EndPart(FlowSpec):
        beta = Parameter("beta", default=2)

        @step
        def end(self):
            print(self.alpha, self.beta)


    class Combined(StartPart, EndPart):
        pass


    if __name__ == "__main__":
        Combined()
    """


def test_two_flow_bases_both_count_and_are_listed_as_its_bases(tmp_path: Path) -> None:
    path = write(tmp_path, "multi_base.py", MULTI_BASE)
    flow = only_flow(path, "Combined")
    assert (steps(flow), errors(flow)) == (["end", "start"], [])
    assert sorted(p.name for p in flow.parameters) == ["alpha", "beta"]
    assert flow.bases == [[str(path), "StartPart"], [str(path), "EndPart"]]
    snapshot, _ = FlowCatalog([tmp_path]).scan()
    for base in ("StartPart", "EndPart"):
        entry = snapshot.entry(entry_key(str(path), base))
        assert entry is not None and entry.base_of == ("Combined",) and entry.status == "base"


def test_the_nearer_class_in_the_c3_order_wins(tmp_path: Path) -> None:
    """A diamond: `Left` and `Right` both derive from `Root`; `Right` redefines `end`.
    Python's MRO is Flow, Left, Right, Root: Right's `end` (a depth-first walk through
    Left would reach Root's first)."""
    path = write(tmp_path, "diamond.py", """
        from flowdeck import FlowSpec, step


        class Root(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass


        class Left(Root):
            pass


        class Right(Root):
            @step
            def end(self):
                self.right = True


        class Flow(Left, Right):
            pass


        if __name__ == "__main__":
            Flow()
        """)
    flow = only_flow(path, "Flow")
    assert "right" in flow.graph["end"].assigned_attrs  # Right's, not Root's
    assert [name for _, name in flow.bases] == ["Left", "Right", "Root"]


def test_bases_python_cannot_order_are_an_error_on_the_class_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad_order.py", """
        from flowdeck import FlowSpec, step


        class Root(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass


        class Child(Root):
            pass


        class Flow(Root, Child):
            pass
        """)
    flow = only_flow(path, "Flow")
    (problem,) = [d for d in flow.diagnostics if d.code == "base-order"]
    assert (problem.file, problem.line, problem.severity) == (str(path), 18, "error")
    assert "before the classes it derives from" in problem.message


# -- defect 5: steps under `if`/`else`, `try` and `with` in the class body ---------------------

def test_steps_under_an_if_of_the_class_body_are_steps(tmp_path: Path) -> None:
    path = write(tmp_path, "if_in_class.py", """
        import os
        from metaflow import FlowSpec, step

        FAST = os.environ.get("FAST") == "1"


        class CondBodyFlow(FlowSpec):
            if FAST:
                @step
                def start(self):
                    self.next(self.end)
            else:
                @step
                def start(self):
                    self.next(self.slow)

                @step
                def slow(self):
                    self.next(self.end)

            try:
                import json
            except ImportError:
                pass
            else:
                @step
                def end(self):
                    pass
        """)
    flow = only_flow(path, "CondBodyFlow")
    assert (steps(flow), errors(flow)) == (["end", "slow", "start"], [])
    assert flow.graph["start"].out_funcs == ["slow"]  # the later definition, said so:
    (warning,) = [d for d in flow.diagnostics if d.code == "conditional-step"]
    assert (warning.line, warning.severity, warning.step) == (14, "warning", "start")
    assert "lines 10 and 14" in warning.message


def test_the_same_step_in_both_branches_is_one_step_without_a_warning() -> None:
    source = textwrap.dedent("""
        from flowdeck import FlowSpec, step


        class Same(FlowSpec):
            if True:
                @step
                def start(self):
                    self.next(self.end)
            else:
                @step
                def start(self):
                    self.next(self.end)

            @step
            def end(self):
                pass
        """)
    (flow,) = analyze_source(source, "same.py").flows
    assert (steps(flow), flow.diagnostics) == (["end", "start"], [])


# -- defect 7: a base module with a syntax error keeps its child listed -----------------------

BASE_STEPS = """
    from metaflow import FlowSpec, step


    class BaseFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.middle)

        @step
        def middle(self):
            self.next(self.end)
    """
CHILD = """
    from metaflow import step
    from base_steps import BaseFlow


    class ChildFlow(BaseFlow):
        @step
        def end(self):
            pass


    if __name__ == "__main__":
        ChildFlow()
    """


def test_a_syntax_error_in_the_base_module_keeps_the_child_with_that_error(
        tmp_path: Path) -> None:
    base = write(tmp_path, "base_steps.py", BASE_STEPS)
    child = write(tmp_path, "child.py", CHILD)
    catalog = FlowCatalog([tmp_path])
    snapshot, _ = catalog.scan()
    assert names(snapshot.entries) == ["BaseFlow", "ChildFlow"]
    base.write_text(base.read_text().replace("self.next(self.end)", "self.next(self.end"))
    snapshot, diff = catalog.refresh([base])
    key = entry_key(str(child), "ChildFlow")
    assert key not in [e.key for e in diff.removed]
    entry = snapshot.entry(key)
    assert entry is not None and entry.status == "error"
    (problem,) = entry.diagnostics  # no "no start step": the base's steps are unknown
    assert (problem.code, problem.file, problem.line) == ("base-unreadable", str(base), 11)
    assert "BaseFlow" in problem.message and "Fix the code at line 11" in problem.message
    flow = only_flow(child, "ChildFlow")  # `flowdeck graph child.py` finds it too
    assert flow.engine == "metaflow" and errors(flow) == ["base-unreadable"]
    base.write_text(textwrap.dedent(BASE_STEPS).lstrip())  # fixed: whole again
    snapshot, _ = catalog.refresh([base])
    entry = snapshot.entry(key)
    assert entry is not None and entry.ok and entry.steps == ["start", "middle", "end"]


# -- defect 6: the prefilter never hides a flow that never says FlowSpec -----------------------

def test_the_prefilter_keeps_flows_that_only_inherit(tmp_path: Path) -> None:
    """`Nightly` adds only a parameter; `Tuned` spells `step` otherwise: neither says
    FlowSpec, names a `...Flow` base or applies `@step`. Both are found, and `Pipeline` is
    listed as their base class."""
    shared = write(tmp_path, "shared.py", SHARED)
    write(tmp_path, "nightly.py", NIGHTLY)
    write(tmp_path, "aliased_step.py", ALIASED)
    snapshot, _ = FlowCatalog([tmp_path]).scan()
    assert names(snapshot.entries) == ["Nightly", "Pipeline", "Tuned"]
    pipeline = snapshot.entry(entry_key(str(shared), "Pipeline"))
    assert pipeline is not None and pipeline.base_of == ("Nightly", "Tuned")


def test_the_prefilter_follows_a_base_module_that_appears_later(tmp_path: Path) -> None:
    """Skipped while `shared.py` is missing (Python could not import it either), the
    child is analysed again when it appears, though its own bytes did not change."""
    write(tmp_path, "nightly.py", NIGHTLY)
    catalog = FlowCatalog([tmp_path])
    assert names(catalog.scan()[0].entries) == []
    shared = write(tmp_path, "shared.py", SHARED)
    snapshot, _ = catalog.refresh([shared])
    assert names(snapshot.entries) == ["Nightly", "Pipeline"]


def test_the_prefilter_still_skips_classes_of_other_modules(tmp_path: Path) -> None:
    """A class deriving from a standard library class, or from a module beside the file
    that cannot lead to FlowSpec, is no flow: the file is not parsed (its syntax error is
    not reported), unless named on the command line."""
    write(tmp_path, "helpers.py", "class Base:\n    pass\n")
    source = ("import collections\nfrom helpers import Base\n\n\n"
              "class Counter(collections.Counter, Base):\n    def oops(:\n")
    path = write(tmp_path, "util.py", source)
    assert _analyze_bytes(path.read_bytes(), str(path), prefilter=True).diagnostics == []
    assert _analyze_bytes(path.read_bytes(), str(path), prefilter=False).diagnostics


def test_the_prefilter_agrees_with_the_full_analysis_on_inheriting_shapes(
        tmp_path: Path) -> None:
    """The shapes above and their variants: the prefilter finds every flow the full
    analysis finds (the hypothesis test in test_discovery_fuzz mutates them too)."""
    write(tmp_path, "shared.py", SHARED)
    variants = [NIGHTLY, ALIASED, NIGHTLY.replace("from shared import Pipeline",
                                                  "import shared as s").replace(
        "(Pipeline)", "(s.Pipeline)"),
                NIGHTLY.replace("from shared import Pipeline",
                                "from shared import (\n        Pipeline,\n    )")]
    for i, source in enumerate(variants):
        data = textwrap.dedent(source).lstrip().encode()
        path = str(tmp_path / f"variant{i}.py")
        full = [f.name for f in analyze_source(data.decode(), path).flows]
        assert full, source
        assert [f.name for f in _analyze_bytes(data, path, prefilter=True).flows] == full


# -- the prefilter's verdict on a module follows the modules that module imports ---------------

TWO_AWAY_PLAIN = "class GrandFlow:\n    pass\n"
TWO_AWAY_FLOW = "from flowdeck import FlowSpec\n\n\nclass GrandFlow(FlowSpec):\n    pass\n"
ONE_AWAY = "from grand import GrandFlow\n\n\nclass BaseFlow(GrandFlow):\n    pass\n"
IMPORTS_TWO_AWAY = """
    from flowdeck import step
    from base import BaseFlow


    class ChildFlow(BaseFlow):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
"""


def test_a_change_two_imports_away_reaches_the_child_in_a_long_lived_process(
        tmp_path: Path) -> None:
    """child.py takes BaseFlow from base.py, which takes GrandFlow from grand.py. While
    grand.py defines a plain class (or is not there yet), child.py cannot define a flow;
    once grand.py derives from FlowSpec, it does. The verdict on base.py is kept per process
    by base.py's bytes, which did not change: it was kept, and the window (one process)
    never listed ChildFlow, whatever it refreshed or rescanned, even in a new catalog."""
    for grand_before in (TWO_AWAY_PLAIN, None):  # changed, then created later
        folder = tmp_path / ("changed" if grand_before else "created")
        folder.mkdir()
        grand = folder / "grand.py"
        if grand_before is not None:
            write(folder, "grand.py", grand_before)
        write(folder, "base.py", ONE_AWAY)
        write(folder, "child.py", IMPORTS_TWO_AWAY)
        catalog = FlowCatalog([folder])
        assert names(catalog.scan()[0].entries) == []
        write(folder, "grand.py", TWO_AWAY_FLOW)  # another size: another stat key
        expected = ["BaseFlow", "ChildFlow", "GrandFlow"]
        assert names(catalog.refresh([grand])[0].entries) == expected, grand_before
        assert names(catalog.scan()[0].entries) == expected
        assert names(FlowCatalog([folder]).scan()[0].entries) == expected
        grand.unlink()  # and back: without grand.py nothing derives from FlowSpec
        assert names(catalog.refresh([grand])[0].entries) == []
        assert names(FlowCatalog([folder]).scan()[0].entries) == []
