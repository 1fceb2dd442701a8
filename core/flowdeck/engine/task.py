"""One task attempt, executed inside its own (forked) worker process.

The orchestrator forks, points fds 1 and 2 at pipes it reads, and calls
`execute_task`. The child runs the step, persists its artifacts, writes its
attempt metadata atomically and exits; it never returns into the caller.
"""

from __future__ import annotations

import _signal
import atexit
import errno
import gc
import io
import itertools
import os
import resource
import signal
import struct
import sys
import threading
import time
import weakref
from contextlib import AbstractContextManager
from dataclasses import field
from pathlib import Path
from typing import Any, NoReturn, cast

from flowdeck.authoring.current import current
from flowdeck.authoring.exceptions import (
    ExceptionWrapper,
    FailureHandledByCatch,
    MergeArtifactsException,
    StepTimeout,
    error_info,
    metaflow_type_name,
)
from flowdeck.authoring.merge import values_agree
from flowdeck.authoring.runsetup import before_task, is_parallel_worker, max_num_splits
from flowdeck.authoring.spec import (
    LOADED,
    FlowSpec,
    Inputs,
    new_flow_instance,
    parameter_names,
)
from flowdeck.authoring.values import UnboundedForeachInput
from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engine.alarm import alarm, arm, disarm
from flowdeck.engine.taskstate import Frame, StepContext, frames_signature
from flowdeck.engines import processes
from flowdeck.engines.processes import flush_c_stdio
from flowdeck.store.blobs import (
    LOAD_OVERRIDES,
    ArtifactPickleError,
    BlobRef,
    BlobStore,
    EncodedBlob,
    atomic_write_json,
)
from flowdeck.store.layout import datastore_of
from flowdeck.store.objectstore import UNREACHABLE, ObjectStoreError
from flowdeck.store.previews import PREVIEW_MIN_BYTES, write_preview
from flowdeck.store.records import ESCAPES_CATCH, write_attempt_record

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_DISK_FULL = 28  # errno ENOSPC: the worker could not even write its attempt record
#: sysexits' EX_CANTCREAT: the worker could not write its attempt record (a store error
#: other than a full disk; it printed which file and why on its stderr).
EXIT_STORE_ERROR = 73
EXIT_CANCELLED = 130

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


@dataclass
class ParentResult:
    """What a child task needs to know of one finished parent task."""

    step: str
    task_id: str
    artifacts: dict[str, BlobRef]
    frames: tuple[Frame, ...]
    caught: dict[str, Any] | None = None  # the exception @catch kept going after


@dataclass
class TaskRequest:
    """Everything a worker needs to run one attempt; handed over by fork, not pickled."""

    flow_cls: type
    flow_name: str
    run_id: str
    step: str
    task_id: str
    attempt: int
    node_type: str
    out_funcs: list[str]
    foreach_param: str | None
    frames: tuple[Frame, ...]
    parents: list[ParentResult]
    params: dict[str, Any]
    param_refs: dict[str, BlobRef]
    root: Path
    attempt_json: str
    source_hash: str = ""
    max_retries: int = 0
    catch_var: str | None = None
    catch: bool = False
    print_exception: bool = True
    timeout_s: float = 0.0
    origin_run_id: str | None = None
    input_paths: list[str] = field(default_factory=list)
    memory_mb: float | None = None  # @resources(memory=...) or the run's default limit
    memory_source: str = "@resources"
    #: For a foreach step: why its next step cannot run an unbounded foreach (no
    #: @unbounded_test_foreach_internal, or no join right after it); None when it can.
    unbounded_problem: str | None = None
    #: The object store (`s3://...`) whose working copy `root` is; filled in where the
    #: request is made, so that a worker on another machine (where `root` does not exist)
    #: writes blobs and records to the same store.
    datastore: str | None = None

    def __post_init__(self) -> None:
        if self.datastore is None:
            mark = datastore_of(self.root)
            self.datastore = mark.url if mark is not None and mark.role == "run" else None


_sigint_received = False


def _on_sigint(signum: int, frame: Any) -> None:
    """Python's own Ctrl+C handler, remembering that the interrupt came from a signal.
    From here on the cancel's nudges (`processes.nudge`) are ignored, so none reaches the
    step's clean-up: a call that does not retry when a signal breaks it (`os.lockf`, a C
    library's sleep) would fail or return early there."""
    global _sigint_received
    _sigint_received = True
    _stop_taking_nudges()
    raise KeyboardInterrupt


def _on_nudge(signum: int, frame: Any) -> None:
    """Nothing while the step's SIGINT handler is ours: a nudge's arrival is all it is for
    (`processes.nudge`). A step that installed a SIGINT handler of its own has had it
    called by now (Python runs a noted SIGINT before a nudge, the lower signal first), and
    handles its stop its own way: it is nudged no more, so at most one of its calls is
    broken (Python's own calls retry; one that does not would see one EINTR)."""
    if _signal.getsignal(_SIGINT) is not _on_sigint:
        _stop_taking_nudges()


def _stop_taking_nudges() -> None:
    """Block the nudge in the main thread, where the step's clean-up runs: none breaks a
    call there any more. Its handler stays: one Python noted before this (nudges come every
    0.2 s, and a worker busy in C code notes the SIGINT and a nudge together) runs as a
    no-op. Switching the handler to SIG_IGN here, inside a signal handler, left such a
    nudge noted with no handler, and CPython printed "OSError: Signal 23 ignored due to
    race condition" into the task's log (the campaign's cancel_rounds, 1 round in 60)."""
    _signal.pthread_sigmask(_signal.SIG_BLOCK, (_NUDGE,))


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors a write gets when its disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS


def disk_full_error(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The `error` of a run or task stopped because the store's disk is full."""
    return {"type": "DiskFull", "traceback": "",
            "message": f"disk full: {path}. Free space on that disk, or set FLOWDECK_HOME to a "
                       "folder on another disk, then run the flow again (earlier runs are "
                       "intact)."}


def store_write_error(exc: OSError, fallback: str | os.PathLike[str]) -> dict[str, Any]:
    """The `error` of a run stopped because the store refused a write that is not a full
    disk (the orchestrator's), and what a worker says that could not write its record.

    Before, such an OSError (ENAMETOOLONG from a flow path near PATH_MAX, say) escaped the
    orchestrator as a traceback and left run.json saying "running".
    """
    path = exc.filename or fallback
    if exc.errno == errno.ENAMETOOLONG:
        why = (f"the path is too long for the file system ({len(os.fsencode(path))} bytes). "
               "Move the flow to a folder with a shorter path, set FLOWDECK_HOME to one, or "
               "shorten the flow's and steps' names")
    elif exc.errno == errno.ENOENT:
        why = (f"{exc.strerror}: its folder was removed while the run wrote to it. Leave the "
               "store's folders (.flowdeck) alone while a run uses them")
    else:
        why = (f"{exc.strerror or exc}. Check that folder (permissions, free inodes), or set "
               "FLOWDECK_HOME to another one")
    return {"type": "StoreError", "traceback": "", "store": True,
            "message": f"cannot write {path}: {why}; then run the flow again."}


#: The Dask worker a remote task runs on (its address), set in the task's process: a
#: store error says it happened there, not on the orchestrator's machine.
WORKER_ENV = "FLOWDECK_WORKER"


def object_store_error(exc: ObjectStoreError) -> dict[str, Any]:
    """The `error` of a task the object store failed: a store problem, not the step's
    exception (it read "step `start` raised flowdeck.store.objectstore.ObjectStoreError"),
    said with where it happened. On a worker the advice is for the worker: its
    environment is its own (a worker started without $AWS_ENDPOINT_URL tried AWS while
    this machine's endpoint worked, and the advice named this machine's variables)."""
    worker = os.environ.get(WORKER_ENV)
    if not worker:
        return {"type": "StoreError", "traceback": "", "store": True, "message": str(exc)}
    advice = exc.advice.replace("this process", "the worker")
    if exc.reason.startswith(UNREACHABLE):
        advice += (" Set it on every worker, in the environment `dask worker` starts in: "
                   "a worker does not get the variables of the machine that starts the run.")
    return {"type": "StoreError", "traceback": "", "store": True, "worker": worker,
            "message": f"Worker {worker} could not {exc.operation} {exc.url}: {exc.reason}. "
                       f"{advice}"}


def memory_message(step: str, megabytes: float, source: str, said: str = "") -> str:
    """What a task that ran out of its memory limit reports (MemoryError, or killed).
    `said`: the MemoryError's own message, kept (a step's own `raise MemoryError("...")`,
    or a library's, said only "exceeded its memory limit")."""
    own = f" (MemoryError: {said})" if said else ""
    return (f"Step `{step}` exceeded its memory limit of {megabytes:g} MB ({source}){own}. "
            "Raise the limit or use less memory.")


def _status_field(name: bytes) -> bytes | None:
    """The value of one line of /proc/self/status (`name` with its colon); None where there
    is none (not Linux, an older kernel)."""
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(name):
                    return line.split()[1]
    except (OSError, IndexError):
        pass
    return None


def _data_size() -> int:
    """Bytes of private writable memory this process maps now (VmData, what RLIMIT_DATA counts)."""
    try:
        return int(_status_field(b"VmData:") or 0) * 1024
    except ValueError:
        return 0


def current_umask() -> int:
    """This process's umask, left as it is: Linux's /proc says it (Linux 4.7+); elsewhere it
    is set and put back, which a thread of this process creating a file meanwhile would see."""
    try:
        return int(_status_field(b"Umask:") or b"x", 8)
    except ValueError:
        mask = os.umask(0o077)
        os.umask(mask)
        return mask


def apply_memory_limit(megabytes: float | None) -> None:
    """Let this worker map at most `megabytes` more private memory than it inherited.

    RLIMIT_DATA, not RLIMIT_AS: address space is reserved without being used
    (measured on 2 cores: importing numpy adds 123 MB of address space, each
    thread that allocates adds a 64 MB malloc arena, PROT_NONE until used), so
    an address-space limit fails healthy steps, while RLIMIT_DATA counts only
    memory mapped writable (4 threads: +82 MB of address space, +16 MB of
    data). The limit is counted from what the worker inherited at fork (the
    flow module and its imports, shared with the orchestrator: numpy alone is
    81 MB of data), so a step gets its N MB whatever the module imported. An
    allocation past it raises MemoryError. Each process the step starts gets
    the same limit of its own (rlimits are per process).
    """
    if not megabytes or megabytes <= 0:
        return
    limit = _data_size() + int(megabytes * 1024 * 1024)
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (ValueError, OSError):
        pass


def prepare_worker_process(pipes: bool = False) -> None:
    """Reset what the child inherited from the orchestrator: signals, stdio. Its caller has
    dropped the parent's signal wake-up fd already (`processes.become_task_worker`, the
    zygote's `_become_attempt`), before closing the parent's fds.

    `pipes`: the caller made fds 1 and 2 pipes; the worker then takes the streams
    `warm_worker_state` built over them (`_STDIO`) instead of making
    its own. `_signal.signal`, not `signal.signal`: the latter turns the previous handler
    into an enum member (raising and catching a ValueError for a function), work whose
    every object a forked worker would copy-on-write for a result it ignores.
    """
    _signal.signal(_SIGINT, _on_sigint)
    _signal.signal(_NUDGE, _on_nudge)
    _signal.signal(_SIGTERM, _SIG_DFL)
    _signal.signal(_SIGCHLD, _SIG_DFL)
    processes.release_held_signals()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    # Whatever sys.stdout was in the parent (a notebook stream, a capture),
    # the child writes to fds 1 and 2, which are the orchestrator's pipes.
    if pipes and _STDIO:
        sys.stdout, sys.stderr = _STDIO
    else:
        sys.stdout, sys.stderr = _worker_stream(1), _worker_stream(2)
    _drop_inherited_exit_work()


def _drop_inherited_exit_work() -> None:
    """Objects the orchestrator made at import with a cleanup at exit (`weakref.finalize`:
    a module-level TemporaryDirectory) are the run's: the run's tasks share them, so a
    task must not clean them up at its end. The atexit handlers it inherited do run at the
    task's end, as they would in a process that imported the flow (Metaflow's tasks do):
    `logging.shutdown` flushes the task's buffered records, `multiprocessing` joins the
    children the task started."""
    inherited = _INHERITED_EXIT[0] if _INHERITED_EXIT else None
    if (inherited is None or inherited.finalizers) and \
            weakref.finalize._registered_with_atexit:  # type: ignore[attr-defined]
        for info in weakref.finalize._registry.values():  # type: ignore[attr-defined]
            info.atexit = False
        weakref.finalize._registered_with_atexit = False  # type: ignore[attr-defined]
    _drop_inherited_multiprocessing()


def _drop_inherited_multiprocessing() -> None:
    """What multiprocessing does in a process it forks (`BaseProcess._bootstrap`): the
    children and the finalizers of the parent are not this process's. Otherwise its exit
    handler, run at the task's end, would terminate a module-level Pool the run's other
    tasks still use (and signal the run's own children)."""
    process = sys.modules.get("multiprocessing.process")
    if process is not None:
        process._children = set()  # type: ignore[attr-defined]
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util._finalizer_registry.clear()


#: How long a task waits, once its step has returned, for the threads and exit handlers
#: it left running ($FLOWDECK_EXIT_WAIT_S). Python would wait for ever (and so would a
#: Metaflow task); a task then ends anyway, says so, and the run stops what it left.
EXIT_WAIT_S = 30.0
EXIT_WAIT_ENV = "FLOWDECK_EXIT_WAIT_S"


def worker_failed(exc: BaseException) -> int:
    """The exit code of a task worker that an exception ended outside its task's own
    handling (its set-up, its end): a cancel that came early stays a cancel; anything else
    is Flowdeck's fault, said with its traceback on the task's stderr (it ended with the
    cancel's code 130 and nothing said, "os._exit or a crash in native code")."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_CANCELLED
    try:
        import traceback
        text = "".join(traceback.format_exception(exc))
        os.write(2, (f"[flowdeck] the task's worker process failed outside the step (a "
                     f"Flowdeck bug: please report it with this traceback):\n{text}")
                 .encode("utf-8", "replace"))
    except Exception:  # noqa: BLE001 (its stderr may be gone; the exit code still says it)
        pass
    return EXIT_FAILED


def finish_worker_process(req: TaskRequest, code: int) -> None:
    """Before a worker's `os._exit(code)`: end what the task started as a normal interpreter
    exit would. Wait for its non-daemon threads, run the exit handlers (atexit, and the
    `weakref.finalize` cleanups of what the task made: a TemporaryDirectory it left open),
    and flush every open file: those the run had when it forked the task, those the task
    opened and left open, and C's stdio buffers (native code's printf). Under `python`
    and under Metaflow (a process per task) all of that happens; a forked worker cannot
    exit normally (tearing down its copy of the orchestrator's heap would write every
    page of it), so it does it here.
    The waiting is bounded (`EXIT_WAIT_S`): past it the task flushes and exits with
    `code` from here. A task stopped by Ctrl+C (a cancel) does not wait. Never raises:
    the task's outcome is already recorded (any error is printed on the task's stderr,
    as Python prints an exit handler's)."""
    armed = None
    try:
        threads = threading.active_count() > 1
        # A cancelled task ends now (the run kills what it left); one with nothing left
        # to wait for arms no timer.
        if not _sigint_received and (threads or atexit._ncallbacks()):
            # From here a cancel's interrupt raises from C, as in a plain `python` process:
            # Python's report of an exit handler it cuts short ("Exception ignored in
            # atexit callback") then shows the handler's frames, not `_on_sigint`'s.
            _signal.signal(_SIGINT, _signal.default_int_handler)
            armed = arm(_exit_wait_s(), lambda: _stop_waiting(req.step, code), unblock=True)
            if threads:
                _wait_for_threads(req.step)
            if atexit._ncallbacks():
                atexit._run_exitfuncs()
    except KeyboardInterrupt:
        pass
    except BaseException:  # noqa: BLE001 (shown, as the interpreter shows it at exit)
        import traceback
        traceback.print_exc()
    finally:
        try:
            disarm(armed)
        finally:
            _flush_everything()
            try:
                _tell_ended(code)
            except BaseException:  # noqa: BLE001 (a Ctrl+C mid-clean-up: the exit tells instead)
                pass


#: A worker's word that its task has ended (`finish_worker_process`, its last act before
#: `os._exit`): magic, pid, exit code, and whether it found processes of its own left
#: (killed; reaped unless stuck: then the run's sweep reaps them). 20 bytes, less than
#: PIPE_BUF: written at once, so the workers sharing the run's pipe never interleave.
END_MESSAGE = struct.Struct("=4sqii")
END_MAGIC = b"FDnd"
#: The write end of the run's pipe for END_MESSAGE and its identity (device, inode),
#: set by `set_end_pipe`; empty where nobody listens (a worker of another executor).
_END_PIPE: list[tuple[int, tuple[int, int]]] = []
#: How long a worker waits for the processes it left to die once killed (SIGKILL takes
#: effect when the process next runs: a moment, unless it is stuck in the kernel).
_LEFT_WAIT_S = 5.0


def set_end_pipe(fd: int | None) -> None:
    """In the process that forks workers: where its workers tell that they ended (None:
    nowhere, and close the previous pipe's write end)."""
    if _END_PIPE:
        os.close(_END_PIPE.pop()[0])
    if fd is not None:
        st = os.fstat(fd)
        _END_PIPE.append((fd, (st.st_dev, st.st_ino)))


def _tell_ended(code: int) -> None:
    """Tell the orchestrator this task has ended: its record is written, its output and
    files are flushed, what it waited for has ended, and what it left running is dead
    (killed here: this process is the parent of all of it, having adopted its orphans).
    The kernel's teardown of the process (about 1 ms here, more with a large heap) then
    overlaps the run's next steps.

    Said only when it is certain; otherwise the task ends by its exit, as it always
    did (the run then ends what it left): not while another thread of the task runs (a
    daemon thread could start processes after the clean-up, or print after the word),
    not when the step closed the pipe and its fd number now names a file of the step's,
    not when what it left would not die."""
    if not _END_PIPE or not _alone():
        return
    fd, identity = _END_PIPE[0]
    try:
        st = os.fstat(fd)
    except OSError:
        return
    if (st.st_dev, st.st_ino) != identity:
        return
    left = _end_what_it_left()
    if left is None:
        return
    try:
        os.write(fd, END_MESSAGE.pack(END_MAGIC, os.getpid(), code, left))
    except OSError:  # the run is gone or its pipe full: the exit itself tells it then
        pass


def _alone() -> bool:
    """Whether this process has one thread (C's own included: /proc counts them all)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _end_what_it_left() -> bool | None:
    """Kill and reap this worker's children (the processes its step left, and the orphans
    it adopted): False when there were none (one system call), True once all are gone,
    None when some would not end or could not be listed (the run's exit path ends them)."""
    if not _has_children():
        return False
    if processes.end_children(os.getpid(), set(), _LEFT_WAIT_S) or _has_children():
        return None
    return True


def _has_children() -> bool:
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _exit_wait_s() -> float:
    """The bound on the wait at exit, read at the exit: a step may set it (with
    @environment, or in its code) for the threads it leaves to finish their work."""
    try:
        return float(os.environ.get(EXIT_WAIT_ENV, EXIT_WAIT_S))
    except ValueError:
        return EXIT_WAIT_S


def _stop_waiting(step: str, code: int) -> NoReturn:
    """The task's wait at exit ran out: say what still runs, flush, and end the process
    (the run then stops what the task left, as it does with any leftover)."""
    running = _threads_left()
    what = (f"the threads it left running ({', '.join(running)}) have not ended" if running
            else "its exit handlers have not finished")
    print(f"[flowdeck] step `{step}` returned {_exit_wait_s():g} s ago and {what}: the task "
          f"ends now and stops them. Join them in the step for their work to finish (or "
          f"raise ${EXIT_WAIT_ENV}).", file=sys.stderr)
    _flush_everything()
    os._exit(code)


def _flush_everything() -> None:
    """Every open file, Python's stdio and C's (what a normal exit writes)."""
    try:
        _flush_files(_INHERITED_EXIT[0].files if _INHERITED_EXIT else [])
        _flush_files(_open_files(gc.get_objects()))  # gc.freeze(): only what the task made
    except Exception:  # noqa: BLE001 (a file object of the user's that cannot be listed)
        pass
    _flush_stdio()
    flush_c_stdio()


def _wait_for_threads(step: str) -> None:
    """Python's own wait at exit (`threading._shutdown`: the threading exit hooks, such as
    a ThreadPoolExecutor's shutdown, then a join of every non-daemon thread)."""
    waiting = _threads_left()
    if waiting:
        print(f"[flowdeck] step `{step}` returned; its task ends when the threads it left "
              f"running end, as a Python program does: {', '.join(waiting)}.",
              file=sys.stderr)
        _flush_stdio()
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()


def _threads_left() -> list[str]:
    """The names of the non-daemon threads besides this one (what an exit waits for)."""
    return [t.name for t in threading.enumerate()
            if t is not threading.current_thread() and not t.daemon]


#: The buffered file objects (what `open` returns, in text or binary mode).
_FILE_TYPES = frozenset((io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom))


def _open_files(objects: list[Any]) -> list[io.IOBase]:
    """The file objects among `objects` that may hold unwritten data. The type test runs
    in C (`compress`, `map`): the orchestrator's tens of thousands of objects in 1 ms."""
    files = itertools.compress(objects, map(_FILE_TYPES.__contains__, map(type, objects)))
    return [f for f in files if _writable(f)]


def _writable(handle: io.IOBase) -> bool:
    try:
        return not handle.closed and handle.writable()
    except ValueError:  # a detached TextIOWrapper
        return False


def _flush_files(files: list[io.IOBase]) -> None:
    for handle in files:
        try:
            handle.flush()
        except (OSError, ValueError):  # closed meanwhile, or a stream that cannot flush
            pass


def warm_exit_state(run_id: str) -> None:
    """In a process that forks workers, before it forks: note what it holds for its own
    exit (`_InheritedExit`; its open files once per run: a scan of every object)."""
    finalizers = bool(weakref.finalize._registered_with_atexit)  # type: ignore[attr-defined]
    if not (_INHERITED_EXIT and _INHERITED_EXIT[0].run_id == run_id):
        gc.unfreeze()  # objects frozen for earlier forks are not listed otherwise
        files = _open_files(gc.get_objects())
        gc.freeze()
        _INHERITED_EXIT[:] = [_InheritedExit(run_id, finalizers, files)]
    elif _INHERITED_EXIT[0].finalizers != finalizers:
        _INHERITED_EXIT[0].finalizers = finalizers


def flush_before_fork() -> None:
    """In a process that forks workers, right before a fork: flush what each worker would
    otherwise write again from its own copy of the buffer (stdio, and every open file
    of `warm_exit_state`, which `finish_worker_process` flushes at the task's end)."""
    _flush_stdio()
    if _INHERITED_EXIT:
        _flush_files(_INHERITED_EXIT[0].files)


@dataclass
class _InheritedExit:
    """What the process that forks workers holds for its own exit, read before it forks
    (`warm_exit_state`), so that a worker skips for free what is empty: finding it in
    each worker would copy the page of every object it looks at."""

    run_id: str  # the run it was read for
    finalizers: bool  # weakref.finalize registered with atexit
    files: list[io.IOBase]  # its open files (when the run forked its first task)


_INHERITED_EXIT: list[_InheritedExit] = []


def _worker_stream(fd: int, raw: type[io.FileIO] = io.FileIO) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw(fd, "w", closefd=False), encoding="utf-8",
                            errors="backslashreplace", line_buffering=True)


class _PipeFile(io.FileIO):
    """fd 1 or 2 of a task worker, which always is a pipe to the orchestrator, made before
    the fork by the process that forks workers, whose own fds 1 and 2 may be files (a run
    redirected to a log). A stream asks its file once, when it is made, whether it seeks:
    a pipe never does, whatever the fd was then. Everything else (writes, `tell`, `isatty`)
    asks the fd when it is called, in the worker: the pipe's answer."""

    def seekable(self) -> bool:
        return False


#: A worker's sys.stdout and sys.stderr, built once by the process that forks workers
#: (`warm_worker_state`) over fds 1 and 2, which each worker points at its pipes: the
#: streams a worker would build for itself, without building them (measured: 37 pages
#: copied on write per task, where the run's output went to a file).
_STDIO: list[io.TextIOWrapper] = []


# Plain ints: the enum members' `int()` is Python code run again in every worker.
_SIGINT, _SIGTERM, _SIGCHLD = int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGCHLD)
_NUDGE = int(processes.NUDGE_SIGNAL)
_SIG_DFL, _SIG_IGN = int(signal.SIG_DFL), int(signal.SIG_IGN)


def step_timeout(seconds: float, step: str) -> AbstractContextManager[None]:
    """@timeout: StepTimeout in the step once its time is up."""
    return alarm(seconds, lambda: StepTimeout(
        f"Step `{step}` timed out after {seconds:g} s (@timeout). Make it faster or raise "
        "the limit."))


class TaskFailure(Exception):
    """A failure described by the engine, with no traceback worth showing. `retry`: whether
    another attempt may pass (the user's code failed under the check); the engine's own
    checks of what the step did fail the same way every time, so @retry skips them."""

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry

    #: Its `type` in records and @catch: Metaflow reports its own checks of a step (a bad
    #: transition, a foreach input) as a MetaflowException, never an engine module's class.
    metaflow_name = "metaflow.exception.MetaflowException"


@dataclass
class Progress:
    """Where an attempt is, so that an interruption can be described precisely."""

    phase: str = "running"  # running | saving
    artifact: str | None = None


#: What every worker of a run needs and would otherwise build itself: the flow class's
#: parameter names and the run's local blob store (at most one of each: the latest run's).
#: `warm_worker_state` fills them in the process that forks the workers, before it forks,
#: so each worker inherits them: reading an inherited object copies fewer pages
#: (copy-on-write) than building a new one.
_PARAMETER_NAMES: list[tuple[type, list[str]]] = []
_RUN_BLOBS: list[tuple[Path, BlobStore]] = []
#: The umask of the process that forks a run's workers (run id, umask): the one each of
#: them starts with, and puts back once its step is over (`_after_step`).
_UMASK: list[tuple[str, int]] = []


def warm_worker_state(req: TaskRequest) -> None:
    """In the process that forks workers, before it forks: compute once what every worker
    of the run needs (see `_PARAMETER_NAMES`, `_STDIO`). An object store's blob store is
    never kept: its client belongs to the process that made it."""
    if not (_PARAMETER_NAMES and _PARAMETER_NAMES[0][0] is req.flow_cls):
        _PARAMETER_NAMES[:] = [(req.flow_cls, parameter_names(req.flow_cls))]
        track_script_classes(req.flow_cls)
        if not _STDIO:
            try:  # fds 1 and 2 closed here (a started app without them): workers build theirs
                _STDIO[:] = [_worker_stream(1, _PipeFile), _worker_stream(2, _PipeFile)]
            except OSError:
                pass
    warm_exit_state(req.run_id)
    if not (_UMASK and _UMASK[0][0] == req.run_id):
        _UMASK[:] = [(req.run_id, current_umask())]
    if req.datastore is not None or (_RUN_BLOBS and _RUN_BLOBS[0][0] is req.root):
        return
    if datastore_of(req.root) is None:  # a plain local store (a mark of any role: a client)
        _RUN_BLOBS[:] = [(req.root, BlobStore(req.root))]


def track_script_classes(flow_cls: type) -> None:
    """Keep each class of the flow's script itself from task to task, as a Metaflow task
    that imports the script again keeps it: an Enum member read in the next step `is` its
    member, `isinstance` holds, a dataclass set in two branches compares equal in the join.

    A class of `__main__` is pickled by value (cloudpickle: a reader elsewhere cannot
    import the script), and unpickling rebuilt it as another class, unless cloudpickle
    knows it by its tracker id. Each class gets an id made of the flow's and the class's
    names, here in the process that forks the tasks (they inherit it) and again in a
    resumed run, so a value finds the script's own class wherever the script is loaded;
    a reader without the script (the client, a preview) still rebuilds it. The flow
    classes themselves are left out: their steps are never to be replaced by the copy a
    value carries. Costs cloudpickle's import (7 ms) only when the script has classes."""
    if flow_cls.__module__ != "__main__":
        return  # importable: pickled by reference, nothing to track
    classes = _script_classes(vars(sys.modules["__main__"]).values(), set())
    if not classes:
        return
    try:
        from cloudpickle import cloudpickle as pickler
        lock = pickler._DYNAMIC_CLASS_TRACKER_LOCK
        by_class = pickler._DYNAMIC_CLASS_TRACKER_BY_CLASS
        by_id = pickler._DYNAMIC_CLASS_TRACKER_BY_ID
    except (ImportError, AttributeError):  # another cloudpickle: values rebuild, as before
        return
    with lock:
        for cls in classes:
            tracker_id = f"flowdeck:{flow_cls.__name__}:{cls.__qualname__}"
            by_class[cls] = tracker_id
            by_id[tracker_id] = cls
    _keep_as_written(pickler, classes)


def keep_tracked_script_classes() -> None:
    """In a process that got the flow class by value (a Dask worker): the script's classes
    it brought, tracked under the ids `track_script_classes` gave them, keep their methods
    when a stored value of theirs is read (a resumed run's reused values)."""
    try:
        from cloudpickle import cloudpickle as pickler
        lock = pickler._DYNAMIC_CLASS_TRACKER_LOCK
        by_id = pickler._DYNAMIC_CLASS_TRACKER_BY_ID
    except (ImportError, AttributeError):
        return
    with lock:
        classes = [cls for key, cls in by_id.items()
                   if isinstance(key, str) and key.startswith("flowdeck:")]
    if classes:
        _keep_as_written(pickler, classes)


def _keep_as_written(pickler: Any, classes: list[type]) -> None:
    _SCRIPT_CLASSES.update(classes)
    LOAD_OVERRIDES[(pickler.__name__, "_class_setstate")] = _keep_script_class_setstate


#: The script's classes as the script defines them now (`track_script_classes`).
_SCRIPT_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()


def _keep_script_class_setstate(obj: Any, state: Any) -> Any:
    """cloudpickle's class setter, except for the script's own classes. A value carries
    its class's methods as they were when it was stored, and cloudpickle sets them on the
    class it finds by tracker id: the script's. After the user fixed a method, a resumed
    run (or a rerun on save) ran the stored copy again, its traceback at <dynamic-code>.
    Metaflow's tasks import the script anew; here the script's class keeps what the
    script says. Only reading uses this (the store's LOAD_OVERRIDES): values are pickled
    with cloudpickle's own setter, so any reader can load them."""
    if obj in _SCRIPT_CLASSES:
        return obj
    from cloudpickle import cloudpickle as pickler
    return pickler._class_setstate(obj, state)


def _script_classes(values: Any, seen: set[int]) -> list[type]:
    """The classes the script defines (nested ones too), its flow classes left out."""
    found: list[type] = []
    for value in values:
        if not isinstance(value, type) or value.__module__ != "__main__" or id(value) in seen:
            continue
        seen.add(id(value))
        if issubclass(value, FlowSpec):
            continue
        found.append(value)
        found.extend(_script_classes(list(vars(value).values()), seen))
    return found


def _blob_store(req: TaskRequest) -> tuple[BlobStore, str | None]:
    """The run's blob store, and the `datastore` for `write_attempt_record`: the store the
    forking process made (same root, which is then known to be a plain local store: ""),
    or a new one (the request's datastore)."""
    if req.datastore is None and _RUN_BLOBS and _RUN_BLOBS[0][0] is req.root:
        return _RUN_BLOBS[0][1], ""
    return BlobStore(req.root, req.datastore), req.datastore


def _make_dir(path: str) -> None:
    """`os.makedirs(path, exist_ok=True)` in one system call when the parent folder exists
    (the orchestrator makes the step's folder; a worker makes its task's)."""
    try:
        os.mkdir(path)
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def execute_task(req: TaskRequest) -> int:
    """Run one attempt and record it; returns the process exit code."""
    started = time.time()
    task_dir = os.path.dirname(req.attempt_json)
    try:
        _make_dir(task_dir)
    except OSError as exc:
        return _report_store_error(req.step, task_dir, exc, ran=False)
    if req.memory_mb:
        apply_memory_limit(req.memory_mb)
    record: dict[str, Any] = {
        "step": req.step, "task_id": req.task_id, "attempt": req.attempt,
        "pid": os.getpid(), "start": started, "run_id": req.run_id,
        "frames": [f.as_dict() for f in req.frames],
        "signature": frames_signature(req.frames), "source_hash": req.source_hash,
        "input_paths": req.input_paths,
    }
    blobs, datastore = _blob_store(req)
    ctx, inputs = _build_context(req, blobs)
    flow = new_flow_instance(req.flow_cls, ctx)
    known = _PARAMETER_NAMES and _PARAMETER_NAMES[0][0] is req.flow_cls
    current._set(flow_name=req.flow_name, run_id=req.run_id, step_name=req.step,
                 task_id=req.task_id, retry_count=req.attempt,
                 origin_run_id=req.origin_run_id, _flow_class=req.flow_cls,
                 parameter_names=list(_PARAMETER_NAMES[0][1]) if known
                 else parameter_names(req.flow_cls))
    before_task(req.step, req.task_id, req.frames)
    cards = _start_cards(req, flow)
    code, status = EXIT_OK, "succeeded"
    progress = Progress()
    umask = _UMASK[0][1] if _UMASK and _UMASK[0][0] == req.run_id else current_umask()
    try:
        _run_step(flow, ctx, req, inputs, record, umask)
        record["foreach_splits"], unbounded = _foreach_splits(flow, req, _next_call_at(ctx))
        if unbounded:
            record["foreach_unbounded"] = True
        progress.phase = "saving"
        artifacts = _persist(flow, ctx, blobs, progress)
        record["artifacts"] = {k: v.as_dict() for k, v in artifacts.items()}
        record["next"] = ctx.transition[0] if ctx.transition else []
    except KeyboardInterrupt as exc:  # never a quiet end; the orchestrator knows if it is a cancel
        code, status = EXIT_FAILED, "failed"
        try:
            record["error"] = _interrupt_error(req.step, exc, progress)
            if not _sigint_received:  # raised by the step's code, not a stop: as any raise
                # SIGINT still ours: a cancel meanwhile ends the save (a slow value waited
                # out the grace, and the task was killed), and the record goes as it is.
                _keep_artifacts_of_failure(flow, ctx, blobs, record, progress)
        except KeyboardInterrupt:
            record.pop("artifacts", None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not lose the record
        if "error" not in record:  # the cancel came before the first interrupt was told
            record["error"] = _interrupt_error(req.step, exc, progress)
        record["error"][ESCAPES_CATCH] = True  # a cancel's is a cancel: the run knows which
    except ArtifactPickleError as exc:
        ran_out = req.memory_mb and isinstance(exc.__context__, MemoryError)  # while pickling
        if not ran_out and _catch_saving_failure(flow, ctx, blobs, req, record, exc, progress):
            pass  # @catch took it, as Metaflow's does: the task goes on to the next step
        else:
            code, status = EXIT_FAILED, "failed"
            record["error"] = error_info(exc, with_traceback=False, message=memory_message(
                req.step, req.memory_mb or 0, req.memory_source) if ran_out else None)
            if not ran_out:  # what the step set that can be stored is kept, as for a raise
                try:
                    kept = _persist_leaving_out(flow, ctx, blobs, progress)
                except Exception:  # noqa: BLE001 (the store failed too: the first failure stands)
                    kept = None
                if kept is not None:
                    record["artifacts"] = {k: v.as_dict() for k, v in kept.items()}
    except (TaskFailure, MergeArtifactsException) as exc:
        code, status = EXIT_FAILED, "failed"
        record["error"] = error_info(exc, with_traceback=isinstance(exc, MergeArtifactsException))
        if isinstance(exc, TaskFailure) and not exc.retry:  # the engine's check of what the
            record["error"]["retry"] = False  # step did: every attempt does the same
        _keep_artifacts_of_failure(flow, ctx, blobs, record, progress)
    except SystemExit as exc:
        code, status = EXIT_FAILED, "failed"
        _keep_artifacts_of_failure(flow, ctx, blobs, record, progress)
        record["error"] = error_info(exc, message=(
            f"Step `{req.step}` called sys.exit({exc.code!r}). A step must not exit the "
            "interpreter: raise an exception to fail it, or return to finish it."))
        record["error"][ESCAPES_CATCH] = True
    except MemoryError as exc:
        code, status = EXIT_FAILED, "failed"
        record["error"] = error_info(exc, message=memory_message(
            req.step, req.memory_mb, req.memory_source, str(exc)) if req.memory_mb else None)
    except BaseException as exc:  # the user's code failed: report it, the run decides
        code, status = EXIT_FAILED, "failed"
        if progress.phase == "saving" and is_disk_full(exc):  # the store's disk, not the user's
            record["error"] = disk_full_error(getattr(exc, "filename", None) or blobs.dir)
        elif isinstance(exc, ObjectStoreError):  # names the URL and the operation already
            record["error"] = object_store_error(exc)
        else:
            record["error"] = error_info(exc, message=_import_refusal(exc))
            _keep_artifacts_of_failure(flow, ctx, blobs, record, progress)
            if not isinstance(exc, Exception):  # GeneratorExit, a BaseException of the user's
                record["error"][ESCAPES_CATCH] = True
    record.update(status=status, end=time.time())
    record["duration"] = record["end"] - started
    _flush_stdio()
    try:
        try:
            write_attempt_record(req.root, req.attempt_json, record, datastore)
        except ObjectStoreError as exc:  # the object store has no record: the task failed
            said = object_store_error(exc)
            if status == "succeeded":  # else the first failure (often the same store's) stays
                record["error"] = said
            elif not (record.get("error") or {}).get("store"):  # a store failure says it once
                print(said["message"], file=sys.stderr)
            code, status = EXIT_FAILED, "failed"
            record.update(status=status, artifacts={}, next=[])
            atomic_write_json(req.attempt_json, record)
    except OSError as exc:
        return _report_store_error(req.step, req.attempt_json, exc)
    if cards is not None:  # after the record: a card reads the task's artifacts back
        # The orchestrator kills a task TIMEOUT_GRACE_S (5 s) past its @timeout: cards stop 1 s
        # before that, as a card error, so a slow card never turns a success into a kill.
        deadline = started + req.timeout_s + 4.0 if req.timeout_s else None
        _finish_cards(cards, status == "succeeded", deadline)
    return code


def _import_refusal(exc: BaseException) -> str | None:
    """The message for a step's import that fails where the engine knows why: the
    as_metaflow entry's import alias (an import from metaflow Flowdeck's engine cannot
    serve: how to run the flow on Metaflow's), a Dask worker's hint (a module the worker
    lacks); None otherwise. Each is a finder on `sys.meta_path` with `import_refusal`."""
    if not isinstance(exc, ImportError):
        return None
    for finder in sys.meta_path:
        refusal = getattr(finder, "import_refusal", None)
        said = refusal(exc) if refusal is not None else None
        if said is not None:
            return cast(str, said)
    return None


def _catch_saving_failure(flow: Any, ctx: StepContext, blobs: BlobStore, req: TaskRequest,
                          record: dict[str, Any], exc: ArtifactPickleError,
                          progress: Progress) -> bool:
    """On a @catch step's last attempt, an artifact that cannot be stored is caught like
    an exception of the step (Metaflow: FailureHandledByCatch): the artifacts that can be
    stored are, the catch variable holds the error, and the task goes on to its next
    step. False when @catch does not apply (the failure stands)."""
    if not req.catch or req.attempt < req.max_retries:
        return False
    kind = metaflow_type_name(exc)  # the engine's error: Metaflow's name, no engine frames
    wrapper = ExceptionWrapper(type=kind, message=str(exc), stacktrace=f"{kind}: {exc}")
    if req.print_exception:
        print(f"@catch caught an exception from step `{req.step}`:\n{wrapper.summary}",
              flush=True)  # on stdout, as Metaflow's
    record["caught"] = error_info(exc, with_traceback=False)
    if req.catch_var:
        setattr(flow, req.catch_var, wrapper)
    artifacts = _persist_leaving_out(flow, ctx, blobs, progress)
    if artifacts is None:
        return False
    record["artifacts"] = {k: v.as_dict() for k, v in artifacts.items()}
    record["next"] = list(req.out_funcs)
    return True


def _persist_leaving_out(flow: Any, ctx: StepContext, blobs: BlobStore,
                         progress: Progress) -> dict[str, BlobRef] | None:
    """Store what the step set, leaving out each artifact that cannot be stored (the one
    `progress` names failed already): gone, not the parent's value it replaced in this
    step. None when it still fails (a failure not of one artifact)."""
    dropped = {progress.artifact} if progress.artifact else set()
    for _ in range(len(flow.__dict__) + 1):  # each round leaves out one more that fails
        for name in dropped:
            flow.__dict__.pop(name, None)
            ctx.artifact_refs.pop(name, None)
        progress.artifact = None
        try:
            return _persist(flow, ctx, blobs, progress)
        except ArtifactPickleError:
            if not progress.artifact or progress.artifact in dropped:
                return None
            dropped.add(progress.artifact)
        except KeyboardInterrupt:  # a cancel ends the save: the record goes as it is
            return None
    return None


def _keep_artifacts_of_failure(flow: Any, ctx: StepContext, blobs: BlobStore,
                               record: dict[str, Any], progress: Progress) -> None:
    """Store what a step that raised had set, as Metaflow does, so `task.data` shows the
    state it failed in. Only for a failure of the step's own code (not while saving, not a
    cancel, not memory running out), and never at the cost of the failure's record."""
    if progress.phase == "saving":  # saving is what failed: it would fail again
        return
    try:
        record["artifacts"] = {k: v.as_dict() for k, v in _persist(flow, ctx, blobs).items()}
    except BaseException:  # noqa: BLE001 (a value that cannot be stored: the failure stands)
        record.pop("artifacts", None)


def _start_cards(req: TaskRequest, flow: Any) -> Any:
    """The task's cards (`flowdeck.cards.runtime.TaskCards`) when its step has @card, with
    `current.card` set; None otherwise. Setting cards up never fails the task."""
    function = getattr(req.flow_cls, req.step, None)
    if "card" not in (getattr(function, "_fd_decorators", None) or {}):
        return None  # most steps: no import of the decorators module in every task
    from flowdeck.authoring.decorators import step_cards
    decorators = step_cards(function)
    if not decorators:
        return None
    try:
        from flowdeck.cards.runtime import TaskCards
        from flowdeck.store.layout import RunLayout
        cards = TaskCards(RunLayout(req.root, req.flow_name), req.run_id, req.step,
                          req.task_id, req.attempt, decorators, flow=flow)
        cards.start(current)
        return cards
    except Exception as exc:
        print(f"[@card ERROR] the cards of step `{req.step}` could not be set up: {exc}",
              file=sys.stderr)
        return None


def _finish_cards(cards: Any, succeeded: bool, deadline: float | None) -> None:
    """Render the task's cards (Metaflow: only after success); a card never fails a task."""
    try:
        cards.finish(succeeded, deadline)
    except BaseException as exc:  # noqa: BLE001  (the task's record is already written)
        print(f"[@card ERROR] the task's cards could not be rendered: {exc}", file=sys.stderr)
    _flush_stdio()


def _report_disk_full(path: str) -> int:
    """Without room for its record, the worker says why on stderr and exits EXIT_DISK_FULL;
    the orchestrator records the failure (it may find room the worker did not)."""
    print(disk_full_error(path)["message"], file=sys.stderr)
    _flush_stdio()
    return EXIT_DISK_FULL


def _report_store_error(step: str, path: str, exc: OSError, ran: bool = True) -> int:
    """The worker could not write its record at `path`: it says which file and why on its
    stderr, and exits with a code that tells the orchestrator so (EXIT_STORE_ERROR, or
    EXIT_DISK_FULL). Before, the OSError ended the worker through its `os._exit` with the
    cancel's code (130) before anything printed it: "exited with code 130"."""
    if is_disk_full(exc):
        return _report_disk_full(path)
    what = (f"step `{step}` ran, but its task could not write its record "
            f"({os.path.basename(path)})" if ran else
            f"step `{step}` did not start: its task could not make its folder")
    print(f"[flowdeck] {what}: {store_write_error(exc, path)['message']}", file=sys.stderr)
    _flush_stdio()
    return EXIT_STORE_ERROR


def _interrupt_error(step: str, exc: KeyboardInterrupt, progress: Progress) -> dict[str, Any]:
    """The failure record of an attempt ended by KeyboardInterrupt.

    The worker cannot tell a Ctrl+C on the terminal (which reaches the whole
    process group, the orchestrator included) from a SIGINT sent to this
    process alone, so it records a failure either way; the orchestrator, which
    knows whether the run is being cancelled, turns it into "cancelled" then.
    """
    where = ""
    if progress.phase == "saving":
        where = (f" while saving artifact `{progress.artifact}`" if progress.artifact
                 else " while saving its artifacts")
    if _sigint_received:  # the traceback says where the step was (the engine's frames cut)
        message = (f"Step `{step}` was interrupted by SIGINT{where}, although the run was not "
                   "cancelled, so the task failed. To stop a run, stop the whole run "
                   "(Ctrl+C, or Stop in the window), not one task process.")
        info = error_info(exc, message=message)
        info["signal"] = "SIGINT"
        return info
    raised = repr(exc) if exc.args else "KeyboardInterrupt"
    message = (f"Step `{step}` raised {raised}{where}. The run was not cancelled, so this "
               "is a task failure (KeyboardInterrupt ends a step like any other exception). "
               "Raise an ordinary exception to fail a step on purpose.")
    return error_info(exc, message=message)


def _build_context(req: TaskRequest, blobs: BlobStore) -> tuple[StepContext, Inputs | None]:
    ctx = StepContext(req.flow_name, req.run_id, req.step, req.task_id, blobs,
                      params=dict(req.params), frames=req.frames,
                      is_join=req.node_type == "join")
    if ctx.is_join:
        ctx.artifact_refs = dict(req.param_refs)
        flows = [new_flow_instance(req.flow_cls, StepContext(
            req.flow_name, req.run_id, p.step, p.task_id, blobs, params=dict(req.params),
            artifact_refs=dict(p.artifacts), frames=p.frames, read_only=True, caught=p.caught))
            for p in req.parents]
        return ctx, Inputs(flows)
    ctx.artifact_refs = dict(req.parents[0].artifacts) if req.parents else dict(req.param_refs)
    ctx.caught = req.parents[0].caught if req.parents else None  # said when reading fails
    return ctx, None


def _run_step(flow: Any, ctx: StepContext, req: TaskRequest, inputs: Inputs | None,
              record: dict[str, Any], umask: int) -> None:
    """Call the user's step; on its last attempt, @catch turns an exception into data.
    `umask`: the worker's own, put back once the step is over (`_after_step`)."""
    func = getattr(flow, req.step)
    try:
        if req.catch and req.attempt > req.max_retries:
            # Every attempt's process died (a signal, a crash) before @catch could act: this
            # extra attempt runs no user code and lets @catch record that, as in Metaflow.
            raise FailureHandledByCatch(req.attempt)
        _call_step(func, inputs, req, record["pid"], umask)
        _check_transition(ctx, req)
    except (KeyboardInterrupt, SystemExit, TaskFailure):
        raise
    except BaseException as exc:
        if not req.catch or req.attempt < req.max_retries:
            raise
        wrapper = ExceptionWrapper(exc)
        if req.print_exception:
            print(f"@catch caught an exception from step `{req.step}`:\n{wrapper.stacktrace}",
                  flush=True)  # on the task's stdout, as Metaflow's (its logger)
        record["caught"] = error_info(exc)
        if req.catch_var:
            setattr(flow, req.catch_var, wrapper)
        ctx.transition = (list(req.out_funcs), None)
        return
    if req.catch and req.catch_var:
        setattr(flow, req.catch_var, None)


def _call_step(func: Any, inputs: Inputs | None, req: TaskRequest, worker: int,
               umask: int) -> None:
    """Call the step's function (under its @timeout), then undo what of the step would
    reach into the task's own work after it (`_after_step`), however the step ended."""
    try:
        if req.timeout_s > 0:
            with step_timeout(req.timeout_s, req.step):
                if inputs is not None:
                    func(inputs)
                else:
                    func()
        elif inputs is not None:  # no @timeout: no alarm context manager to set up
            func(inputs)
        else:
            func()
    except BaseException as exc:
        _after_step(req.step, worker, umask, exc)
        raise
    _after_step(req.step, worker, umask, None)


def _after_step(step: str, worker: int, umask: int, raised: BaseException | None) -> None:
    """Once out of the step, before anything of the task's is stored: only the worker (pid
    `worker`) goes on, a process the step forked that came out of it too ends here
    (`_end_forked_child`); and the worker's umask is its own again (`umask`, the one it
    started with): a step's `os.umask(0o777)` made the store's blob folders and records
    mode 000, and every later run in that store failed on them. Two system calls a task."""
    if os.getpid() != worker:
        if isinstance(raised, SystemExit):  # the child ended itself, as in any script
            _exit_as_python_does(raised)
        _end_forked_child(step, worker, raised)
    os.umask(umask)


def _exit_as_python_does(request: SystemExit) -> NoReturn:
    """A forked child's `sys.exit(code)`: its streams flushed, the exit code Python would
    give (None: 0, a number: it, anything else printed on stderr and 1), and quietly (it
    said "raised SystemExit out of the step" and exited 1, a parent checking it saw it fail)."""
    code = request.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    _flush_stdio()
    os._exit(code or 0)


def _end_forked_child(step: str, worker: int, raised: BaseException | None) -> NoReturn:
    """A process the step forked (`os.fork()`) came out of the step, as a fork's child does
    unless it ends itself. Left to go on, it saved what it set as the task's artifacts and
    wrote the task's record over the worker's: the child's values silently replaced the
    parent's. Only the worker (the pid that started the task) records the step's result;
    this child says so and exits before it touches the store, its exit handlers unrun."""
    how = "returned from the step" if raised is None else \
        f"raised {type(raised).__name__} out of the step"
    print(f"[flowdeck] a child process (pid {os.getpid()}) that step `{step}` forked with "
          f"os.fork() {how}. Only the task's own process (pid {worker}) records the step's "
          "result, so this child exits now (code 1) and what it set is dropped. End the "
          "child with os._exit(...) once its work is done.", file=sys.stderr)
    if raised is not None:
        import traceback
        traceback.print_exception(raised)
    _flush_stdio()
    os._exit(EXIT_FAILED)


def _check_transition(ctx: StepContext, req: TaskRequest) -> None:
    if req.node_type == "end":
        if ctx.transition:
            raise TaskFailure(f"The end step `{req.step}` called self.next(); remove that call.")
        return
    if ctx.transition is None and is_parallel_worker(req.frames):
        ctx.transition = (list(req.out_funcs), None)  # Metaflow: only node 0 must call next()
    if ctx.transition is None:
        raise TaskFailure(f"Step `{req.step}` finished without calling self.next(). Make "
                          "sure every path through the step ends with self.next(...).")
    names, foreach = ctx.transition
    if req.node_type == "split-switch":  # the switch picked one of its cases (FlowSpec.next)
        if len(names) == 1 and names[0] in req.out_funcs and not foreach:
            return
        cases = ", ".join(f"self.{n}" for n in req.out_funcs)
        raise TaskFailure(f"Step `{req.step}` is a switch over {cases}, but at run time it "
                          f"called self.next({', '.join(f'self.{n}' for n in names)}). Call "
                          "self.next once with the same dict of cases and condition=, as the "
                          "step's last statement.")
    if list(names) == list(req.out_funcs) and (foreach or None) != (req.foreach_param or None):
        raise TaskFailure(
            f"Step `{req.step}` fans out over `{foreach}` at run time, but the flow was "
            f"planned, before it ran, to fan out over `{req.foreach_param}` (read from the "
            "step's last line: the name given to foreach=, or the module constant it names). "
            "Write the artifact's name in the call (foreach=\"name\"), or leave the constant "
            "unchanged while the flow runs.")
    if list(names) != list(req.out_funcs) or (foreach or None) != (req.foreach_param or None):
        raise TaskFailure(f"Step `{req.step}` called self.next({_next_text(list(names), foreach)}) "
                          f"at run time, but its last line says self.next("
                          f"{_next_text(list(req.out_funcs), req.foreach_param)}). Transitions must "
                          "be static: call self.next once, as the step's last statement.")


def _next_text(names: list[str], foreach: str | None) -> str:
    """A self.next(...) call's arguments as the user wrote them (for messages)."""
    calls = ", ".join(f"self.{n}" for n in names)
    return f"{calls}, foreach={foreach!r}" if foreach else calls


def _next_call_at(ctx: StepContext) -> str:
    """`` (at FILE, line N)``: where the step called self.next(), for the errors of a foreach
    refused at its split (the step's last line, not the task's end or a later `self.input`).
    Empty when unknown."""
    if ctx.next_at is None:
        return ""
    file, line = ctx.next_at
    return f" (at {file}, line {line})"


def _foreach_splits(flow: Any, req: TaskRequest, where: str) -> tuple[int | None, bool]:
    """How many tasks the foreach fans out to, and whether its input is unbounded; `where`
    is the self.next() call the errors name."""
    if req.node_type != "foreach" or not req.foreach_param:
        return None, False
    var = req.foreach_param
    uses = f"Step `{req.step}`{where} uses foreach=\"{var}\""
    try:
        value = getattr(flow, var)
    except AttributeError:
        raise TaskFailure(f"{uses}, but self.{var} is not set.{_close_artifact(flow, var)} "
                          f"Assign a list to self.{var} before calling self.next().") from None
    if isinstance(value, UnboundedForeachInput):
        return _unbounded_splits(value, req, where), True
    problem = _not_a_sequence(value, var)
    if problem:
        raise TaskFailure(f"{uses}, but {problem}")
    try:
        count = len(value)
    except Exception as exc:  # a value whose length is not defined (numpy's 0-d array)
        raise TaskFailure(f"{uses}, but self.{var} ({type(value).__name__}) has no length: "
                          f"len() raised {type(exc).__name__}: {exc}. Give it a list or "
                          "another sequence of the items.") from None
    return _checked_count(count, req, where), False


def _not_a_sequence(value: Any, var: str) -> str | None:
    """Why `value` cannot be a foreach's input, each task reading its item as
    `self.{var}[index]` (Metaflow's way too); None when it can. A dict passed the
    length-and-indexing test and failed in every task with `KeyError: 0` at `self.input`
    (Metaflow 2.19 fails the same way); one keyed 0..n-1 works there, and here."""
    from collections.abc import Mapping
    if isinstance(value, Mapping):
        if all(index in value for index in range(len(value))):
            return None
        return (f"self.{var} is a {type(value).__name__}, whose items a foreach cannot "
                f"take by position. Assign self.{var} = list(self.{var}.items()) before "
                f"self.next() for (key, value) pairs, or list(self.{var}) for the keys.")
    if hasattr(value, "__len__") and hasattr(value, "__getitem__"):
        return None
    kind = type(value).__name__
    hint = (" Wrap it in list(...) first." if hasattr(value, "__iter__") else "")
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    hint = hint or (f" For {value!r} items, use list(range({value!r}))."
                    if isinstance(value, int) and not isinstance(value, bool) else "")
    return f"self.{var} is {article} {kind}, not a list or other sequence.{hint}"


def _close_artifact(flow: Any, var: str) -> str:
    """`` Did you mean self.items?``: for a misspelt foreach name, from what the flow holds."""
    import difflib
    names = [n for n in vars(flow) if not n.startswith("_")]
    close = difflib.get_close_matches(var, names, n=1)
    return f" Did you mean self.{close[0]}?" if close else ""


def _unbounded_splits(value: Any, req: TaskRequest, where: str) -> int:
    """Items of an unbounded foreach input, counted as Metaflow's control task counts them
    (by iterating it once); the next step must be able to run it."""
    var = req.foreach_param
    fans = f"Step `{req.step}`{where} fans out over self.{var}"
    if req.unbounded_problem:
        raise TaskFailure(f"{fans}, an unbounded foreach input ({type(value).__name__}), "
                          f"but {req.unbounded_problem}")
    if not hasattr(value, "__getitem__"):
        raise TaskFailure(f"{fans}, a {type(value).__name__} without indexing: each task "
                          f"reads its item as self.{var}[index]. Give the class a "
                          "__getitem__.")
    try:
        count = sum(1 for _ in value)
    except Exception as exc:  # the user's iterator failed: say where
        raise TaskFailure(f"{fans}, but iterating it raised {type(exc).__name__}: {exc}. "
                          "Fix its __iter__.",
                          retry=True) from None  # the user's code: it may pass next time
    return _checked_count(count, req, where)


def _checked_count(count: int, req: TaskRequest, where: str) -> int:
    var = req.foreach_param
    if count == 0:
        raise TaskFailure(f"Step `{req.step}`{where} uses foreach=\"{var}\", but self.{var} "
                          "is empty, so there is nothing to run. Give it at least one item.")
    limit = max_num_splits()
    if limit is not None and count > limit:
        raise TaskFailure(f"Step `{req.step}`{where} fans out over {count} items of "
                          f"self.{var}, more than --max-num-splits {limit}. Raise "
                          "--max-num-splits or split the work into fewer items.")
    return count


def _persist(flow: Any, ctx: StepContext, blobs: BlobStore,
             progress: Progress | None = None) -> dict[str, BlobRef]:
    """Artifacts after this task: inherited references plus everything set on self.

    An inherited artifact the step only read keeps its parent's reference:
    pickling it again in this process could give other bytes for the same
    value (a set's order follows the hash seed), and a join would then see
    two different values where there is one.
    """
    refs = dict(ctx.artifact_refs)
    loaded = flow.__dict__.get(LOADED, {})
    for name, value in list(flow.__dict__.items()):
        if name.startswith("_fd") or name.startswith("__"):
            continue
        if progress is not None:
            progress.artifact = name
        blob = blobs.encode(name, value)
        origin = loaded.get(name)
        if origin is not None and _unchanged(blobs, origin[0], origin[1], value, blob):
            refs[name] = origin[0]
        else:
            refs[name] = blobs.write(blob)
            if blob.size >= PREVIEW_MIN_BYTES:
                _store_preview(blobs, refs[name], value)
    return refs


def _store_preview(blobs: BlobStore, ref: BlobRef, value: Any) -> None:
    """Write the preview of a large artifact beside its blob (store/previews.py), so the
    window shows it without loading the value; never fails the task."""
    try:
        from flowdeck.engines.preview import stored_preview
        write_preview(blobs, ref.sha, lambda: stored_preview(value))
    except Exception:  # noqa: BLE001 (a value's own methods; a full disk shows elsewhere)
        pass


def _unchanged(blobs: BlobStore, ref: BlobRef, loaded_id: int, value: Any,
               blob: EncodedBlob) -> bool:
    """True when `value`, loaded from `ref` in this step, still is the value stored there.

    Reassigned (another object): changed. Same bytes as the stored blob: not
    changed (the common case; comparing bytes costs less than hashing them).
    Other bytes: mutated in place, or pickled in another order; compare the
    values, and only a clear `==` answer of True counts as unchanged.
    """
    if id(value) != loaded_id:
        return False
    if blobs.holds(ref, blob):
        return True
    try:
        original = blobs.get(ref.sha)
    except Exception:  # it loaded a moment ago; if it cannot now, store the value again
        return False
    return values_agree(value, original)


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed, or a user's object (or None)
            pass
