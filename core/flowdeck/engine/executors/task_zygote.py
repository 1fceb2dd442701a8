"""A Dask worker's zygote: one single-threaded process per flow class that forks attempts.

Starting each attempt as a multiprocessing child cost a fresh interpreter state per
attempt: the process object pickled and passed, the child's bootstrap, and above all the
flow class unpickled again, with every module the flow file imports (a flow importing
pandas paid that import per task). The zygote loads the class once (`serve`), freezes
what it holds for the collector, and forks a child per attempt that inherits all of it.

The worker asks over a Unix socket (`Zygote.fork`): one message per attempt carrying
the attempt's payload and paths, with the write ends of its output, report and exit
pipes as SCM_RIGHTS fds; the zygote answers with the child's pid (or, when it could not
load the class, with the failure every attempt of it reports). The zygote reaps its
children and writes each one's wait status into that child's exit pipe, so the worker
learns the end of an attempt by reading the pipe, the way the local executor's fork
server reports.

The zygote is a child of multiprocessing's fork server (never a fork of the
multi-threaded worker). It exits when the worker closes the socket or dies (EOF), and
its children then die with it (parent-death signal), as they die with the worker.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import selectors
import signal
import socket
import struct
import threading
from typing import Any

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engine import task
from flowdeck.engine.executors import remote_task
from flowdeck.engine.executors.forkserver import read_exactly
from flowdeck.engines import processes
from flowdeck.store import objectstore

_LENGTH = struct.Struct("<Q")
_STATUS = struct.Struct("<i")
#: The fds of one attempt, in the order they travel: stdout, stderr, report, exit.
ATTEMPT_FDS = 4


@dataclass(frozen=True)
class ForkRequest:
    """One attempt, as the worker hands it to the zygote (its fds travel beside it)."""

    payload: bytes
    worker: str
    worker_pid: int
    paths: remote_task.WorkerPaths | None
    datastore: str | None = None  # the run's object store, imported before the fork


# -- the worker's side ----------------------------------------------------------------------

class Zygote:
    """The worker's handle on one zygote: its process and its end of the socket."""

    def __init__(self, process: Any, sock: socket.socket):
        self.process = process
        self.sock = sock
        self.lock = threading.Lock()  # one request and its answer at a time
        self.in_flight = 0  # attempts started through it that have not ended
        self.broken = False

    @classmethod
    def start(cls, context: Any, starter: Any, flow_class: bytes, files: dict[str, str],
              worker: str) -> Zygote:
        """A new zygote for this flow class (`starter` starts a multiprocessing Process
        of `context` from a daemonic worker, see `dask_worker._start`)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # daemonic: a worker that exits ends it (multiprocessing joins the others, and
        # this one waits for the EOF that the worker's exit itself would give)
        process = context.Process(target=serve, name="flowdeck zygote", daemon=True,
                                  args=(theirs, flow_class, files, worker))
        try:
            starter(process)
        finally:
            theirs.close()
        return cls(process, ours)

    def fork(self, request: ForkRequest, fds: list[int]) -> int | remote_task.LoadFailure:
        """Start one attempt; its pid, or why the class cannot load. OSError when the
        zygote is gone (the caller starts another)."""
        body = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        with self.lock:
            try:
                socket.send_fds(self.sock, [_LENGTH.pack(len(body))], fds)
                self.sock.sendall(body)
                answer = pickle.loads(read_exactly(self.sock, _receive_length(self.sock)))
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                self.broken = True
                raise OSError(f"the zygote is gone ({exc})") from None
        if isinstance(answer, remote_task.LoadFailure):
            return answer
        return int(answer)

    def close(self) -> None:
        """Let it go: it exits on EOF, and its children (none, when idle) with it."""
        try:
            self.sock.close()
        finally:
            self.process.join(timeout=5)


def read_status(exit_fd: int) -> int:
    """The wait status the zygote wrote for an ended child (blocking); SIGKILL's when the
    zygote died first (its children die with it)."""
    data = b""
    while len(data) < _STATUS.size:
        chunk = os.read(exit_fd, _STATUS.size - len(data))
        if not chunk:
            return signal.SIGKILL
        data += chunk
    (status,) = _STATUS.unpack(data)
    return int(status)


# -- the zygote's side ----------------------------------------------------------------------

def serve(sock: socket.socket, flow_class: bytes, files: dict[str, str], worker: str) -> None:
    """The zygote's whole life (see the module doc)."""
    remote_task.drop_fork_server_fds()
    # Started as a daemonic process, but a step may start processes of its own
    # (multiprocessing refuses that in a daemonic process, and the attempts inherit this).
    multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
    processes.die_with_parent(os.getppid())  # the fork server, which dies with the worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C at `dask worker`: the worker's
    loaded = remote_task.load_flow_class(flow_class, files, worker)
    task.warm_exit_state("zygote")  # what it holds now is what every attempt inherits
    gc.freeze()  # the children's collector then skips all of this: fewer pages copied
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    exits: dict[int, int] = {}  # child pid -> the write end of its exit pipe
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in selector.select():
                if key.fd == wake_r:
                    _drain(wake_r)
                elif not _serve_one(sock, loaded, exits, (wake_r, wake_w, selector)):
                    return
            _reap(exits)
    finally:
        os._exit(0)


def _serve_one(sock: socket.socket, loaded: type | remote_task.LoadFailure,
               exits: dict[int, int], own: tuple[int, int, Any]) -> bool:
    """Answer one request; False when the worker is gone (EOF)."""
    try:
        header, fds, _, _ = socket.recv_fds(sock, _LENGTH.size, ATTEMPT_FDS)
        if not header:
            return False
        while len(header) < _LENGTH.size:
            header += read_exactly(sock, _LENGTH.size - len(header))
        request: ForkRequest = pickle.loads(read_exactly(sock, _LENGTH.unpack(header)[0]))
    except (OSError, EOFError):
        return False
    if isinstance(loaded, remote_task.LoadFailure) or len(fds) != ATTEMPT_FDS:
        for fd in fds:
            os.close(fd)
        _answer(sock, loaded if isinstance(loaded, remote_task.LoadFailure)
                else remote_task.LoadFailure(remote_task.EXIT_LOAD_FAILED,
                                             "the attempt's pipes did not arrive"))
        return True
    out_w, err_w, report_w, exit_w = fds
    objectstore.preload(request.datastore)  # once: the later children inherit it
    task.flush_before_fork()
    pid = processes.fork_holding_signals()
    if pid == 0:
        _become_attempt(sock, exits, own, exit_w)
        remote_task.child_main(loaded, request.payload, out_w, err_w, report_w,
                               request.worker, request.worker_pid, request.paths)
    for fd in (out_w, err_w, report_w):
        os.close(fd)
    exits[pid] = exit_w
    _answer(sock, pid)
    return True


def _become_attempt(sock: socket.socket, exits: dict[int, int], own: tuple[int, int, Any],
                    exit_w: int) -> None:
    """In a new child: drop what is the zygote's (its socket, its wake-up pipe, the other
    attempts' exit pipes and its own: only the zygote writes statuses)."""
    wake_r, wake_w, selector = own
    processes.drop_signal_wakeup()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    selector.close()
    sock.close()
    for fd in (wake_r, wake_w, exit_w, *exits.values()):
        os.close(fd)


def _reap(exits: dict[int, int]) -> None:
    """Write the status of every ended child into its exit pipe."""
    while exits:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = exits.pop(pid, None)
        if fd is None:
            continue
        try:
            os.write(fd, _STATUS.pack(status))
        except OSError:  # the worker stopped waiting (it closed its end)
            pass
        os.close(fd)


def _answer(sock: socket.socket, answer: object) -> None:
    body = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        sock.sendall(_LENGTH.pack(len(body)) + body)
    except OSError:
        pass  # the worker is gone: the next read sees EOF


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _receive_length(sock: socket.socket) -> int:
    return int(_LENGTH.unpack(read_exactly(sock, _LENGTH.size))[0])
