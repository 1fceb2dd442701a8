"""The orchestrator: schedules task attempts on an executor and writes the event stream.

One process (the one that called `run`) owns the run: it starts an attempt per
task through its executor (`engine.executors`: forked workers by default), up to
`max_workers` at once, reads their stdout/stderr through pipes (to log files and,
prefixed, to the terminal), learns of their end through the executor's word that
they ended (`Executor.early_ends`: a local worker says so before its process is torn
down) or else an exit fd, and is the only writer of `events.jsonl` and `run.json`.

Nothing a task starts outlives it: the executor ends, when a task ends,
everything that task left behind (for forked workers: their process group and
the orphans they adopted, new sessions included). A cancel gives every task
SIGINT (the step sees KeyboardInterrupt, which is what cleanup handlers catch)
and CANCEL_GRACE_S to finish before SIGKILL. If the orchestrator itself is
killed with SIGKILL, its workers die with it, and what they started is out of
reach from here: the run's guard (`processes.RunGuard`, forked at run start, in
a session of its own) then kills the workers' process groups and every process
carrying the run id, which the orchestrator puts in its own environment for
every task to inherit; launchers (the window, `flowdeck run`) do the same.
"""

from __future__ import annotations

import gc
import json
import math
import os
import selectors
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import field
from pathlib import Path
from typing import Any

from flowdeck.analysis.diagnostics import FlowdeckError, UsageError
from flowdeck.analysis.graph import FlowGraph
from flowdeck.analysis.parameter_text import value_text
from flowdeck.authoring.definitions import catch_var_clash
from flowdeck.authoring.runsetup import is_parallel_worker
from flowdeck.authoring.spec import flow_parameters, step_decorators
from flowdeck.authoring.values import PARALLEL_VAR, UNBOUNDED_FOREACH_DECORATOR
from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engine.executors.base import Executor, Launched
from flowdeck.engine.executors.local import LocalExecutor
from flowdeck.engine.task import (
    EXIT_DISK_FULL,
    EXIT_STORE_ERROR,
    ParentResult,
    TaskRequest,
    disk_full_error,
    is_disk_full,
    memory_message,
    store_write_error,
)
from flowdeck.engine.taskstate import Frame, frames_signature
from flowdeck.engine.terminal import TerminalEcho, script_hint
from flowdeck.engines import processes
from flowdeck.store.blobs import BlobRef, BlobStore, atomic_write_json, warm_large_hashing
from flowdeck.store.events import (
    RUN_FINISHED,
    RUN_STARTED,
    TASK_FINISHED,
    TASK_STARTED,
    EventWriter,
)
from flowdeck.store.layout import RUN_ID_ENV, InvalidId, RunLayout, attempt_file, new_run_id
from flowdeck.store.liveness import own_process_start
from flowdeck.store.records import (
    ESCAPES_CATCH,
    AttemptRecord,
    DamagedRecord,
    ParamRecord,
    RunRecord,
    current_user,
    hostname,
    multiple_text,
)

#: How long a cancelled run's tasks get, after SIGINT, to finish their own cleanup
#: (`except KeyboardInterrupt:`, `finally:`) before SIGKILL. Launchers wait longer than
#: this before they kill the orchestrator (engines.base.DEFAULT_STOP_GRACE_S).
CANCEL_GRACE_S = 3.0
#: How often a cancel nudges the workers it interrupted during their grace
#: (`Executor.nudge`): a step whose interrupt Python only noted, asleep in a call that
#: Python checks for signals after (`time.sleep`, a read, a wait), takes it within this.
NUDGE_EVERY_S = 0.2
TIMEOUT_GRACE_S = 5.0
#: Room kept in the run folder while a run goes, freed first when it ends, so a full
#: disk still takes the run's last records (run.json and run_finished).
SPACE_RESERVE_BYTES = 64 * 1024
MEMORY_LIMIT_ENV = "FLOWDECK_MEMORY_LIMIT_MB"
#: Tasks in flight when `--max-workers` is not given: Metaflow's default (16), or the CPU
#: count where that is larger. A flow written for Metaflow fans out as it did there (a
#: foreach of downloads or API calls waits on 16 at once, not on 2 on a 2-core laptop),
#: and short tasks keep both cores busy while the orchestrator handles the ones that
#: ended: 1,000 trivial tasks on 2 cores took 0.74x the wall of 2 in flight (README).
#: Steps that declare @resources(cpu=N) still share only the machine's CPUs.
DEFAULT_MAX_WORKERS = 16


def default_max_workers() -> int:
    """`--max-workers` when not given (see DEFAULT_MAX_WORKERS)."""
    return max(DEFAULT_MAX_WORKERS, os.cpu_count() or 1)


class DiskFullError(FlowdeckError):
    """The store's disk is full before the run could start; nothing of the run is kept."""


class StoreWriteError(FlowdeckError):
    """The run's first records could not be written (a path too long for the file system,
    a folder without permission); nothing of the run is kept, and the message names the path."""


def start_refused(run_id: str, flow: str, exc: OSError,
                  fallback: str | os.PathLike[str]) -> FlowdeckError:
    """The error of a run the store refused before it started (a full disk, a read-only or
    unwritable folder): one message wherever a run starts, `python flow.py run` and
    `flowdeck run` alike (`flowdeck run` once showed a traceback where the engine said this).
    `fallback` is the path named when the OSError names none."""
    if is_disk_full(exc):
        return DiskFullError(f"Run {run_id} of {flow} could not start: "
                             f"{disk_full_error(exc.filename or fallback)['message']}")
    return StoreWriteError(f"Run {run_id} of {flow} could not start: "
                           f"{store_write_error(exc, fallback)['message']}")


@dataclass
class RunOptions:
    """How one run goes, as the command line and the launchers set it."""

    max_workers: int = 0
    run_id: str | None = None
    origin_run_id: str | None = None
    quiet: bool = False
    install_signal_handlers: bool = True
    memory_limit_mb: float | None = None  # for steps without @resources(memory=...); 0: none
    tags: list[str] | None = None  # --tag (user tags); recorded in run.json
    system_tags: list[str] | None = None  # user:<name>, project:..., set by the launcher
    executor: str | None = None  # where attempts run: "local" (forked) or "dask"; None:
    # $FLOWDECK_EXECUTOR, else local (engine.launch builds it)
    scheduler: str | None = None  # --scheduler: the Dask scheduler's address (dask only)
    #: The flow's parameters as the command line gave them (`--alpha`, `2`): the hint to
    #: run the flow again repeats them.
    parameter_args: tuple[str, ...] = ()


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
    foreach_unbounded: bool = False
    source_hash: str = ""  # the step's code that made it (a reused task: its origin's)

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
            foreach_unbounded=bool(rec.foreach_unbounded), source_hash=rec.source_hash,
        )

    def as_parent(self) -> ParentResult:
        return ParentResult(self.step, self.task_id, self.artifacts, self.frames, self.caught)


@dataclass
class PendingTask:
    """A task the orchestrator has decided to run: its place in the graph and its parents."""

    step: str
    task_id: str
    frames: tuple[Frame, ...]
    parents: list[TaskResult]
    attempt: int = 0


@dataclass
class ReadyTask:
    """A task whose request is built, waiting for its fork in this turn's burst."""

    task: PendingTask
    request: TaskRequest
    task_dir: str


@dataclass
class ForkedTask:
    """A task forked in this turn's burst, not yet recorded (`Orchestrator._track`)."""

    ready: ReadyTask
    launched: Launched
    started: float  # when its worker was forked: the start its events and timeout count from


@dataclass
class FanOut:
    """The tasks of one foreach, made one at a time as worker slots free up, in input order.

    Made up front, a foreach of 10 million items took about 70 s (and memory for every
    task) before the orchestrator looked at a signal again; made lazily, a Stop is
    honoured within the usual grace however large the foreach is.
    """

    step: str
    parent: TaskResult
    frames: tuple[Frame, ...]
    foreach_param: str | None
    count: int
    next_index: int = 0
    unbounded: bool = False  # the workers of an unbounded foreach (see Orchestrator._control)

    def take(self, task_id: str) -> PendingTask:
        frame = Frame(self.parent.step, self.parent.task_id, "foreach", self.foreach_param,
                      self.next_index, self.count, self.unbounded)
        self.next_index += 1
        return PendingTask(self.step, task_id, self.frames + (frame,), [self.parent])

    @property
    def exhausted(self) -> bool:
        return self.next_index >= self.count


@dataclass
class RunningTask:
    """A task whose worker runs: its fds, logs, deadline and why it is being killed."""

    pending: PendingTask
    launched: Launched
    started: float
    task_dir: str
    deadline: float | None
    open_fds: set[int] = field(default_factory=set)
    logs: dict[int, Any] = field(default_factory=dict)
    killed_for: str | None = None
    slots: int = 1  # of max_workers: @resources(cpu=N) takes N
    cpus: int = 0  # of the CPU budget: what @resources(cpu=N) declared (0: none)
    memory_mb: float | None = None
    memory_source: str = ""

    @property
    def key(self) -> int:
        return self.launched.key

    @property
    def out_fd(self) -> int:
        return self.launched.out_fd

    @property
    def err_fd(self) -> int:
        return self.launched.err_fd


@dataclass
class RunOutcome:
    """What a finished run returns to its caller: status, exit code and the task that failed."""

    run_id: str
    status: str  # succeeded | failed | cancelled
    exit_code: int
    root: Path
    failed_task: TaskResult | None = None


class Orchestrator:
    """Runs one flow run to its end. Not thread-safe; one instance per run."""

    def __init__(self, flow_cls: type, graph: FlowGraph, params: dict[str, Any],
                 layout: RunLayout, options: RunOptions,
                 origin: "OriginRun | None" = None, executor: Executor | None = None):
        self.executor = executor or LocalExecutor()
        self.flow_cls = flow_cls
        self.graph = graph
        self.params = params
        self.layout = layout
        self.blobs = BlobStore(layout.root)
        self.opts = options
        self.origin = origin
        self.max_workers = options.max_workers or default_max_workers()
        #: What tasks that declare @resources(cpu=N) may hold together: the machine's CPUs,
        #: or --max-workers where given (then the one budget it always was).
        self.cpu_budget = options.max_workers or os.cpu_count() or 1
        self.run_id = options.run_id or new_run_id()
        self.echo = TerminalEcho(self.run_id, quiet=options.quiet, file=graph.file,
                                 hint=script_hint(graph.file, options.executor,
                                                  options.scheduler, options.parameter_args))
        self.queue: deque[PendingTask | FanOut] = deque()
        self.running: dict[int, RunningTask] = {}
        self.fd_owner: dict[int, RunningTask] = {}
        #: The fds of workers forked in this burst and not yet tracked: a later worker of the
        #: burst closes them too.
        self.forked_fds: list[int] = []
        self.results: dict[str, TaskResult] = {}
        #: Branches arrived at each join (by join step and split task), by index; None for a
        #: @parallel worker left to its control task's @catch (`_leave_to_control`).
        self.join_waits: dict[tuple[str, str], dict[int, TaskResult | None]] = {}
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
        self.default_memory = _default_memory_limit(options)
        self.resources = {name: step_resources(name, func, graph.file)
                          for name, func in self.steps.items()}
        taken = {n for attr, p in flow_parameters(flow_cls).items() for n in (attr, p.name)}
        for name, func in self.steps.items():
            check_step_numbers(name, func, graph.file)
            check_catch_var(name, func, graph.file, taken, graph.nodes)
        self.guard: processes.RunGuard | None = None
        self.disk_full: dict[str, Any] | None = None  # the first write that found no room
        self.store_error: dict[str, Any] | None = None  # a write the store refused otherwise
        self.run_error: dict[str, Any] | None = None  # what else stopped the loop
        self.reserve: Path | None = None

    # -- lifecycle ----------------------------------------------------------

    def run(self) -> RunOutcome:
        # Signals first: a stop that comes while the first records are written cancels the
        # run. Installed after them, a stop in between killed the process and left run.json
        # "running", so the run read back crashed (found by reliability/save_storms.py).
        processes.occupy_standard_fds()
        restore = self._install_signals()
        try:
            run_dir = self._create_run_dir()
            self.run_dir = str(run_dir)
            self._begin(run_dir)
        except BaseException:
            restore()
            self._close_selector()
            raise
        # Every process the run starts carries its id (exec'd ones in /proc/PID/environ), even
        # when `python flow.py run` was started without it: the guard and launchers find them.
        previous_run_id = os.environ.get(RUN_ID_ENV)
        os.environ[RUN_ID_ENV] = self.run_id
        gc_was_enabled = gc.isenabled()
        engine_bug: Exception | None = None
        # From here on, whatever fails ends the run "failed" (never "running" in run.json).
        guard: processes.RunGuard | None = None
        try:
            self.echo.run_started(self.graph.name, self.origin.run_id if self.origin else None)
            if self.origin is not None:
                self.echo.changed_since_origin(self.origin.changed_steps,
                                               self.origin.outside_changed, self.origin.run_id)
            self.executor.before_guard(self.run_id)
            try:
                guard = self.guard = processes.RunGuard(
                    (RUN_ID_ENV, self.run_id), inherited=previous_run_id == self.run_id)
            except OSError as exc:  # no process to fork (a process or memory limit)
                raise FlowdeckError(f"the run's guard process could not start: "
                                    f"{exc.strerror or exc}. Free processes or memory, then "
                                    "run the flow again.") from None
            self.executor.open(guard)
            self._schedule(PendingTask(self.graph.start_step or "start", self._new_task_id(),
                                       (), []))
            self._loop()
        except OSError as exc:  # a write the store refused: the run fails, never stays running
            if is_disk_full(exc):  # out of blocks or inodes at a write that did not expect it
                self._on_disk_full(exc.filename or self.run_dir)
                assert self.disk_full is not None
                self._fail_running(self.disk_full)
            else:
                self.store_error = store_write_error(exc, self.run_dir)
                self._fail_running(self.store_error)
        except FlowdeckError as exc:  # the run cannot go on as asked (an executor's refusal)
            self.run_error = {"type": type(exc).__name__, "message": str(exc), "traceback": ""}
            self._fail_running(self.run_error)
        except Exception as exc:  # an engine bug: the run still ends "failed", then the traceback
            engine_bug = exc
            self.run_error = {"type": type(exc).__name__, "traceback": "",
                              "message": f"Flowdeck's engine failed ({type(exc).__name__}: "
                                         f"{exc}); please report it with the traceback below."}
            self._fail_running(self.run_error)
        finally:
            self._leave_nothing_behind()
            if guard is not None:
                guard.close()
            _restore_env(RUN_ID_ENV, previous_run_id)
            restore()
            self._close_selector()
            gc.unfreeze()
            if gc_was_enabled:
                gc.enable()
        outcome = self._finish()
        if engine_bug is not None:
            raise engine_bug
        return outcome

    def _begin(self, run_dir: Path) -> None:
        """Write the run's first records; a full disk here ends it before it starts, cleanly."""
        try:
            self.events = EventWriter(run_dir / "events.jsonl", self.run_id)
            self.reserve = self._reserve_space()
            self.param_refs = {name: self.blobs.put(name, value)
                               for name, value in self.params.items()}
            self._write_run_json("running")
            self.events.emit(RUN_STARTED, flow=self.graph.name, file=self.graph.file,
                             params=_jsonable(declared_parameters(self.flow_cls, self.params)),
                             graph=self.graph.as_dict(), pid=os.getpid(),
                             origin_run_id=self.origin.run_id if self.origin else None,
                             step_hashes=self.graph.step_hashes(), max_workers=self.max_workers,
                             engine="flowdeck", run_dir=str(run_dir))
        except OSError as exc:
            if self.events is not None:
                self.events.close()
            import shutil  # only here: with bz2 and lzma, 2 ms of every run's start
            shutil.rmtree(run_dir, ignore_errors=True)  # only this run's own, just made
            raise start_refused(self.run_id, self.graph.name, exc, run_dir) from None

    def _reserve_space(self) -> Path:
        path = self.layout.space_reserve(self.run_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, bytes(SPACE_RESERVE_BYTES))  # real blocks, even where fallocate is not
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        finally:
            os.close(fd)
        return path

    def _release_reserve(self) -> None:
        if self.reserve is not None:
            try:
                os.unlink(self.reserve)
            except OSError:
                pass
            self.reserve = None

    def _fail_running(self, error: dict[str, Any]) -> None:
        """Say that the tasks still running fail with the run (they are killed next), so no
        view keeps showing them as running; best effort, the store is refusing writes."""
        for running in list(self.running.values()):
            task = running.pending
            try:
                self._emit(TASK_FINISHED, step=task.step, task_id=task.task_id,
                           attempt=task.attempt, status="failed", duration=0.0, error=error,
                           will_retry=False, artifacts=[])
            except OSError:
                return

    def _leave_nothing_behind(self) -> None:
        """However the loop ended (an engine error included): no worker, and nothing any task
        started, outlives the run."""
        for running in list(self.running.values()):
            self._kill_task(running)
        deadline = time.time() + CANCEL_GRACE_S
        while self.running and time.time() < deadline:
            for running in list(self.running.values()):
                if self.executor.reap_killed(running.launched):
                    self.running.pop(running.key, None)
            time.sleep(0.01)
        stuck = self.executor.close(set(self.running))
        if stuck:
            self._tell(f"Run {self.run_id}: processes {', '.join(map(str, stuck))} did not "
                       "end after SIGKILL (stuck in the kernel); end them by hand.")

    def _create_run_dir(self) -> Path:
        try:
            return self.layout.create_run_dir(self.run_id)
        except InvalidId as exc:
            raise UsageError(str(exc)) from None
        except FileExistsError:
            raise UsageError(f"{self.graph.name} already has a run {self.run_id} in "
                             f"{self.layout.root}; choose another run id.") from None
        except OSError as exc:
            raise start_refused(self.run_id, self.graph.name, exc,
                                self.layout.runs_dir) from None

    def _finish(self) -> RunOutcome:
        """Decide the run's status: it succeeded only if its end step succeeded (or was reused)."""
        status, code, error = self._verdict()
        duration = time.time() - self.started
        self._release_reserve()  # room for the last records, even on a full disk
        unwritten = []
        try:
            self._write_run_json(status, exit_code=code, error=error)
        except OSError:  # a full disk, or worse: the run's end is still told on stderr
            unwritten.append(str(self.layout.run_json(self.run_id)))
        assert self.events is not None
        try:
            if not self._emit(RUN_FINISHED, status=status, duration=round(duration, 6),
                              error=error, exit_code=code):
                unwritten.append(str(self.events.path))
        except OSError:
            unwritten.append(str(self.events.path))
        self.events.close()
        self.echo.run_finished(status, duration, self.failed)
        if self.disk_full is not None:
            self._say_disk_full(unwritten)
        elif self.store_error is not None or unwritten:
            self._say_store_error(unwritten)
        elif self.run_error is not None:
            self._tell(f"Run {self.run_id} failed: {self.run_error['message']}")
        return RunOutcome(self.run_id, status, code, self.layout.root, self.failed)

    def _verdict(self) -> tuple[str, int, dict[str, Any] | None]:
        """(status, exit code, error) of the run as it stands now."""
        if self.disk_full is not None:
            return "failed", 1, dict(self.disk_full)
        if self.store_error is not None:
            return "failed", 1, dict(self.store_error)
        if self.run_error is not None:
            return "failed", 1, dict(self.run_error)
        if self.cancel_signal is not None:
            return "cancelled", 128 + self.cancel_signal, None
        if self.failed is not None:
            return "failed", 1, {"step": self.failed.step, "task_id": self.failed.task_id,
                                 **(self.failed.error or {})}
        if self._end_finished():
            return "succeeded", 0, None
        # nothing failed, yet the run stopped short: an engine bug, never a success
        error = self._incomplete_error()
        self._tell(f"Run {self.run_id} failed: {error['message']}")
        return "failed", 1, error

    def _say_disk_full(self, unwritten: list[str]) -> None:
        """The disk-full verdict on stderr, always: the records that would say it may be lost."""
        assert self.disk_full is not None
        lost = (f" Its end could not be recorded in {' or '.join(unwritten)}." if unwritten
                else "")
        if self.failed is None or unwritten:
            self._tell(f"Run {self.run_id} failed: {self.disk_full['message']}{lost}")

    def _say_store_error(self, unwritten: list[str]) -> None:
        """The store's refusal on stderr, always: the run's own records may not say it."""
        lost = (f" Its end could not be recorded in {' or '.join(unwritten)}." if unwritten
                else "")
        message = (self.store_error or {}).get("message", "the run's records could not be "
                                                          "written")
        self._tell(f"Run {self.run_id} failed: {message}{lost}")

    def _tell(self, text: str) -> None:
        """A line on stderr, which may itself be a file on the full disk: never an error."""
        err = self.echo.err
        if err is None:  # started without fd 2: print(file=None) would write to stdout
            return
        try:
            print(text, file=err, flush=True)
        except (OSError, ValueError):
            pass

    def _on_disk_full(self, path: str | os.PathLike[str] | None,
                      task: PendingTask | None = None) -> None:
        """The first write that found the disk full stops the run, which then fails."""
        if self.disk_full is None:
            self.disk_full = {**disk_full_error(path), "step": task.step if task else None,
                              "task_id": task.task_id if task else None}

    def _emit(self, kind: str, at: float | None = None, **fields: Any) -> bool:
        """Append an event (that happened `at`, else now); False (and the run stops) when
        the disk is full."""
        assert self.events is not None
        try:
            self.events.emit(kind, at, **fields)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self._on_disk_full(exc.filename or self.events.path)
            return False
        return True

    def _write_record(self, path: str, record: dict[str, Any], task: PendingTask) -> None:
        """Write an attempt record; on a full disk the run stops, and the result lives on in
        memory (events and the run's verdict still say what happened)."""
        try:
            atomic_write_json(path, record)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self._on_disk_full(exc.filename or path, task)

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
        first = (never or unfinished or [""])[0] or None
        return {"step": first, "task_id": None,
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
            pid=os.getpid(), process_start=own_process_start(), host=hostname(),
            user=current_user(), engine="flowdeck",
            params=param_records(self.flow_cls, self.params),
            param_refs={k: v.as_dict() for k, v in self.param_refs.items()},
            step_hashes=self.graph.step_hashes(), outside_hash=self.graph.outside_hash,
            origin_run_id=self.origin.run_id if self.origin else None,
            max_workers=self.max_workers, exit_code=exit_code, error=error,
            tags=self.opts.tags, system_tags=self.opts.system_tags,
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
        stops = processes.StopBurst()

        def on_cancel(signum: int, frame: Any) -> None:
            """The first stop request cancels the run (each task gets its grace); a second
            one (Ctrl+C or SIGTERM, past the burst of the first: `processes.StopBurst`)
            stops waiting for the tasks, and the run is still recorded as cancelled."""
            if not stops.request():
                return  # the same request again (one Ctrl+C delivered twice)
            if self.cancel_signal is not None:
                self._kill_all()
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
        if self.executor.ends_fd is not None:
            self.sel.register(self.executor.ends_fd, selectors.EVENT_READ, "ends")
        while True:
            if self.cancel_signal is not None or self.disk_full is not None:
                self._cancel_all()
                return
            self._start_ready_tasks()
            if not self.running:
                return
            self._wait_once()

    def _next_pending(self) -> PendingTask:
        """The queue's next task (a foreach's next item, made now)."""
        head = self.queue[0]
        if isinstance(head, FanOut):
            task = head.take(self._new_task_id())
            if head.exhausted:
                self.queue.popleft()
            return task
        self.queue.popleft()
        return head

    def _ready_tasks(self) -> list[ReadyTask]:
        """The queued tasks that fit now, their requests built, in queue order: within
        max_workers and, where a step declares CPUs, within the CPU budget (a task alone
        always fits). A task resumed from its origin run is cloned here and takes no slot."""
        used = sum(t.slots for t in self.running.values())
        cpus_used = sum(t.cpus for t in self.running.values())
        ready: list[ReadyTask] = []
        while self.queue and self.failed is None and self.disk_full is None and \
                self.cancel_signal is None:
            step = self.queue[0].step
            slots, cpus = self._slots(step), self._cpus(step)
            alone = not self.running and not ready
            if not alone and (used + slots > self.max_workers
                              or (cpus and cpus_used + cpus > self.cpu_budget)):
                break
            item = self._prepare(self._next_pending())
            if item is not None:
                ready.append(item)
                used += slots
                cpus_used += cpus
        return ready

    def _slots(self, step: str) -> int:
        """What a task of `step` takes of max_workers: its declared CPUs, else 1."""
        return self._declared_share(step, self.max_workers) or 1

    def _cpus(self, step: str) -> int:
        """What a task of `step` takes of the CPU budget: its declared CPUs, else 0."""
        return self._declared_share(step, self.cpu_budget)

    def _declared_share(self, step: str, budget: int) -> int:
        """@resources(cpu=N) of `step` as whole CPUs, at most the whole budget (a task alone
        always fits); 0 when the step declares none."""
        cpu = self.resources[step].cpu
        return min(budget, max(1, math.ceil(cpu))) if cpu else 0

    def _wait_once(self) -> None:
        self._select(self._next_timeout())
        self._enforce_deadlines()

    def _select(self, timeout: float | None) -> None:
        """One turn of the loop: wake-ups, exits and output, then exits without an exit fd."""
        assert self.sel is not None
        for key, _ in self.sel.select(timeout):
            if key.data == "wake":
                _drain(key.fd)
            elif key.data == "exit":
                self._reap_fd_owner(key.fd)
            elif key.data == "ends":
                self._on_early_ends()
            else:
                self._read_output(key.fd)
        self._reap_without_exit_fd()

    def _next_timeout(self) -> float | None:
        timeouts = [0.05] if any(t.launched.exit_fd is None for t in self.running.values()) \
            else []
        now = time.time()
        timeouts += [max(0.0, t.deadline - now) for t in self.running.values() if t.deadline]
        return min(timeouts) if timeouts else None

    # -- starting tasks -------------------------------------------------------

    def _start_ready_tasks(self) -> None:
        """Start every queued task that fits: build every request, fork every worker back to
        back, then record and announce each.

        Why in three passes: a fork write-protects the orchestrator's pages while the
        worker shares them, and each page the orchestrator writes after it is copied.
        With a task's request, record and announcement between two forks, the
        orchestrator copied about 370 pages per task of a 1,000-item foreach; with the
        forks back to back it copies what recording touches once per burst (about 150
        a task; its CPU 3.2 -> 2.0 s, the run's wall 0.87x). A worker forked earlier in
        the burst never waits on this: its end is read only after the burst is recorded.
        """
        forked: list[ForkedTask] = []
        try:
            for ready in self._ready_tasks():
                if self.cancel_signal is not None:  # a Ctrl+C during the burst: fork no more
                    break
                launched = self.executor.start(ready.request, self._close_parent_fds)
                forked.append(ForkedTask(ready, launched, time.time()))
                self.forked_fds += _fds_of(launched)
        finally:  # a failed fork fails the run, but the workers already forked are tracked
            self.forked_fds.clear()
            for task in forked:
                self._track(task)

    def _prepare(self, task: PendingTask) -> ReadyTask | None:
        """The task's request, or None when it needs no worker: reused from the origin run
        (cloned now), or its folder could not be made on a full disk (the run stops)."""
        if self.origin and (task.step not in self.origin.rerun_steps
                            or self.origin.reuses_task(task.step, task.parents)):
            reused = self.origin.find(task.step, task.frames)
            if reused is not None and self._intact(reused):
                self._clone(task, reused)
                return None
        try:
            task_dir = self._make_task_dir(task, create=False)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self._on_disk_full(exc.filename, task)
            return None
        return ReadyTask(task, self._request(task, task_dir), task_dir)

    def _intact(self, origin: TaskResult) -> bool:
        """True when every artifact blob of an origin task is present and matches its hash.

        Resume reruns a task whose artifacts are missing or damaged instead of
        handing them on; each blob is hashed once per run (BlobStore.damage).
        """
        problems = [p for p in (self.blobs.damage(ref) for ref in origin.artifacts.values()) if p]
        if problems:
            self._tell(f"Not reusing {self.origin.run_id if self.origin else ''}/{origin.step}/"
                       f"{origin.task_id}: {'; '.join(problems)}. Running the task again.")
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

    def _track(self, forked: ForkedTask) -> None:
        task, request, task_dir = forked.ready.task, forked.ready.request, forked.ready.task_dir
        launched, now = forked.launched, forked.started
        timeout_s = request.timeout_s
        exit_fd = launched.exit_fd
        running = RunningTask(task, launched, now, task_dir,
                              deadline=now + timeout_s + TIMEOUT_GRACE_S if timeout_s else None,
                              open_fds={launched.out_fd, launched.err_fd}
                              | ({exit_fd} if exit_fd is not None else set()),
                              slots=self._slots(task.step), cpus=self._cpus(task.step),
                              memory_mb=request.memory_mb,
                              memory_source=request.memory_source)
        assert self.sel is not None
        for fd in (launched.out_fd, launched.err_fd):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, "out")
            self.fd_owner[fd] = running
        if exit_fd is not None:
            self.sel.register(exit_fd, selectors.EVENT_READ, "exit")
            self.fd_owner[exit_fd] = running
        self.running[launched.key] = running
        pid = launched.pid  # None where the fork server could not fork it (its failure follows)
        frame = next((f for f in reversed(task.frames) if f.kind == "foreach"), None)
        self._emit(TASK_STARTED, now, step=task.step, task_id=task.task_id,
                   attempt=task.attempt, pid=pid, reused=False,
                   **({"worker": launched.where} if launched.where else {}),
                   foreach={"index": frame.index, "num_splits": frame.num_splits}
                   if frame else None,
                   input_paths=self._input_paths(task),
                   logs={"stdout": self._rel(attempt_file(task_dir, task.attempt, "out")),
                         "stderr": self._rel(attempt_file(task_dir, task.attempt, "err"))})
        self.echo.task_started(task.step, task.task_id, task.attempt, pid, launched.where, now)

    def _request(self, task: PendingTask, task_dir: str) -> TaskRequest:
        node = self.graph[task.step]
        func = self.steps[task.step]
        decos = step_decorators(func)
        retry = decos.get("retry")
        catch = decos.get("catch")
        memory_mb, memory_source = self._memory_limit(task.step)
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
            memory_mb=memory_mb, memory_source=memory_source,
            unbounded_problem=self._unbounded_problem(task.step) if node.type == "foreach"
            else None,
        )

    def _unbounded_problem(self, step: str) -> str | None:
        """Why the step after foreach step `step` cannot run an unbounded foreach (what the
        task says if its foreach input turns out unbounded); None when it can.

        As in Metaflow, the step needs the decorator that runs one and must go straight to
        a join (only the join can collect the workers).
        """
        node = self.graph[step]
        if not node.out_funcs or node.foreach_param == PARALLEL_VAR:
            return None
        child = self.graph[node.out_funcs[0]]
        where = f"step `{child.name}` ({self.graph.file}, line {child.line})"
        if UNBOUNDED_FOREACH_DECORATOR not in step_decorators(self.steps[child.name]):
            return (f"{where} has no @{UNBOUNDED_FOREACH_DECORATOR}, the decorator that runs "
                    f"one. Add it to `{child.name}`, or make self.{node.foreach_param} a list.")
        if len(child.out_funcs) != 1 or self.graph[child.out_funcs[0]].type != "join":
            return (f"{where} must go straight to a join (an unbounded foreach runs a single "
                    f"step). Make `{child.name}` call self.next(...) with a join step only.")
        return None

    def _memory_limit(self, step: str) -> tuple[float | None, str]:
        """A step's memory limit in MB and where it comes from: @resources, else the run's."""
        own = self.resources[step].memory
        if own:
            return own, "@resources"
        return self.default_memory

    def _input_paths(self, task: PendingTask) -> list[str]:
        return [f"{self.run_id}/{p.step}/{p.task_id}" for p in task.parents]

    def _rel(self, path: str) -> str:
        return path[len(self.run_dir) + 1:]

    def _close_parent_fds(self) -> None:
        """In a fresh worker: drop the orchestrator's fds so pipes see EOF correctly."""
        fds = list(self.fd_owner) + list(self.wake_fds or ()) + self.forked_fds
        if self.guard is not None and self.guard.active:
            fds.append(self.guard.fd)  # only the orchestrator's end may keep the guard waiting
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
        self._on_success(task, self._reuse(task, origin))

    def _reuse(self, task: PendingTask, origin: TaskResult, control: bool = False) -> TaskResult:
        """Record `task` as a copy of the origin run's finished task `origin` (events too)."""
        task_dir = self._make_task_dir(task)
        assert self.origin is not None and self.events is not None
        origin_path = f"{self.origin.run_id}/{origin.step}/{origin.task_id}"
        now = time.time()
        record = {
            "step": task.step, "task_id": task.task_id, "attempt": 0, "status": "reused",
            "run_id": self.run_id, "start": now, "end": now, "duration": 0.0,
            "frames": [f.as_dict() for f in task.frames],
            "signature": frames_signature(task.frames),
            # the code that made the artifacts: a later resume tells a change by it
            "source_hash": origin.source_hash or self.graph[task.step].source_hash,
            "artifacts": {k: v.as_dict() for k, v in origin.artifacts.items()},
            "next": origin.next, "foreach_splits": origin.foreach_splits,
            "foreach_unbounded": origin.foreach_unbounded or None,
            "origin": origin_path, "origin_attempt": origin.attempt,
            "input_paths": self._input_paths(task),
        }
        self._write_record(attempt_file(task_dir, 0, "json"), record, task)
        frame = next((f for f in reversed(task.frames) if f.kind == "foreach"), None)
        self._emit(TASK_STARTED, now, step=task.step, task_id=task.task_id, attempt=0,
                   pid=os.getpid(), reused=True,
                   foreach={"index": frame.index, "num_splits": frame.num_splits}
                   if frame else None,  # the picker shows a reused item's [i] too
                   input_paths=self._input_paths(task), logs=None,
                   **({"control": True} if control else {}))
        result = TaskResult.from_record(record)
        self._emit_finished(result, will_retry=False)
        self.echo.task_reused(task.step, task.task_id, origin_path)
        return result

    def _control(self, step: str, split: PendingTask, result: TaskResult, count: int) -> None:
        """The control task of an unbounded foreach over `count` items, made by `split`.

        Metaflow runs an unbounded foreach locally as one control task, which runs no
        user code (its decorator starts the workers) and is no input of the join, plus
        one worker per item. Here the orchestrator starts the workers itself (a FanOut
        of `unbounded` frames), so the control task is a record it writes: the split's
        artifacts, a "control" frame (its place for resume: `<split>:control`), and
        `internal_task_type` in the client's metadata. It never reaches the join.
        """
        node = self.graph[split.step]
        frame = Frame(split.step, split.task_id, "control", node.foreach_param, 0, count)
        task = PendingTask(step, self._new_task_id(), split.frames + (frame,), [result])
        if self.origin and (step not in self.origin.rerun_steps
                            or self.origin.reuses_task(step, [result])):
            reused = self.origin.find(step, task.frames)
            if reused is not None and self._intact(reused):
                self.results[task.task_id] = self._reuse(task, reused, control=True)
                return
        try:
            task_dir = self._make_task_dir(task)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self._on_disk_full(exc.filename, task)
            return
        now = time.time()
        record = {
            "step": step, "task_id": task.task_id, "attempt": 0, "status": "succeeded",
            "run_id": self.run_id, "pid": os.getpid(), "start": now, "end": now,
            "duration": 0.0, "frames": [f.as_dict() for f in task.frames],
            "signature": frames_signature(task.frames),
            "source_hash": self.graph[step].source_hash,
            "artifacts": {k: v.as_dict() for k, v in result.artifacts.items()},
            "next": list(self.graph[step].out_funcs), "input_paths": self._input_paths(task),
        }
        self._write_record(attempt_file(task_dir, 0, "json"), record, task)
        self._emit(TASK_STARTED, step=step, task_id=task.task_id, attempt=0, pid=os.getpid(),
                   reused=False, foreach=None, input_paths=self._input_paths(task), logs=None,
                   control=True)
        control = TaskResult.from_record(record)
        self._emit_finished(control, will_retry=False)
        self.echo.control_task(step, task.task_id, count)
        self.results[task.task_id] = control

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
        task = running.pending
        if self.disk_full is None:  # once the disk is full, output is only echoed
            kind = "out" if fd == running.out_fd else "err"
            path = attempt_file(running.task_dir, task.attempt, kind)
            try:
                _append(running.logs, fd, path, data)
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                self._on_disk_full(path, task)
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

    def _on_early_ends(self) -> None:
        """Workers that said they ended, their last act before exiting: finish their tasks
        now, while the kernel tears their processes down (about 1 ms each here, on the
        way of every step of a chain). A task being killed ends as it exits."""
        for key, status in self.executor.early_ends(set(self.running)):
            running = self.running.get(key)
            if running is None or running.killed_for is not None:
                continue
            exit_fd = running.launched.exit_fd
            if exit_fd in running.open_fds:  # the executor's to close once it reaped the worker
                running.open_fds.discard(exit_fd)
                self.fd_owner.pop(exit_fd, None)
                assert self.sel is not None
                self.sel.unregister(exit_fd)
            self.executor.release(running.launched)
            self._on_exit(running, status)

    def _reap_fd_owner(self, exit_fd: int) -> None:
        running = self.fd_owner.get(exit_fd)
        if running is not None:
            self._reap(running)

    def _reap_without_exit_fd(self) -> None:
        for running in [t for t in self.running.values() if t.launched.exit_fd is None]:
            self._reap(running)

    def _reap(self, running: RunningTask) -> None:
        status = self.executor.ended(running.launched, set(self.running))
        if status is not None:
            self._on_exit(running, status)

    def _kill_task(self, running: RunningTask) -> None:
        """Stop a task now, with everything it started."""
        self.executor.kill(running.launched)

    def _enforce_deadlines(self) -> None:
        now = time.time()
        for running in list(self.running.values()):
            if running.deadline and now > running.deadline and running.killed_for is None:
                running.killed_for = "timeout"
                self._kill_task(running)

    def _on_exit(self, running: RunningTask, status: int) -> None:
        """A worker exited: drain its output, read its record, decide what comes next."""
        for fd in list(running.open_fds):
            if fd in (running.out_fd, running.err_fd):
                self._drain_output(running, fd)
            self._close_fd(running, fd)
        for log in running.logs.values():
            log.close()  # unbuffered: nothing left to write, so closing cannot fail on a full disk
        self.echo.flush_task(running.pending.step, running.pending.task_id)
        self.running.pop(running.key, None)
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
            result = TaskResult.from_attempt(AttemptRecord.read(path))
        except (OSError, DamagedRecord):
            pass
        else:
            warm_large_hashing(result.artifacts.values())
            if status and result.status == "succeeded" and running.killed_for is None:
                self._fail_late_exit(running, result, os.waitstatus_to_exitcode(status))
            if result.status == "failed" and result.error:
                if running.killed_for == "cancel" and result.error.get("signal") == "SIGINT":
                    self._log_cancel(running, result.error)
                else:
                    self._log_failure(running, result.error)
            if running.killed_for == "timeout":  # the step had returned; its threads had not
                self._note_in_stderr(running, (
                    f"Step `{task.step}` returned, but the threads or exit handlers it left "
                    "running were still going at its @timeout and were killed with the task: "
                    "their work may be incomplete. Join them in the step, or raise the limit."))
            return result
        code = os.waitstatus_to_exitcode(status)
        error = self._exit_error(running, code, path)
        state = "cancelled" if running.killed_for == "cancel" else "failed"
        record = {"step": task.step, "task_id": task.task_id, "attempt": task.attempt,
                  "status": state, "pid": running.launched.pid, "start": running.started,
                  "end": time.time(), "duration": time.time() - running.started,
                  "run_id": self.run_id, "frames": [f.as_dict() for f in task.frames],
                  "signature": frames_signature(task.frames), "exit_code": code,
                  "error": error}
        try:
            os.makedirs(running.task_dir, exist_ok=True)  # the worker died before making it
        except OSError as exc:
            if not is_disk_full(exc):
                raise
        self._write_record(path, record, task)
        return TaskResult.from_record(record)

    def _fail_late_exit(self, running: RunningTask, result: TaskResult, code: int) -> None:
        """A worker that recorded success and then did not end as the engine ends it (exit
        code 0; a wait at exit past $FLOWDECK_EXIT_WAIT_S ends so too): what ran after the
        step (its atexit handlers, the threads it left, C's exit handlers) crashed or exited
        with a code of its own. In a process per task (Metaflow) that process's exit fails
        the task, so it fails here too: the record on disk says so, @retry retries it, and
        @catch treats it as a task that died (ProcessExit)."""
        step = running.pending.step
        how = (f"exited with code {code}" if code > 0
               else f"crashed ({_signal_name(-code)})" if -code in _CRASH_SIGNALS
               else f"were killed by {_signal_name(-code)}")
        result.status = "failed"
        result.error = {"type": "ProcessExit", "traceback": "",
                        "message": (
                            f"Step `{step}` returned and its result was saved, but then its "
                            f"exit handlers (atexit, or the threads it left running) {how}: "
                            "their work may be incomplete, so the task failed. Fix them, or "
                            "do that work in the step itself.")}
        self._record_status(running.pending, "failed", result.error)

    def _exit_error(self, running: RunningTask, code: int, path: str) -> dict[str, Any]:
        """Why a worker ended without writing its record, from how it ended."""
        step = running.pending.step
        if code == EXIT_DISK_FULL and running.killed_for is None:
            return disk_full_error(path)
        if code == EXIT_STORE_ERROR and running.killed_for is None:
            return _store_error(step)
        if running.killed_for == "timeout":
            message = (f"Step `{step}` ran past its @timeout and was killed. Make it "
                       "faster or raise the limit.")
        elif running.killed_for == "cancel":
            message = "cancelled"
        elif (told := self.executor.exit_message(running.launched, code)) is not None:
            message = told  # e.g. a Dask worker lost mid-task, naming the worker
        elif code < 0 and running.memory_mb:  # the kernel (or a failed malloc's abort) killed it
            message = (f"{memory_message(step, running.memory_mb, running.memory_source)} "
                       f"(The task process was killed by {signal.Signals(-code).name}.)")
        elif code == -signal.SIGSEGV:
            message = ("Task failed with a segmentation fault (SIGSEGV) before it finished, "
                       "in native code the step called.")
            self._note_in_stderr(running, message)
        elif code == -signal.SIGKILL:  # the kernel's out-of-memory killer says nothing else
            message = ("The task process was killed by signal 9 (SIGKILL) before it "
                       "finished: by another process, or by the kernel when the machine ran "
                       "out of memory (`dmesg` names it). A memory limit on the step "
                       "(@resources(memory=MB) or --memory-limit) fails it with a message "
                       "instead.")
        elif code < 0:
            message = (f"The task process was killed by signal {-code} "
                       f"({signal.Signals(-code).name}) before it finished.")
        else:
            message = (f"The task process exited with code {code} before it finished "
                       "(os._exit or a crash in native code).")
        return {"type": "ProcessExit", "message": message, "traceback": ""}

    def _log_failure(self, running: RunningTask, error: dict[str, Any]) -> None:
        """A failed attempt's traceback at the end of its stderr log, as a Python process
        that raised leaves it there (Metaflow's task logs, `task.stderr` in the client);
        not echoed: the terminal's "Task failed" line shows it already."""
        said = f"{error.get('type', 'Error')}: {error.get('message')}"
        text = error.get("traceback") or said
        if error.get("signal") and text != said:  # where it was, then why that failed it
            text = f"{text.rstrip()}\n{error.get('message')}"
        _append_to_log(running, text)

    def _log_cancel(self, running: RunningTask, error: dict[str, Any]) -> None:
        """A task the run's cancel interrupted: where its step was, then that the run was
        stopped. Not the worker's own message, which cannot know it was a cancel and says
        the run was not cancelled."""
        where = error.get("traceback") or ""
        note = f"Cancelled: the run was stopped while step `{running.pending.step}` ran"
        if "File " in where:  # a frame of the user's code, not the bare exception
            _append_to_log(running, f"{where.rstrip()}\n{note} (above: where it was).")
        else:
            _append_to_log(running, f"{note}.")

    def _note_in_stderr(self, running: RunningTask, message: str) -> None:
        """Append the engine's word on how a task died to its stderr log (where Metaflow puts
        it, and where a user reading the task's log looks)."""
        task = running.pending
        _append_to_log(running, message)
        self.echo.output(task.step, task.task_id, True, f"{message}\n".encode())

    def _after_attempt(self, task: PendingTask, result: TaskResult) -> None:
        if self.disk_full is not None and self.disk_full.get("task_id") == task.task_id:
            self._fail_for_disk_full(task, result)
            return
        if result.status == "succeeded":
            self._emit_finished(result, will_retry=False)
            self.echo.task_succeeded(task.step, task.task_id, result)
            self._on_success(task, result)
            return
        if (result.error or {}).get("type") == "DiskFull":  # the worker found the disk full
            if self.disk_full is None:
                self.disk_full = {**(result.error or {}), "step": task.step,
                                  "task_id": task.task_id}
            self._fail_for_disk_full(task, result)
            return
        if self.cancel_signal is not None or self.disk_full is not None:
            # only the run's own stop cancels a task
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
        decos = step_decorators(self.steps[task.step])
        times = int(decos["retry"]["times"]) if decos.get("retry") is not None else 0
        # A process that died (a signal, a crash), or a step that raised what is not an
        # Exception (sys.exit, KeyboardInterrupt: Metaflow's @catch catches Exception, and
        # its task process dies of the rest), gave @catch no chance: it gets one more
        # attempt, which runs no user code and records FailureHandledByCatch (Metaflow's rule).
        # On a @parallel step only the control task (node 0) gets it: in Metaflow the control
        # task runs the workers, and its @catch answers for the whole step.
        error = result.error or {}
        died_last = "catch" in decos and task.attempt == times and \
            (error.get("type") == "ProcessExit" or bool(error.get(ESCAPES_CATCH)))
        left_to_control = died_last and is_parallel_worker(task.frames) and self.failed is None
        catch_fallback = died_last and not left_to_control
        again = (result.error or {}).get("retry", True)  # False: a check no attempt passes
        will_retry = ((task.attempt < times and again) or catch_fallback) and self.failed is None
        self._emit_finished(result, will_retry=will_retry, left_to_control=left_to_control)
        self.echo.task_failed(task.step, task.task_id, result, will_retry)
        if will_retry:
            self.queue.appendleft(PendingTask(task.step, task.task_id, task.frames,
                                              task.parents, task.attempt + 1))
        elif left_to_control:
            self._leave_to_control(task)
        elif self.failed is None:
            self.failed = result

    def _leave_to_control(self, task: PendingTask) -> None:
        """A @parallel worker whose last attempt died, on a step with @catch: not a failure
        of the run. Its fan-out's control task decides, and the join then gets the control
        task alone (`_arrive_at_join`), as Metaflow's @catch hands on only the control."""
        for child in self.graph[task.step].out_funcs:
            if self.graph[child].type == "join":
                self._arrive_at_join(child, task, None)

    def _fail_for_disk_full(self, task: PendingTask, result: TaskResult) -> None:
        """The task whose output or record found the disk full fails with that error (never
        retried: the disk stays full), whatever its step did; the run then stops."""
        assert self.disk_full is not None
        if result.status != "failed" or (result.error or {}).get("type") != "DiskFull":
            result.status = "failed"
            result.error = {k: v for k, v in self.disk_full.items()
                            if k not in ("step", "task_id")}
            self._record_status(task, "failed", result.error)
        self._emit_finished(result, will_retry=False)
        self.echo.task_failed(task.step, task.task_id, result, False)
        if self.failed is None:
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
        self._write_record(path, record, task)

    def _emit_finished(self, result: TaskResult, will_retry: bool,
                       left_to_control: bool = False) -> None:
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
        if left_to_control:
            fields["left_to_control"] = True
        self._emit(TASK_FINISHED, **fields)

    def _on_success(self, task: PendingTask, result: TaskResult) -> None:
        """Schedule what follows a finished task, as its static node type says."""
        self.results[task.task_id] = result
        node = self.graph[task.step]
        if node.type == "foreach":
            count = result.foreach_splits or 0
            if count and result.foreach_unbounded:
                self._control(node.out_funcs[0], task, result, count)
            if count:
                self.queue.append(FanOut(node.out_funcs[0], result, task.frames,
                                         node.foreach_param, count,
                                         unbounded=result.foreach_unbounded))
        elif node.type == "split":
            count = len(node.out_funcs)
            for i, child in enumerate(node.out_funcs):
                frame = Frame(task.step, task.task_id, "split", None, i, count)
                self._schedule(PendingTask(child, self._new_task_id(),
                                           task.frames + (frame,), [result]))
        else:
            # A switch runs only the case its task picked (recorded as its `next`).
            children = ([n for n in result.next if n in node.out_funcs][:1]
                        if node.type == "split-switch" else node.out_funcs)
            for child in children:
                if self.graph[child].type == "join":
                    self._arrive_at_join(child, task, result)
                else:
                    self._schedule(PendingTask(child, self._new_task_id(),
                                               self._loop_frames(task, child), [result]))

    def _loop_frames(self, task: PendingTask, child: str) -> tuple[Frame, ...]:
        """The frames of `child` after `task`, counting the rounds of a recursive switch.

        A step whose switch can pick itself runs in a "loop" frame whose index is the
        round (0, 1, ...): entering the step opens it, each round back to itself adds
        one, leaving closes it. The round is then part of the task's place
        (`frames_signature`), so resume reuses exactly the rounds that finished, as
        Metaflow's iteration index does.
        """
        frames = task.frames
        last = frames[-1] if frames else None
        in_loop = last is not None and last.kind == "loop" and last.split_step == task.step
        if in_loop and last is not None and child == task.step:
            return frames[:-1] + (Frame(last.split_step, last.split_task_id, "loop", None,
                                        last.index + 1, 0),)
        if in_loop and child != task.step:
            frames = frames[:-1]
        if self.graph[child].is_recursive_switch and child != task.step:
            frames = frames + (Frame(child, task.task_id, "loop", None, 0, 0),)
        return frames

    def _arrive_at_join(self, join: str, task: PendingTask, result: TaskResult | None) -> None:
        """Collect a branch's last task; start the join once every branch has arrived.

        `result` is None for a @parallel worker left to its control task's @catch. When
        the control task's @catch acted (it caught an error, or ran @catch's own attempt)
        or a worker was left to it, the join gets the control task alone: Metaflow's
        @catch then hands on only the control task.
        """
        frame = task.frames[-1]
        key = (join, frame.split_task_id)
        arrived = self.join_waits.setdefault(key, {})
        arrived[frame.index] = result
        if len(arrived) == frame.num_splits:
            del self.join_waits[key]
            found = [arrived[i] for i in sorted(arrived)]
            parents = [p for p in found if p is not None]
            control = found[0]
            if frame.var == PARALLEL_VAR and control is not None and \
                    (control.caught or len(parents) < len(found)):
                parents = [control]
            self._schedule(PendingTask(join, self._new_task_id(), task.frames[:-1], parents))

    # -- cancellation ---------------------------------------------------------

    def _kill_all(self) -> None:
        for running in list(self.running.values()):
            self._kill_task(running)

    def _cancel_all(self) -> None:
        """Stop every task: SIGINT to each worker (the step gets KeyboardInterrupt and may clean
        up), SIGKILL to all that is left of it after CANCEL_GRACE_S; record them as cancelled.
        Meanwhile a nudge every NUDGE_EVERY_S wakes a worker whose SIGINT Python only noted
        (`processes.nudge`).

        SIGINT goes to the worker alone, as a terminal's Ctrl+C would reach a plain script
        (the worker is in a process group of its own, so a Ctrl+C reaches it only through
        here, once); what the step started is killed when its task ends.
        """
        self.queue.clear()
        for running in self.running.values():
            running.killed_for = "cancel"
            self.executor.interrupt(running.launched)
        deadline = time.time() + CANCEL_GRACE_S
        next_nudge = time.time() + NUDGE_EVERY_S
        while self.running and time.time() < deadline:
            self._wait_once_bounded(min(deadline, next_nudge))
            if time.time() >= next_nudge:
                self.executor.nudge([running.launched for running in self.running.values()])
                next_nudge = time.time() + NUDGE_EVERY_S
        self._kill_all()
        while self.running:
            self._wait_once_bounded(time.time() + 1.0)

    def _wait_once_bounded(self, deadline: float) -> None:
        self._select(max(0.0, min(0.05, deadline - time.time())))


class OriginRun:
    """The run a `resume` starts from: its finished tasks, keyed by their place in the graph."""

    def __init__(self, run_id: str, records: list[AttemptRecord], rerun_steps: set[str],
                 reusable_steps: set[str] | None = None,
                 changed_steps: set[str] | None = None, outside_changed: bool = False):
        self.run_id = run_id
        self.rerun_steps = rerun_steps
        #: Steps whose finished tasks are reused although the step reruns, when every input
        #: of the task was reused (a resume that names no step: Metaflow clones them).
        self.reusable_steps = reusable_steps or set()
        #: Steps whose code changed since the origin ran them (they rerun: said at start),
        #: and whether code outside the steps did (not traced: said, tasks reused).
        self.changed_steps = changed_steps or set()
        self.outside_changed = outside_changed
        self.by_place: dict[tuple[str, str], TaskResult] = {}
        for rec in records:
            if rec.done:
                self.by_place[(rec.step, rec.signature)] = TaskResult.from_attempt(rec)

    def reuses_task(self, step: str, parents: list[TaskResult]) -> bool:
        """Whether a finished task of a rerun step may still be reused: only when every
        input it had (its parents: a loop's round before it, a foreach's split) was reused."""
        return step in self.reusable_steps and bool(parents) and all(p.origin for p in parents)

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
                                       param_cli_text(param, value),
                                       bool(getattr(param, "multiple", False))))
    return records


def declared_parameters(flow_cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The values of the flow's Parameters only: `values` also holds its configs and class
    constants, which are stored as artifacts like parameters but are not parameters."""
    declared = flow_parameters(flow_cls)
    return {k: v for k, v in values.items() if k in declared}


def param_cli_text(param: Any, value: Any) -> str:
    """The command-line string that gives `value` back through `Parameter.convert` (for a
    `multiple` parameter, its values as one shell-quoted string, which the window splits
    into one `--name value` each)."""
    if getattr(param, "multiple", False) and isinstance(value, (list, tuple)):
        return multiple_text(_item_cli_text(param, item) for item in value)
    return _item_cli_text(param, value)


def _item_cli_text(param: Any, value: Any) -> str:
    separator = getattr(param, "separator", None)
    return value_text(param.kind, str(separator) if separator else None, value)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable_value(v) for k, v in params.items()}


def _jsonable_value(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None), list, dict)) \
        else repr(value)






def _restore_env(name: str, value: str | None) -> None:
    """Put an environment variable back as it was (a program may run several flows)."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value




def _append(logs: dict[int, Any], fd: int, path: str, data: bytes) -> None:
    """Append to a task's log (opened unbuffered on first use), all of `data` or an OSError."""
    log = logs.get(fd)
    if log is None:
        log = logs[fd] = _open_log(path)
    view = memoryview(data)
    while view:
        view = view[log.write(view):]


def _append_to_log(running: RunningTask, text: str) -> None:
    """The engine's own words at the end of a task's stderr log (a line of its own). A
    failure to write is let go: the task's record says the same."""
    try:
        with open(attempt_file(running.task_dir, running.pending.attempt, "err"), "ab") as log:
            log.write(f"{text.rstrip()}\n".encode("utf-8", errors="replace"))
    except OSError:
        pass


def _open_log(path: str) -> Any:
    """A task's log, opened unbuffered for appending. Its worker makes the task's folder, but
    may write before it does: a Ctrl+C or a cancel that lands in its setup prints Python's
    KeyboardInterrupt, a worker may die there saying why. Its words are kept (the folder is
    made here, as `_read_result` makes it for a record), never taken for a store error."""
    try:
        return open(path, "ab", buffering=0)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, "ab", buffering=0)


@dataclass(frozen=True)
class ResourceSpec:
    """A step's @resources, checked: memory in MB and CPUs, each None when not given."""

    memory: float | None = None
    cpu: float | None = None


def step_resources(step: str, func: Any, file: str) -> ResourceSpec:
    """The @resources of a step; UsageError (naming the step) for a value that is no number."""
    deco = step_decorators(func).get("resources") or {}
    values = {}
    for key in ("memory", "cpu"):
        raw = deco.get(key)
        values[key] = _positive(raw, f"@resources({key}={raw!r}) on step `{step}` in {file}",
                                "MB" if key == "memory" else "CPUs")
    return ResourceSpec(values["memory"], values["cpu"])


#: The numeric arguments of @timeout and @retry: their unit, whether a whole number, and
#: an example for the message.
_STEP_NUMBERS = {("timeout", "seconds"): ("seconds", False, "60"),
                 ("timeout", "minutes"): ("minutes", False, "60"),
                 ("timeout", "hours"): ("hours", False, "2"),
                 ("retry", "times"): ("retries", True, "3"),
                 ("retry", "minutes_between_retries"): ("minutes", False, "2")}


def check_step_numbers(step: str, func: Any, file: str) -> None:
    """UsageError, naming the step and the file, for a @timeout or @retry argument that
    is no number (`@timeout(seconds="ten")` failed the run as an engine bug)."""
    decorators = step_decorators(func)
    for (name, key), (unit, whole, example) in _STEP_NUMBERS.items():
        raw = (decorators.get(name) or {}).get(key)
        _decorator_number(raw, f"@{name}({key}={raw!r}) on step `{step}` in {file}", unit,
                          example, zero_ok=True, whole=whole)


def check_catch_var(step: str, func: Any, file: str, parameters: set[str],
                    steps: Iterable[str]) -> None:
    """UsageError, naming the step and the file, for `@catch(var=...)` naming a parameter
    or a step of the flow (one the analysis could not read: a name held in a variable)."""
    var = (step_decorators(func).get("catch") or {}).get("var")
    problem = catch_var_clash(var, parameters, steps)
    if problem:
        raise UsageError(f"{problem} (step `{step}` in {file})")


def _positive(raw: Any, where: str, unit: str) -> float | None:
    return _decorator_number(raw, where, unit, "4096" if unit == "MB" else "2")


def _decorator_number(raw: Any, where: str, unit: str, example: str, zero_ok: bool = False,
                      whole: bool = False) -> float | None:
    """A decorator's numeric argument (None when not given); UsageError saying `where`
    for one that is no (finite, positive or zero_ok, whole) number of `unit`."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    usable = math.isfinite(value) and (value >= 0 if zero_ok else value > 0) and \
        not isinstance(raw, bool) and (not whole or value == int(value))
    if not usable:
        kind = "a whole number" if whole else "a number" if zero_ok else "a positive number"
        raise UsageError(f"{where} is not {kind} of {unit}; give a number such as {example}.")
    return value


def _default_memory_limit(options: RunOptions) -> tuple[float | None, str]:
    """The run's memory limit for steps without @resources(memory): option, else environment."""
    if options.memory_limit_mb is not None:
        value, source = options.memory_limit_mb, "--memory-limit"
    else:
        raw = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
        if not raw:
            return None, ""
        try:
            value = float(raw)
        except ValueError:
            raise UsageError(f"{MEMORY_LIMIT_ENV}={raw!r} is not a number of MB; set it to "
                             "a number such as 4096, or unset it.") from None
        source = MEMORY_LIMIT_ENV
    if value < 0 or math.isinf(value) or math.isnan(value):
        raise UsageError(f"{source} {value:g} is not a number of MB; give a number such as 4096 "
                         "(0 for no limit).")
    return (value or None), source


def _fds_of(launched: Launched) -> list[int]:
    """The orchestrator's fds of a started attempt: its output pipes and its exit fd."""
    return [launched.out_fd, launched.err_fd] + \
        ([launched.exit_fd] if launched.exit_fd is not None else [])


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, OSError):
        pass


#: The signals a process dies of by its own fault (native code's crash, C's abort), as
#: opposed to one sent from outside (a SIGKILL, a SIGTERM).
_CRASH_SIGNALS = frozenset(int(s) for s in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL,
                                            signal.SIGFPE, signal.SIGABRT))


def _signal_name(number: int) -> str:
    """SIGSEGV for 11: the name of a signal a task process died of (its number if unnamed)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _store_error(step: str) -> dict[str, Any]:
    """Why a worker that exited EXIT_STORE_ERROR wrote no record: it could not write into
    the store, and printed the file and the error on its stderr. @catch gets its fallback,
    as for a task that died: the failure came after the step, where @catch could not see it."""
    return {"type": "StoreError", "traceback": "", ESCAPES_CATCH: True, "message": (
        f"Step `{step}`'s task could not write into the run's store; the task's stderr "
        "(above) names the file, the error and whether the step ran. A step must leave the "
        "store's folders (.flowdeck) and their permissions alone: check that folder, then "
        "run the flow again.")}
