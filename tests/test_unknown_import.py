"""A flow file whose import line names something flowdeck lacks is not "ok"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import child_env

from flowdeck.analysis.flowfile import analyze_file

FLOW = '''from flowdeck import FlowSpec, {names}


class F(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
'''


def test_an_unknown_name_is_an_error_on_its_import_line(tmp_path: Path) -> None:
    path = tmp_path / "f.py"
    path.write_text(FLOW.format(names="NoSuchThing, step"))
    flow = analyze_file(path).flows[0]
    problems = [d for d in flow.diagnostics if d.code == "unknown-import"]
    assert len(problems) == 1 and problems[0].line == 1
    assert "`NoSuchThing`" in problems[0].message
    listed = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "list", str(tmp_path)],
                            env=child_env(), capture_output=True, text=True, timeout=60)
    assert "errors" in listed.stdout and "NoSuchThing" in listed.stdout


def test_known_names_and_submodules_pass(tmp_path: Path) -> None:
    path = tmp_path / "f.py"
    path.write_text(FLOW.format(names="Parameter, current, step, Flow, client"))
    flow = analyze_file(path).flows[0]
    assert not [d for d in flow.diagnostics if d.code == "unknown-import"]


def test_a_parameter_named_like_a_run_option_is_an_error(tmp_path: Path) -> None:
    """`Parameter("tag")` would clash with the run's own --tag (Metaflow refuses it too)."""
    path = tmp_path / "f.py"
    path.write_text(FLOW.format(names="Parameter, step").replace(
        "class F(FlowSpec):\n", 'class F(FlowSpec):\n    tag = Parameter("tag", default="a")\n'))
    flow = analyze_file(path).flows[0]
    assert [d.code for d in flow.diagnostics if d.severity == "error"] == ["reserved-parameter"]
