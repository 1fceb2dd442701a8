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
                                  "decorator_argument", "parameter_name"])
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
