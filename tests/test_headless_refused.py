"""`flowdeck run` when the store or its own output refuses a write (found in review).

A read-only store, or one out of inodes, made `flowdeck run` print a traceback through its
own code (creating the run's log folder) where `python flow.py run` says in one line that
the run could not start and why. A failing stdout (`> /dev/full`, `| head -n 2`) made it
die with a traceback, and the run never happened or was cancelled, where `python flow.py
run` carries on and finishes the run.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import child_env, stored_runs

FLOW = '''
import time
from flowdeck import FlowSpec, step


class ChattyFlow(FlowSpec):
    @step
    def start(self):
        for i in range(5):
            print("line", i, flush=True)
        time.sleep(1.0)  # the reader of `| head -n 2` is gone by now
        for i in range(5, 10):
            print("line", i, flush=True)
        self.next(self.end)

    @step
    def end(self):
        print("the end")


if __name__ == "__main__":
    ChattyFlow()
'''


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "flows" / "chatty.py"
    path.parent.mkdir()
    path.write_text(FLOW)
    return path


def _mount_tmpfs(mount: Path, options: str) -> None:
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs ({exc}); this test needs root")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({done.stderr.strip()}); this test needs root "
                    "and permission to mount")


@pytest.fixture
def read_only_store(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs (root needs a real read-only file system: chmod does not stop it)."""
    mount = tmp_path / "ro"
    _mount_tmpfs(mount, "ro,size=1m")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


@pytest.fixture
def inode_full_store(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with plenty of space and every inode taken."""
    mount = tmp_path / "inodes"
    _mount_tmpfs(mount, "size=8m,nr_inodes=16")
    try:
        for i in range(64):
            try:
                (mount / f"f{i}").touch()
            except OSError:
                break  # no inode left
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def _both(flow: Path, store: Path) -> tuple[subprocess.CompletedProcess[str], ...]:
    """`flowdeck run FILE` and `python FILE run` on the store."""
    env = child_env(FLOWDECK_HOME=str(store))
    return tuple(subprocess.run(argv, cwd=flow.parent, env=env, capture_output=True,
                                text=True, errors="replace", timeout=120)
                 for argv in ([sys.executable, "-m", "flowdeck.cli.main", "run", str(flow)],
                              [sys.executable, str(flow), "run"]))


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Run "), done.stderr
    return lines[0]


def test_a_read_only_store_is_one_line_as_under_python(flow: Path,
                                                       read_only_store: Path) -> None:
    headless, script = _both(flow, read_only_store)
    assert headless.returncode == script.returncode == 1
    said = _one_error_line(headless)
    assert "of ChattyFlow could not start: cannot write " in said
    assert "Read-only file system" in said and "FLOWDECK_HOME" in said
    # the same words as the engine's (but the run id and the folder it tried first)
    assert said.split("could not start: ")[1].split(": ", 1)[1] == \
        _one_error_line(script).split("could not start: ")[1].split(": ", 1)[1]


def test_a_store_without_inodes_says_the_disk_is_full(flow: Path,
                                                      inode_full_store: Path) -> None:
    headless, script = _both(flow, inode_full_store)
    assert headless.returncode == script.returncode == 1
    assert "could not start: disk full: " in _one_error_line(headless)
    assert "could not start: disk full: " in _one_error_line(script)


def test_a_full_stdout_still_runs_the_flow(flow: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", str(flow)],
                              cwd=flow.parent, env=child_env(), stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0
    runs = stored_runs("ChattyFlow", flow.parent / ".flowdeck")
    assert [run.status for run in runs] == ["succeeded"]


def test_a_reader_that_leaves_early_does_not_cancel_the_run(flow: Path) -> None:
    """`flowdeck run FILE | head -n 2`: the run finishes, as under `python FILE run | head`."""
    headless = subprocess.Popen([sys.executable, "-m", "flowdeck.cli.main", "run", str(flow)],
                                cwd=flow.parent, env=child_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    assert headless.stdout is not None and headless.stderr is not None
    first = [headless.stdout.readline() for _ in range(2)]
    headless.stdout.close()  # `head` has its two lines and leaves
    stderr = headless.stderr.read().decode()
    assert headless.wait(timeout=120) == 0, stderr
    assert all(first) and "Traceback" not in stderr, stderr
    runs = stored_runs("ChattyFlow", flow.parent / ".flowdeck")
    assert [run.status for run in runs] == ["succeeded"]
    assert "line 9" in runs[0]["start"].task.stdout
