"""`OutsideRun`: a run the window did not start, followed live through its files.

A run started in a terminal (`python train.py`), or by a window that was then killed
(the run goes on: a crashed window must not cost an hour of training), has no
`QProcess` here. The window follows it as it follows its own runs: its `events.jsonl`
read from the first byte on a timer and handed to the one fold (`RunState`), its end
told by its `run_finished` event or, when its process is gone without one, by the
store's crash rule (`store.index.effective_status`).

Stop sends the run's orchestrator (the pid in its `run.json`, on this host only, and only
while that pid is still the process that wrote the record) its
engine's stop signal, then KILL after that engine's grace, as `RunProcess.stop` does for
the window's own runs; the run's guard ends whatever the killed orchestrator started.
The signal goes to the orchestrator alone, not to its process group: a run started in a
terminal shares its group with the shell's job (`python train.py | tee log`).
"""

from __future__ import annotations

import signal

from PySide6.QtCore import QObject, QTimer, Signal

from flowdeck.engines.launching import ENGINES
from flowdeck.store.index import effective_status, read_run
from flowdeck.store.layout import RunLayout
from flowdeck.store.liveness import may_signal, signal_recorded
from flowdeck.store.records import RunRecord, hostname
from flowdeck.store.status import CANCELLED, CRASHED, RUNNING
from flowdeck_desktop.control.event_feed import EventFeed

#: How often the run's new events are read; its process is checked every CHECK_EVERY ticks.
OUTSIDE_POLL_MS = 50
CHECK_EVERY = 20  # about once a second


class OutsideRun(QObject):
    """One run started elsewhere; emits its events and one `ended` (its final status)."""

    event_arrived = Signal(dict)
    ended = Signal(str)  # succeeded | failed | cancelled | crashed

    def __init__(self, layout: RunLayout, record: RunRecord, parent: QObject | None = None):
        super().__init__(parent)
        self.layout = layout
        self.record = record
        self._events = EventFeed(layout.events(record.run_id), self.event_arrived.emit)
        self._stopping = False
        self._ended = False
        self._ticks = 0
        self._poll = QTimer(self)
        self._poll.setInterval(OUTSIDE_POLL_MS)
        self._poll.timeout.connect(self._tick)
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def running(self) -> bool:
        return not self._ended

    @property
    def stoppable(self) -> bool:
        """Whether Stop can reach it: it goes on, on this host, with a known process that
        this user may signal (another user's run in a shared store is not ours to stop)."""
        return self.running and bool(self.record.pid) and self.on_this_host \
            and may_signal(self.record.pid)

    @property
    def on_this_host(self) -> bool:
        return not self.record.host or self.record.host == hostname()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start(self) -> None:
        """Hand on every event written so far (the fold catches up at once), then follow."""
        self._read_events(everything=True)
        if not self._ended:
            self._check_process()
        if not self._ended:
            self._poll.start()

    def stop(self) -> None:
        """Its engine's stop signal now (the orchestrator cancels its tasks with their
        grace and records the run as cancelled), KILL after the engine's grace."""
        if not self.stoppable or self._stopping:
            return
        engine = ENGINES.get(self.record.engine, ENGINES["flowdeck"])
        if not self._signal(engine.stop_signal):  # gone, or its pid is another's now
            self._check_process()  # so it ended on its own: as it ended, or crashed
            return
        self._stopping = True
        self._kill_timer.start(int(engine.stop_grace_s * 1000))

    def close(self) -> None:
        """Stop following (the run itself goes on)."""
        self._poll.stop()
        self._kill_timer.stop()

    # -- internals ----------------------------------------------------------------------

    def _signal(self, sig: int) -> bool:
        """The signal goes to the recorded process only while it is still that process:
        after a crash its pid may belong to something else (`store.liveness`). Whether
        it went."""
        return signal_recorded(self.record.pid, self.record.process_start, sig)

    def _kill(self) -> None:
        if self.running:
            self._signal(signal.SIGKILL)

    def _tick(self) -> None:
        self._read_events()
        self._ticks += 1
        if not self._ended and (self._ticks % CHECK_EVERY == 0 or self._stopping):
            self._check_process()

    def _read_events(self, everything: bool = False) -> None:
        self._events.read(everything)
        if self._events.finished_as is not None and self._events.drained:
            self._finish(self._events.finished_as)

    def _check_process(self) -> None:
        """Its record's status by the crash rule: a final one, or `crashed` once its
        process is gone without one (`cancelled` if this window stopped it)."""
        entry = read_run(self.layout, self.run_id)
        if entry.record is not None:
            self.record = entry.record
        status = effective_status(self.record)
        if status == RUNNING:
            return
        self._read_events(everything=True)  # what it wrote before it ended
        if not self._ended:
            self._finish(CANCELLED if status == CRASHED and self._stopping else status)

    def _finish(self, status: str) -> None:
        if self._ended:
            return
        self._ended = True
        self._poll.stop()
        self._kill_timer.stop()
        self.ended.emit(status)
