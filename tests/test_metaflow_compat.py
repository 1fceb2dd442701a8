"""Our static graph equals Metaflow's own `output-raw --json` graph, flow by flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, FLOWS, ROOT, child_env
from metaflow_output_raw import MetaflowOutputRaw

from flowdeck.analysis.flowfile import analyze_file

pytest.importorskip("metaflow")

CANDIDATES = sorted(list(EXAMPLES.glob("*.py")) + list(FLOWS.glob("*.py")))
FIELDS = ("name", "type", "next", "foreach_artifact", "num_parallel", "matching_join",
          "condition", "switch_cases", "decorators")
#: Flows a review found the JSON to differ on (tests/flows/output_raw/README.md): every
#: field of every node is compared, for files with lint errors too.
REVIEWED = sorted((FLOWS / "output_raw").glob("*.py"))
#: Metaflow's core test suite (read-only input data); its switch graphs are compared too.
SUITE = Path(os.environ.get("FLOWDECK_COMPAT_SUITE")
             or ROOT.parent / "shared" / "metaflow-test-core")
SWITCH_GRAPHS = sorted(json.loads(p.read_text(encoding="utf-8"))["name"]
                       for p in (SUITE / "graphs").glob("*switch*.json"))


def metaflow_graph(path: Path, tmp_path: Path, output_raw: MetaflowOutputRaw) -> dict:
    source = path.read_text().replace("from flowdeck import", "from metaflow import")
    target = tmp_path / path.name
    target.write_text(source)
    return output_raw.run(target, tmp_path).graph()


def comparable(graph: dict) -> dict:
    return {name: {k: node.get(k) for k in FIELDS} for name, node in graph["graph"].items()}


@pytest.mark.parametrize("path", CANDIDATES, ids=[p.stem for p in CANDIDATES])
def test_static_graph_equals_metaflows(path: Path, tmp_path: Path,
                                       metaflow_output_raw: MetaflowOutputRaw) -> None:
    ours = analyze_file(path).flows
    assert len(ours) == 1 and ours[0].ok, ours[0].diagnostics if ours else "no flow"
    theirs = metaflow_graph(path, tmp_path, metaflow_output_raw)
    mine = ours[0].graph.as_dict()
    assert comparable(mine) == comparable(theirs)
    assert mine["graph_structure"] == theirs["graph_structure"]
    for name, node in theirs["graph"].items():
        assert mine["graph"][name]["line"] == node["line"]
        assert mine["graph"][name]["doc"] == node["doc"]
        assert mine["graph"][name]["source_file"] == str(path.resolve())


@pytest.mark.parametrize("path", REVIEWED, ids=[p.stem for p in REVIEWED])
def test_every_field_equals_metaflows_output_raw(path: Path, tmp_path: Path) -> None:
    """`flowdeck graph --json` is `output-raw --json`: @parallel's `split-parallel` with
    `num_parallel` and a flat structure, each decorator's attributes with Metaflow's
    defaults, a config's value in a decorator, no plain function decorator, no step
    nothing leads to, the file's absolute path; the steps in Metaflow's order."""
    (flow,) = analyze_file(path).flows
    mine = flow.graph.as_dict()
    theirs = own_process_graph(path, tmp_path)
    assert mine["graph_structure"] == theirs["graph_structure"]
    assert list(mine["graph"]) == list(theirs["graph"])
    for name, node in theirs["graph"].items():
        assert node["source_file"] == str(tmp_path / path.name)  # Metaflow ran the copy
        assert mine["graph"][name] == {**node, "source_file": str(path.resolve())}, name


def test_a_step_nothing_leads_to_stays_for_lint_and_the_window(tmp_path: Path) -> None:
    """Left out of the JSON as Metaflow leaves it out, the step is still reported by lint
    and drawn by the window (which asks for every step)."""
    (flow,) = analyze_file(FLOWS / "output_raw" / "unreachable_steps.py").flows
    assert list(flow.graph.as_dict()["graph"]) == ["start", "end"]
    assert list(flow.graph.as_dict(unreachable=True)["graph"]) == ["start", "end", "a", "b"]
    path = tmp_path / "orphan_flow.py"
    path.write_text("from metaflow import FlowSpec, step\n\n\nclass OrphanFlow(FlowSpec):\n"
                    "    @step\n    def start(self):\n        self.next(self.end)\n\n"
                    "    @step\n    def orphan(self):\n        self.next(self.end)\n\n"
                    "    @step\n    def end(self):\n        pass\n")
    (orphan,) = analyze_file(path).flows
    assert [(d.code, d.step) for d in orphan.diagnostics] == [("unreachable", "orphan")]
    assert list(orphan.graph.as_dict()["graph"]) == ["start", "end"]
    assert "orphan" in orphan.graph.as_dict(unreachable=True)["graph"]


def own_process_graph(path: Path, tmp_path: Path) -> dict:
    """`python FILE output-raw --json` in a process of its own. Not the shared helper:
    Metaflow makes its command line's config options when `metaflow.cli` is imported,
    so with it imported first a flow's Config is unknown ("name 'cfg' is not defined")."""
    target = tmp_path / path.name
    target.write_text(path.read_text())
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, str(target), "output-raw", "--json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env=child_env(USERNAME="tester", HOME=str(home),
                                          XDG_CONFIG_HOME=str(home / ".config")))
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout[result.stdout.index("{"):])


# Generated in a child process: the suite's formatter needs a stand-in `metaflow` module
# (tests/compat/_genstub.py) that must not leak into this process.
_GENERATE = """
import json, sys
from tests.compat.suite import load_suite
suite = load_suite(sys.argv[1])
flows = {}
for pair in suite.measured_pairs():
    graph = next(g for g in suite.graphs if g["name"] == pair.graph)
    if "switch" in json.dumps(graph["graph"]):
        flows.setdefault(pair.graph, pair.flow_code)
print(json.dumps(flows))
"""


@pytest.fixture(scope="module")
def suite_switch_flows() -> dict[str, str]:
    """Graph name -> a flow the suite's own formatter generates for it (Flowdeck imports)."""
    result = subprocess.run([sys.executable, "-c", _GENERATE, str(SUITE)], cwd=ROOT,
                            env=child_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("graph", SWITCH_GRAPHS)
def test_suite_switch_graphs_equal_metaflows(graph: str, suite_switch_flows: dict[str, str],
                                             tmp_path: Path,
                                             metaflow_output_raw: MetaflowOutputRaw) -> None:
    code = suite_switch_flows.get(graph)
    assert code, f"no valid test pair generates graph {graph}"
    path = tmp_path / "flowdeck" / "test_flow.py"
    path.parent.mkdir()
    path.write_text(code)
    ours = analyze_file(path).flows
    assert len(ours) == 1 and ours[0].ok, ours[0].diagnostics if ours else "no flow"
    # For Metaflow: its own import, and the suite's helpers (only used inside step
    # bodies) bound on the same line, so every line number stays the same.
    lines = [("assert_equals = None" if line.startswith("from metaflow_test import") else line)
             for line in code.split("\n")]
    source = "\n".join(lines).replace("from flowdeck import", "from metaflow import")
    theirs = metaflow_graph_of_source(source, tmp_path / "metaflow", metaflow_output_raw)
    mine = ours[0].graph.as_dict()
    assert comparable(mine) == comparable(theirs)
    assert mine["graph_structure"] == theirs["graph_structure"]
    for name, node in theirs["graph"].items():
        assert mine["graph"][name]["line"] == node["line"]


def metaflow_graph_of_source(source: str, folder: Path, output_raw: MetaflowOutputRaw) -> dict:
    folder.mkdir()
    (folder / "test_flow.py").write_text(source)
    return output_raw.run(folder / "test_flow.py", folder).graph()


BASE_MODULE = '''from metaflow import FlowSpec, step, retry


class BaseFlow(FlowSpec):
    """Shared steps."""

    @step
    def start(self):
        self.x = 1
        self.next(self.middle)

    @retry(times=2)
    @step
    def end(self):
        """The shared end."""
        print("end", self.x, self.y)
'''

CHILD_FILES = {
    "from": "from metaflow import step\nfrom base_steps import BaseFlow as Base\n\n\n"
            "class ChildFlow(Base):",
    "module": "import base_steps\nfrom metaflow import step\n\n\nclass ChildFlow("
              "base_steps.BaseFlow):",
}


@pytest.mark.parametrize("spelling", sorted(CHILD_FILES))
def test_a_flow_inheriting_steps_from_a_module_beside_it(
        spelling: str, tmp_path: Path, metaflow_output_raw: MetaflowOutputRaw) -> None:
    """`class ChildFlow(BaseFlow)` with BaseFlow in a module beside the file: the static
    graph (read, never imported) is Metaflow's, base steps named in their own file, and
    `flowdeck run` runs it. Before, the file "defined no flow" for every command but
    `python FILE`."""
    (tmp_path / "base_steps.py").write_text(BASE_MODULE)
    child = tmp_path / "child_flow.py"
    child.write_text(CHILD_FILES[spelling] + "\n    @step\n    def middle(self):\n"
                     "        self.y = self.x + 1\n        self.next(self.end)\n\n\n"
                     "if __name__ == '__main__':\n    ChildFlow()\n")
    flows = analyze_file(child).flows
    assert [f.name for f in flows] == ["ChildFlow"] and flows[0].ok, flows
    mine = flows[0].graph.as_dict()
    theirs = metaflow_output_raw.run(child, tmp_path).graph()
    assert comparable(mine) == comparable(theirs)
    assert mine["graph_structure"] == theirs["graph_structure"]
    for name, node in theirs["graph"].items():
        assert (mine["graph"][name]["line"], mine["graph"][name]["doc"],
                os.path.basename(mine["graph"][name]["source_file"])) == (
            node["line"], node["doc"], os.path.basename(node["source_file"])), name
    assert [d["name"] for d in mine["graph"]["end"]["decorators"]] == ["retry"]
    proc = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", "--engine",
                           "flowdeck", str(child)], cwd=tmp_path,
                          env=child_env(METAFLOW_USER="tester"), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "end 1 2" in proc.stdout


def test_a_base_class_s_step_error_names_the_base_module(tmp_path: Path) -> None:
    (tmp_path / "base_steps.py").write_text(BASE_MODULE.replace("self.next(self.middle)",
                                                                "self.next(self.midle)"))
    child = tmp_path / "child_flow.py"
    child.write_text(CHILD_FILES["from"] + "\n    @step\n    def middle(self):\n"
                     "        self.next(self.end)\n")
    errors = [d for d in analyze_file(child).flows[0].diagnostics if d.severity == "error"]
    assert errors and errors[0].file == str(tmp_path / "base_steps.py"), errors
    assert errors[0].line == 10 and "midle" in errors[0].message
