"""Our static graph equals Metaflow's own `output-raw --json` graph, flow by flow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, FLOWS, child_env

from flowdeck.analysis.flowfile import analyze_file

pytest.importorskip("metaflow")

CANDIDATES = sorted(list(EXAMPLES.glob("*.py")) + list(FLOWS.glob("*.py")))
FIELDS = ("name", "type", "next", "foreach_artifact", "matching_join")


def metaflow_graph(path: Path, tmp_path: Path) -> dict:
    source = path.read_text().replace("from flowdeck import", "from metaflow import")
    target = tmp_path / path.name
    target.write_text(source)
    result = subprocess.run([sys.executable, str(target), "output-raw", "--json"],
                            cwd=tmp_path, env=child_env(USERNAME="tester"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    text = result.stdout
    return json.loads(text[text.index("{"):])


def comparable(graph: dict) -> dict:
    return {name: {k: node.get(k) for k in FIELDS} for name, node in graph["graph"].items()}


@pytest.mark.parametrize("path", CANDIDATES, ids=[p.stem for p in CANDIDATES])
def test_static_graph_equals_metaflows(path: Path, tmp_path: Path) -> None:
    ours = analyze_file(path).flows
    assert len(ours) == 1 and ours[0].ok, ours[0].diagnostics if ours else "no flow"
    theirs = metaflow_graph(path, tmp_path)
    mine = ours[0].graph.as_dict()
    assert comparable(mine) == comparable(theirs)
    assert mine["graph_structure"] == theirs["graph_structure"]
    for name, node in theirs["graph"].items():
        assert mine["graph"][name]["line"] == node["line"]
        assert mine["graph"][name]["doc"] == node["doc"]
