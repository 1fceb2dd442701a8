"""A lean process that forks the run's task workers, so the orchestrator never forks.

Forking from the orchestrator cost, per task of a 1,000-item foreach, about 460
copy-on-write page faults in the orchestrator itself (its pages are write-protected
again after every fork while the worker lives) and a fork whose page-table copy grows
with the orchestrator's heap (results, records, events). The fork server is forked
once, when the run starts its first task: it holds the flow module, the flow class and
the run's parameters as they were then, and nothing else grows in it. Per attempt the
orchestrator sends it the task request (pickled; the flow class and the parameters go
by reference to the server's own copies) with the write ends of three pipes: stdout,
stderr and exit. The server forks the worker, replies with its pid, and when the
worker exits it ends what the worker left (its process group, the orphans it adopted),
reaps it and writes its wait status into the exit pipe.

Semantics stay those of a direct fork: a worker is a fresh copy of the flow module as
it was when the run started its first task, leads its own process group, dies with
its parent (the server, which dies with the orchestrator), and adopts its orphans.
The run's guard still learns every worker's process group from the orchestrator.
"""

from __future__ import annotations

import gc
import io
import os
import pickle
import select
import signal
import socket
import struct
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engine.task import (
    EXIT_CANCELLED,
    TaskRequest,
    execute_task,
    finish_worker_process,
    prepare_worker_process,
    worker_failed,
)
from flowdeck.engine.taskstate import INHERITED, foreach_input_ref, preload_digest
from flowdeck.engines import processes
from flowdeck.store.blobs import BlobStore

_STATUS = struct.Struct("=i")
_PID = struct.Struct("=q")
_LENGTH = struct.Struct("=Q")


class ForkServerGone(OSError):
    """The fork server died (killed, out of memory); the executor forks directly again."""


@dataclass
class _Shared:
    """Objects the server got at its fork: a request refers to them by position."""

    objects: list[Any]

    def index(self, obj: Any) -> int | None:
        for i, shared in enumerate(self.objects):
            if obj is shared:
                return i
        return None


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, shared: _Shared):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.shared = shared

    def persistent_id(self, obj: Any) -> Any:  # noqa: D102 (pickle's hook)
        if isinstance(obj, type | dict | PurePath):
            return self.shared.index(obj)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, shared: _Shared):
        super().__init__(file)
        self.shared = shared

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 (pickle's hook)
        return self.shared.objects[pid]


def shared_parts(request: TaskRequest) -> list[Any]:
    """What every request of a run shares and the server keeps from its fork. The root
    too: a worker then finds the blob store the server inherited (`warm_worker_state`)
    instead of unpickling a path and making a store of its own."""
    return [request.flow_cls, request.params, request.param_refs, request.root]


class ForkServer:
    """The orchestrator's handle on its fork server (one per run)."""

    def __init__(self, first: TaskRequest, close_inherited: Callable[[], None]) -> None:
        self.shared = _Shared(shared_parts(first))
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the server
            code = 0
            try:
                mine.close()
                close_inherited()
                _serve(theirs, parent, self.shared, BlobStore(first.root))
            except BaseException:  # noqa: BLE001 (nothing to tell: the orchestrator sees EOF)
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        self.pid = pid
        self.sock = mine

    def fork(self, request: TaskRequest, out_w: int, err_w: int, exit_w: int) -> None:
        """Ask the server for a worker running `request`. The server writes the worker's
        pid into the exit pipe at once, and its wait status when it ended (`ExitPipe`):
        the orchestrator never waits for the server.

        The server does as little as it can per worker (each page it writes while a
        worker lives is copied): it reads the message, loads the foreach list named in
        the header once per fan-out, and forks; the worker unpickles its request.
        """
        ref = foreach_input_ref(request.frames, request.parents)
        header = (ref.sha if ref is not None else "").encode()
        buffer = io.BytesIO()
        buffer.write(bytes([len(header)]) + header)
        _Pickler(buffer, self.shared).dump(request)
        payload = buffer.getvalue()
        try:  # the fds ride on the length; a join's request may be larger than a socket buffer
            socket.send_fds(self.sock, [_LENGTH.pack(len(payload))], [out_w, err_w, exit_w])
            self.sock.sendall(payload)
        except OSError as exc:
            raise ForkServerGone(exc.errno, f"the task fork server is gone: {exc}") from None

    def close(self) -> None:
        """End the server (every worker has ended by now) and reap it."""
        self.sock.close()
        processes.signal_quietly(self.pid, signal.SIGKILL)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


class ExitPipe:
    """The orchestrator's end of a served worker's exit pipe: its pid, then its status."""

    SIZE = _PID.size + _STATUS.size

    def __init__(self, fd: int):
        self.fd = fd
        self.data = b""
        self.pid: int | None = None
        self.status: int | None = None

    def poll(self) -> None:
        """Read what the server wrote so far, without blocking."""
        try:
            while self.status is None and self._read_once():
                pass
        except BlockingIOError:
            pass

    def wait_pid(self) -> int | None:
        """The worker's pid, waiting for the server to tell it (it does so right after the
        fork); None when there is no worker (the fork failed, or the server died)."""
        if self.pid is None and self.status is None:
            os.set_blocking(self.fd, True)
            try:
                while self.pid is None and self.status is None and self._read_once():
                    pass
            finally:
                os.set_blocking(self.fd, False)
        return self.pid

    def _read_once(self) -> bool:
        chunk = os.read(self.fd, self.SIZE - len(self.data))
        if not chunk:  # the server died before it could say: its death killed the worker
            self.status = signal.SIGKILL if self.status is None else self.status
            return False
        self.data += chunk
        if self.pid is None and len(self.data) >= _PID.size:
            (pid,) = _PID.unpack(self.data[:_PID.size])
            if pid > 0:
                self.pid = pid
            else:  # the fork failed: a worker that never ran
                self.status = 1 << 8
        if len(self.data) == self.SIZE:
            self.status = int(_STATUS.unpack(self.data[_PID.size:])[0])
        return True


# -- in the server ------------------------------------------------------------------------

def _serve(sock: socket.socket, orchestrator: int, shared: _Shared, blobs: BlobStore) -> None:
    """Fork a worker per request until the orchestrator closes the socket."""
    os.setpgid(0, 0)  # a Ctrl+C or a kill of the orchestrator's group is not for the server
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    processes.drop_signal_wakeup()
    processes.die_with_parent(orchestrator)
    adopter = processes.Adopter()
    workers: dict[int, tuple[int, int]] = {}  # pidfd -> (pid, exit_w)
    # A bare epoll, not `selectors`: its Python layer (keys, lookups) would run per worker,
    # and every page the server writes while its workers live is copied.
    poller = select.epoll()  # Linux: the server needs pidfds anyway
    listening = sock.fileno()
    poller.register(listening, select.EPOLLIN)
    server = os.getpid()
    gc.freeze()
    while True:
        for fd, _ in poller.poll():
            if fd == listening:
                if not _fork_one(sock, shared, blobs, workers, poller, server):
                    return
            else:
                _reap_one(fd, workers, poller, adopter)


def _fork_one(sock: socket.socket, shared: _Shared, blobs: BlobStore,
              workers: dict[int, tuple[int, int]], poller: select.epoll, server: int) -> bool:
    length, fds, _, _ = socket.recv_fds(sock, _LENGTH.size, 3)
    if not length:
        return False
    out_w, err_w, exit_w = fds
    if len(length) < _LENGTH.size:
        length += read_exactly(sock, _LENGTH.size - len(length))
    message = read_exactly(sock, _LENGTH.unpack(length)[0])
    header_end = 1 + message[0]
    if header_end > 1:
        sha = message[1:header_end].decode()
        if sha not in INHERITED:
            preload_digest(blobs, sha)
    try:
        pid = processes.fork_holding_signals()
    except OSError as exc:
        _tell(exit_w, _PID.pack(-(exc.errno or 1)))
        for fd in fds:
            os.close(fd)
        return True
    if pid == 0:  # the worker
        code = EXIT_CANCELLED
        try:
            processes.become_task_worker(server)
            # The fd only: closing the socket object runs Python code (and copies pages)
            # for an object this process drops at its os._exit anyway.
            os.close(sock.fileno())
            poller.close()
            for pidfd, (_, other_exit) in workers.items():
                os.close(pidfd)
                os.close(other_exit)
            os.close(exit_w)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.close(out_w)
            os.close(err_w)
            prepare_worker_process(pipes=True)
            request: TaskRequest = _Unpickler(io.BytesIO(message[header_end:]), shared).load()
            code = execute_task(request)
            finish_worker_process(request, code)
        except BaseException as exc:  # noqa: BLE001 (a worker must end by os._exit)
            code = worker_failed(exc)
        finally:
            os._exit(code)
    _tell(exit_w, _PID.pack(pid))
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    os.close(out_w)
    os.close(err_w)
    pidfd = os.pidfd_open(pid)
    workers[pidfd] = (pid, exit_w)
    poller.register(pidfd, select.EPOLLIN)
    return True


def _reap_one(pidfd: int, workers: dict[int, tuple[int, int]], poller: select.epoll,
              adopter: processes.Adopter) -> None:
    pid, exit_w = workers.pop(pidfd)
    poller.unregister(pidfd)
    os.close(pidfd)
    processes.signal_group_quietly(pid, signal.SIGKILL)  # a zombie: its group is still its
    adopter.sweep(keep={p for p, _ in workers.values()} | {pid})
    _, status = os.waitpid(pid, 0)
    _tell(exit_w, _STATUS.pack(status))
    os.close(exit_w)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    """`size` bytes from a stream socket (EOFError when the other end closed first); the
    local fork server's and the Dask zygote's protocols both read with it."""
    chunks = []
    while size > 0:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the socket mid-message")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _tell(exit_w: int, data: bytes) -> None:
    """Write to an exit pipe (12 bytes in all: never more than the pipe holds)."""
    try:
        os.write(exit_w, data)
    except OSError:  # the orchestrator closed its end: it no longer waits for this worker
        pass

