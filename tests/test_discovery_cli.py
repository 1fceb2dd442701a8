"""`flowdeck list PATH... [--json]` in a real process: output shape and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLES, child_env
from discovery_helpers import copy_case, flow_source


def flowdeck_list(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowdeck.cli.listing", *args], cwd=cwd,
                          env=child_env(), capture_output=True, text=True, timeout=60)


def make_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    for name in ("two_flows.py", "dynamic_next.py", "syntax_error.py", "empty.py"):
        copy_case(name, folder)
    (folder / "big.py").write_text(flow_source("BigFlow") + "#" * (3 * 1024 * 1024))
    return folder


def test_human_output_one_line_per_flow_with_diagnostics_under_it(tmp_path: Path) -> None:
    make_folder(tmp_path)
    result = flowdeck_list("flows", cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # errors in flows are not a failure
    lines = result.stdout.splitlines()
    assert lines[0] == "flows/dynamic_next.py:6  DynamicFlow  [flowdeck]  2 steps  errors"
    assert lines[1].startswith("    flows/dynamic_next.py:11:1: error: Step `start` calls "
                               "self.next() with a target that is not statically known.")
    assert lines[2] == "flows/two_flows.py:5  FirstFlow  [flowdeck]  2 steps  ok"
    assert lines[3] == "flows/two_flows.py:17  SecondFlow  [flowdeck]  3 steps  ok"
    assert lines[4] == "flows/syntax_error.py  (no flows: the file cannot be analysed)"
    assert lines[5].startswith("    flows/syntax_error.py:9:28: error: Syntax error: unmatched")
    assert lines[6].startswith("skipped flows/big.py: The file is 3.0 MB, over the 2 MB limit")
    assert lines[7] == ("3 flows in 2 files, 1 with errors; 1 file could not be analysed; "
                        "1 skipped")


def test_json_output_for_tools(tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    result = flowdeck_list("--json", str(folder), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(f["name"], f["status"]) for f in data["flows"]] == [
        ("DynamicFlow", "error"), ("FirstFlow", "ok"), ("SecondFlow", "ok")]
    flow = data["flows"][1]
    assert set(flow) >= {"file", "line", "doc", "engine", "steps", "graph", "parameters",
                         "diagnostics", "key", "stale"}
    assert flow["file"] == str(folder / "two_flows.py")
    (problem,) = data["problems"]
    assert problem["diagnostics"][0]["code"] == "syntax-error"
    assert problem["diagnostics"][0]["column"] == 28
    assert [(s["code"], Path(s["path"]).name) for s in data["skipped"]] == [
        ("too-large", "big.py")]


def test_missing_path_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "real.py").write_text(flow_source())
    result = flowdeck_list("real.py", "nowhere/", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "nowhere/: no such file or folder" in result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = flowdeck_list(cwd=tmp_path)
    assert result.returncode == 2
    assert "usage: flowdeck list" in result.stderr


def test_empty_folder_and_single_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = flowdeck_list("empty", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "0 flows in 0 files\n")
    path = copy_case("alias_import.py", tmp_path)
    result = flowdeck_list(str(path), cwd=tmp_path / "empty")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == f"{path}:5  AliasFlow  [flowdeck]  2 steps  ok"


def test_list_examples_folder_works() -> None:
    """`flowdeck list examples/` lists every example flow and exits 0."""
    result = flowdeck_list("--json", str(EXAMPLES), cwd=EXAMPLES.parent)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    sources = [p for p in EXAMPLES.rglob("*.py") if "FlowSpec" in p.read_text()]
    assert {f["file"] for f in data["flows"]} | {p["path"] for p in data["problems"]} == {
        str(p) for p in sources}
