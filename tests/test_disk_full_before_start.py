"""`flowdeck run` on a disk that is full before the run starts says so (found by
reliability/disk_full.py). The flow's own "disk full" goes to the run's log, which lives on
that disk, so all `flowdeck run` used to show was "The run pending (exit code 1)"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import child_env
from test_disk_full import FLOW, small_disk  # noqa: F401  (the tmpfs fixture)


def test_flowdeck_run_says_the_disk_is_full_when_nothing_could_start(
        small_disk: Path) -> None:  # noqa: F811
    flow = small_disk / "fullflow.py"
    flow.write_text(FLOW)
    with open(small_disk / "filler", "wb", buffering=0) as handle:
        try:
            while handle.write(b"\0" * 65536):
                pass
        except OSError:
            pass  # the disk is full
    done = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", str(flow)],
                          cwd=small_disk, env=child_env(), capture_output=True, text=True,
                          errors="replace", timeout=120)
    said = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"disk full: {small_disk}" in said
    assert "Traceback" not in said
