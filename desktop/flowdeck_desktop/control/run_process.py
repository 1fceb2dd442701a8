"""`RunProcess`: one flow run in a `QProcess`, followed through its event stream.

The window never imports a user's flow: it starts `python file.py run ...`
(or the Metaflow bridge) in a new session, chooses the run id so it can
follow `events.jsonl` from the first byte, decodes output incrementally as
UTF-8, and stops the run with the engine's stop signal to its process group
(the orchestrator, which gives its tasks their own grace), then KILL after
`LaunchSpec.stop_grace_s`, which is longer than the engine's grace.

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
import os
import signal
import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from flowdeck.engines import processes
from flowdeck.engines.base import LaunchSpec
from flowdeck.engines.launching import installed_core
from flowdeck.store.events import EventReader
from flowdeck.store.layout import RUN_ID_ENV, RunLayout
from flowdeck.store.records import DamagedRecord, RunRecord
from flowdeck.store.status import RUN_FINAL
from flowdeck_desktop.system.resources import bundled_core

EVENT_POLL_MS = 15
EVENTS_PER_TICK = 1000  # bounds the time one tick spends on a burst of events


def core_path() -> str:
    """Folder to put on a child's PYTHONPATH so it can `import flowdeck`.

    A frozen app keeps its modules in an archive a real Python cannot read, so
    the bundle carries the core (and its small dependencies) as plain files in
    `pylib/`; never the bundle's own folder, whose Qt libraries would shadow the
    child's.
    """
    return bundled_core() or installed_core()


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
        self._saw_run_finished: str | None = None
        self._ended = False
        self._reader = EventReader(spec.events_path)
        self._backlog: deque[dict] = deque()
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")(errors="replace")
                          for name in ("stdout", "stderr")}
        self._proc = QProcess(self)
        self._poll = QTimer(self)
        self._poll.setInterval(EVENT_POLL_MS)
        self._poll.timeout.connect(self._read_events)
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill_run)
        self._proc.readyReadStandardOutput.connect(lambda: self._read_output("stdout"))
        self._proc.readyReadStandardError.connect(lambda: self._read_output("stderr"))
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
        self._proc.start()
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
        processes.kill_all(leftovers, spare=set())

    def _read_output(self, stream: str) -> None:
        data = (self._proc.readAllStandardOutput() if stream == "stdout"
                else self._proc.readAllStandardError()).data()
        text = self._decoders[stream].decode(data)
        if text:
            self.output.emit(stream, text)

    def _read_events(self, everything: bool = False) -> None:
        """Hand on new events, at most EVENTS_PER_TICK per timer tick (the rest wait)."""
        self._backlog.extend(self._reader.read())
        count = len(self._backlog) if everything else min(len(self._backlog), EVENTS_PER_TICK)
        for _ in range(count):
            event = self._backlog.popleft()
            if event.get("type") == "run_finished":
                self._saw_run_finished = str(event.get("status", "failed"))
            self.event_arrived.emit(event)

    def _on_finished(self, exit_code: int, exit_status: QProcess.ExitStatus) -> None:
        self._read_output("stdout")
        self._read_output("stderr")
        for stream, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                self.output.emit(stream, tail)
        self._read_events(everything=True)
        self._poll.stop()
        self._kill_timer.stop()
        self._end_leftovers()  # nothing of the run may outlive it (helpers, grandchildren)
        self._finish(exit_code, self._final_status(exit_code, exit_status))

    def _final_status(self, exit_code: int, exit_status: QProcess.ExitStatus) -> str:
        if self._saw_run_finished:
            return self._saw_run_finished
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
            self.failed_to_start.emit(message)
            self._finish(-1, "failed")

    def _finish(self, code: int, status: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.status = status
        self.ended.emit(code, status)
