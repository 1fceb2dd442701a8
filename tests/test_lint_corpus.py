"""Every bad flow in tests/flows/bad names its exact diagnostics (code and line) in its header."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import FLOWS, run_flow

from flowdeck.analysis.flowfile import analyze_file

BAD = sorted((FLOWS / "bad").glob("*.py"))
EXPECT = re.compile(r"# expect: (\S+) line (\d+)")


def expected(path: Path) -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in EXPECT.finditer(path.read_text())]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_static_diagnostics_match_header(path: Path) -> None:
    analysis = analyze_file(path)
    diagnostics = analysis.all_diagnostics()
    assert [(d.code, d.line) for d in diagnostics] == expected(path)
    for d in diagnostics:
        assert d.file == str(path)
        assert d.message.endswith(".")  # a full sentence that says what to do
        assert len(d.message) > 30


@pytest.mark.parametrize("name", ["missing_step", "cycle", "param_clash", "syntax_error",
                                  "decorator_argument", "parameter_name",
                                  "undefined_decorator", "custom_start_end", "catch_var"])
def test_running_a_bad_flow_prints_diagnostics_not_a_traceback(name: str, tmp_path: Path) -> None:
    source = (FLOWS / "bad" / f"{name}.py").read_text()
    flow_name = re.search(r"class (\w+)", source).group(1)
    path = tmp_path / f"{name}.py"
    path.write_text(source + f"\n\nif __name__ == '__main__':\n    {flow_name}().run()\n")
    result = run_flow(path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for _code, line in expected(FLOWS / "bad" / f"{name}.py"):
        assert f"{path}:{line}" in result.stderr or f"{path.name}\", line {line}" in result.stderr
    assert not (tmp_path / ".flowdeck").exists()  # nothing half-created


UNPACKED = """from flowdeck import FlowSpec, Parameter, retry, step

SPEC = {"name": "alpha", "default": 3}
OPTIONS = {"tims": 3}


class UnpackedFlow(FlowSpec):
    alpha = Parameter(**SPEC)

    @retry(**OPTIONS)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UnpackedFlow()
"""


def test_unpacked_arguments_are_not_guessed_and_the_error_still_shows(tmp_path: Path) -> None:
    """`Parameter(**SPEC)` names its parameter (the lint flagged it as nameless and the run
    was refused); `@retry(**OPTIONS)` with a misspelt key is not visible to the lint, and
    the run still says the decorator's own error, with its line, without a traceback."""
    path = tmp_path / "unpacked.py"
    path.write_text(UNPACKED)
    assert analyze_file(path).all_diagnostics() == []
    result = run_flow(path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{path}:10: error: @retry has no argument `tims`" in result.stderr
    path.write_text(UNPACKED.replace("@retry(**OPTIONS)\n    ", ""))
    assert run_flow(path).returncode == 0


def test_a_catch_var_that_is_no_literal_is_refused_by_the_decorator(tmp_path: Path) -> None:
    """`@catch(var=VAR)` with VAR = 5, unseen by the lint: the decorator refuses it with its
    line when Python defines the class (the task failed with "attribute name must be
    string" and no line; `var="next"` lost the caught exception)."""
    path = tmp_path / "catch_var.py"
    path.write_text(UNPACKED.replace('OPTIONS = {"tims": 3}', 'OPTIONS = {"var": 5}')
                    .replace("retry", "catch"))
    assert analyze_file(path).all_diagnostics() == []
    result = run_flow(path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{path}:10: error: @catch(var=5): var= names the artifact" in result.stderr
    path.write_text(UNPACKED.replace('OPTIONS = {"tims": 3}', 'OPTIONS = {"var": "alpha"}')
                    .replace("retry", "catch"))  # the parameter's name, held in a variable
    result = run_flow(path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("@catch(var='alpha'): `alpha` is a parameter of this flow, so the caught "
            f"exception cannot be stored under that name. Write another, such as "
            f"`var=\"error\"`. (step `start` in {path})") in result.stderr
    assert not (tmp_path / ".flowdeck").exists()  # refused before the run


def test_a_base_module_s_own_lint_is_not_the_running_flow_s(tmp_path: Path) -> None:
    """A misspelt argument in a base module: the run names it (in the base module) and
    lints the script it runs, not the base module on its own (whose missing `end` step
    the subclass defines)."""
    (tmp_path / "base_bad.py").write_text(
        "from flowdeck import FlowSpec, retry, step\n\n\nclass BadBase(FlowSpec):\n"
        "    @retry(tims=3)\n    @step\n    def start(self):\n        self.next(self.end)\n")
    child = tmp_path / "child.py"
    child.write_text("from base_bad import BadBase\nfrom flowdeck import step\n\n\n"
                     "class KidFlow(BadBase):\n    @step\n    def end(self):\n        pass\n\n\n"
                     "if __name__ == '__main__':\n    KidFlow()\n")
    result = run_flow(child)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"{tmp_path / 'base_bad.py'}:5: error: @retry has no argument `tims` (it "
                     "takes minutes_between_retries, times). Fix the name, or remove the "
                     "argument."], lines


def test_a_library_decorator_below_step_is_no_concern(tmp_path: Path) -> None:
    """Only Flowdeck's and Metaflow's own decorators must be above @step; a library's
    `@retry` (tenacity) or the user's own goes where its author wants it."""
    (tmp_path / "mylib.py").write_text("def retry(**kw):\n    return lambda f: f\n")
    path = tmp_path / "lib_below.py"
    path.write_text("from flowdeck import FlowSpec, step\nfrom mylib import retry\n\n\n"
                    "def timeout(f):\n    return f\n\n\n"
                    "class LibFlow(FlowSpec):\n    @step\n    @retry(stop=3)\n    @timeout\n"
                    "    def start(self):\n        self.next(self.end)\n\n"
                    "    @step\n    def end(self):\n        pass\n")
    codes = [d.code for d in analyze_file(path).all_diagnostics()]
    assert "decorator-below-step" not in codes


def test_a_decorator_the_lint_cannot_see_defined_still_runs(tmp_path: Path) -> None:
    """The lint calls a decorator undefined when nothing in the file binds its name; one
    bound at run time (`globals()[...]`) defines the class, and the run goes ahead: the
    guess is a warning, and never blocks a flow Python could define."""
    path = tmp_path / "dynamic.py"
    path.write_text(
        "from flowdeck import FlowSpec, step\n"
        "globals()['trace'] = lambda function: function\n\n\n"
        "class DynamicFlow(FlowSpec):\n    @trace\n    @step\n    def start(self):\n"
        "        self.next(self.end)\n\n    @step\n    def end(self):\n"
        "        print('ran')\n\n\nif __name__ == '__main__':\n    DynamicFlow()\n")
    analysis = analyze_file(path)
    assert [(d.code, d.severity) for d in analysis.all_diagnostics()] == [
        ("undefined-decorator", "warning")]
    assert analysis.flows[0].ok  # the window's Run stays enabled (review: it was blocked)
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    assert "ran" in result.stdout


def test_an_undefined_decorator_is_an_error_only_where_it_leaves_no_start() -> None:
    """`@stpe` on `start` leaves the flow without its first step, whatever the name is
    bound to: an error, said at the decorator (not "no start step"). `@retyr` on another
    step is a warning: the file may bind the name in a way the lint cannot see."""
    found = {(d.step, d.severity) for d in
             analyze_file(FLOWS / "bad" / "undefined_decorator.py").all_diagnostics()}
    assert found == {("start", "error"), ("end", "warning")}
