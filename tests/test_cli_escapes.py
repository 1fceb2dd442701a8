"""What the `flowdeck` command prints of names it did not choose (file names, docstrings,
diagnostics, a Metaflow step's output) cannot drive the terminal, and each listed entry
stays one line (found in review: `flowdeck list` retitled the terminal and turned it red
for a file named `esc\\x1b]0;PWNED\\x07\\x1b[31mred.py`, `flowdeck graph` let a docstring's
`\\x1b[2J` clear the screen, a newline in a file name split its entry in two)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env

from flowdeck.engine import terminal

FLOW = '''\
from flowdeck import FlowSpec, step


class NameFlow(FlowSpec):
    """Innocent \\x1b]0;PWNED-TITLE\\x07\\x1b[2J cleared"""

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NameFlow()
'''

ESCAPED = "esc\x1b]0;PWNED\x07\x1b[31mred.py"


def _flowdeck(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", *args],
                          env=child_env(), capture_output=True, timeout=120, cwd=folder)


def test_shown_name_makes_every_control_character_visible() -> None:
    shown = terminal.shown_name("a\x1b]0;t\x07\x1b[31mb\nc\td\x7fe\x9bf\udcffg ü")
    assert shown == "a␛]0;t␇␛[31mb␊c␉d␡e\ufffdf\ufffdg ü"


def test_list_shows_escapes_and_newlines_in_file_names(tmp_path: Path) -> None:
    for name in (ESCAPED, "new\nline.py"):
        (tmp_path / name).write_text(FLOW)
    result = _flowdeck(tmp_path, "list", ".")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "\x1b" not in out and "\x07" not in out
    lines = out.splitlines()
    assert "esc␛]0;PWNED␇␛[31mred.py:4  NameFlow  [flowdeck]  2 steps  ok" in lines
    assert "new␊line.py:4  NameFlow  [flowdeck]  2 steps  ok" in lines
    assert len(lines) == 3  # two flows and the summary


def test_list_of_an_undecodable_file_name_writes_on_a_strict_utf8_stdout(
        tmp_path: Path) -> None:
    Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff.py")).write_text(FLOW)
    env = child_env(PYTHONIOENCODING="utf-8:strict")
    result = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "list", "."],
                            env=env, capture_output=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "bad\ufffd.py:4  NameFlow" in result.stdout.decode()


def test_graph_shows_a_docstrings_escapes_and_a_file_names(tmp_path: Path) -> None:
    (tmp_path / ESCAPED).write_text(FLOW)
    result = _flowdeck(tmp_path, "graph", ESCAPED)
    assert result.returncode == 0, result.stderr
    assert b"\x1b" not in result.stdout
    assert "Innocent ␛]0;PWNED-TITLE\ufffd␛[2J cleared" in result.stdout.decode()
    refused = _flowdeck(tmp_path, "graph", ESCAPED, "--flow", "Nope")
    assert refused.returncode == 2
    assert b"\x1b" not in refused.stderr and "esc␛]0;PWNED" in refused.stderr.decode()


def test_flow_script_show_shows_a_docstrings_escapes(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(FLOW)
    result = subprocess.run([sys.executable, "flow.py", "show"], env=child_env(),
                            capture_output=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert b"\x1b" not in result.stdout and "␛[2J cleared" in result.stdout.decode()


def test_a_metaflow_steps_escapes_are_shown_by_flowdeck_run(tmp_path: Path) -> None:
    """Metaflow's engine passes a step's output through raw (its colours it drops itself);
    `flowdeck run` shows its other escapes, as Flowdeck's engine does."""
    pytest.importorskip("metaflow")
    (tmp_path / "mf.py").write_text('''\
from metaflow import FlowSpec, step


class EscMfFlow(FlowSpec):
    @step
    def start(self):
        print("before\\x1b]0;HIJACKED\\x07 \\x1b[31mred\\x1b[0m")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    EscMfFlow()
''')
    result = _flowdeck(tmp_path, "run", "mf.py")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "before␛]0;HIJACKED\ufffd " in out
    assert "\x1b]" not in out
