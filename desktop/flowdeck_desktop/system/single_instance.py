"""One Flowdeck per user: a second start hands its paths to the running window and exits.

The first instance listens on a `QLocalServer`; a later start connects,
sends its (absolute) paths as one JSON line, waits for the one-line answer
and exits, so "Open with Flowdeck" or a drop on the icon never makes a
second window. A socket left by a crashed instance refuses connections; we
then remove it and listen in its place. On macOS, files dropped on the Dock
icon arrive as `QFileOpenEvent`s and take the same road (`FileOpenFilter`).

The socket lives in a folder only this user can enter (`private_folder`), not
in /tmp where another local user could create it first: a squatter there
would receive our paths and answer "ok", and our start would exit with no
window. Both ends also check that the process at the other end runs as this
user (`peer_problem`). Whenever anything is off, a start opens a window of its
own and says why in one line on stderr: single-instance mode is a
convenience, never a reason to show nothing.
"""

from __future__ import annotations

import getpass
import json
import os
import socket as pysocket
import struct
import sys
import zlib
from pathlib import Path

from PySide6.QtCore import QByteArray, QDir, QEvent, QObject, Signal
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtNetwork import QLocalServer, QLocalSocket

CONNECT_MS = 300
ANSWER_MS = 700
ACK = b"ok\n"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


class NoPrivateFolder(OSError):
    """No folder that only this user can enter could be found or made for the socket."""


def server_name(home: str | None = None) -> str:
    """The socket's full path: per home folder (isolated test homes never meet a real
    instance), inside this user's private folder. NoPrivateFolder when there is none."""
    home = home or os.path.expanduser("~")
    name = f"flowdeck-{zlib.crc32(home.encode()):08x}"
    if sys.platform == "win32":  # a named pipe, not a file: per session, guarded by its ACL
        return f"{name}-{_user()}"
    return str(private_folder(name) / name)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"


def private_folder(name: str = "") -> Path:
    """A folder of ours with mode 0700 (where a socket `name` fits): $XDG_RUNTIME_DIR, else
    one we make and check.

    Tried in order: $XDG_RUNTIME_DIR (used as it is, never changed), then
    `flowdeck` under the user's cache folder, then `flowdeck-<uid>` in the
    temporary folder (which another user may have made first: then refused).
    """
    reasons = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        problem = _too_long(Path(runtime), name) or _not_private(Path(runtime))
        if problem is None:
            return Path(runtime)
        reasons.append(f"$XDG_RUNTIME_DIR {runtime} {problem}")
    for folder in _own_folders():
        problem = _too_long(folder, name)
        problem = f"{folder} {problem}" if problem else _make_private(folder)
        if problem is None:
            return folder
        reasons.append(problem)
    raise NoPrivateFolder("no private folder for the single-instance socket ("
                          + "; ".join(reasons) + ")")


def _own_folders() -> list[Path]:
    """Where we may make our own private folder: the cache folder first, then /tmp."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return [Path(cache) / "flowdeck", Path(QDir.tempPath()) / f"flowdeck-{uid}"]


def _too_long(folder: Path, name: str) -> str | None:
    """Why a socket `name` in `folder` cannot be made (a socket path holds ~100 bytes), or None."""
    if len(str(folder / name).encode()) > MAX_SOCKET_PATH:
        return f"is too deep for a local socket (its path must stay under {MAX_SOCKET_PATH} bytes)"
    return None


def _make_private(folder: Path) -> str | None:
    """Make `folder` (mode 0700) unless it exists; why it is not private, or None when it is.

    A folder of ours with a looser mode is tightened (it is ours to change); one of
    another user is refused, since its owner could replace anything in it.
    """
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return f"{folder} cannot be made ({exc.strerror or exc})"
    problem = _not_private(folder)
    if problem is not None and _owned_folder(folder):
        try:
            os.chmod(folder, 0o700)
        except OSError as exc:
            return f"{folder} cannot be made private ({exc.strerror or exc})"
        problem = _not_private(folder)
    return None if problem is None else f"{folder} {problem}"


def _owned_folder(folder: Path) -> bool:
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return os.path.isdir(folder) and not os.path.islink(folder) and info.st_uid == _uid()


def _not_private(folder: Path) -> str | None:
    """Why `folder` is not a private folder of ours (a real folder, ours, mode 0700), or None."""
    if sys.platform == "win32":
        return None  # named pipes, not files: Qt's UserAccessOption guards them
    try:
        info = os.lstat(folder)
    except OSError as exc:
        return f"cannot be checked ({exc.strerror or exc})"
    if not os.path.isdir(folder) or os.path.islink(folder):
        return "is not a folder (or is a symbolic link)"
    if info.st_uid != _uid():
        return f"belongs to uid {info.st_uid}, not to us (uid {_uid()})"
    if info.st_mode & 0o077:
        return f"has mode {info.st_mode & 0o777:o}, not 700"
    return None


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def peer_problem(socket: QLocalSocket) -> str | None:
    """Why the process at the other end of a connected `socket` is not us, or None.

    Its uid comes from the kernel (SO_PEERCRED on Linux, LOCAL_PEERCRED on
    macOS), read through a duplicate of Qt's descriptor. A uid we cannot read
    counts as a problem: a start that cannot tell opens its own window.
    """
    if sys.platform == "win32":
        return None  # a named pipe made with UserAccessOption admits only this user
    fd = int(socket.socketDescriptor())
    if fd < 0:
        return "the connection has no descriptor to check who is at the other end"
    try:
        uid = _peer_uid(fd)
    except OSError as exc:
        return f"who is at the other end cannot be checked ({exc.strerror or exc})"
    if uid is None:
        return "who is at the other end cannot be checked on this system"
    if uid != _uid():
        return f"the process at the other end runs as uid {uid}, not as us (uid {_uid()})"
    return None


def _peer_uid(fd: int) -> int | None:
    """The uid of the peer of the Unix socket `fd` (its descriptor is duplicated, not taken)."""
    with pysocket.fromfd(fd, pysocket.AF_UNIX, pysocket.SOCK_STREAM) as sock:
        if hasattr(pysocket, "SO_PEERCRED"):  # Linux: struct ucred {pid, uid, gid}
            creds = sock.getsockopt(pysocket.SOL_SOCKET, pysocket.SO_PEERCRED,
                                    struct.calcsize("3i"))
            return int(struct.unpack("3i", creds)[1])
        if sys.platform == "darwin":  # SOL_LOCAL, LOCAL_PEERCRED: struct xucred {version, uid..}
            creds = sock.getsockopt(0, 0x001, 76)
            return int(struct.unpack_from("=2I", creds)[1])
    return None


def _note(text: str) -> None:
    """The one line a start prints when it opens a window of its own instead of handing over."""
    print(f"Flowdeck: {text}", file=sys.stderr, flush=True)


def encode_paths(paths: list[str], cwd: str | None = None, run: bool = False) -> bytes:
    """One JSON line; paths made absolute here, since the running window has another cwd.

    `run` carries `flowdeck --run` (the desktop file's Run action) to the running window.
    """
    base = cwd or os.getcwd()
    absolute = [str(Path(base, p).absolute()) if not os.path.isabs(p) else p for p in paths]
    message: dict[str, object] = {"paths": absolute}
    if run:
        message["run"] = True
    return json.dumps(message).encode("utf-8") + b"\n"


def wants_run(data: bytes) -> bool:
    """Whether a message asks the running window to run the flow (the Run action)."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(value, dict) and value.get("run") is True


def decode_paths(data: bytes) -> list[str]:
    """The paths of one message; anything malformed counts as no paths (the window still rises)."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []
    paths = value.get("paths") if isinstance(value, dict) else None
    return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []


def send_to_running(paths: list[str], name: str | None = None, run: bool = False) -> bool:
    """True when a running instance of ours took the paths; False means: open a window.

    False too when there is no private folder for the socket, or the listener
    is another user's (each said in one line on stderr).
    """
    try:
        target = name or server_name()
    except NoPrivateFolder as exc:
        _note(f"{exc}; opening a window of its own. Make that folder yours with mode 700.")
        return False
    socket = QLocalSocket()
    socket.connectToServer(target)
    if not socket.waitForConnected(CONNECT_MS):
        return False
    problem = peer_problem(socket)
    if problem is not None:
        socket.abort()
        _note(f"{target}: {problem}; not handing over, opening a window of its own.")
        return False
    socket.write(QByteArray(encode_paths(paths, run=run)))
    socket.flush()
    socket.waitForBytesWritten(ANSWER_MS)
    answered = socket.waitForReadyRead(ANSWER_MS) and bytes(socket.readAll().data()) == ACK
    socket.disconnectFromServer()
    return answered


class InstanceServer(QObject):
    """Listens for later starts and emits the paths they hand over."""

    paths_received = Signal(list)
    run_requested = Signal(list)  # the same, from `flowdeck --run` (run whatever the setting)

    def __init__(self, name: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.problem: str | None = None  # why it cannot listen at all (no private folder)
        try:
            self.name = name or server_name()
        except NoPrivateFolder as exc:
            self.name, self.problem = "", str(exc)
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._on_connection)
        self._buffers: dict[QLocalSocket, bytes] = {}
        self.other_instance = False  # set by listen(): a live instance owns the name

    def listen(self) -> bool:
        """Listen, unless a live instance of ours answers; a stale socket (a crash's leftover)
        or another user's listener in our place is removed.

        We probe first because with socket options Qt binds a temporary path and
        renames it over the name, which would silently take it from a live instance.
        """
        if self.problem is not None:
            _note(f"{self.problem}; each start opens its own window.")
            return False
        probe = QLocalSocket()
        probe.connectToServer(self.name)
        if probe.waitForConnected(CONNECT_MS):
            problem = peer_problem(probe)
            probe.abort()
            if problem is None:
                self.other_instance = True
                return False
            _note(f"{self.name}: {problem}; replacing it with this window's socket.")
        QLocalServer.removeServer(self.name)
        return self.server.listen(self.name)

    def close(self) -> None:
        self.server.close()

    def _on_connection(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            problem = peer_problem(socket)
            if problem is not None:  # only root could have got through the folder's mode
                _note(f"refused a connection to {self.name}: {problem}.")
                socket.abort()
                socket.deleteLater()
                continue
            self._buffers[socket] = b""
            socket.readyRead.connect(lambda s=socket: self._on_ready(s))
            socket.disconnected.connect(lambda s=socket: self._forget(s))

    def _on_ready(self, socket: QLocalSocket) -> None:
        data = self._buffers.get(socket, b"") + bytes(socket.readAll().data())
        if b"\n" not in data:
            self._buffers[socket] = data
            return
        line = data.split(b"\n", 1)[0]
        self._buffers[socket] = b""
        socket.write(QByteArray(ACK))
        socket.flush()
        if wants_run(line):
            self.run_requested.emit(decode_paths(line))
        else:
            self.paths_received.emit(decode_paths(line))

    def _forget(self, socket: QLocalSocket) -> None:
        self._buffers.pop(socket, None)
        socket.deleteLater()


class FileOpenFilter(QObject):
    """macOS: files dropped on the Dock icon or opened from Finder, as `paths_received`."""

    paths_received = Signal(list)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FileOpen and isinstance(event, QFileOpenEvent):
            path = event.file() or event.url().toLocalFile()
            if path:
                self.paths_received.emit([path])
                return True
        return super().eventFilter(watched, event)
