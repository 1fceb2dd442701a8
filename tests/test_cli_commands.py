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


def _without_display() -> dict[str, str]:
    return {k: v for k, v in child_env().items()
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}


def test_help_version_and_a_bad_option_answer_without_a_display(tmp_path: Path) -> None:
    """Over ssh, `flowdeck --help` is the first thing typed: it must not ask for a screen."""
    def typed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowdeck_desktop", *args], cwd=tmp_path,
                              env=_without_display(), capture_output=True, text=True,
                              timeout=120)
    helped = typed("--help")
    assert helped.returncode == 0, helped.stderr
    assert "usage: flowdeck" in helped.stdout and "--new-instance" in helped.stdout
    assert "Commands without a window: run, resume, list, graph, gc" in helped.stdout
    import flowdeck
    versioned = typed("--version")
    assert versioned.returncode == 0 and versioned.stdout.strip() == f"flowdeck {flowdeck.__version__}"
    wrong = typed("--bogus-option", str(tmp_path))
    assert wrong.returncode == 2
    assert "unrecognized arguments: --bogus-option" in wrong.stderr
    assert "display" not in wrong.stderr and "Traceback" not in wrong.stderr
