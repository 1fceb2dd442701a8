"""Task attempts on a Dask cluster (`--executor dask`): the orchestrator's side.

The orchestrator stays where it is (it alone writes `events.jsonl` and `run.json`); each
attempt is one Dask task (`dask_worker.run_attempt`) that runs the step in a child process
on a worker and writes the attempt's record and blobs into the store: the local folder
(for a LocalCluster or a shared file system) or an object store, which a worker on a
machine that shares no folder with the orchestrator writes directly, returning the
record and cards, which the orchestrator then puts into its working copy. The flow class
travels cloudpickled by value, with the modules beside the flow file that it imports, so
workers need only Python, flowdeck and the flow's own dependencies.

The orchestrator's loop is single-threaded and watches only fds, so everything Dask
tells (output chunks and the attempt's end, sent by the worker as events of the run's
topic; a future's error; a worker leaving the cluster) goes through one thread of this
module, which writes output into the pipes behind `Launched.out_fd/err_fd` and, once the
output is complete, the exit status into the pipe behind `exit_fd`.

`distributed` is imported only here, when a run asks for this executor.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import flowdeck
from flowdeck.analysis.diagnostics import UsageError
from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engine.executors.base import SCHEDULER_ENV, Executor, Launched
from flowdeck.engine.executors.remote_task import pack, pack_class
from flowdeck.engine.task import track_script_classes
from flowdeck.store.layout import RunLayout

if TYPE_CHECKING:
    from flowdeck.engine.task import TaskRequest
    from flowdeck.engines.processes import RunGuard

#: How long connecting to a scheduler may take before the run is refused.
CONNECT_TIMEOUT_S = 5.0
#: How long the whole handshake with a scheduler may take (the Client's own timeout
#: bounds only the connect; the scheduler then answers within a second).
CONNECT_DEADLINE_S = 15.0
#: The exit code reported for an attempt whose worker was lost (EX_TEMPFAIL).
EXIT_WORKER_LOST = 75
#: After a task's function returned, how long its last output chunks may take to arrive.
OUTPUT_GRACE_S = 5.0


@dataclass
class _Attempt:
    """One submitted attempt, as the relay thread tracks it."""

    key: str
    launched: Launched
    out_w: int
    err_w: int
    exit_w: int
    sent_to: str | None
    #: where the orchestrator keeps the attempt's record (in its working copy)
    record_path: str = ""
    future: Any = None
    started_on: str | None = None
    received: int = 0
    expected: int | None = None
    status: int | None = None
    message: str | None = None
    finished: bool = False
    killed: bool = False
    give_up_at: float | None = None
    pending: list[tuple[str, Any]] = field(default_factory=list)


def _check_address(address: str) -> None:
    """ValueError for an address no scheduler can have (no port, `http://`), before a
    Client is made: a Client that fails to connect prints a traceback of its own when it is
    collected, 10 s later, after the run's one-line refusal."""
    from distributed.comm.addressing import get_address_host_port
    get_address_host_port(address)


def _client_within(distributed: Any, address: str, deadline_s: float) -> Any:
    """A Client of `address`, or TimeoutError past `deadline_s`. Its own `timeout` bounds
    the TCP connect only: a port that accepts and never speaks Dask (a dashboard, a web
    server) kept the run waiting for ever, and one that sends a banner crashed it while
    reading the banner as a message's length."""
    made: list[Any] = []
    failed: list[BaseException] = []

    def connect() -> None:
        try:
            made.append(distributed.Client(address, timeout=CONNECT_TIMEOUT_S,
                                           set_as_default=False))
        except BaseException as exc:  # noqa: BLE001 (handed to the caller's thread)
            _close_half_made(distributed, exc)
            failed.append(exc)

    worker = threading.Thread(target=connect, name="flowdeck-dask-connect", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if made:
        return made[0]
    if failed and isinstance(failed[0], (OSError, TimeoutError, ValueError)):
        raise failed[0]
    if failed:  # a reply that is no Dask message: MemoryError reading its "length", ...
        raise ValueError(f"what answers there is not a Dask scheduler: "
                         f"{type(failed[0]).__name__}") from None
    raise TimeoutError(f"no Dask scheduler answered within {deadline_s:g} s; something "
                       "else listens on that port")


def _close_half_made(distributed: Any, exc: BaseException) -> None:
    """Close the Client whose constructor raised `exc` (found in its frames): collected
    later, it closed itself then, waited 10 s and printed a traceback after the refusal."""
    tb = exc.__traceback__
    while tb is not None:
        made = tb.tb_frame.f_locals.get("self")
        if isinstance(made, distributed.Client):
            try:
                made.close(timeout=1)
            except Exception:  # noqa: BLE001 (closing what never connected)
                pass
            return
        tb = tb.tb_next


def scheduler_address(option: str | None) -> str | None:
    """The scheduler to use: `--scheduler`, else $FLOWDECK_DASK_SCHEDULER, else None (a
    LocalCluster on this machine)."""
    return (option or os.environ.get(SCHEDULER_ENV, "").strip()) or None


class DaskExecutor(Executor):
    """Runs every attempt of a run as a task on a Dask cluster (see the module doc)."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, max_workers: int = 0) -> None:
        distributed = _import_distributed()
        self.address = scheduler_address(scheduler)
        self.cluster: Any = None
        self.client: Any = self._connect(distributed)
        quiet_loop(self.client)
        try:
            self._check_versions()
            self._guard_pins()
            self.threads = self._worker_threads()
        except BaseException:
            self._close_client()
            raise
        self.max_workers = max_workers
        self.topic = f"flowdeck-{uuid.uuid4().hex}"
        self.attempts: dict[str, _Attempt] = {}
        self.by_launched: dict[int, _Attempt] = {}
        self.messages: dict[int, str] = {}  # why an ended attempt wrote no record
        self.load: dict[str, int] = {}  # the run's attempts in flight per worker
        self.lock = threading.Lock()  # for `load`: both threads count
        self.finish_lock = threading.Lock()
        self.next_key = 0
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stopper = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flowdeck-stop")
        self.relay: threading.Thread | None = None
        self.flow_class: tuple[type, bytes, dict[str, str]] | None = None
        self.closed = False
        self.nudging = False  # a round of nudges on its way to the workers (`nudge`)
        self.waiting_said = False  # said that tasks wait for a worker (`_say_no_worker`)

    # -- connecting -------------------------------------------------------------------------

    def _connect(self, distributed: Any) -> Any:
        """A Client of the scheduler, or of a new LocalCluster when no address is given."""
        if self.address is None:
            import logging
            try:
                self.cluster = distributed.LocalCluster(
                    n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR,
                    # out of the run's process group: a stop reaches them through the run
                    preload=["flowdeck.engine.executors.dask_local_worker"],
                    # no dashboard, and the scheduler's HTTP routes on a free port (on the
                    # default one, a second cluster warns on the user's terminal)
                    scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"})
            except Exception as exc:  # noqa: BLE001 (ports, resources: the user's to fix)
                raise UsageError(f"Could not start a Dask LocalCluster on this machine "
                                 f"({type(exc).__name__}: {exc}). Start a scheduler yourself "
                                 "and give it with --scheduler, or run without --executor "
                                 "dask.") from None
            self.address = str(self.cluster.scheduler_address)
            return distributed.Client(self.cluster, set_as_default=False)
        try:
            _check_address(self.address)
            return _client_within(distributed, self.address, CONNECT_DEADLINE_S)
        except (OSError, TimeoutError, ValueError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(
                f"Cannot reach the Dask scheduler at {self.address} ({why}). Start one "
                "there (`dask scheduler`, with workers: `dask worker ADDRESS`), or give the "
                f"right address with --scheduler or ${SCHEDULER_ENV} (tcp://HOST:PORT, the "
                "scheduler's port, 8786 by default, not its dashboard's); without "
                "--executor dask the flow runs on this machine.") from None

    def _check_versions(self) -> None:
        """Refuse workers whose flowdeck differs from ours, or that cannot import it."""
        from flowdeck.engine.executors.dask_worker import version_message, worker_version
        answers = self.client.run(worker_version, on_error="return")
        ours = flowdeck.__version__
        problems = []
        for worker, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                problems.append(f"Worker {worker} cannot run flowdeck ({type(answer).__name__}"
                                f": {answer}). Install flowdeck {ours} in the workers' Python "
                                f"(pip install flowdeck=={ours}).")
            elif answer != ours:
                problems.append(version_message(worker, str(answer), ours))
        if problems:
            raise UsageError(" ".join(problems))

    def _guard_pins(self) -> None:
        """Have the scheduler free this run's tasks from a worker it no longer has (see
        `_placement`), itself, as a worker joins: refused like a version skew if it cannot."""
        try:
            self.client.register_plugin(_pin_guard(self.client.id))
        except Exception as exc:  # noqa: BLE001 (the scheduler's reason, said in one line)
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"The Dask scheduler at {self.address} refused flowdeck's "
                             f"scheduler plugin ({type(exc).__name__}: {why}); without it a "
                             "task sent to a worker that left could wait for ever.") from None

    def _worker_threads(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.client.nthreads().items()}

    def default_max_workers(self) -> int:
        """Tasks in flight when --max-workers is not given: the cluster's threads now."""
        return max(1, sum(self.threads.values()))

    def _close_client(self) -> None:
        for closing in (self.client, self.cluster):
            if closing is not None:
                try:
                    closing.close(timeout=CONNECT_TIMEOUT_S)
                except Exception:  # noqa: BLE001 (closing a broken connection)
                    pass

    # -- the seam -------------------------------------------------------------------------------

    def open(self, guard: RunGuard | None) -> None:
        self.client.subscribe_topic(self.topic, lambda event: self.events.put(("msg", event[1])))
        self.client.subscribe_topic("all", lambda event: self._cluster_event(event[1]))
        self.relay = threading.Thread(target=self._relay, name="flowdeck-dask-relay",
                                      daemon=True)
        self.relay.start()

    def start(self, request: TaskRequest, close_inherited: Callable[[], None]) -> Launched:
        from flowdeck.engine.executors.dask_worker import pid_namespace_id, run_attempt
        key = (f"flowdeck-{request.flow_name}-{request.run_id}-{request.step}-"
               f"{request.task_id}-{request.attempt}-{uuid.uuid4().hex[:8]}")
        flow_class, files = self._flow_class(request.flow_cls)
        payload = pack(request)
        # The orchestrator writes the attempt's logs here as output arrives, which may come
        # before the remote task made the folder (a worker that cannot load the task says so).
        os.makedirs(os.path.dirname(request.attempt_json), exist_ok=True)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        exit_r, exit_w = os.pipe()
        worker = self._pick_worker()
        self.next_key -= 1
        launched = Launched(key=self.next_key, out_fd=out_r, err_fd=err_r, exit_fd=exit_r,
                            pid=None, where=worker or f"dask {self.address}")
        attempt = _Attempt(key, launched, out_w, err_w, exit_w, sent_to=worker,
                           record_path=request.attempt_json)
        self.attempts[key] = attempt
        self.by_launched[launched.key] = attempt
        if worker is not None:
            with self.lock:
                self.load[worker] = self.load.get(worker, 0) + 1
        run_json = str(RunLayout(request.root, request.flow_name).run_json(request.run_id))
        future = self.client.submit(run_attempt, key, self.topic, flow_class, files, payload,
                                    flowdeck.__version__, str(request.root), request.attempt_json,
                                    request.datastore, run_json, pid_namespace_id(),
                                    key=key, pure=False, retries=0,
                                    **_placement(worker))
        attempt.future = future
        if worker is None:
            self._say_no_worker()
        future.add_done_callback(lambda _: self.events.put(("done", key)))
        return launched

    def ended(self, launched: Launched, running_keys: set[int]) -> int | None:
        attempt = self.by_launched.get(launched.key)
        if attempt is None or not attempt.finished:
            return None
        if attempt.message is not None:
            self.messages[launched.key] = attempt.message
        self._forget(attempt)  # and its future: the cluster releases the task, never reruns it
        self.stopper.submit(self._clear_claim, attempt.key)
        return attempt.status

    def exit_message(self, launched: Launched, code: int) -> str | None:
        """A lost worker, a refused version, a missing module: said by the worker side."""
        return self.messages.pop(launched.key, None)

    def interrupt(self, launched: Launched) -> None:
        """SIGINT to the attempt on its worker; one that waits in the scheduler for a worker
        to join has nothing to interrupt and is cancelled at once (not after the grace)."""
        attempt = self.by_launched.get(launched.key)
        if attempt is None or attempt.finished:
            return
        if attempt.started_on is None and not self.threads:
            self.kill(launched)
            return
        self._send_signal(attempt, signal.SIGINT)

    def nudge(self, launched: list[Launched]) -> None:
        """One call to the cluster for every started attempt, each worker waking its own
        (`dask_worker.nudge_attempts`), and one round in flight at a time: the calls share
        the pool that sends the grace's kills, and must not queue up ahead of them. The
        attempts go by key, not by signal number: SIGURG's differs between systems."""
        from flowdeck.engine.executors.dask_worker import nudge_attempts
        if self.nudging:
            return
        attempts = [a for a in (self.by_launched.get(one.key) for one in launched)
                    if a is not None and not a.finished and a.started_on]
        if not attempts:
            return
        keys = [a.key for a in attempts]
        workers = sorted({a.started_on for a in attempts if a.started_on})
        self.nudging = True

        def send() -> None:
            try:
                self.client.run(nudge_attempts, keys, workers=workers, on_error="return")
            except Exception:  # noqa: BLE001 (a worker gone: its attempts are lost anyway)
                pass
            finally:
                self.nudging = False
        self.stopper.submit(send)

    def kill(self, launched: Launched) -> None:
        attempt = self.by_launched.get(launched.key)
        if attempt is None or attempt.finished or attempt.killed:
            return
        attempt.killed = True
        self._send_signal(attempt, signal.SIGKILL)
        self.stopper.submit(self._cancel, attempt)

    def reap_killed(self, launched: Launched) -> bool:
        attempt = self.by_launched.get(launched.key)
        if attempt is not None and attempt.finished:
            self._forget(attempt)
        return attempt is None or attempt.finished

    def close(self, running_keys: set[int]) -> list[int]:
        """End of the run: stop the relay, close our side of every pipe, let the cluster go."""
        if self.closed:
            return []
        self.closed = True
        self.events.put(("stop", None))
        if self.relay is not None:
            self.relay.join(timeout=OUTPUT_GRACE_S)
        for attempt in list(self.attempts.values()):
            self._finish(attempt, signal.SIGKILL, None)
        try:  # let the last stops and claim clearings go out (they queue in order)
            self.stopper.submit(lambda: None).result(timeout=CONNECT_TIMEOUT_S)
        except Exception:  # noqa: BLE001 (a cluster that does not answer: leave it)
            pass
        self.stopper.shutdown(wait=False, cancel_futures=True)
        for topic in (self.topic, "all"):
            try:
                self.client.unsubscribe_topic(topic)
            except Exception:  # noqa: BLE001 (the connection may be gone)
                pass
        self._close_client()
        return []

    # -- placing and stopping ---------------------------------------------------------------

    def _flow_class(self, flow_cls: type) -> tuple[bytes, dict[str, str]]:
        """The flow class pickled by value, once per run, with the project's own modules,
        and the source files of what goes by value."""
        if self.flow_class is None or self.flow_class[0] is not flow_cls:
            files = ship_project_modules(flow_cls)
            track_script_classes(flow_cls)  # the workers' copies keep the script's ids
            self.flow_class = (flow_cls, pack_class(flow_cls), files)
        return self.flow_class[1], self.flow_class[2]

    def _pick_worker(self) -> str | None:
        """The worker with the fewest of this run's attempts per thread (None: no worker yet;
        the scheduler then places the task when one comes)."""
        threads = self.threads  # replaced whole by the relay thread, never changed in place
        if not threads:
            return None
        with self.lock:
            return min(threads, key=lambda w: (self.load.get(w, 0) / max(1, threads[w]), w))

    def _say_no_worker(self) -> None:
        """Say once, while the cluster has no worker, that its tasks wait for one (an
        adaptive cluster at 0 gets one soon; a scheduler alone, or one whose workers all
        died, never does): the run would otherwise sit silent."""
        if self.waiting_said:
            return
        self.waiting_said = True
        print(f"flowdeck: the Dask scheduler at {self.address} has no worker now; the tasks "
              "wait there until one joins (an adaptive cluster starts one). Start one with "
              f"`dask worker {self.address}`, or stop the run with Ctrl+C.",
              file=sys.stderr, flush=True)

    def _send_signal(self, attempt: _Attempt, sig: int) -> None:
        """`sig` to the attempt's process group on its worker (all workers when it is not
        known yet: a worker that gets it before the attempt starts never starts it)."""
        from flowdeck.engine.executors.dask_worker import signal_attempt
        where = attempt.started_on
        workers = [where] if where else None

        def send() -> None:
            try:
                self.client.run(signal_attempt, attempt.key, int(sig), workers=workers,
                                on_error="return")
            except Exception:  # noqa: BLE001 (a worker gone: its attempt is lost anyway)
                pass
        self.stopper.submit(send)

    def _stop_rerun(self, key: str, worker: str) -> None:
        """Kill an attempt that started although it had ended here (lost with its worker,
        then run again elsewhere by the scheduler before its claim was noted)."""
        from flowdeck.engine.executors.dask_worker import signal_attempt

        def send() -> None:
            try:
                self.client.run(signal_attempt, key, int(signal.SIGKILL), workers=[worker],
                                on_error="return")
            except Exception:  # noqa: BLE001 (that worker may be gone too)
                pass
        self.stopper.submit(send)

    def _cancel(self, attempt: _Attempt) -> None:
        try:
            attempt.future.cancel()
        except Exception:  # noqa: BLE001
            pass

    def _clear_claim(self, key: str) -> None:
        """Drop the scheduler's record that the attempt started (`dask_worker.run_attempt`)
        once its task is released, so a long run leaves nothing behind per task there."""
        try:
            import distributed
            distributed.Event(f"{key}-claim", client=self.client).clear()
        except Exception:  # noqa: BLE001 (best effort: a few bytes on the scheduler)
            pass

    def _forget(self, attempt: _Attempt) -> None:
        self.attempts.pop(attempt.key, None)
        self.by_launched.pop(attempt.launched.key, None)

    # -- the relay thread -------------------------------------------------------------------

    def _cluster_event(self, message: Any) -> None:
        if isinstance(message, dict) and message.get("action") in ("add-worker",
                                                                    "remove-worker"):
            self.events.put(("cluster", message))

    def _relay(self) -> None:
        """Turn what Dask tells into bytes on the attempts' pipes (see the module doc)."""
        while True:
            try:
                kind, item = self.events.get(timeout=0.5)
            except queue.Empty:
                kind, item = "tick", None
            try:
                if kind == "stop":
                    return
                if kind == "msg":
                    self._on_message(item)
                elif kind == "done":
                    self._on_done(item)
                elif kind == "cluster":
                    self._on_cluster(item)
                self._give_up_late()
            except Exception as exc:  # noqa: BLE001 (the relay must go on)
                print(f"flowdeck: the Dask relay failed: {exc!r}", file=sys.stderr)

    def _on_message(self, message: dict[str, Any]) -> None:
        attempt = self.attempts.get(message.get("k", ""))
        if attempt is None or attempt.finished:
            if "started" in message:  # the scheduler reran an attempt already given up
                self._stop_rerun(str(message.get("k")), str(message["started"]))
            return
        if "d" in message:
            fd = attempt.out_w if message.get("s") == 1 else attempt.err_w
            _write_all(fd, message["d"])
            attempt.received += 1
        elif "started" in message:
            attempt.started_on = str(message["started"])
            attempt.launched.where = attempt.started_on
        elif "end" in message:
            _adopt_files(attempt.record_path, message.get("files"))
            attempt.expected = int(message.get("chunks") or 0)
            attempt.status = int(message["end"])
            attempt.message = message.get("error")
            attempt.give_up_at = time.monotonic() + OUTPUT_GRACE_S
        if attempt.expected is not None and attempt.received >= attempt.expected:
            self._finish(attempt, attempt.status or 0, attempt.message)

    def _on_done(self, key: str) -> None:
        attempt = self.attempts.get(key)
        if attempt is None or attempt.finished:
            return
        future = attempt.future
        if future.status == "finished":
            try:
                result = future.result(timeout=CONNECT_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 (the result went with its worker)
                result = {"lost": True, "why": str(exc)}
            if result.get("lost"):
                self._finish(attempt, EXIT_WORKER_LOST << 8, self._lost_message(attempt))
            elif attempt.expected is None:  # its end event is still on the way
                _adopt_files(attempt.record_path, result.get("files"))
                attempt.expected = int(result.get("chunks") or 0)
                attempt.status = int(result.get("status") or 0)
                attempt.message = result.get("error")
                attempt.give_up_at = time.monotonic() + OUTPUT_GRACE_S
                if attempt.received >= attempt.expected:
                    self._finish(attempt, attempt.status, attempt.message)
        elif future.status == "cancelled":
            message = None if attempt.killed else (
                f"The Dask scheduler at {self.address} cancelled the task (it restarted, or "
                "this run lost its connection to it).")
            self._finish(attempt, signal.SIGKILL if attempt.killed else EXIT_WORKER_LOST << 8,
                         message)
        else:  # "error": the scheduler gave up on it (KilledWorker), or the function failed
            self._finish(attempt, EXIT_WORKER_LOST << 8,
                         self._lost_message(attempt, _future_error(future)))

    def _on_cluster(self, message: dict[str, Any]) -> None:
        worker = str(message.get("worker"))
        if message.get("action") == "remove-worker":
            self.threads = {w: n for w, n in self.threads.items() if w != worker}
            for attempt in list(self.attempts.values()):
                if attempt.started_on == worker and not attempt.finished and \
                        attempt.expected is None:
                    self._finish(attempt, EXIT_WORKER_LOST << 8, self._lost_message(attempt))
                    self.stopper.submit(self._cancel, attempt)
            if not self.threads and any(not a.finished for a in self.attempts.values()):
                self._say_no_worker()
        else:
            self.waiting_said = False  # said again should the cluster empty again
            try:
                self.threads = self._worker_threads()
            except Exception:  # noqa: BLE001
                self.threads = {**self.threads, worker: self.threads.get(worker, 1)}

    def _lost_message(self, attempt: _Attempt, exc: BaseException | None = None) -> str:
        worker = attempt.started_on or attempt.sent_to or "(unknown)"
        detail = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        if exc is not None and type(exc).__name__ != "KilledWorker":  # it raised, it lives
            return (f"worker failed: Dask worker {worker} could not run the task{detail}. "
                    "The step did not run; this is the worker's fault, not the step's: "
                    "check its environment and log, then resume the run.")
        return (f"worker lost: Dask worker {worker} went away while it ran the task{detail}. "
                "The attempt failed; with @retry it runs again on another worker. Check the "
                "worker's log (its memory limit, the machine going away).")

    def _give_up_late(self) -> None:
        """An attempt whose function returned but whose last output never came: end it."""
        now = time.monotonic()
        for attempt in list(self.attempts.values()):
            if not attempt.finished and attempt.give_up_at is not None and \
                    now > attempt.give_up_at and attempt.future is not None and \
                    attempt.future.done():
                self._finish(attempt, attempt.status or 0, attempt.message)

    def _finish(self, attempt: _Attempt, status: int, message: str | None) -> None:
        """Close the attempt's output, then say it ended (in this order: the loop drains the
        output to EOF when the exit fd turns readable)."""
        with self.finish_lock:  # the relay, and close() after it: each attempt ends once
            if attempt.finished:
                return
            self._end_attempt(attempt, status, message)

    def _end_attempt(self, attempt: _Attempt, status: int, message: str | None) -> None:
        attempt.status = status
        attempt.message = message
        worker = attempt.sent_to
        with self.lock:
            if worker is not None and self.load.get(worker):
                self.load[worker] -= 1
        for fd in (attempt.out_w, attempt.err_w):
            _close_quietly(fd)
        attempt.finished = True
        try:
            os.write(attempt.exit_w, b"x")
        except OSError:
            pass
        _close_quietly(attempt.exit_w)


def ship_project_modules(flow_cls: type) -> dict[str, str]:
    """Pickle by value the modules of the flow's own project that are loaded (the files in
    the flow file's folder and below it), so workers need not have the project installed.
    Returns the source file of each module that goes by value, the flow's own included."""
    import cloudpickle
    module = sys.modules.get(flow_cls.__module__)
    file = getattr(module, "__file__", None)
    if not file:
        return {}
    files = {flow_cls.__module__: str(Path(file).resolve())}
    project = Path(file).resolve().parent
    core = Path(flowdeck.__file__).resolve().parent
    for name, loaded in list(sys.modules.items()):
        path = getattr(loaded, "__file__", None)
        if not path or name == "__main__" or name == "__mp_main__":
            continue
        try:
            resolved = Path(path).resolve()
        except OSError:
            continue
        parts = set(resolved.parts)
        if project in resolved.parents and core not in resolved.parents and \
                not parts & {"site-packages", "dist-packages", ".venv", "venv"}:
            try:
                cloudpickle.register_pickle_by_value(loaded)
                files[name] = str(resolved)
            except (ValueError, TypeError):
                pass
    return files


def _placement(worker: str | None) -> dict[str, Any]:
    """`Client.submit`'s placement arguments: `worker` preferred (it spreads the run's
    attempts evenly over the workers' threads, `_pick_worker`), any other allowed (it may
    leave); with no worker at all, none (Dask refuses allow_other_workers without workers,
    which crashed a run on a cluster at 0 workers), and the scheduler places the task on
    the first worker that joins.

    A task whose worker is gone runs elsewhere by Dask's own fallback while the scheduler
    has a worker; with none, it waits ("no-worker") still naming the gone one, and Dask
    never gives it to a worker that joins. `_pin_guard` frees it then, on the scheduler."""
    if worker is None:
        return {}
    return {"workers": [worker], "allow_other_workers": True}


def _pin_guard(client_id: str) -> Any:
    """A scheduler plugin that, as a worker joins and before the scheduler hands it the
    tasks waiting for a worker, lifts the worker restriction of each of `client_id`'s
    waiting tasks whose named workers are all gone (or not running): such a task runs on
    the worker that joins, as `allow_other_workers` means. Dask checks only the restriction
    there (`bulk_schedule_unrunnable_after_adding_worker`), so a task stayed pinned to a
    dead worker and the run hung. Done by the orchestrator instead, after it heard that
    the worker left, the unpin raced the task's own submission (its RPC reached the
    scheduler first, found no such task, and the task kept its pin); on the scheduler,
    in the same step as the worker's arrival, there is nothing to race: a task it does
    not know yet is placed on arrival, on any worker it has then.

    The class is made here so that it travels by value: the scheduler needs no flowdeck.
    It removes itself when the client leaves (the run closed it, or lost it)."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class FreeStalePins(SchedulerPlugin):
        def __init__(self, client: str) -> None:
            self.client = client
            self.name = f"flowdeck-pins-{client}"  # (the name it is registered under)

        def add_worker(self, scheduler: Any, worker: str) -> None:
            for ts in list(scheduler.unrunnable):
                named = ts.worker_restrictions
                if not named or not ts.loose_restrictions or not any(
                        wanting.client_key == self.client for wanting in ts.who_wants or ()):
                    continue
                if not any(scheduler.workers.get(address) in scheduler.running
                           for address in named):
                    ts.worker_restrictions = None

        def remove_client(self, scheduler: Any, client: str) -> None:
            if client == self.client:
                scheduler.plugins.pop(self.name, None)

    return FreeStalePins(client_id)


def _adopt_files(record_path: str, files: dict[str, bytes] | None) -> None:
    """Put what a worker on another machine shipped back (the attempt's record, its cards)
    into the task's folder of the working copy, before the attempt is said to have ended
    (the orchestrator reads the record then); the record last, as the task writes it. The
    object store holds the record already (the worker wrote it there first). A file here
    is never replaced, and a path leading out of the task's folder is ignored."""
    if not files or not record_path:
        return
    from flowdeck.store.blobs import atomic_write
    task_dir = os.path.dirname(record_path)
    last = os.path.basename(record_path)
    for name in sorted(files, key=lambda n: n == last):
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            continue
        target = os.path.join(task_dir, name)
        if os.path.exists(target):
            continue
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            atomic_write(target, files[name])
        except OSError as exc:  # the attempt then ends without a record here: a failure
            print(f"flowdeck: could not write {target}, which a Dask worker sent back "
                  f"({exc}); the task is reported as failed.", file=sys.stderr)
            return


def _future_error(future: Any) -> BaseException | None:
    """The exception a failed future holds (or the one asking for it raised)."""
    try:
        found: BaseException | None = future.exception(timeout=CONNECT_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001
        found = error
    return found


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError("--executor dask needs Dask's `distributed` package in this Python: "
                         "pip install 'flowdeck[dask]' (the workers need it too).") from None
    quiet_client_logs()
    return distributed


#: Where a user configures distributed's logging (dask config); then it is theirs to keep.
_LOGGING_KEYS = ("logging", "logging-file-config", "distributed.logging",
                 "distributed.logging-file-config")


def quiet_client_logs() -> None:
    """Keep distributed's own log lines off the user's terminal in the run's process.

    Its import sets the `distributed` logger to INFO with a handler on stderr, a default
    meant for a scheduler's or a worker's log. Here it is the user's terminal, where the
    run says in its own words what Dask did to it (a task lost with its worker or
    cancelled by the scheduler, a refused connection). Its errors said it again, in
    Dask's words and with tracebacks: as a cancelled run closed its client, an INFO line
    ("Batched Comm Closed", a normal shutdown: CI saw one end a Ctrl+C test's output),
    and when the scheduler died, "Failed to reconnect to scheduler after 5.00 seconds,
    closing client" and two CancelledError tracebacks of the client's own close. Only
    CRITICAL records pass. Left alone when the user configured distributed's logging."""
    import logging

    import dask
    if any(dask.config.get(key, None) is not None for key in _LOGGING_KEYS):
        return
    names = ["distributed", *(name for name in logging.root.manager.loggerDict
                              if name.startswith("distributed."))]
    for name in names:  # (its config gives some their own level: distributed.client's)
        logger = logging.getLogger(name)
        if name == "distributed" or logger.level != logging.NOTSET:
            logger.setLevel(max(logger.level, logging.CRITICAL))


def quiet_loop(client: Any) -> None:
    """What goes wrong in the client's event loop after its connection broke (a callback
    or task raising into the loop, which asyncio prints as "Task exception was never
    retrieved" with a traceback) stays there: the run has learnt it from its futures and
    said it already."""
    try:
        client.loop.asyncio_loop.set_exception_handler(lambda loop, context: None)
    except Exception:  # noqa: BLE001 (another loop kind: its own handling stays)
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:  # the orchestrator closed its end (the task was already reaped)
        pass


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
