"""`EventFeed`: a run's `events.jsonl`, read as it grows and handed on in bounded bursts.

Both ways the window follows a run (its own `RunProcess`, and `OutsideRun` for a run
started elsewhere) read the stream the same way: whatever is new on each timer tick, at
most `EVENTS_PER_TICK` events handed on per tick (a burst of thousands would hold the
event loop; the rest wait for the next tick), noting the run's `run_finished` status.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import Any

from flowdeck.store.events import EventReader

EVENTS_PER_TICK = 1000  # bounds the time one tick spends on a burst of events


class EventFeed:
    """New events of one run's stream, handed to `hand_on` a bounded burst at a time."""

    def __init__(self, events_path: str | os.PathLike[str],
                 hand_on: Callable[[dict[str, Any]], None]) -> None:
        self._reader = EventReader(events_path)
        self._backlog: deque[dict[str, Any]] = deque()
        self._hand_on = hand_on
        #: The status the run's `run_finished` event gave, once it was handed on.
        self.finished_as: str | None = None

    @property
    def drained(self) -> bool:
        """Whether every event read so far was handed on."""
        return not self._backlog

    def read(self, everything: bool = False) -> None:
        """Hand on new events: at most EVENTS_PER_TICK, or `everything` (the run ended)."""
        self._backlog.extend(self._reader.read())
        count = len(self._backlog) if everything else min(len(self._backlog), EVENTS_PER_TICK)
        for _ in range(count):
            event = self._backlog.popleft()
            if event.get("type") == "run_finished":
                self.finished_as = str(event.get("status", "failed"))
            self._hand_on(event)
