"""One Flowdeck at a time: hand-over over a local socket, stale sockets, macOS file-open events."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, WAIT_MS, child_env
from PySide6.QtCore import QDir, QObject, QSettings
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtWidgets import QApplication

from flowdeck_desktop.app import bring_up, build, cli_files
from flowdeck_desktop.system.single_instance import (
    FileOpenFilter,
    InstanceServer,
    decode_paths,
    encode_paths,
    send_to_running,
    server_name,
    wants_run,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="socket paths are Unix here")


def socket_file(name: str) -> Path:
    """Where QLocalServer puts a plain name on Unix."""
    return Path(QDir.tempPath()) / name


def test_messages_carry_absolute_paths(tmp_path: Path) -> None:
    data = encode_paths(["a.py", str(tmp_path / "b")], cwd=str(tmp_path))
    assert data.endswith(b"\n")
    assert decode_paths(data.strip()) == [str(tmp_path / "a.py"), str(tmp_path / "b")]
    assert decode_paths(b"not json") == [] and decode_paths(b'{"paths": 3}') == []


def test_server_name_is_per_home() -> None:
    assert server_name("/home/a") != server_name("/home/b")
    assert server_name("/home/a") == server_name("/home/a")


def test_nobody_listening_means_start_a_window(qapp) -> None:
    assert send_to_running(["x.py"], name=f"flowdeck-test-none-{os.getpid()}") is False


def _client(name: str, paths: list[str]) -> subprocess.Popen[str]:
    code = ("import sys; from flowdeck_desktop.system.single_instance import send_to_running; "
            f"sys.exit(0 if send_to_running({paths!r}, name={name!r}) else 1)")
    return subprocess.Popen([sys.executable, "-c", code], text=True)


def test_server_receives_paths_and_answers(qtbot, tmp_path: Path) -> None:
    server = InstanceServer(name=f"flowdeck-test-{os.getpid()}-{tmp_path.name}")
    assert server.listen()
    try:
        with qtbot.waitSignal(server.paths_received, timeout=WAIT_MS) as blocker:
            client = _client(server.name, [str(tmp_path / "flow.py")])
        qtbot.waitUntil(lambda: client.poll() is not None, timeout=WAIT_MS)
        assert blocker.args == [[str(tmp_path / "flow.py")]]
        assert client.returncode == 0
    finally:
        server.close()


def test_stale_socket_from_a_crashed_instance_is_replaced(qtbot, tmp_path: Path) -> None:
    name = f"flowdeck-test-stale-{os.getpid()}-{tmp_path.name}"
    path = socket_file(name)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening, closed without unlinking: a crash's leftover
    stale.close()
    assert path.exists()
    assert send_to_running(["x.py"], name=name) is False
    server = InstanceServer(name=name)
    try:
        assert server.listen()
        with qtbot.waitSignal(server.paths_received, timeout=WAIT_MS):
            client = _client(name, ["/tmp/x.py"])
        qtbot.waitUntil(lambda: client.poll() is not None, timeout=WAIT_MS)
        assert client.returncode == 0
    finally:
        server.close()


def test_a_live_instance_is_never_replaced(qtbot, tmp_path: Path) -> None:
    name = f"flowdeck-test-live-{os.getpid()}-{tmp_path.name}"
    first, second = InstanceServer(name=name), InstanceServer(name=name)
    try:
        assert first.listen()
        assert not second.listen()
        assert first.server.isListening()
    finally:
        second.close()
        first.close()


def test_file_open_events_become_paths(qtbot, tmp_path: Path) -> None:
    target = QObject()
    opener = FileOpenFilter()
    target.installEventFilter(opener)
    with qtbot.waitSignal(opener.paths_received, timeout=2000) as blocker:
        QApplication.sendEvent(target, QFileOpenEvent(str(tmp_path / "dock.py")))
    assert blocker.args == [[str(tmp_path / "dock.py")]]


def test_handed_over_file_is_opened_like_a_drop(qtbot, tmp_path: Path) -> None:
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings.setValue("prefs/run_on_drop", False)
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(EXAMPLES / "train.py", folder)
    controller, window = build(settings, None)
    qtbot.addWidget(window)
    try:
        bring_up(window, [str(folder / "train.py")])
        assert window.isVisible()
        qtbot.waitUntil(lambda: window.selected_key is not None)  # listed off-thread
        entry = controller.model.entry(window.selected_key or "")
        assert entry is not None and entry.name == "TrainFlow"
        assert cli_files([str(folder), str(folder / "train.py")]) == [str(folder / "train.py")]
    finally:
        controller.shutdown()


def _events(folder: Path) -> list[dict]:
    found = list(folder.glob(".flowdeck/TrainFlow/runs/*/events.jsonl"))
    return [json.loads(line) for f in found for line in f.read_text().splitlines() if line]


def test_second_start_hands_over_and_the_first_runs_the_file(qtbot, tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(EXAMPLES / "train.py", folder)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    first = subprocess.Popen([sys.executable, "-m", "flowdeck_desktop", "--exit-when-done"],
                             env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        listening = socket_file(server_name(os.path.expanduser("~")))
        qtbot.waitUntil(lambda: listening.exists() or first.poll() is not None, timeout=WAIT_MS)
        assert first.poll() is None, first.stdout.read() if first.stdout else ""
        second = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "flows/train.py"],
                                env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 0, second.stderr  # it handed over and exited
        assert first.wait(timeout=60) == 0  # it ran the handed-over flow, which succeeded
        kinds = [e["type"] for e in _events(folder)]
        assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_scripted_starts_keep_their_own_outcome() -> None:
    from flowdeck_desktop.command_line import hands_over, parse_args
    assert hands_over(parse_args(["a.py"]))
    for flags in (["--exit-when-done"], ["--screenshot", "x.png"], ["--new-instance"],
                  ["--quit-when-shown"]):
        assert not hands_over(parse_args(["a.py", *flags]))


def test_the_run_action_reaches_the_running_window_as_a_run(qtbot, tmp_path: Path) -> None:
    name = f"flowdeck-test-run-{os.getpid()}-{tmp_path.name}"
    server = InstanceServer(name=name)
    assert server.listen()
    try:
        code = ("import sys; from flowdeck_desktop.system.single_instance import send_to_running; "
                f"sys.exit(0 if send_to_running({[str(tmp_path / 'f.py')]!r}, name={name!r}, "
                "run=True) else 1)")
        with qtbot.waitSignal(server.run_requested, timeout=WAIT_MS) as blocker:
            client = subprocess.Popen([sys.executable, "-c", code], env=child_env())
        qtbot.waitUntil(lambda: client.poll() is not None, timeout=WAIT_MS)
        assert blocker.args == [[str(tmp_path / "f.py")]] and client.returncode == 0
    finally:
        server.close()
    assert wants_run(encode_paths(["a.py"], run=True)) and not wants_run(encode_paths(["a.py"]))
