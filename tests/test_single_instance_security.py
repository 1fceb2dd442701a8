"""Another local user cannot take the single-instance socket, nor pose as the running window.

The reproduced attack: the socket's name was predictable and lived in /tmp,
so another user listened there first, answered "ok" and our start exited
with no window. Here the other user is the real account `nobody` (uid
65534), running a tiny listener with the system's Python.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import CORE, DESKTOP, WAIT_MS
from PySide6.QtCore import QDir

from flowdeck_desktop.system.single_instance import (
    InstanceServer,
    NoPrivateFolder,
    send_to_running,
    server_name,
)

NOBODY = 65534
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets and uids")

# Answers every connection with "ok", as a running Flowdeck does: whoever listens gets
# the paths and the starting Flowdeck believes it handed them over.
SQUATTER = r'''
import socket, sys
if sys.argv[1] == "fd":
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=int(sys.argv[2]))
else:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sys.argv[2])
server.listen(8)
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    conn.recv(65536)
    conn.sendall(b"ok\n")
    conn.close()
'''


def _python_for_nobody() -> str:
    """A Python that `nobody` may start (ours may sit in root's private home)."""
    if not hasattr(os, "getuid") or os.getuid() != 0:
        pytest.skip("starting a process as another user (uid 65534) needs root")
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3")):
        if candidate and os.access(candidate, os.X_OK):
            probe = subprocess.run([candidate, "-c", "pass"], user=NOBODY, group=NOBODY,
                                   extra_groups=[], capture_output=True)
            if probe.returncode == 0:
                return candidate
    pytest.skip("no Python that the user nobody may run (tried /usr/bin/python3 and PATH)")


@pytest.fixture
def squatter() -> Iterator[Callable[..., None]]:
    """Start `nobody`'s listener on a path (it binds) or on a bound socket we hand it."""
    started: list[subprocess.Popen[str]] = []

    def start(how: str, where: str, pass_fds: tuple[int, ...] = ()) -> None:
        proc = subprocess.Popen([_python_for_nobody(), "-c", SQUATTER, how, where],
                                user=NOBODY, group=NOBODY, extra_groups=[],
                                pass_fds=pass_fds, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "listening\n"

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def _old_name(home: str) -> Path:
    """Where the socket used to be: a name anybody could compute, in the shared /tmp."""
    return Path(QDir.tempPath()) / f"flowdeck-{getpass.getuser()}-{zlib.crc32(home.encode()):08x}"


def test_a_squatter_on_the_old_shared_name_gets_nothing(qapp, squatter, isolated_home: Path,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    old = _old_name(os.path.expanduser("~"))
    squatter("path", str(old))
    try:
        assert old.exists() and old.stat().st_uid == NOBODY
        assert send_to_running([str(isolated_home / "flow.py")]) is False  # we open a window
    finally:
        old.unlink(missing_ok=True)


def test_the_socket_lives_in_a_folder_only_we_can_enter(isolated_home: Path) -> None:
    path = Path(server_name())
    folder = path.parent.stat()
    assert not str(path).startswith(QDir.tempPath() + "/flowdeck-" + getpass.getuser())
    assert folder.st_uid == os.getuid() and stat.S_IMODE(folder.st_mode) == 0o700


def test_runtime_dir_is_used_only_when_it_is_private(short_tmp: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A short folder: under pytest's own (with xdist, and a longer user name such as
    # "reviewer") the socket's path passed 100 bytes and the folder was refused as too deep.
    runtime = short_tmp / "run-user"
    runtime.mkdir(mode=0o700)
    runtime.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert Path(server_name()).parent == runtime
    runtime.chmod(0o755)  # others may look in: not ours alone
    assert Path(server_name()).parent != runtime
    assert stat.S_IMODE(Path(server_name()).parent.stat().st_mode) == 0o700


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A new folder with a short path: under pytest's own temporary folder (deeper under
    pytest-xdist) every candidate for the socket could be refused as too deep first."""
    folder = Path(tempfile.mkdtemp(prefix="fd-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_folder_made_first_by_another_user_is_refused(
        qapp, short_tmp: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    if not hasattr(os, "getuid") or os.getuid() != 0:
        pytest.skip("giving a folder to another user (chown to uid 65534) needs root")
    tmp_path = short_tmp
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))  # no cache folder
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    taken = tmp_path / "tmp" / f"flowdeck-{os.getuid()}"
    taken.mkdir(parents=True, mode=0o700)
    os.chown(taken, NOBODY, NOBODY)  # the other user was first
    with pytest.raises(NoPrivateFolder, match=f"{taken} belongs to uid {NOBODY}"):
        server_name()
    assert send_to_running(["a.py"]) is False
    server = InstanceServer()
    assert not server.listen() and not server.other_instance  # the app opens its own window
    err = capfd.readouterr().err
    assert err.count("\n") == 2 and "no private folder" in err and str(taken) in err


def _bound_socket(path: Path) -> socket.socket:
    """A socket bound by us in our own folder, for `nobody` to listen on: the kernel then
    reports nobody as the listener, as if they had got into that folder."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


def test_a_listener_of_another_user_is_not_handed_our_paths(
        qapp, squatter, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flowdeck-socket"
    with _bound_socket(path) as sock:
        squatter("fd", str(sock.fileno()), (sock.fileno(),))
        assert send_to_running(["a.py"], name=str(path)) is False
    err = capfd.readouterr().err
    assert f"runs as uid {NOBODY}" in err and "opening a window of its own" in err


def test_a_listener_of_another_user_is_replaced_not_obeyed(
        qtbot, squatter, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flowdeck-socket"
    with _bound_socket(path) as sock:
        squatter("fd", str(sock.fileno()), (sock.fileno(),))
        server = InstanceServer(name=str(path))
        try:
            assert server.listen() and not server.other_instance
            assert path.stat().st_uid == os.getuid()
            with qtbot.waitSignal(server.paths_received, timeout=WAIT_MS) as got:
                client = subprocess.Popen([sys.executable, "-c", (
                    "import sys; from flowdeck_desktop.system.single_instance import "
                    f"send_to_running; sys.exit(0 if send_to_running(['/x.py'], name={str(path)!r}) "
                    "else 1)")], env=dict(os.environ, PYTHONPATH=f"{CORE}{os.pathsep}{DESKTOP}"))
            qtbot.waitUntil(lambda: client.poll() is not None, timeout=WAIT_MS)
            assert got.args == [["/x.py"]] and client.returncode == 0
        finally:
            server.close()
    assert f"runs as uid {NOBODY}" in capfd.readouterr().err


def test_a_stale_socket_of_another_user_never_disables_single_instance(qapp) -> None:
    if not hasattr(os, "getuid") or os.getuid() != 0:
        pytest.skip("giving a socket file to another user (chown to uid 65534) needs root")
    path = Path(server_name())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(path))  # bound, never listening: a crashed instance's leftover
    os.chown(path, NOBODY, NOBODY)
    server = InstanceServer()
    try:
        assert server.listen(), server.server.errorString()
        assert path.stat().st_uid == os.getuid()
    finally:
        server.close()
