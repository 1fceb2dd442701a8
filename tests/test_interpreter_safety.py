"""A folder venv runs as you (probe, Run, artifact helper): only take one nobody else could plant.

The reproduced attack: a flow in /tmp/victim/proj ran another user's
/tmp/.venv/bin/python, because the search climbed to `/`. Here a sticky,
world-writable folder of the test's own stands for /tmp, and the planted
venv belongs to the real account `nobody` (uid 65534), as another user's would.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import WAIT_MS

from flowdeck.engines.interpreter import detect_interpreter
from flowdeck.engines.launching import build_launch

NOBODY = 65534
needs_root = pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() != 0,
    reason="giving a venv to another user (chown to uid 65534) needs root")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="owners and modes are POSIX")

FLOW = '''from flowdeck import FlowSpec, step


class TinyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        print("tiny done")


if __name__ == "__main__":
    TinyFlow().run()
'''


def make_venv(folder: Path) -> Path:
    """A venv whose python is a link to ours (what `python -m venv` makes)."""
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    (folder / "pyvenv.cfg").write_text("home = /usr\n")
    return python


def plant_venv(folder: Path, marker: Path) -> Path:
    """Another user's venv: its python leaves `marker` behind whenever it is started."""
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    for path in (folder, folder / "bin", python):
        os.chown(path, NOBODY, NOBODY)
    return python


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A folder like /tmp: anybody may create entries in it (sticky, mode 1777)."""
    folder = tmp_path / "shared-tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    return folder


@pytest.fixture(autouse=True)
def no_virtual_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)


@needs_root
def test_another_users_venv_above_the_flow_is_never_run(shared: Path, tmp_path: Path) -> None:
    marker = tmp_path / "planted-python-ran"
    planted = plant_venv(shared / ".venv", marker)
    project = shared / "victim" / "proj"
    project.mkdir(parents=True)
    (project / "tiny.py").write_text(FLOW)

    found = detect_interpreter(project)  # no watched root, not in the home: its folder only
    assert found.path != str(planted) and found.source == "app"
    spec = build_launch(str(project / "tiny.py"), "TinyFlow", "flowdeck", ["run"])
    assert spec.program != str(planted)
    assert not marker.exists(), "the planted python was started to probe it"


@needs_root
def test_a_refused_venv_is_named_with_its_reason(shared: Path, tmp_path: Path) -> None:
    plant_venv(shared / ".venv", tmp_path / "marker")
    project = shared / "victim" / "proj"
    project.mkdir(parents=True)
    found = detect_interpreter(project, stop_at=shared)  # even when the walk may reach it
    assert found.source == "app"
    [note] = found.skipped
    assert str(shared / ".venv") in note and "nobody (uid 65534)" in note
    assert "Run > Interpreter" in note


@posix_only
def test_a_venv_in_a_folder_others_may_write_is_skipped(tmp_path: Path) -> None:
    open_folder = tmp_path / "open"
    project = open_folder / "proj"
    project.mkdir(parents=True)
    make_venv(open_folder / ".venv")
    open_folder.chmod(0o777)  # not sticky: anybody could swap `.venv` for their own
    found = detect_interpreter(project, stop_at=open_folder)
    assert found.source == "app"
    assert "writable by other users" in found.skipped[0] and str(open_folder) in found.skipped[0]


@posix_only
def test_a_venv_writable_by_others_is_skipped(tmp_path: Path) -> None:
    make_venv(tmp_path / "proj" / ".venv")
    (tmp_path / "proj" / ".venv" / "bin").chmod(0o777)  # anybody could replace its python
    found = detect_interpreter(tmp_path / "proj")
    assert found.source == "app" and "writable by other users" in found.skipped[0]


@posix_only
def test_our_own_venv_in_a_sticky_folder_is_used(shared: Path) -> None:
    python = make_venv(shared / ".venv")  # ours: the sticky bit keeps others from replacing it
    project = shared / "proj"
    project.mkdir()
    found = detect_interpreter(project, stop_at=shared)
    assert (found.path, found.source, found.skipped) == (str(python), "venv", ())


def test_the_walk_stops_at_the_watched_root(tmp_path: Path) -> None:
    make_venv(tmp_path / "project" / ".venv")
    root = tmp_path / "project" / "flows"
    daily = root / "daily"
    daily.mkdir(parents=True)
    assert detect_interpreter(daily, stop_at=root).source == "app"
    python = make_venv(root / ".venv")
    assert detect_interpreter(daily, stop_at=root).path == str(python)
    lone = tmp_path / "project" / "flows" / "daily" / "lone.py"
    lone.write_text(FLOW)  # a file watched on its own: the walk stops at its folder
    assert detect_interpreter(daily, stop_at=lone).source == "app"


def test_without_a_root_the_walk_stops_at_the_home(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    flows = home / "work" / "flows"
    flows.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    python = make_venv(home / ".venv")
    assert detect_interpreter(flows).path == str(python)
    make_venv(tmp_path / ".venv")  # above the home: never looked at
    assert detect_interpreter(tmp_path / "elsewhere").source == "app"


@needs_root
def test_the_window_names_the_interpreter_and_the_skipped_venv(qtbot, settings, shared: Path,
                                                               tmp_path: Path) -> None:
    from flowdeck_desktop.control.controller import FlowdeckController

    marker = tmp_path / "planted-python-ran"
    planted = plant_venv(shared / ".venv", marker)
    project = shared / "victim" / "proj"
    project.mkdir(parents=True)
    (project / "tiny.py").write_text(FLOW)
    controller = FlowdeckController(settings)
    output: list[tuple[str, str]] = []
    messages: list[tuple[str, str]] = []
    controller.run_output.connect(lambda key, stream, text: output.append((stream, text)))
    controller.message.connect(lambda level, text: messages.append((level, text)))
    try:
        controller.add_paths([str(shared)])  # the shared folder itself is the watched root
        qtbot.waitUntil(lambda: not controller.scanning() and bool(controller.model.entries()),
                        timeout=WAIT_MS)
        [entry] = [e for e in controller.model.entries() if e.name == "TinyFlow"]
        assert controller.interpreter_for(entry.file).path != str(planted)
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
            controller.start_run(entry.key)
        assert ended.args[1] == "succeeded"
    finally:
        controller.shutdown()
    header = "".join(text for stream, text in output if stream == "flowdeck")
    assert header.startswith(f"Running with {sys.executable} (Flowdeck's own Python)\n")
    assert f"Skipped the venv {shared / '.venv'}" in header
    assert any(level == "warning" and "nobody (uid 65534)" in text for level, text in messages)
    assert not marker.exists()
