"""The store's ids (flow, run, step and task folders): a Python name is one, whatever its
alphabet, and a name the store cannot hold is a message at the class's line, never a
traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env

from flowdeck.analysis.diagnostics import has_errors
from flowdeck.analysis.flowfile import analyze_file
from flowdeck.engines.launching import LaunchError, build_launch
from flowdeck.store import layout
from flowdeck.store.layout import InvalidId, RunLayout, check_id, flows_in

FLOW = '''\
from flowdeck import FlowSpec, step


class {name}(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        print("done")


if __name__ == "__main__":
    {name}()
'''


def _flowdeck_run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", str(path)],
                          env=child_env(USER="tester"), capture_output=True, text=True,
                          timeout=120, cwd=path.parent)


def test_a_python_name_in_any_alphabet_is_a_store_id(tmp_path: Path) -> None:
    for good in ("GrüßeFlow", "ΔFlow", "流れ", "run-1.2", "x" * 100, "é" * 50):
        assert check_id("flow name", good) == good
    bad = ("a/b", "..", ".hidden", "-x", "Grüße Flow", "Grüße/Flow", "é\x1b", "Flöw\n",
           "ﬁFlow",  # not NFKC: Python names that class fiFlow
           "é" * 51,  # 102 bytes in UTF-8
           "x" * 101, "a\u202eb", "")
    for name in bad:
        assert not layout.is_id(name), name
        with pytest.raises(InvalidId):
            check_id("flow name", name)
    RunLayout(tmp_path, "GrüßeFlow").create_run_dir("r1")
    (tmp_path / "GrüßeFlow" / "runs" / "r1" / "run.json").write_text("{}")
    assert flows_in(tmp_path) == ["GrüßeFlow"]
    assert RunLayout(tmp_path, "GrüßeFlow").run_ids() == ["r1"]


def test_a_non_ascii_flow_name_lints_clean_and_runs(tmp_path: Path) -> None:
    """Metaflow runs `class GrüßeFlow`; `flowdeck run` ended in a traceback (InvalidId)."""
    path = tmp_path / "unicode_flow.py"
    path.write_text(FLOW.format(name="GrüßeFlow"), encoding="utf-8")
    flow = analyze_file(path).flow("GrüßeFlow")
    assert flow is not None and not has_errors(flow.diagnostics), flow.diagnostics
    result = _flowdeck_run(path)
    assert result.returncode == 0, result.stderr
    runs = list((tmp_path / ".flowdeck" / "GrüßeFlow" / "runs").iterdir())
    assert len(runs) == 1
    assert json.loads((runs[0] / "run.json").read_text())["flow"] == "GrüßeFlow"


def test_a_flow_name_the_store_cannot_hold_is_a_message_at_its_line(tmp_path: Path) -> None:
    name = "L" * 120
    path = tmp_path / "long.py"
    path.write_text(FLOW.format(name=name))
    with pytest.raises(LaunchError, match=f"{path}:4: .*Rename the class"):
        build_launch(str(path), name, "flowdeck", ["run"])
    result = _flowdeck_run(path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}:4: " in result.stderr and "Rename the class" in result.stderr
