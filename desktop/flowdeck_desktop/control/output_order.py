"""The order of a run's stdout and stderr lines as the run wrote them.

The run's two streams come through two pipes, each read on a thread of its own and
handed on once per timer tick. Handing on a tick's stdout, then its stderr, showed a
task's warning after lines written later, even after "Run ... succeeded"; and a pipe's
reader can lag the other's by a tick under a flood, so sorting within one tick is not
enough either.

Each line the engine writes starts with the time it was written (`21:35:09.171
[run/step/task] ...`; Metaflow's with the date first). So lines are handed on in the
order of those times, each stream keeping its own order: a line is held while another
stream that is still writing (its pipe holds unread text, or it was heard within
`HOLD_S`) has not yet shown a line as late (a watermark). A line without a time (the run's last
words, a piece of a line cut by the pipe) takes the time of the line before it on its
stream. While only one stream writes (nearly always), nothing is held.

The times are in milliseconds: lines of both streams written within one millisecond (a
flood prints hundreds) keep stdout's first.
"""

from __future__ import annotations

import heapq
import re

#: A line's time at its start: `HH:MM:SS.mmm ` (ours), or `YYYY-MM-DD HH:MM:SS.mmm ` (Metaflow).
_STAMP = re.compile(r"(?:\d{4}-\d\d-\d\d )?(\d\d):(\d\d):(\d\d)\.(\d{3}) ")

#: How long a stream that wrote nothing since may hold back the other's lines (seconds).
HOLD_S = 0.15
DAY_MS = 86_400_000

_Entry = tuple[int, int, int, str, str]  # (time, stream rank, sequence, stream, line)


class OutputOrder:
    """Puts one run's stdout and stderr text back in the order it was written."""

    def __init__(self, streams: tuple[str, ...] = ("stdout", "stderr")) -> None:
        self._rank = {stream: rank for rank, stream in enumerate(streams)}
        self._latest: dict[str, int] = {}  # per stream, the time of its newest line
        self._heard: dict[str, float] = {}  # per stream, when it last had text (monotonic)
        self._seq = 0
        self._held: list[_Entry] = []  # a heap

    def interleave(self, texts: dict[str, str], now: float, final: bool = False,
                   unread: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
        """`texts` (stream -> text read since the last call) added, and what may be handed
        on now, as (stream, text) pieces in order; consecutive lines of one stream are one
        piece. `unread`: streams whose pipe holds text not read yet (a reader behind under
        load is not a silent stream). `final`: the run ended, everything goes."""
        present = {stream: text for stream, text in texts.items() if text}
        if not self._held and len(present) <= 1 and not (unread - present.keys()) and (
                final or all(now - heard >= HOLD_S
                             for s, heard in self._heard.items() if s not in present)):
            for stream, text in present.items():  # one stream writing: as it is, unparsed
                self._note(stream, text, now)
            return list(present.items())
        for stream, text in present.items():
            self._add(stream, text, now)
        mark = self._watermark(now, final, unread)
        pieces: list[tuple[str, str]] = []
        while self._held and self._held[0][0] <= mark:
            *_, stream, line = heapq.heappop(self._held)
            if pieces and pieces[-1][0] == stream:
                pieces[-1] = (stream, pieces[-1][1] + line)
            else:
                pieces.append((stream, line))
        return pieces

    def _add(self, stream: str, text: str, now: float) -> None:
        last = self._latest.get(stream, -1)
        rank = self._rank.setdefault(stream, len(self._rank))
        for line in text.splitlines(keepends=True):
            found = _STAMP.match(line)
            if found is not None:
                last = self._time(stream, found, last)
            self._seq += 1
            heapq.heappush(self._held, (last, rank, self._seq, stream, line))
        self._latest[stream] = last
        self._heard[stream] = now

    def _time(self, stream: str, found: re.Match[str], last: int) -> int:
        """A stamp (a time of day) as a time of the run that never goes back on its stream:
        the day is the one that puts it nearest the newest time of any stream, so past
        midnight both streams go on into the next day whichever crossed it first, and
        however long one was silent. (The clock set back by an hour is not undone: the
        streams keep their own order, and are merged by the times they show.)"""
        stamped = _milliseconds(found)
        newest = max(self._latest.values(), default=-1)
        if newest > 0:
            stamped += max(0, round((newest - stamped) / DAY_MS)) * DAY_MS
        return max(last, stamped)

    def _note(self, stream: str, text: str, now: float) -> None:
        """Text handed on as it is: keep the time of its last stamped line (looked for from
        the end) and when the stream was heard."""
        self._heard[stream] = now
        last = self._latest.setdefault(stream, -1)  # no time seen yet: before any with one
        for line in reversed(text[-8192:].splitlines()):
            found = _STAMP.match(line)
            if found is not None:
                self._latest[stream] = self._time(stream, found, last)
                return

    def _watermark(self, now: float, final: bool, unread: frozenset[str]) -> float:
        """Lines up to this time may go: every stream still writing has reached it (one
        heard lately, or with text in its pipe)."""
        if final:
            return float("inf")
        streams = set(self._heard) | set(unread)
        writing = [self._latest.get(s, -1) for s in streams
                   if now - self._heard.get(s, now) < HOLD_S or s in unread]
        return min(writing) if len(writing) > 1 else float("inf")


def _milliseconds(found: re.Match[str]) -> int:
    hours, minutes, seconds, millis = (int(g) for g in found.groups())
    return ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis
