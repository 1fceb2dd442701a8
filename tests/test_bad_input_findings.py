"""Bugs the bad-input corpus (reliability/bad_inputs.py) found, one test each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import child_env, run_flow

from flowdeck import Flow

FLOW = '''from flowdeck import FlowSpec, step


class OddFlow(FlowSpec):
    @step
    def start(self):
        self.word = "caf\\xe9"
{extra}        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    OddFlow()
'''


def test_a_flow_file_with_a_coding_line_or_a_bom_runs(tmp_path: Path) -> None:
    """`python flow.py` on such a file used to exit 0 having run nothing."""
    latin = tmp_path / "latin" / "flow.py"
    latin.parent.mkdir()
    latin.write_bytes(b"# -*- coding: latin-1 -*-\n" +
                      FLOW.format(extra="").replace("\\xe9", "\xe9").encode("latin-1"))
    bom = tmp_path / "bom" / "flow.py"
    bom.parent.mkdir()
    bom.write_bytes(b"\xef\xbb\xbf" + FLOW.format(extra="").replace("\n", "\r\n").encode())
    for path in (latin, bom):
        result = run_flow(path)
        assert result.returncode == 0, result.stderr
        run = Flow("OddFlow", root=path.parent / ".flowdeck").latest_run
        assert run is not None and run.successful
        assert run["start"].task.data.word == "café"


def test_flowdeck_run_names_the_syntax_error_not_a_missing_flow(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(FLOW.format(extra="        x = (1,\n"))
    result = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", str(path)],
                            cwd=tmp_path, env=child_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert f"{path}:8:" in result.stderr and "Syntax error" in result.stderr
    assert "defines no flow" not in result.stderr and "Traceback" not in result.stderr


def test_an_exception_whose_str_raises_fails_its_task_with_its_type(tmp_path: Path) -> None:
    """Its `__str__` raising used to kill the task process (exit 130), losing the error."""
    path = tmp_path / "flow.py"
    path.write_text("class BadStr(Exception):\n    def __str__(self):\n"
                    "        raise RuntimeError('no')\n\n\n" +
                    FLOW.format(extra="        raise BadStr()\n"))
    result = run_flow(path)
    assert result.returncode == 1
    run = Flow("OddFlow", root=tmp_path / ".flowdeck").latest_run
    error = run["start"].task.exception
    assert error is not None and error["type"].endswith("BadStr")
    assert "__str__ raised RuntimeError" in error["message"]
