"""The `flowdeck` command as a user types it: run, resume, help, and a mistyped command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLES, FLOWS, child_env

from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout


def flowdeck(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowdeck_desktop", *args], cwd=cwd,
                          env=child_env(QT_QPA_PLATFORM="offscreen"), capture_output=True,
                          text=True, timeout=120)


def test_run_shows_the_flows_own_output_on_success(tmp_path: Path) -> None:
    flow = tmp_path / "train.py"
    flow.write_text((EXAMPLES / "train.py").read_text())
    done = flowdeck("run", str(flow), "--rates", "0.3,0.01", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "best rate 0.01" in done.stdout and "run succeeded" in done.stdout


def test_run_help_lists_its_options(tmp_path: Path) -> None:
    done = flowdeck("run", "--help", cwd=tmp_path)
    assert done.returncode == 0
    for option in ("--flow", "--engine", "FILE", "python FILE --help"):
        assert option in done.stdout


def test_resume_from_the_command_line_resumes_the_failed_run(tmp_path: Path) -> None:
    flow = tmp_path / "failing.py"
    flow.write_text((FLOWS / "failing.py").read_text())
    failed = flowdeck("run", str(flow), cwd=tmp_path)
    assert failed.returncode != 0
    assert f"flowdeck resume {flow}" in failed.stdout  # the hint is a command that works
    flow.write_text(flow.read_text().replace("FIX_ME = False", "FIX_ME = True"))
    resumed = flowdeck("resume", str(flow), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    name = next(line.split("(")[0].split()[-1] for line in flow.read_text().splitlines()
                if line.startswith("class "))
    latest = RunIndex(RunLayout(tmp_path / ".flowdeck", name)).latest().record
    assert latest.origin_run_id and latest.status == "succeeded"


def test_a_mistyped_command_is_an_error_not_a_window(tmp_path: Path) -> None:
    done = flowdeck("resme", "flow.py", cwd=tmp_path)
    assert done.returncode == 2
    assert "`resme` is neither a command" in done.stderr
