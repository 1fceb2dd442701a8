"""The orchestrator: schedules tasks in forked worker processes and writes the event stream.

One process (the one that called `run`) owns the run: it forks a worker per
task attempt, up to `max_workers` at once, reads their stdout/stderr through
pipes (to log files and, prefixed, to the terminal), learns of their exit
through pidfds, and is the only writer of `events.jsonl` and `run.json`.
Forking after the flow module is loaded costs about a millisecond, where
Metaflow starts a new interpreter (about 0.34 s) for every task.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowdeck.analysis.diagnostics import UsageError
from flowdeck.analysis.graph import FlowGraph
from flowdeck.authoring.spec import flow_parameters, step_decorators
from flowdeck.engine.task import (
    EXIT_CANCELLED,
    ParentResult,
    TaskRequest,
    execute_task,
    prepare_worker_process,
)
from flowdeck.engine.taskstate import Frame, frames_signature
from flowdeck.engine.terminal import TerminalEcho
from flowdeck.store.blobs import BlobRef, BlobStore, atomic_write_json
from flowdeck.store.events import (
    RUN_FINISHED,
    RUN_STARTED,
    TASK_FINISHED,
    TASK_STARTED,
    EventWriter,
)
from flowdeck.store.layout import InvalidId, RunLayout, attempt_file, new_run_id
from flowdeck.store.records import AttemptRecord, DamagedRecord, ParamRecord, RunRecord, hostname

CANCEL_GRACE_S = 3.0
TIMEOUT_GRACE_S = 5.0


@dataclass
class RunOptions:
    max_workers: int = 0
    run_id: str | None = None
    origin_run_id: str | None = None
    quiet: bool = False
    install_signal_handlers: bool = True


@dataclass
class TaskResult:
    """A finished attempt, as its metadata file describes it."""

    step: str
    task_id: str
    attempt: int
    status: str
    artifacts: dict[str, BlobRef]
    frames: tuple[Frame, ...]
    next: list[str] = field(default_factory=list)
    foreach_splits: int | None = None
    error: dict[str, Any] | None = None
    caught: dict[str, Any] | None = None
    duration: float = 0.0
    origin: str | None = None

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "TaskResult":
        return cls.from_attempt(AttemptRecord.from_json(rec))

    @classmethod
    def from_attempt(cls, rec: AttemptRecord) -> "TaskResult":
        return cls(
            step=rec.step, task_id=rec.task_id, attempt=rec.attempt, status=rec.status,
            artifacts={k: BlobRef.from_dict(v) for k, v in rec.artifacts.items()},
            frames=tuple(Frame.from_dict(f) for f in rec.frames),
            next=list(rec.next), foreach_splits=rec.foreach_splits,
            error=rec.error, caught=rec.caught, duration=rec.duration, origin=rec.origin,
        )

    def as_parent(self) -> ParentResult:
        return ParentResult(self.step, self.task_id, self.artifacts, self.frames)


@dataclass
class PendingTask:
    step: str
    task_id: str
    frames: tuple[Frame, ...]
    parents: list[TaskResult]
    attempt: int = 0


@dataclass
class RunningTask:
    pending: PendingTask
    pid: int
    started: float
    out_fd: int
    err_fd: int
    pidfd: int | None
    task_dir: str
    deadline: float | None
    open_fds: set[int] = field(default_factory=set)
    logs: dict[int, Any] = field(default_factory=dict)
    killed_for: str | None = None


@dataclass
class RunOutcome:
    run_id: str
    status: str  # succeeded | failed | cancelled
    exit_code: int
    root: Path
    failed_task: TaskResult | None = None


class Orchestrator:
    """Runs one flow run to its end. Not thread-safe; one instance per run."""

    def __init__(self, flow_cls: type, graph: FlowGraph, params: dict[str, Any],
                 layout: RunLayout, options: RunOptions,
                 origin: "OriginRun | None" = None):
        self.flow_cls = flow_cls
        self.graph = graph
        self.params = params
        self.layout = layout
        self.blobs = BlobStore(layout.root)
        self.opts = options
        self.origin = origin
        self.max_workers = options.max_workers or os.cpu_count() or 1
        self.run_id = options.run_id or new_run_id()
        self.echo = TerminalEcho(self.run_id, quiet=options.quiet)
        self.queue: deque[PendingTask] = deque()
        self.running: dict[int, RunningTask] = {}
        self.fd_owner: dict[int, RunningTask] = {}
        self.results: dict[str, TaskResult] = {}
        self.join_waits: dict[tuple[str, str], dict[int, TaskResult]] = {}
        self.next_task_number = 1
        self.failed: TaskResult | None = None
        self.cancel_signal: int | None = None
        self.steps = {name: getattr(flow_cls, name) for name in graph.nodes}
        self.param_refs: dict[str, BlobRef] = {}
        self.sel: selectors.BaseSelector | None = None
        self.wake_fds: tuple[int, int] | None = None
        self.events: EventWriter | None = None
        self.started = time.time()
        self.run_dir = ""
        self.step_dirs: set[str] = set()

    # -- lifecycle ----------------------------------------------------------

    def run(self) -> RunOutcome:
        if not hasattr(os, "fork"):
            raise UsageError("Flowdeck runs each task in a forked worker process, which this "
                             "system (Windows) does not offer yet. Run flows under WSL.")
        run_dir = self._create_run_dir()
        self.run_dir = str(run_dir)
        self.events = EventWriter(run_dir / "events.jsonl", self.run_id)
        self.param_refs = {name: self.blobs.put(name, value)
                           for name, value in self.params.items()}
        self._write_run_json("running")
        self.events.emit(RUN_STARTED, flow=self.graph.name, file=self.graph.file,
                         params=_jsonable(self.params), graph=self.graph.as_dict(),
                         pid=os.getpid(), origin_run_id=self.origin.run_id if self.origin else None,
                         step_hashes=self.graph.step_hashes(), max_workers=self.max_workers,
                         engine="flowdeck", run_dir=str(run_dir))
        self.echo.run_started(self.graph.name, self.origin.run_id if self.origin else None)
        restore = self._install_signals()
        gc_was_enabled = gc.isenabled()
        try:
            self._schedule(PendingTask(self.graph.start_step or "start", self._new_task_id(),
                                       (), []))
            self._loop()
        finally:
            restore()
            self._close_selector()
            gc.unfreeze()
            if gc_was_enabled:
                gc.enable()
        return self._finish()

    def _create_run_dir(self) -> Path:
        try:
            return self.layout.create_run_dir(self.run_id)
        except InvalidId as exc:
            raise UsageError(str(exc)) from None
        except FileExistsError:
            raise UsageError(f"{self.graph.name} already has a run {self.run_id} in "
                             f"{self.layout.root}; choose another run id.") from None

    def _finish(self) -> RunOutcome:
        """Decide the run's status: it succeeded only if its end step succeeded (or was reused)."""
        error = None
        if self.cancel_signal is not None:
            status, code = "cancelled", 128 + self.cancel_signal
        elif self.failed is not None:
            status, code = "failed", 1
        elif self._end_finished():
            status, code = "succeeded", 0
        else:  # nothing failed, yet the run stopped short: an engine bug, never a success
            status, code = "failed", 1
            error = self._incomplete_error()
            print(f"Run {self.run_id} failed: {error['message']}", file=self.echo.err, flush=True)
        duration = time.time() - self.started
        if self.failed is not None:
            error = {"step": self.failed.step, "task_id": self.failed.task_id,
                     **(self.failed.error or {})}
        self._write_run_json(status, exit_code=code, error=error)
        assert self.events is not None
        self.events.emit(RUN_FINISHED, status=status, duration=round(duration, 6),
                         error=error, exit_code=code)
        self.events.close()
        self.echo.run_finished(status, duration, self.failed)
        return RunOutcome(self.run_id, status, code, self.layout.root, self.failed)

    def _end_finished(self) -> bool:
        end = self.graph.end_step or "end"
        return any(r.step == end for r in self.results.values())

    def _incomplete_error(self) -> dict[str, Any]:
        """The run's error when no task failed but the end step never finished."""
        done = {r.step for r in self.results.values()}
        order = self.graph.topological()
        never = [s for s in order if s not in self.step_dirs]
        unfinished = [s for s in order if s in self.step_dirs and s not in done]
        names = ", ".join(f"`{s}`" for s in never) or "none"
        extra = (f"; started but did not finish: {', '.join(f'`{s}`' for s in unfinished)}"
                 if unfinished else "")
        return {"step": (never or unfinished or [None])[0], "task_id": None,
                "type": "RunIncomplete",
                "message": f"The run stopped before its end step finished, although no task "
                           f"failed. Steps that never ran: {names}{extra}. Rerun the flow; "
                           "if this happens again, report it with the run's folder.",
                "traceback": ""}

    def _write_run_json(self, status: str, exit_code: int | None = None,
                        error: dict[str, Any] | None = None) -> None:
        RunRecord(
            flow=self.graph.name, run_id=self.run_id, file=self.graph.file, status=status,
            start=self.started, end=time.time() if status != "running" else None,
            pid=os.getpid(), host=hostname(), user=_username(), engine="flowdeck",
            params=param_records(self.flow_cls, self.params),
            param_refs={k: v.as_dict() for k, v in self.param_refs.items()},
            step_hashes=self.graph.step_hashes(), outside_hash=self.graph.outside_hash,
            origin_run_id=self.origin.run_id if self.origin else None,
            max_workers=self.max_workers, exit_code=exit_code, error=error,
        ).write(self.layout.run_json(self.run_id))

    # -- signals ------------------------------------------------------------

    def _install_signals(self) -> Callable[[], None]:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.wake_fds = (r, w)
        if not self.opts.install_signal_handlers or \
                threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM,
                                                    signal.SIGCHLD)}
        old_wakeup = signal.set_wakeup_fd(w)

        def on_cancel(signum: int, frame: Any) -> None:
            if self.cancel_signal is not None and signum == signal.SIGINT:
                self._kill_all(signal.SIGKILL)  # a second Ctrl+C: stop waiting
            self.cancel_signal = self.cancel_signal or signum

        signal.signal(signal.SIGINT, on_cancel)
        signal.signal(signal.SIGTERM, on_cancel)
        signal.signal(signal.SIGCHLD, lambda s, f: None)  # wakes the selector

        def restore() -> None:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        return restore

    def _close_selector(self) -> None:
        if self.sel is not None:
            self.sel.close()
            self.sel = None
        if self.wake_fds:
            for fd in self.wake_fds:
                os.close(fd)
            self.wake_fds = None

    # -- scheduling ---------------------------------------------------------

    def _new_task_id(self) -> str:
        task_id = str(self.next_task_number)
        self.next_task_number += 1
        return task_id

    def _schedule(self, task: PendingTask) -> None:
        self.queue.append(task)

    def _loop(self) -> None:
        self.sel = selectors.DefaultSelector()
        assert self.wake_fds is not None
        self.sel.register(self.wake_fds[0], selectors.EVENT_READ, "wake")
        while True:
            if self.cancel_signal is not None:
                self._cancel_all()
                return
            while self.queue and len(self.running) < self.max_workers and self.failed is None:
                self._start(self.queue.popleft())
            if not self.running:
                return
            self._wait_once()

    def _wait_once(self) -> None:
        assert self.sel is not None
        timeout = self._next_timeout()
        for key, _ in self.sel.select(timeout):
            if key.data == "wake":
                _drain(key.fd)
            elif key.data == "pidfd":
                self._reap_fd_owner(key.fd)
            else:
                self._read_output(key.fd)
        self._reap_without_pidfd()
        self._enforce_deadlines()

    def _next_timeout(self) -> float | None:
        timeouts = [0.05] if any(t.pidfd is None for t in self.running.values()) else []
        now = time.time()
        timeouts += [max(0.0, t.deadline - now) for t in self.running.values() if t.deadline]
        return min(timeouts) if timeouts else None

    # -- starting tasks -------------------------------------------------------

    def _start(self, task: PendingTask) -> None:
        if self.origin and task.step not in self.origin.rerun_steps:
            reused = self.origin.find(task.step, task.frames)
            if reused is not None and self._intact(reused):
                self._clone(task, reused)
                return
        task_dir = self._make_task_dir(task, create=False)
        request = self._request(task, task_dir)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        _flush_stdio()
        gc.freeze()  # the worker's collector then skips inherited objects: no copy-on-write storm
        pid = os.fork()
        if pid == 0:  # the worker
            code = EXIT_CANCELLED
            try:
                os.close(out_r)
                os.close(err_r)
                self._close_parent_fds()
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.close(out_w)
                os.close(err_w)
                prepare_worker_process()
                code = execute_task(request)
            finally:
                os._exit(code)
        os.close(out_w)
        os.close(err_w)
        self._track(task, pid, out_r, err_r, task_dir, request.timeout_s)

    def _intact(self, origin: TaskResult) -> bool:
        """True when every artifact blob of an origin task is present and matches its hash.

        Resume reruns a task whose artifacts are missing or damaged instead of
        handing them on; each blob is hashed once per run (BlobStore.damage).
        """
        problems = [p for p in (self.blobs.damage(ref) for ref in origin.artifacts.values()) if p]
        if problems:
            print(f"Not reusing {self.origin.run_id if self.origin else ''}/{origin.step}/"
                  f"{origin.task_id}: {'; '.join(problems)}. Running the task again.",
                  file=self.echo.err, flush=True)
        return not problems

    def _make_task_dir(self, task: PendingTask, create: bool = True) -> str:
        """The task's folder. Workers create their own (off the orchestrator's critical path)."""
        step_dir = os.path.join(self.run_dir, task.step)
        if task.step not in self.step_dirs:
            os.makedirs(step_dir, exist_ok=True)
            self.step_dirs.add(task.step)
        task_dir = os.path.join(step_dir, task.task_id)
        if create:
            os.makedirs(task_dir, exist_ok=True)
        return task_dir

    def _track(self, task: PendingTask, pid: int, out_r: int, err_r: int, task_dir: str,
               timeout_s: float) -> None:
        now = time.time()
        pidfd = _pidfd_open(pid)
        running = RunningTask(task, pid, now, out_r, err_r, pidfd, task_dir,
                              deadline=now + timeout_s + TIMEOUT_GRACE_S if timeout_s else None,
                              open_fds={out_r, err_r} | ({pidfd} if pidfd is not None else set()))
        assert self.sel is not None
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, "out")
            self.fd_owner[fd] = running
        if pidfd is not None:
            self.sel.register(pidfd, selectors.EVENT_READ, "pidfd")
            self.fd_owner[pidfd] = running
        self.running[pid] = running
        frame = next((f for f in reversed(task.frames) if f.kind == "foreach"), None)
        assert self.events is not None
        self.events.emit(TASK_STARTED, step=task.step, task_id=task.task_id,
                         attempt=task.attempt, pid=pid, reused=False,
                         foreach={"index": frame.index, "num_splits": frame.num_splits}
                         if frame else None,
                         input_paths=self._input_paths(task),
                         logs={"stdout": self._rel(attempt_file(task_dir, task.attempt, "out")),
                               "stderr": self._rel(attempt_file(task_dir, task.attempt, "err"))})
        self.echo.task_started(task.step, task.task_id, task.attempt, pid)

    def _request(self, task: PendingTask, task_dir: str) -> TaskRequest:
        node = self.graph[task.step]
        func = self.steps[task.step]
        decos = step_decorators(func)
        retry = decos.get("retry")
        catch = decos.get("catch")
        return TaskRequest(
            flow_cls=self.flow_cls, flow_name=self.graph.name, run_id=self.run_id,
            step=task.step, task_id=task.task_id, attempt=task.attempt,
            node_type=node.type or "linear", out_funcs=list(node.out_funcs),
            foreach_param=node.foreach_param, frames=task.frames,
            parents=[p.as_parent() for p in task.parents], params=self.params,
            param_refs=self.param_refs, root=self.layout.root,
            attempt_json=attempt_file(task_dir, task.attempt, "json"),
            source_hash=node.source_hash,
            max_retries=int(retry["times"]) if retry else 0,
            catch=catch is not None, catch_var=catch.get("var") if catch else None,
            print_exception=bool(catch.get("print_exception", True)) if catch else True,
            timeout_s=node_timeout(func),
            origin_run_id=self.origin.run_id if self.origin else None,
            input_paths=self._input_paths(task),
        )

    def _input_paths(self, task: PendingTask) -> list[str]:
        return [f"{self.run_id}/{p.step}/{p.task_id}" for p in task.parents]

    def _rel(self, path: str) -> str:
        return path[len(self.run_dir) + 1:]

    def _close_parent_fds(self) -> None:
        """In a fresh worker: drop the orchestrator's fds so pipes see EOF correctly."""
        fds = list(self.fd_owner) + list(self.wake_fds or ())
        fds += [log.fileno() for t in self.running.values() for log in t.logs.values()]
        if self.sel is not None:
            fileno = getattr(self.sel, "fileno", None)  # epoll/kqueue have one; select() not
            if fileno is not None:
                fds.append(fileno())
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if self.events is not None:
            self.events.close()

    def _clone(self, task: PendingTask, origin: TaskResult) -> None:
        """Reuse a finished task of the origin run instead of running it again."""
        task_dir = self._make_task_dir(task)
        assert self.origin is not None and self.events is not None
        origin_path = f"{self.origin.run_id}/{origin.step}/{origin.task_id}"
        now = time.time()
        record = {
            "step": task.step, "task_id": task.task_id, "attempt": 0, "status": "reused",
            "run_id": self.run_id, "start": now, "end": now, "duration": 0.0,
            "frames": [f.as_dict() for f in task.frames],
            "signature": frames_signature(task.frames),
            "source_hash": self.graph[task.step].source_hash,
            "artifacts": {k: v.as_dict() for k, v in origin.artifacts.items()},
            "next": origin.next, "foreach_splits": origin.foreach_splits,
            "origin": origin_path, "origin_attempt": origin.attempt,
            "input_paths": self._input_paths(task),
        }
        atomic_write_json(attempt_file(task_dir, 0, "json"), record)
        self.events.emit(TASK_STARTED, step=task.step, task_id=task.task_id, attempt=0,
                         pid=os.getpid(), reused=True, foreach=None,
                         input_paths=self._input_paths(task), logs=None)
        result = TaskResult.from_record(record)
        self._emit_finished(result, will_retry=False)
        self.echo.task_reused(task.step, task.task_id, origin_path)
        self._on_success(task, result)

    # -- output and exits -----------------------------------------------------

    def _read_output(self, fd: int) -> None:
        running = self.fd_owner.get(fd)
        if running is None:
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_fd(running, fd)
            return
        self._write_output(running, fd, data)

    def _write_output(self, running: RunningTask, fd: int, data: bytes) -> None:
        log = running.logs.get(fd)
        if log is None:
            kind = "out" if fd == running.out_fd else "err"
            log = open(attempt_file(running.task_dir, running.pending.attempt, kind), "ab")
            running.logs[fd] = log
        log.write(data)
        log.flush()
        task = running.pending
        self.echo.output(task.step, task.task_id, fd == running.err_fd, data)

    def _close_fd(self, running: RunningTask, fd: int) -> None:
        if fd not in running.open_fds:
            return
        running.open_fds.discard(fd)
        if self.sel is not None:
            try:
                self.sel.unregister(fd)
            except (KeyError, ValueError):
                pass
        self.fd_owner.pop(fd, None)
        os.close(fd)

    def _reap_fd_owner(self, pidfd: int) -> None:
        running = self.fd_owner.get(pidfd)
        if running is None:
            return
        _, status = os.waitpid(running.pid, 0)
        self._on_exit(running, status)

    def _reap_without_pidfd(self) -> None:
        for running in [t for t in self.running.values() if t.pidfd is None]:
            pid, status = os.waitpid(running.pid, os.WNOHANG)
            if pid:
                self._on_exit(running, status)

    def _enforce_deadlines(self) -> None:
        now = time.time()
        for running in list(self.running.values()):
            if running.deadline and now > running.deadline and running.killed_for is None:
                running.killed_for = "timeout"
                _kill(running.pid, signal.SIGKILL)

    def _on_exit(self, running: RunningTask, status: int) -> None:
        """A worker exited: drain its output, read its record, decide what comes next."""
        for fd in list(running.open_fds):
            if fd in (running.out_fd, running.err_fd):
                self._drain_output(running, fd)
            self._close_fd(running, fd)
        for log in running.logs.values():
            log.close()
        self.echo.flush_task(running.pending.step, running.pending.task_id)
        self.running.pop(running.pid, None)
        result = self._read_result(running, status)
        self._after_attempt(running.pending, result)

    def _drain_output(self, running: RunningTask, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            self._write_output(running, fd, data)

    def _read_result(self, running: RunningTask, status: int) -> TaskResult:
        task = running.pending
        path = attempt_file(running.task_dir, task.attempt, "json")
        try:
            return TaskResult.from_attempt(AttemptRecord.read(path))
        except (OSError, DamagedRecord):
            os.makedirs(running.task_dir, exist_ok=True)  # the worker died before making it
        code = os.waitstatus_to_exitcode(status)
        if running.killed_for == "timeout":
            message = (f"Step `{task.step}` ran past its @timeout and was killed. Make it "
                       "faster or raise the limit.")
        elif running.killed_for == "cancel":
            message = "cancelled"
        elif code < 0:
            message = (f"The task process was killed by signal {-code} "
                       f"({signal.Signals(-code).name}) before it finished.")
        else:
            message = (f"The task process exited with code {code} before it finished "
                       "(os._exit or a crash in native code).")
        state = "cancelled" if running.killed_for == "cancel" else "failed"
        record = {"step": task.step, "task_id": task.task_id, "attempt": task.attempt,
                  "status": state, "pid": running.pid, "start": running.started,
                  "end": time.time(), "duration": time.time() - running.started,
                  "run_id": self.run_id, "frames": [f.as_dict() for f in task.frames],
                  "signature": frames_signature(task.frames), "exit_code": code,
                  "error": {"type": "ProcessExit", "message": message, "traceback": ""}}
        atomic_write_json(path, record)
        return TaskResult.from_record(record)

    def _after_attempt(self, task: PendingTask, result: TaskResult) -> None:
        if result.status == "succeeded":
            self._emit_finished(result, will_retry=False)
            self.echo.task_succeeded(task.step, task.task_id, result)
            self._on_success(task, result)
            return
        if self.cancel_signal is not None:  # only the run's own cancellation cancels a task
            if result.status != "cancelled":  # e.g. a worker's KeyboardInterrupt from Ctrl+C
                result.error = {"type": (result.error or {}).get("type", "Cancelled"),
                                "message": "cancelled", "traceback": ""}
                self._record_status(task, "cancelled", result.error)
            result.status = "cancelled"
            self._emit_finished(result, will_retry=False)
            self.echo.task_cancelled(task.step, task.task_id)
            return
        if result.status != "failed":  # "cancelled" though the run is not: a failure, not a stop
            result.status = "failed"
            result.error = result.error or {"type": "ProcessExit", "message": (
                f"Task {task.step}/{task.task_id} stopped without finishing, although the "
                "run was not cancelled.")}
            self._record_status(task, "failed", result.error)
        retries = step_decorators(self.steps[task.step]).get("retry")
        will_retry = bool(retries) and task.attempt < int(retries["times"]) and \
            self.failed is None
        self._emit_finished(result, will_retry=will_retry)
        self.echo.task_failed(task.step, task.task_id, result, will_retry)
        if will_retry:
            self.queue.appendleft(PendingTask(task.step, task.task_id, task.frames,
                                              task.parents, task.attempt + 1))
        elif self.failed is None:
            self.failed = result

    def _record_status(self, task: PendingTask, status: str,
                       error: dict[str, Any] | None = None) -> None:
        """Make an attempt's record say what the orchestrator decided (it alone knows)."""
        path = attempt_file(os.path.join(self.run_dir, task.step, task.task_id), task.attempt,
                            "json")
        try:
            with open(path, "rb") as handle:
                record = json.loads(handle.read())
        except (OSError, ValueError):
            return
        record["status"] = status
        if error is not None:
            record["error"] = error
        atomic_write_json(path, record)

    def _emit_finished(self, result: TaskResult, will_retry: bool) -> None:
        assert self.events is not None
        fields: dict[str, Any] = {
            "step": result.step, "task_id": result.task_id, "attempt": result.attempt,
            "status": result.status, "duration": round(result.duration, 6),
            "error": result.error, "will_retry": will_retry,
            "artifacts": [{"name": k, "type": v.type, "size": v.size}
                          for k, v in result.artifacts.items()],
        }
        if result.foreach_splits is not None:
            fields["foreach_splits"] = result.foreach_splits
        if result.caught:
            fields["caught_error"] = result.caught
        if result.origin:
            fields["origin"] = result.origin
        self.events.emit(TASK_FINISHED, **fields)

    def _on_success(self, task: PendingTask, result: TaskResult) -> None:
        """Schedule what follows a finished task, as its static node type says."""
        self.results[task.task_id] = result
        node = self.graph[task.step]
        if node.type == "foreach":
            count = result.foreach_splits or 0
            for i in range(count):
                frame = Frame(task.step, task.task_id, "foreach", node.foreach_param, i, count)
                self._schedule(PendingTask(node.out_funcs[0], self._new_task_id(),
                                           task.frames + (frame,), [result]))
        elif node.type == "split":
            count = len(node.out_funcs)
            for i, child in enumerate(node.out_funcs):
                frame = Frame(task.step, task.task_id, "split", None, i, count)
                self._schedule(PendingTask(child, self._new_task_id(),
                                           task.frames + (frame,), [result]))
        else:
            for child in node.out_funcs:
                if self.graph[child].type == "join":
                    self._arrive_at_join(child, task, result)
                else:
                    self._schedule(PendingTask(child, self._new_task_id(), task.frames,
                                               [result]))

    def _arrive_at_join(self, join: str, task: PendingTask, result: TaskResult) -> None:
        """Collect a branch's last task; start the join once every branch has arrived."""
        frame = task.frames[-1]
        key = (join, frame.split_task_id)
        arrived = self.join_waits.setdefault(key, {})
        arrived[frame.index] = result
        if len(arrived) == frame.num_splits:
            del self.join_waits[key]
            parents = [arrived[i] for i in sorted(arrived)]
            self._schedule(PendingTask(join, self._new_task_id(), task.frames[:-1], parents))

    # -- cancellation ---------------------------------------------------------

    def _kill_all(self, sig: int) -> None:
        for running in self.running.values():
            _kill(running.pid, sig)

    def _cancel_all(self) -> None:
        """Stop every worker (TERM, then KILL after a grace period) and record them as cancelled."""
        self.queue.clear()
        for running in self.running.values():
            running.killed_for = "cancel"
        self._kill_all(signal.SIGTERM)
        deadline = time.time() + CANCEL_GRACE_S
        while self.running and time.time() < deadline:
            self._wait_once_bounded(deadline)
        self._kill_all(signal.SIGKILL)
        while self.running:
            self._wait_once_bounded(time.time() + 1.0)

    def _wait_once_bounded(self, deadline: float) -> None:
        assert self.sel is not None
        for key, _ in self.sel.select(max(0.0, min(0.05, deadline - time.time()))):
            if key.data == "wake":
                _drain(key.fd)
            elif key.data == "pidfd":
                self._reap_fd_owner(key.fd)
            else:
                self._read_output(key.fd)
        self._reap_without_pidfd()


class OriginRun:
    """The run a `resume` starts from: its finished tasks, keyed by their place in the graph."""

    def __init__(self, run_id: str, records: list[AttemptRecord], rerun_steps: set[str]):
        self.run_id = run_id
        self.rerun_steps = rerun_steps
        self.by_place: dict[tuple[str, str], TaskResult] = {}
        for rec in records:
            if rec.done:
                self.by_place[(rec.step, rec.signature)] = TaskResult.from_attempt(rec)

    def find(self, step: str, frames: tuple[Frame, ...]) -> TaskResult | None:
        return self.by_place.get((step, frames_signature(frames)))


def node_timeout(func: Any) -> float:
    deco = step_decorators(func).get("timeout")
    if not deco:
        return 0.0
    return float(deco.get("seconds") or 0) + 60 * float(deco.get("minutes") or 0) + \
        3600 * float(deco.get("hours") or 0)


def param_records(flow_cls: type, values: dict[str, Any]) -> list[ParamRecord]:
    """How each parameter was given: name, attribute, a display value and its command-line form."""
    records = []
    for attr, param in flow_parameters(flow_cls).items():
        if attr in values:
            value = values[attr]
            records.append(ParamRecord(param.name, attr, _jsonable_value(value),
                                       param_cli_text(param, value)))
    return records


def param_cli_text(param: Any, value: Any) -> str:
    """The command-line string that gives `value` back through `Parameter.convert`."""
    if param.kind == "json":
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _username() -> str | None:
    return os.environ.get("USER") or os.environ.get("USERNAME") or os.environ.get("LOGNAME")


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable_value(v) for k, v in params.items()}


def _jsonable_value(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None), list, dict)) \
        else repr(value)


def _pidfd_open(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, OSError):
        pass


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass

