"""`RunProcess`: one flow run in a `QProcess`, followed through its event stream.

The window never imports a user's flow: it starts `python file.py run ...`
(or the Metaflow bridge) in a new session, chooses the run id so it can
follow `events.jsonl` from the first byte, decodes output incrementally as
UTF-8, and stops the run with the engine's stop signal to its process group
(the orchestrator, which gives its tasks their own grace), then KILL after
`LaunchSpec.stop_grace_s`, which is longer than the engine's grace.

The run's stdout and stderr are read off the GUI thread (`OutputPipe`: a pipe of
ours the child writes to, read by a thread in 1 MB chunks) and handed on every
poll tick. Read by QProcess on the GUI thread, a step printing 100 MB was paced
by the window (the pipe filled whenever the log view was inserting lines): about
30 s in the window against 1 s headless. Now the run goes at its own speed and the
log view keeps only what it can show; what waits to be handed on is bounded
(`OutputPipe.CAP_CHARS`; past it the reader waits, and with it the run).

Nothing of a run outlives it. The orchestrator cleans up after its tasks, but
if it is killed (by KILL here, or from outside), what its tasks started in a
new session is out of its reach; so when the run's process ends, this kills
every process still in the run's session or carrying the run's id in its
environment (`FLOWDECK_RUN_ID`, which every descendant inherits unless it
clears its environment on purpose); its process group lies within its session.
The killed orphans belong to init (or the nearest subreaper), which reaps them,
so the window needs no SIGCHLD handling of its own.
"""

from __future__ import annotations

import codecs
import fcntl
import os
import select
import signal
import struct
import termios
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from flowdeck.engines import processes
from flowdeck.engines.base import LaunchSpec
from flowdeck.engines.launching import installed_core
from flowdeck.store.layout import RUN_ID_ENV, RunLayout
from flowdeck.store.records import DamagedRecord, RunRecord
from flowdeck.store.status import RUN_FINAL
from flowdeck_desktop.control.event_feed import EventFeed
from flowdeck_desktop.control.output_order import OutputOrder
from flowdeck_desktop.system.resources import bundled_core

EVENT_POLL_MS = 15


def core_path() -> str:
    """Folder to put on a child's PYTHONPATH so it can `import flowdeck`.

    A frozen app keeps its modules in an archive a real Python cannot read, so
    the bundle carries the core (and its small dependencies) as plain files in
    `pylib/`; never the bundle's own folder, whose Qt libraries would shadow the
    child's.
    """
    return bundled_core() or installed_core()


class OutputPipe:
    """One output stream of a run, read on a thread of its own and taken on the GUI thread.

    The child writes to a pipe of ours (QProcess opens its write end by path, so the
    run's output never passes through QProcess's GUI-thread reader). The thread decodes
    UTF-8 incrementally and queues the text; `take()` hands over all of it at once.
    """

    CHUNK_BYTES = 1 << 20
    PIPE_BYTES = 1 << 20  # Linux's default most for an unprivileged process
    CAP_CHARS = 16_000_000  # queued and not yet taken: the reader waits past this
    DRAIN_WAIT_S = 10.0  # for the thread to read what the ended run left (a loaded machine)

    def __init__(self, name: str) -> None:
        self.name = name
        self._r, self._w = os.pipe()
        try:  # a pipe of 64 KB filled between two turns of the reader (which shares the GIL
            # with a busy GUI thread): 100 MB of output took 8 s in the window, 4 s headless
            fcntl.fcntl(self._w, fcntl.F_SETPIPE_SZ, self.PIPE_BYTES)
        except (OSError, AttributeError):  # above /proc/sys/fs/pipe-max-size, or not Linux
            pass
        self._chunks: list[str] = []
        self._size = 0
        self._in_flight = False  # read from the pipe, not queued yet
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name=f"run-{name}", daemon=True)
        self._poller = select.poll()
        self._poller.register(self._r, select.POLLIN)

    @property
    def path(self) -> str:
        """The write end, as a path QProcess opens in this process before it forks."""
        return f"/proc/self/fd/{self._w}" if os.path.exists("/proc/self/fd") \
            else f"/dev/fd/{self._w}"

    def started(self) -> None:
        """The child holds the write end now: drop ours (EOF comes when the run's is closed)."""
        self._close_write()
        self._thread.start()

    def _close_write(self) -> None:
        if self._w >= 0:
            os.close(self._w)
            self._w = -1

    def _read(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            ready = self._poller.poll(0 if self._closing else 100)
            if not ready or (self._closing and self._size >= self.CAP_CHARS):
                if self._closing:
                    break  # drained what the ended run left; a straggler keeps no hold on us
                continue
            self._in_flight = True  # from here until it is queued: `unread` says so
            try:
                data = os.read(self._r, self.CHUNK_BYTES)
            except OSError:
                data = b""
            if not data:
                self._in_flight = False
                break
            self._put(decoder.decode(data))
            self._in_flight = False  # queued (or nothing whole to queue yet: a cut character)
        self._put(decoder.decode(b"", final=True))

    def _put(self, text: str) -> None:
        if not text:
            return
        with self._cond:
            while self._size >= self.CAP_CHARS and not self._closing:
                self._cond.wait(0.1)
            self._chunks.append(text)
            self._size += len(text)

    def unread(self) -> bool:
        """Whether the pipe holds text its reader has not read, or has read and not handed
        over (the reader is behind: the stream is still writing)."""
        with self._cond:
            if self._chunks or self._in_flight:
                return True
        try:
            return struct.unpack("i", fcntl.ioctl(self._r, termios.FIONREAD, b"\0" * 4))[0] > 0
        except OSError:  # closed at the run's end
            return False

    def take(self) -> str:
        """Everything read since the last call."""
        with self._cond:
            if not self._chunks:
                return ""
            text = "".join(self._chunks)
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()
        return text

    def close(self) -> str:
        """The run ended: read what is left in the pipe, stop the thread; the rest of the text."""
        self._close_write()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(self.DRAIN_WAIT_S)
        if not self._thread.is_alive() and self._r >= 0:
            os.close(self._r)
            self._r = -1
        return self.take()


class RunProcess(QObject):
    """Wraps one QProcess; emits parsed events, decoded output and one `ended`."""

    event_arrived = Signal(dict)  # not `event`: that would shadow QObject.event
    output = Signal(str, str)  # stream ("stdout" | "stderr"), text
    ended = Signal(int, str)  # exit code, status: succeeded | failed | cancelled | crashed
    failed_to_start = Signal(str)

    def __init__(self, spec: LaunchSpec, parent: QObject | None = None):
        super().__init__(parent)
        self.spec = spec
        self.status = "starting"
        self.pid: int | None = None
        self.started_at: float | None = None
        self._stopping = False
        self._ended = False
        self._events = EventFeed(spec.events_path, self.event_arrived.emit)
        self._pipes: dict[str, OutputPipe] = {}  # made by start()
        self._order = OutputOrder()
        self._proc = QProcess(self)
        self._poll = QTimer(self)
        self._poll.setInterval(EVENT_POLL_MS)
        self._poll.timeout.connect(self._tick)
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill_run)
        self._proc.finished.connect(self._on_finished)
        self._proc.errorOccurred.connect(self._on_error)

    # -- control ------------------------------------------------------------

    def start(self) -> None:
        spec = self.spec
        self._proc.setProgram(spec.program)
        self._proc.setArguments(spec.args)
        self._proc.setWorkingDirectory(spec.cwd)
        self._proc.setProcessEnvironment(self._environment())
        if hasattr(self._proc, "setUnixProcessParameters"):
            self._proc.setUnixProcessParameters(QProcess.UnixProcessFlag.CreateNewSession)
        self.status = "running"
        self.started_at = time.time()
        self._pipes = {name: OutputPipe(name) for name in ("stdout", "stderr")}
        self._proc.setStandardOutputFile(self._pipes["stdout"].path)
        self._proc.setStandardErrorFile(self._pipes["stderr"].path)
        self._proc.start()
        for pipe in self._pipes.values():
            pipe.started()
        if self._proc.waitForStarted(5000):
            self.pid = int(self._proc.processId())
            self._poll.start()

    def stop(self) -> None:
        """The engine's stop signal to the run's process group now, KILL after its grace."""
        if self._ended or self.pid is None:
            return
        self._stopping = True
        self._signal_group(self.spec.stop_signal)
        self._kill_timer.start(int(self.spec.stop_grace_s * 1000))

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called (the run may still be ending)."""
        return self._stopping

    @property
    def running(self) -> bool:
        return not self._ended and self._proc.state() != QProcess.ProcessState.NotRunning

    def wait_stopped(self, msecs: int = 5000) -> bool:
        return self._proc.waitForFinished(msecs)

    # -- internals ----------------------------------------------------------

    def _environment(self) -> QProcessEnvironment:
        env = QProcessEnvironment.systemEnvironment()
        for key, value in self.spec.env.items():
            env.insert(key, value)
        return env

    def _signal_group(self, sig: int) -> None:
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _kill_run(self) -> None:
        """The grace is over: KILL the run's process group and everything left of the run."""
        self._signal_group(signal.SIGKILL)
        self._end_leftovers()

    def _end_leftovers(self) -> None:
        """KILL every process of this run that is still there (its session, its marked
        environment): helpers, grandchildren in new sessions, workers of a killed engine."""
        if self.pid is None:
            return
        leftovers = processes.run_leftovers(self.pid, (RUN_ID_ENV, self.spec.run_id))
        # Briefly: this is the window's thread; the run's guard ends whatever outlives it.
        processes.kill_all(leftovers, spare=set(), wait_s=0.5)

    def _tick(self) -> None:
        self._hand_on_output()
        self._events.read()

    def _hand_on_output(self, final: bool = False) -> None:
        """Emit what the reader threads read since the last tick (at the end: all of it),
        stdout's and stderr's lines in the order the run wrote them (`OutputOrder`)."""
        texts = {stream: pipe.close() if final else pipe.take()
                 for stream, pipe in self._pipes.items()}
        unread = frozenset(s for s, pipe in self._pipes.items() if not final and pipe.unread())
        for stream, text in self._order.interleave(texts, time.monotonic(), final, unread):
            self.output.emit(stream, text)

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._poll.stop()
        self._kill_timer.stop()
        self._end_leftovers()  # nothing of the run may outlive it (helpers, grandchildren)
        self._hand_on_output(final=True)  # after: no straggler writes to the pipes any more
        self._events.read(everything=True)
        self._finish(exit_code, self._final_status(exit_code, exit_status))

    def _final_status(self, exit_code: int, exit_status: QProcess.ExitStatus) -> str:
        if self._events.finished_as:
            return self._events.finished_as
        recorded = self._recorded_status()
        if recorded is not None:  # e.g. a full disk took run_finished, not run.json
            return recorded
        if self._stopping:
            return "cancelled"
        # No run_finished: killed from outside (crashed) or never got going (failed).
        return "crashed" if os.path.exists(self.spec.events_path) else "failed"

    def _recorded_status(self) -> str | None:
        """The final status in the run's record, when the event stream lacks its end."""
        if self.spec.engine != "flowdeck":
            return None
        try:
            record = RunRecord.read(RunLayout(Path(self.spec.root), self.spec.flow)
                                    .run_json(self.spec.run_id))
        except (OSError, DamagedRecord, ValueError):
            return None
        return record.status if record.status in RUN_FINAL else None

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            message = (f"Cannot start {self.spec.program}: "
                       f"{self._proc.errorString()}. Choose a working Python interpreter "
                       "in Run > Interpreter.")
            self._poll.stop()
            for pipe in self._pipes.values():
                pipe.close()
            self.failed_to_start.emit(message)
            self._finish(-1, "failed")

    def _finish(self, code: int, status: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.status = status
        self.ended.emit(code, status)
