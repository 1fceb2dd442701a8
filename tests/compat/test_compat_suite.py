"""Metaflow's core test suite on Flowdeck: no pair that passed before may fail now.

The generated flows run unchanged (the default `--imports unchanged`), through Flowdeck's
alias entry; `--imports rewrite` (their import lines pointed at `flowdeck`) measures the
same pairs (tests/compat/README.md gives both figures).

The whole measurement runs in a subprocess (`python3 -m tests.compat.run_suite`),
because generating the flows installs a stand-in `metaflow` module that must not
leak into this pytest process. The passing pairs are listed in passing.txt; the
table and totals are printed whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .run_suite import CommandLine
from .suite import rewrite_imports

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SUITE = Path(os.environ.get("FLOWDECK_COMPAT_SUITE")
             or REPO.parent / "shared" / "metaflow-test-core")
BASELINE = HERE / "passing.txt"


def read_baseline(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


# The measurement: a guard against a hung run, not a speed assertion (each flow
# command also has its own time limit inside the runner).
@pytest.mark.timeout(900)
def test_no_passing_pair_regresses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not (SUITE / "graphs").is_dir() or not (SUITE / "tests").is_dir():
        pytest.skip(f"Metaflow's core test suite is not at {SUITE} (CI has it at "
                    "../shared/metaflow-test-core; or set FLOWDECK_COMPAT_SUITE)")
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.compat.run_suite", "--suite", str(SUITE),
         "--jobs", "2", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, encoding="utf-8", errors="replace")
    with capsys.disabled():
        print("\n" + proc.stdout)
    assert proc.returncode == 0 and out.exists(), (
        f"the compatibility runner failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")

    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["measured"] > 0, "the runner found no valid (test, graph) pair to measure"
    assert report["probe"]["metaflow_blocked"], "metaflow was importable in the flow sandbox"
    assert report["imports"] == "unchanged", "the default measurement rewrote the imports"
    assert report["probe"]["alias_is_flowdeck"], "the alias entry did not make metaflow Flowdeck"
    outcomes = {f"{o['test']}/{o['graph']}": o for o in report["outcomes"]}
    runner_errors = [f"{k}: {o['reason']}" for k, o in outcomes.items() if o["stage"] == "runner"]
    assert not runner_errors, "the runner itself failed on:\n" + "\n".join(runner_errors)

    baseline = read_baseline(BASELINE)
    unknown = [k for k in baseline if k not in outcomes]
    regressed = [f"{k}: {outcomes[k]['reason']}" for k in baseline
                 if k in outcomes and not outcomes[k]["passed"]]
    newly = sorted(set(report["passing_pairs"]) - set(baseline))
    if newly:
        with capsys.disabled():
            print(f"{len(newly)} pair(s) pass that passing.txt does not list yet; add them "
                  "with `python3 -m tests.compat.run_suite --write-baseline "
                  "tests/compat/passing.txt`:\n  " + "\n  ".join(newly))
    assert not unknown, ("passing.txt names pairs the suite no longer has:\n"
                         + "\n".join(unknown))
    assert not regressed, ("pairs that passed before fail now:\n" + "\n".join(regressed))


@pytest.mark.parametrize("source, expected", [
    ("from metaflow import FlowSpec, step", "from flowdeck import FlowSpec, step"),
    ("def f():\n    from metaflow.exception import X",
     "def f():\n    from flowdeck.exception import X"),
    ("import metaflow", "import flowdeck as metaflow"),
    ("import metaflow as mf", "import flowdeck as mf"),
    ("import metaflow.cards", "import flowdeck.cards, flowdeck as metaflow"),
    ("import os, metaflow", "import os, flowdeck as metaflow"),
    ("from metaflow_test import assert_equals", "from metaflow_test import assert_equals"),
    ("import metaflow_test", "import metaflow_test"),
    ("x = 'from metaflow import step'", "x = 'from metaflow import step'"),
    ("from metaflow import (\n    step,\n)", "from flowdeck import (\n    step,\n)"),
])
def test_only_metaflow_import_statements_are_rewritten(source: str, expected: str) -> None:
    assert rewrite_imports(source) == expected


def test_the_unchanged_files_run_through_the_alias_entry() -> None:
    line = CommandLine(top=["--quiet"], run=["--max-workers=2"])
    assert line.command("run")[2:] == ["test_flow.py", "--quiet", "run", "--max-workers=2"]
    line.alias = True
    assert line.command("run")[2:] == ["-m", "flowdeck.engines.as_metaflow", "test_flow.py",
                                       "--quiet", "run", "--max-workers=2"]
