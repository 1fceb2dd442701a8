"""The part of the Dask executor that runs inside a Dask worker process.

`run_attempt` is what the orchestrator submits per attempt. It refuses a worker whose
flowdeck differs from the orchestrator's, claims the attempt (a worker that dies mid-task
makes the scheduler run the function again elsewhere; the second run must not run the
step again, it reports the loss), starts the attempt in a child process forked by the
flow class's zygote on this worker (`task_zygote`, started once per class), streams the
child's stdout/stderr back to the orchestrator as events of the run's topic while it
runs, and ends with an "end" event carrying the wait status and
how many output chunks preceded it (and the files of the attempt's task folder, its
record and cards, when this worker does not share the orchestrator's folder and wrote
them into a scratch folder). `signal_attempt` (sent with `Client.run`) delivers
Ctrl+C or SIGKILL to an attempt's process group on this worker.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import selectors
import signal
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

import flowdeck
from flowdeck.engine.executors import remote_task, task_zygote
from flowdeck.engines import processes

#: Output is forwarded in chunks of at most this many bytes (the scheduler keeps the last
#: 1,000 events of a topic, so a chatty task holds at most ~32 MB there).
CHUNK = 32 * 1024
#: How often a running attempt looks whether its run has ended (`RunWatch`).
RUN_WATCH_S = 2.0
#: After an attempt's process exited, how long its pipes may stay open (held by a process
#: it started in another session) before its output is given up.
DRAIN_S = 2.0
#: A stop that came before its attempt's child existed waits here (bounded).
_STOPS_KEPT = 10_000

_lock = threading.Lock()
_children: dict[str, int] = {}  # dask key -> the attempt's child pid (its process group)
_stops: OrderedDict[str, int] = OrderedDict()  # dask key -> signal asked before it started
#: dask keys of attempts whose child has exited, until their output is drained: their pid
#: may be another process's by now, so nothing is sent to it alone
_exited: set[str] = set()
_context: Any = None
#: flow class digest -> its zygote on this worker (`task_zygote`), oldest first
_zygotes: OrderedDict[str, task_zygote.Zygote] = OrderedDict()
_zygote_start_lock = threading.Lock()  # one zygote started at a time (no duplicates)
#: Zygotes of other flow classes kept while idle (each holds its flow's imports in memory;
#: the same flow's next run, with an unchanged file, reuses its zygote).
_ZYGOTES_KEPT = 2


def worker_version() -> str:
    """This worker's flowdeck version (the orchestrator compares it with its own)."""
    return flowdeck.__version__


def version_message(worker: str, theirs: str, ours: str) -> str:
    return (f"Worker {worker} runs flowdeck {theirs}, but the orchestrator runs flowdeck "
            f"{ours}; mixed versions could read or write the store differently. Install "
            f"flowdeck {ours} on the workers (pip install flowdeck=={ours}), or run the flow "
            f"with flowdeck {theirs}.")


def run_attempt(key: str, topic: str, flow_class: bytes, files: dict[str, str],
                payload: bytes, version: str, root: str = "", attempt_json: str = "",
                datastore: str | None = None, run_json: str = "",
                pid_namespace: str = "") -> dict[str, Any]:
    """Run one attempt on this worker; returns {"status", "chunks", "error", "files"}
    (see module). `flow_class` and `files` are `remote_task.pack_class`'s bytes and the
    source files of what travels by value; `payload` is `remote_task.pack`'s. `root`,
    `attempt_json` and `datastore` are the request's store folder, record path and object
    store: a worker that does not share the orchestrator's folder writes into a scratch
    folder and returns its files (`remote_task.worker_paths`). `run_json`: the run's
    record, watched while the attempt runs where the folder is shared (`RunWatch`), and
    `pid_namespace` the orchestrator's (`pid_namespace_id()`)."""
    from distributed import Event, get_worker
    worker = get_worker()
    where = worker.address
    if flowdeck.__version__ != version:
        refusal = version_message(where, flowdeck.__version__, version)
        return _end(worker, topic, key, 75 << 8, 0, refusal)  # EX_TEMPFAIL
    paths = remote_task.worker_paths(root, attempt_json, datastore) if root else None
    if root and paths is None:
        return _end(worker, topic, key, remote_task.EXIT_LOAD_FAILED << 8, 0,
                    remote_task.store_not_here_message(where, root))
    claim = Event(f"{key}-claim")
    if claim.is_set():  # the worker that first ran this attempt was lost
        return {"lost": True}
    claim.set()  # waited for: a worker dying a moment later must leave the claim behind
    worker.log_event(topic, {"k": key, "started": where, "pid": os.getpid()})
    with _lock:
        asked = _stops.pop(key, None)
    if asked is not None:  # stopped before it started: nothing runs
        return _end(worker, topic, key, signal.SIGKILL, 0, None)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    report_r, report_w = os.pipe()
    exit_r, exit_w = os.pipe()
    request = task_zygote.ForkRequest(payload, where, os.getpid(), paths, datastore)
    try:
        started = _fork_attempt(flow_class, files, where, request,
                                [out_w, err_w, report_w, exit_w])
    finally:  # the zygote and the child have their own copies now
        for fd in (out_w, err_w, report_w, exit_w):
            os.close(fd)
    if isinstance(started, remote_task.LoadFailure):
        for fd in (out_r, err_r, report_r, exit_r):
            os.close(fd)
        print(started.message, file=sys.stderr, flush=True)
        return _end(worker, topic, key, started.code << 8, 0, started.message)
    pid, zygote = started
    with _lock:
        _children[key] = pid
        late = _stops.pop(key, None)
    if late is not None:
        _signal_group(pid, late)
    watch = RunWatch(run_json, bool(pid_namespace) and pid_namespace == pid_namespace_id()) \
        if run_json and paths is not None and not paths.relocated else None
    try:
        chunks = _forward(worker, topic, key, out_r, err_r, exit_r, pid, watch)
        status = task_zygote.read_status(exit_r)
    finally:
        os.close(exit_r)
        with _lock:
            _children.pop(key, None)
            _exited.discard(key)
            zygote.in_flight -= 1
        _signal_group(pid, signal.SIGKILL, running=False)  # what the step left in its group
    error = _read_report(report_r)
    files_back = remote_task.shipped_files(paths) if paths is not None else {}
    return _end(worker, topic, key, status, chunks, error, files_back)


def _fork_attempt(flow_class: bytes, files: dict[str, str], where: str,
                  request: task_zygote.ForkRequest, fds: list[int]
                  ) -> tuple[int, task_zygote.Zygote] | remote_task.LoadFailure:
    """Start the attempt in this flow class's zygote (made on first use, made again once
    if it died); (pid, zygote), or the `LoadFailure` the class gives."""
    why = "see the worker's log"
    for _ in range(2):
        try:
            zygote = _zygote_for(flow_class, files, where)
        except OSError as exc:  # no process to fork from (a fork server that cannot start)
            why = f"{type(exc).__name__}: {exc}"
            continue
        try:
            answer = zygote.fork(request, fds)
        except OSError:
            with _lock:
                zygote.in_flight -= 1
            _drop_zygote(zygote)
            continue
        if isinstance(answer, int):
            return answer, zygote
        with _lock:
            zygote.in_flight -= 1
        return answer
    return remote_task.LoadFailure(remote_task.EXIT_LOAD_FAILED,
                                   f"Worker {where} could not start the task's process "
                                   f"twice in a row ({why}). The step did not run; fix the "
                                   "worker's environment, then resume the run.")


def _zygote_for(flow_class: bytes, files: dict[str, str], where: str) -> task_zygote.Zygote:
    """This flow class's zygote, counted as in use (one per class per worker; a few idle
    ones are kept for the next runs of the same flow)."""
    digest = hashlib.sha256(flow_class + repr(sorted(files.items())).encode()).hexdigest()
    with _zygote_start_lock:
        with _lock:
            zygote = _zygotes.get(digest)
            if zygote is not None and not zygote.broken:
                _zygotes.move_to_end(digest)
                zygote.in_flight += 1
                return zygote
        zygote = task_zygote.Zygote.start(_context_for_children(), _start, flow_class, files,
                                          where)
        with _lock:
            zygote.in_flight += 1
            _zygotes[digest] = zygote
            idle = [d for d, z in _zygotes.items() if z.in_flight == 0 and d != digest]
            retired = [_zygotes.pop(d) for d in idle[:max(0, len(_zygotes) - _ZYGOTES_KEPT)]]
    for old in retired:
        old.close()
    return zygote


def _drop_zygote(zygote: task_zygote.Zygote) -> None:
    with _lock:
        for digest, known in list(_zygotes.items()):
            if known is zygote:
                del _zygotes[digest]
    try:
        zygote.close()
    except OSError:
        pass


def _read_report(report_r: int) -> str | None:
    """The line a child that could not load its task left (None: it loaded)."""
    try:
        os.set_blocking(report_r, False)
        data = b""
        while True:
            chunk = os.read(report_r, 65536)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    except OSError:
        data = b""
    finally:
        os.close(report_r)
    return data.decode("utf-8", "replace") if data else None


def signal_attempt(key: str, sig: int) -> bool:
    """Deliver `sig` to an attempt running here (SIGINT: to its process, as Ctrl+C; else its
    group); remembered for a moment if the attempt has not started. True if it was here."""
    with _lock:
        pid = _children.get(key)
        exited = key in _exited
        if pid is None:
            _stops[key] = sig
            while len(_stops) > _STOPS_KEPT:
                _stops.popitem(last=False)
            return False
    if sig == signal.SIGINT:
        if not exited:  # its pid may be another process's by now
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
    else:
        _signal_group(pid, sig, running=not exited)
    return True


def nudge_attempts(keys: list[str]) -> int:
    """Nudge (`processes.nudge`) each of these attempts whose child runs here; how many.
    Never remembered for one not started, as `signal_attempt` remembers a stop: a nudge
    has nothing to wake there, and a remembered signal keeps an attempt from starting."""
    with _lock:
        pids = [_children[key] for key in keys if key in _children and key not in _exited]
    for pid in pids:
        processes.nudge(pid)
    return len(pids)


def _end(worker: Any, topic: str, key: str, status: int, chunks: int,
         error: str | None, files: dict[str, bytes] | None = None) -> dict[str, Any]:
    """Say the attempt ended, as an event (it follows the output) and as the result; with
    the task folder's files when this worker does not share the orchestrator's folder."""
    result = {"status": status, "chunks": chunks, "error": error, "files": files or {}}
    worker.log_event(topic, {"k": key, "end": status, "chunks": chunks, "error": error,
                             "files": files or {}})
    return result


class RunWatch:
    """Whether the attempt's run has ended while the attempt goes on: the orchestrator
    lost the scheduler (killed, restarted), so it failed the run and can no longer stop
    the attempt. Such an attempt ran on, then recorded its success in a failed run (a
    review: the client then listed both tasks the run named as failed as successful, and a
    resume reused them). Read every RUN_WATCH_S from the run's record, on a worker that
    shares the orchestrator's folder; once ended, the attempt gets SIGINT (its clean-up
    runs, as a cancel's would), then SIGKILL once the run's grace for a cancel's clean-up
    (`runtime.CANCEL_GRACE_S`) has passed."""

    def __init__(self, run_json: str, sees_orchestrator: bool) -> None:
        self.run_json = run_json
        #: Whether this worker sees the orchestrator's processes (its pid namespace): only
        #: then can a gone pid say the run crashed. A worker in a container of its own on
        #: the same host (same host name) saw no such pid and stopped a healthy run.
        self.sees_orchestrator = sees_orchestrator
        self.next_look = time.monotonic() + RUN_WATCH_S
        self.told = 0  # signals sent

    def due(self) -> float:
        return max(0.0, self.next_look - time.monotonic())

    def look(self, pid: int) -> None:
        if self.told:  # the grace is over
            _signal_group(pid, signal.SIGKILL)
            self.next_look = time.monotonic() + RUN_WATCH_S
            return
        if self._run_ended():
            from flowdeck.engine.runtime import CANCEL_GRACE_S
            _signal_group(pid, signal.SIGINT)
            self.told += 1
            self.next_look = time.monotonic() + CANCEL_GRACE_S
            return
        self.next_look = time.monotonic() + RUN_WATCH_S

    def _run_ended(self) -> bool:
        """The run is no longer running: its record says it ended, or, where this worker
        sees the orchestrator's processes, it crashed (the store's one crash rule)."""
        from flowdeck.store.index import effective_status
        from flowdeck.store.records import RunRecord
        from flowdeck.store.status import RUNNING
        try:
            record = RunRecord.read(self.run_json)
        except (OSError, ValueError):  # not yet written, or being replaced: not ended
            return False
        status = effective_status(record) if self.sees_orchestrator else record.status
        return status != RUNNING


def pid_namespace_id() -> str:
    """This process's pid namespace (`pid:[4026531836]`; "" where there is none to read)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _forward(worker: Any, topic: str, key: str, out_r: int, err_r: int, exit_r: int,
             pid: int, watch: RunWatch | None = None) -> int:
    """Send the child's output as it comes, until both pipes close; the number of chunks.

    When the child exits (its exit pipe turns readable: the zygote wrote its status, or
    died), what it left in its process group (holding the pipes open) is killed; output
    still buffered is sent, and a pipe that something outside the group keeps open is
    given up after DRAIN_S. While it runs, `watch` stops it once its run has ended.
    """
    sentinel = exit_r
    sent = 0
    sel = selectors.DefaultSelector()
    streams = {out_r: 1, err_r: 2}
    for fd in streams:
        sel.register(fd, selectors.EVENT_READ)
    sel.register(sentinel, selectors.EVENT_READ)
    drain_until: float | None = None
    try:
        while streams:
            timeout = None if drain_until is None else max(0.0, drain_until - time.monotonic())
            if watch is not None and drain_until is None:
                timeout = watch.due()
            ready = sel.select(timeout)
            if not ready and drain_until is not None:
                break
            if watch is not None and drain_until is None and watch.due() == 0.0:
                watch.look(pid)
            for item, _ in ready:
                fd = int(item.fd)
                if fd == sentinel:  # read by the caller (`task_zygote.read_status`)
                    with _lock:
                        _exited.add(key)
                    sel.unregister(sentinel)
                    _signal_group(pid, signal.SIGKILL, running=False)
                    drain_until = time.monotonic() + DRAIN_S
                    continue
                data = os.read(fd, CHUNK)
                if not data:
                    sel.unregister(fd)
                    os.close(fd)
                    del streams[fd]
                    continue
                worker.log_event(topic, {"k": key, "s": streams[fd], "d": data})
                sent += 1
    finally:
        for fd in streams:
            os.close(fd)
        sel.close()
    return sent


def _signal_group(pid: int, sig: int, running: bool = True) -> None:
    """`sig` to the attempt's process group. While the child runs (`running`) and has not
    yet made its group, to the child alone; once it exited, never to the pid alone (it
    may belong to another process by then)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        if not running:
            return
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _context_for_children() -> Any:
    """multiprocessing's fork server, which preloaded the zygote's side: a fresh,
    single-threaded parent for each zygote (forking the multi-threaded worker itself
    could copy a held lock)."""
    global _context
    with _lock:
        if _context is None:
            _short_socket_folder()
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["flowdeck.engine.executors.task_zygote"])
            _context = context
        return _context


#: The longest path of a Unix socket: sun_path holds 108 bytes on Linux, 104 on macOS
#: (with the final NUL), and multiprocessing's own names take 32 of them.
_SOCKET_PATH_MAX = 103
_SHORT_TEMP_BASES = ("/tmp", "/var/tmp", "/dev/shm")


def _short_socket_folder() -> None:
    """Give multiprocessing a temporary folder short enough for its fork server's socket.

    The fork server listens on `<tempdir>/pymp-XXXXXXXX/listener-XXXXXXXX`, under $TMPDIR.
    A worker whose $TMPDIR is deep (a scratch folder per job, per container) failed every
    task with "AF_UNIX path too long". Python 3.13 falls back to a short system folder
    then; this does the same for 3.11 and 3.12, the way `multiprocessing.util.get_temp_dir`
    makes its folder (removed at exit). Nothing changes when $TMPDIR is short enough or
    multiprocessing already has its folder."""
    import shutil
    import tempfile
    from multiprocessing import process, util
    config = process.current_process()._config  # type: ignore[attr-defined]
    if config.get("tempdir") is not None:
        return
    if len(os.fsencode(tempfile.gettempdir())) + 32 <= _SOCKET_PATH_MAX:
        return
    for base in _SHORT_TEMP_BASES:
        try:
            folder = tempfile.mkdtemp(prefix="pymp-", dir=base)
        except OSError:  # missing, or not ours to write: the next one
            continue
        util.Finalize(None, util._remove_temp_dir,  # type: ignore[attr-defined]
                      args=(shutil.rmtree, folder), exitpriority=-100)
        config["tempdir"] = folder
        return


_start_lock = threading.Lock()


def _start(process: Any) -> None:
    """Start a child although a Dask worker is a daemonic process (multiprocessing refuses
    children there; ours are watched and killed by this worker, and die with it), and
    without making the child import the worker's main module.

    multiprocessing tells every child to run the parent's `__main__` again (for a worker
    spawned by a LocalCluster: the script that made the cluster, a flow file with all its
    imports; for `dask worker`: Dask's command line), which cost tens to hundreds of
    milliseconds per zygote. The zygote runs `task_zygote.serve`, imported by name, and
    needs nothing of that module.
    """
    from multiprocessing import spawn
    config = multiprocessing.current_process()._config  # type: ignore[attr-defined]
    original = spawn.get_preparation_data

    def lean(name: str) -> dict[str, Any]:
        data = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data
    with _start_lock:
        daemon = config.get("daemon")
        config["daemon"] = False
        spawn.get_preparation_data = lean
        try:
            process.start()
        finally:
            spawn.get_preparation_data = original
            if daemon is not None:
                config["daemon"] = daemon
