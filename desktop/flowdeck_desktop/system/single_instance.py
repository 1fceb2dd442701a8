"""One Flowdeck per user: a second start hands its paths to the running window and exits.

The first instance listens on a `QLocalServer`; a later start connects,
sends its (absolute) paths as one JSON line, waits for the one-line answer
and exits, so "Open with Flowdeck" or a drop on the icon never makes a
second window. A socket left by a crashed instance refuses connections; we
then remove it and listen in its place. On macOS, files dropped on the Dock
icon arrive as `QFileOpenEvent`s and take the same road (`FileOpenFilter`).
"""

from __future__ import annotations

import getpass
import json
import os
import zlib
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, Signal
from PySide6.QtGui import QFileOpenEvent
from PySide6.QtNetwork import QLocalServer, QLocalSocket

CONNECT_MS = 300
ANSWER_MS = 700
ACK = b"ok\n"


def server_name(home: str | None = None) -> str:
    """Per user and per home folder, so isolated test homes never meet a real instance."""
    home = home or os.path.expanduser("~")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return f"flowdeck-{user}-{zlib.crc32(home.encode()):08x}"


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
    """True when a running instance took the paths; False when none answers (start one)."""
    socket = QLocalSocket()
    socket.connectToServer(name or server_name())
    if not socket.waitForConnected(CONNECT_MS):
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
        self.name = name or server_name()
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._on_connection)
        self._buffers: dict[QLocalSocket, bytes] = {}
        self.other_instance = False  # set by listen(): a live instance owns the name

    def listen(self) -> bool:
        """Listen, unless a live instance answers; a stale socket (a crash's leftover) is removed.

        We probe first because with socket options Qt binds a temporary path and
        renames it over the name, which would silently take it from a live instance.
        """
        probe = QLocalSocket()
        probe.connectToServer(self.name)
        self.other_instance = probe.waitForConnected(CONNECT_MS)
        if self.other_instance:
            probe.disconnectFromServer()
            return False
        QLocalServer.removeServer(self.name)
        return self.server.listen(self.name)

    def close(self) -> None:
        self.server.close()

    def _on_connection(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
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
