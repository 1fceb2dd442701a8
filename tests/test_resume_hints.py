"""A failed run says how to resume it, as a command the user can paste as it is: the
entry the run was started with, and the file's path quoted where it has a space."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FLOWS, child_env

FLAKY = """from {package} import FlowSpec, step
import os


class FlakyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self):
        if not os.path.exists("fixed"):
            raise ValueError("not fixed yet")
        self.next(self.end)

    @step
    def end(self):
        print("resumed to the end")


if __name__ == "__main__":
    FlakyFlow()
"""


def _run(argv: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=folder, env=child_env(), capture_output=True, text=True,
                          timeout=120)


def _hint(stderr: str) -> str:
    found = re.search(r"Fix it, then continue with `([^`]+)`", stderr)
    assert found, stderr
    return found.group(1)


@pytest.mark.parametrize("package, entry", [
    ("flowdeck", [sys.executable]),
    ("metaflow", [sys.executable, "-m", "flowdeck.engines.as_metaflow"]),
])
def test_the_resume_hint_is_a_command_to_paste(tmp_path: Path, package: str,
                                               entry: list[str]) -> None:
    folder = tmp_path / "with space"
    folder.mkdir()
    (folder / "my flow.py").write_text(FLAKY.format(package=package))
    failed = _run([*entry, "my flow.py", "run"], folder)
    assert failed.returncode == 1
    hint = _hint(failed.stderr)
    expected = "python -m flowdeck.engines.as_metaflow" if package == "metaflow" else "python"
    assert hint == f"{expected} 'my flow.py' resume"
    (folder / "fixed").touch()
    argv = shlex.split(hint)
    resumed = _run([sys.executable, *argv[1:]], folder)  # this interpreter for `python`
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed to the end" in resumed.stdout


def test_flowdeck_run_quotes_the_file_it_says_to_resume(tmp_path: Path) -> None:
    folder = tmp_path / "with space"
    folder.mkdir()
    (folder / "my flow.py").write_text(FLAKY.format(package="flowdeck"))
    failed = _run([sys.executable, "-m", "flowdeck_desktop", "run", "my flow.py"], folder)
    assert failed.returncode != 0
    found = re.search(r"Resume it, reusing what finished: (.+)", failed.stdout + failed.stderr)
    assert found, failed.stdout + failed.stderr
    argv = shlex.split(found.group(1))
    assert argv[:2] == ["flowdeck", "resume"] and Path(argv[2]) == folder / "my flow.py"


def test_a_run_that_failed_in_start_says_to_run_again(tmp_path: Path) -> None:
    """A failure in `start` leaves a resume nothing to reuse, and a resume keeps the run's
    parameter values, which may be the cause: both entries said to resume, and resume
    failed the same way every time."""
    shutil.copy(FLOWS / "misbehaving.py", tmp_path / "count.py")  # `scalar`: fails in start
    failed = _run([sys.executable, "count.py", "run", "--mode", "scalar"], tmp_path)
    assert failed.returncode == 1
    assert ("Fix it, then run the flow again (`python count.py run`, with other parameter "
            "values if they were the cause)") in failed.stderr
    assert "continue with" not in failed.stderr
    headless = _run([sys.executable, "-m", "flowdeck_desktop", "run", "count.py", "--mode",
                     "scalar"], tmp_path)
    told = headless.stdout + headless.stderr
    assert "Run it again once fixed" in told, told
    assert re.search(r"flowdeck run \S*count.py", told), told
    assert "flowdeck resume" not in told
