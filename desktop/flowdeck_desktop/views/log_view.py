"""A run's log: batched, bounded, ANSI-aware, searchable.

`LogView.append(text, stream)` only queues the text; one single-shot QTimer
flushes the queue into the document every ~50 ms, at most `flush_max_lines`
lines or `flush_max_chars` characters per tick, so a flood of output never
freezes the window: between two flushes the event loop paints and handles
input. Memory is bounded twice: the document keeps `maximum_line_count()`
lines (older ones are trimmed by `QPlainTextEdit.maximumBlockCount`), and the
queue of text not yet shown keeps at most as many lines as could still be on
screen after it is flushed; older queued lines are dropped and replaced by one
"… N lines dropped …" line, since the document would have trimmed them at once.

Text arrives already decoded, in arbitrary chunks. Each stream (``"stdout"``,
``"stderr"``, or any other name, shown muted) keeps its own ANSI parser state
and its own unfinished last line, completed by a later chunk: ``"abc"`` then
``"def\\n"`` is the single line ``abcdef``. The unfinished line is shown at
once, as a terminal shows it, and completed in place (above any line another
stream added meanwhile). A carriage return starts the line again, so a
progress bar redraws in place instead of piling up. `finish()` ends the
unfinished lines when a stream ends, so the next text starts a new line.

A finished task's log files can be far larger than the window should hold (a step
that prints 100 MB). `show_files(paths)` reads them in bounded pages on a pool
thread (`read_log_page`: at most `PAGE_BYTES` and the document's line limit per
stream, starting at a line) and hands the page to the GUI thread through a queued
signal; only inserting it happens there, in the usual flush slices. "Show earlier
output" reads the page before the one shown, "Show latest output" the tail again.
A running task's files are followed (`show_files(paths, live=True)`): what they gain
after the tail page is read as it comes (`FOLLOW_FILES_MS`), until `stop_following()`.
"""

from __future__ import annotations

import codecs
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import field

from PySide6.QtCore import QEvent, QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QFont,
    QFontDatabase,
    QFontMetricsF,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QPalette,
    QShortcut,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from flowdeck.compiled_dataclasses import dataclass
from flowdeck_desktop.views.ansi import DEFAULT_STYLE, AnsiParser, Span, Style, is_plain, to_rgb

__all__ = ["LogView", "LogPage", "read_log_page", "is_dark_palette", "error_color"]

MARKER_STREAM = "\x00marker"  # internal: the "lines dropped" line
#: The most bytes of one log file a page reads (and so the window holds, per stream).
PAGE_BYTES = 2 * 1024 * 1024
#: How often a running task's log files are looked at for what they gained, and the most
#: read that way at once (past it, the tail page is read anew on the pool thread).
FOLLOW_FILES_MS = 250
FOLLOW_READ_MAX = 1024 * 1024
_BREAK = re.compile(r"\r\n|\r|\n")


def is_dark_palette(palette: QPalette) -> bool:
    """True when text is drawn light on dark (a dark theme)."""
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


def error_color(palette: QPalette) -> QColor:
    """The red used for stderr and errors, readable on the palette's background."""
    return QColor("#ff6b6b") if is_dark_palette(palette) else QColor("#c62828")


@dataclass(eq=False)
class _Stream:
    """Per-stream state: SGR state and the unfinished last line (and where it is shown)."""

    parser: AnsiParser = field(default_factory=AnsiParser)
    partial: list[Span] = field(default_factory=list)
    partial_chars: int = 0
    cr_pending: bool = False  # a "\r" was seen: the next text restarts the line
    dirty: bool = False  # the unfinished line changed since it was last shown
    shown: QTextCursor | None = None  # selects the unfinished line's text in the document
    shown_text: str = ""  # what `shown` should select (else the line was trimmed away)


class _LogEdit(QPlainTextEdit):
    """The text area: copy-all when nothing is selected, and our own context menu."""

    def __init__(self, owner: "LogView") -> None:
        super().__init__(owner)
        self._owner = owner

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.matches(QKeySequence.StandardKey.Copy):
            self._owner.copy()
            event.accept()
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (Qt override)
        menu = self._owner.create_context_menu(self)
        menu.exec(event.globalPos())
        menu.deleteLater()


@dataclass(frozen=True)
class StreamPage:
    """One file's part of a page: its text and the byte range it came from."""

    text: str
    start: int  # offset of the page's first byte (always a line's start, or 0)
    end: int  # offset just after its last byte
    size: int  # the file's size when it was read

    @property
    def earlier(self) -> bool:
        return self.start > 0

    @property
    def later(self) -> bool:
        return self.end < self.size


@dataclass(frozen=True)
class LogPage:
    """A page of a task's log files, read on a pool thread (`reader_thread` says which)."""

    token: int  # which request it answers; a page for an older request is dropped
    streams: dict[str, StreamPage]
    reader_thread: int
    bytes_read: int

    @property
    def earlier(self) -> bool:
        return any(p.earlier for p in self.streams.values())

    @property
    def later(self) -> bool:
        return any(p.later for p in self.streams.values())


def read_log_page(path: str | os.PathLike[str], end: int | None, page_bytes: int,
                  max_lines: int) -> StreamPage | None:
    """The last whole lines of `path` before byte `end` (its end when None): at most
    `page_bytes` bytes and `max_lines` lines. None when the file cannot be read.

    A page starts at a line's start (so paging back never splits a line or a UTF-8
    character between two pages) unless one line is longer than the page.
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            stop = size if end is None else max(0, min(end, size))
            start = max(0, stop - page_bytes)
            handle.seek(start)
            data = handle.read(stop - start)
    except OSError:
        return None
    stop = start + len(data)  # the file may have shrunk meanwhile
    if start > 0:
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            data = data[newline + 1:]
            start += newline + 1
    cut = _start_of_last_lines(data, max_lines)
    return StreamPage(data[cut:].decode("utf-8", "replace"), start + cut, stop, size)


def _start_of_last_lines(data: bytes, count: int) -> int:
    """Index in `data` where its last `count` lines begin (an unfinished last one counts)."""
    pos = len(data) - 1 if data.endswith(b"\n") else len(data)
    for _ in range(count):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return 0
    return pos + 1


class _PageRelay(QObject):
    """Carries a page from the pool's thread to the GUI thread.

    It lives in the GUI thread, so emitting from the reader queues the call: the
    reader never touches a widget and starts no timer off the GUI thread.
    """

    done = Signal(object)  # LogPage


class _PageJob(QRunnable):
    """Reads one page of every stream's file, off the GUI thread."""

    def __init__(self, token: int, files: Mapping[str, str | os.PathLike[str]],
                 ends: Mapping[str, int | None], page_bytes: int, max_lines: int,
                 relay: _PageRelay) -> None:
        super().__init__()
        self.token, self.files, self.ends = token, dict(files), dict(ends)
        self.page_bytes, self.max_lines = page_bytes, max_lines
        self.relay = relay  # the job keeps the relay alive until it emits

    def run(self) -> None:
        streams: dict[str, StreamPage] = {}
        for stream, path in self.files.items():
            page = read_log_page(path, self.ends.get(stream), self.page_bytes, self.max_lines)
            if page is not None:
                streams[stream] = page
        read = sum(p.end - p.start for p in streams.values())
        try:
            self.relay.done.emit(LogPage(self.token, streams, threading.get_ident(), read))
        except RuntimeError:  # the view (and its relay) went away meanwhile
            pass


_LONG_PREFIX = re.compile(
    r"^(?:\d{4}-\d\d-\d\d )?(?P<time>\d\d:\d\d:\d\d)\.\d{3} "
    r"\[[^/\]\s]+/(?P<step>[^/\]\s]+)/(?P<task>[^/\]\s]+)(?: \(pid \d+\))?\] ?")


def compact_prefix(line: str) -> str:
    """`2026-12-02 04:01:38.627 [1796184092378798/end/7 (pid 16524)] text` (Metaflow) or
    `04:01:38.627 [1796184092378-a1b2c3/end/7] text` (ours) as `04:01:38 end/7 │ text`:
    the run id is in the header already, and the text the user printed stays in view."""
    found = _LONG_PREFIX.match(line)
    if found is None:
        return line
    return (f"{found.group('time')} {found.group('step')}/{found.group('task')} │ "
            f"{line[found.end():].expandtabs(8)}")  # tab stops from the text, not the prefix


class LogView(QWidget):
    """Read-only log of a run's output; see the module docstring for the contract."""

    following_changed = Signal(bool)  # emitted only when following the tail starts or stops

    DEFAULT_MAX_LINES = 50_000
    FLUSH_INTERVAL_MS = 50
    FLUSH_MAX_LINES = 5_000
    FLUSH_MAX_CHARS = 1_000_000
    MAX_PENDING_CHARS = 16_000_000
    MAX_PARTIAL_CHARS = 64 * 1024  # an unfinished line longer than this is shown in pieces
    #: What one timer flush aims to hold the event loop for. Once the document is full, each
    #: line shown also trims one from the top, which costs Qt about four times the insert
    #: (measured: 5,000 lines took 40 ms into a filling document, 180 ms into a full one),
    #: so the timer's slices are sized from the cost measured per line, not fixed.
    FLUSH_BUDGET_S = 0.03
    MIN_FLUSH_LINES = 200
    #: The first timer flush, before any cost is measured: about FLUSH_BUDGET_S of plain
    #: 100-character lines here (13 us each into a filling document; 5,000 took 65-90 ms).
    FIRST_FLUSH_LINES = 2_000
    #: The most one timer flush shows, whatever the measured cost: the cost of a line varies
    #: with the document's fill and the machine's load, and 5,000 lines took 55 ms here.
    TIMER_MAX_LINES = 2_000

    def __init__(self, parent: QWidget | None = None, *, max_lines: int = DEFAULT_MAX_LINES,
                 max_pending_lines: int | None = None,
                 max_pending_chars: int = MAX_PENDING_CHARS) -> None:
        super().__init__(parent)
        self.flush_max_lines = self.FLUSH_MAX_LINES
        self.flush_max_chars = self.FLUSH_MAX_CHARS
        self._max_pending_lines = max_pending_lines
        self._max_pending_chars = max_pending_chars

        self._queue: deque[tuple[str, str | None, int]] = deque()  # (stream, text, newlines)
        self._pending_lines = 0
        self._pending_chars = 0
        self._dropped_unreported = 0
        self._dropped_total = 0
        self._trimmed_total = 0  # lines the document trimmed from its top (maximumBlockCount)
        #: Said after the trimming note: where the whole output is (the window: the steps).
        self.trim_hint = ""
        self._streams: dict[str, _Stream] = {}
        # Finished lines whose unfinished start is already shown: completed in place.
        self._replacements: list[tuple[QTextCursor, str, str, str | list[Span]]] = []
        self._has_lines = False
        self._formats: dict[tuple[str, Style], QTextCharFormat] = {}
        self._following = True
        self._adjusting = False
        self._longest_flush = 0.0
        self._last_flush = 0.0
        self._flush_count = 0
        self._slice_lines = self.FIRST_FLUSH_LINES  # lines the next timer flush may show
        self._line_cost = self.FLUSH_BUDGET_S / self.FIRST_FLUSH_LINES  # seconds, see below
        self._dropped_at_flush = 0  # _dropped_total at the last timer flush
        self._last_flush_lines = 0

        self._page_token = 0
        self._files: dict[str, str | os.PathLike[str]] = {}
        #: Following a running task's files: by stream, the offset read up to, and the
        #: decoder that keeps a UTF-8 character split between two reads whole.
        self._live_files = False
        self._file_ends: dict[str, int] = {}
        self._file_decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._follow_timer = QTimer(self)
        self._follow_timer.setInterval(FOLLOW_FILES_MS)
        self._follow_timer.timeout.connect(self._read_file_growth)
        self.page_bytes = PAGE_BYTES
        self.last_page: LogPage | None = None  # the latest page shown, kept after clear()
        self._shown_page: LogPage | None = None
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._relay = _PageRelay()
        self._relay.done.connect(self._on_page)

        self._edit = _LogEdit(self)
        self._edit.setObjectName("logText")
        self._edit.setReadOnly(True)
        self._edit.setUndoRedoEnabled(False)
        self._edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self._edit.setMaximumBlockCount(max(0, max_lines))
        self._edit.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                           | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self._edit.setFont(font)
        # A terminal's tab stops: every 8 characters (Qt's default is 80 pixels).
        self._edit.setTabStopDistance(8 * QFontMetricsF(font).horizontalAdvance(" "))
        self._cursor = QTextCursor(self._edit.document())
        self._line_limit = self._pending_line_limit()

        self._search = QLineEdit(self)
        self._search.setObjectName("logSearch")
        self._search.setPlaceholderText("Find in log  (Ctrl+F)")
        self._search.setClearButtonEnabled(True)
        self._search.installEventFilter(self)
        self._search.textEdited.connect(self._on_search_edited)
        self._prev_button = QToolButton(self)
        self._prev_button.setObjectName("logFindPrevious")
        self._prev_button.setArrowType(Qt.ArrowType.UpArrow)
        self._prev_button.setToolTip("Previous match (Shift+F3, Shift+Enter)")
        self._prev_button.clicked.connect(self.find_previous)
        self._next_button = QToolButton(self)
        self._next_button.setObjectName("logFindNext")
        self._next_button.setArrowType(Qt.ArrowType.DownArrow)
        self._next_button.setToolTip("Next match (F3, Enter)")
        self._next_button.clicked.connect(self.find_next)
        self._status = QLabel(self)
        self._status.setObjectName("logSearchStatus")
        self._status.setMinimumWidth(self._status.fontMetrics().horizontalAdvance("999999 / 999999"))

        self._earlier = QToolButton(self)
        self._earlier.setObjectName("logShowEarlier")
        self._earlier.setText("Show earlier output")
        self._earlier.setToolTip("Read the part of the log before the one shown")
        self._earlier.clicked.connect(self.show_earlier)
        self._earlier.setVisible(False)
        self._latest = QToolButton(self)
        self._latest.setObjectName("logShowLatest")
        self._latest.setText("Show latest output")
        self._latest.clicked.connect(self.show_latest)
        self._latest.setVisible(False)

        self._trimmed_note = QLabel(self)  # the top of the log is gone: say so, once
        self._trimmed_note.setObjectName("logTrimmed")
        self._trimmed_note.setWordWrap(True)
        self._trimmed_note.setContentsMargins(6, 0, 6, 2)
        self._trimmed_note.setVisible(False)

        bar = QHBoxLayout()
        bar.setContentsMargins(4, 4, 4, 2)
        bar.setSpacing(4)
        bar.addWidget(self._earlier)
        bar.addWidget(self._latest)
        bar.addWidget(self._search, 1)
        bar.addWidget(self._prev_button)
        bar.addWidget(self._next_button)
        bar.addWidget(self._status)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self._trimmed_note)
        layout.addWidget(self._edit, 1)

        for keys, slot in ((QKeySequence.StandardKey.Find, self.focus_search),
                           (QKeySequence("F3"), self.find_next),
                           (QKeySequence("Shift+F3"), self.find_previous)):
            shortcut = QShortcut(keys, self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(self.FLUSH_INTERVAL_MS)
        self._timer.timeout.connect(self._on_timer)
        self._scheduled = False  # mirrors _timer.isActive(), without a call into Qt per append

        bar_ = self._edit.verticalScrollBar()
        bar_.valueChanged.connect(self._on_scroll_value)
        bar_.rangeChanged.connect(self._on_scroll_range)

    # -- public API ---------------------------------------------------------------

    #: Applied to each whole plain line before it is shown (None: lines as they are).
    line_transform: Callable[[str], str] | None = None

    def append(self, text: str, stream: str = "stdout") -> None:
        """Queue decoded output of `stream`; it is shown by the next flush (~50 ms)."""
        if not text:
            return
        newlines = text.count("\n")
        self._queue.append((stream, text, newlines))
        self._pending_lines += newlines
        self._pending_chars += len(text)
        if self._pending_lines > self._line_limit or self._pending_chars > self._max_pending_chars:
            self._enforce_bounds()
        if not self._scheduled:
            self._schedule(self.FLUSH_INTERVAL_MS)

    def finish(self, stream: str | None = None) -> None:
        """The stream (or every stream) ended: its unfinished last line becomes a line."""
        self._queue.append((stream or "", None, 0))
        if not self._scheduled:
            self._schedule(self.FLUSH_INTERVAL_MS)

    def flush(self) -> None:
        """Show everything queued now, synchronously (the timer does it in slices otherwise).

        Unfinished last lines are shown but stay open; `finish()` ends them.
        """
        while self._queue or self._dropped_unreported:
            self._flush_once(self.flush_max_lines, self.flush_max_chars)
        self._timer.stop()
        self._scheduled = False

    def show_files(self, files: Mapping[str, str | os.PathLike[str]],
                   live: bool = False) -> None:
        """Show the tail of each stream's log file (e.g. {"stdout": ..., "stderr": ...}).

        The files are read on a pool thread, a page at a time (see `read_log_page`); the
        view is empty until the page arrives, and a page for an earlier request is dropped.
        `live`: the files still grow (a running task's): what they gain is shown as it
        comes while the tail is shown, until `stop_following()`.
        """
        self.clear()
        self._files = dict(files)
        self._live_files = live
        self._request({stream: None for stream in self._files})

    def stop_following(self) -> None:
        """The files stopped growing (their task ended): show what they gained last, end
        their unfinished lines, and stop looking."""
        if not self._live_files:
            return
        self._live_files = False
        if self._follow_timer.isActive():
            self._follow_timer.stop()
            self._read_file_growth()
            self.finish()

    @property
    def following_files(self) -> bool:
        """Whether the files shown are being followed as they grow."""
        return self._follow_timer.isActive()

    def _read_file_growth(self) -> None:
        """Append what each followed file gained since the last read; a burst larger than
        `FOLLOW_READ_MAX` reads the tail page anew instead (the view keeps the tail)."""
        for stream, path in self._files.items():
            try:
                with open(path, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    end = self._file_ends.get(stream, 0)
                    if size <= end:
                        continue
                    if size - end > FOLLOW_READ_MAX:
                        self.show_latest()
                        return
                    handle.seek(end)
                    data = handle.read(size - end)
            except OSError:
                continue
            self._file_ends[stream] = end + len(data)
            decoder = self._file_decoders.setdefault(
                stream, codecs.getincrementaldecoder("utf-8")("replace"))
            self.append(decoder.decode(data), stream)

    def show_earlier(self) -> None:
        """Replace the page shown by the one before it (where some stream has earlier output)."""
        page = self._shown_page
        if page is not None and page.earlier:
            self._request({s: p.start for s, p in page.streams.items()})

    def show_latest(self) -> None:
        """Show the files' tails again (after paging back, or to see what was added since)."""
        if self._files:
            self._request({stream: None for stream in self._files})

    def _request(self, ends: Mapping[str, int | None]) -> None:
        self._page_token += 1
        self._follow_timer.stop()  # a tail page starts it again
        lines = self.maximum_line_count() or 1_000_000
        per_stream = max(1, lines // max(1, len(self._files)) - 2)  # room for the markers
        self._pool.start(_PageJob(self._page_token, self._files, ends, self.page_bytes,
                                  per_stream, self._relay))

    def _on_page(self, page: LogPage) -> None:
        """A page arrived (GUI thread): show it if it answers the latest request."""
        if page.token != self._page_token or not self._files:
            return
        self._clear_view()
        self.last_page = self._shown_page = page
        follow = self._live_files and not page.later  # the tail of files that still grow
        for stream, part in page.streams.items():
            if part.earlier:
                self.append(f"… {_size(part.start)} of earlier {stream} "
                            "(Show earlier output) …\n", MARKER_STREAM)
            self.append(part.text, stream)
            if not follow:  # a followed line may go on (a progress bar, a partial print)
                self.finish(stream)
            if part.later:
                self.append(f"… {_size(part.size - part.end)} of later {stream} "
                            "(Show latest output) …\n", MARKER_STREAM)
        self._earlier.setVisible(page.earlier)
        self._latest.setVisible(page.later or (self._live_files and not follow))
        if follow:
            self._file_ends = {stream: page.streams[stream].end if stream in page.streams
                               else 0 for stream in self._files}
            self._file_decoders = {}
            self._follow_timer.start()

    def clear(self) -> None:
        """Forget everything: shown lines, queued text, unfinished lines and ANSI state, and
        any page of log files shown or still being read."""
        self._page_token += 1  # a page still being read is dropped when it arrives
        self._files = {}
        self._live_files = False
        self._follow_timer.stop()
        self._shown_page = None
        self._earlier.setVisible(False)
        self._latest.setVisible(False)
        self._clear_view()

    def _clear_view(self) -> None:
        self._timer.stop()
        self._scheduled = False
        self._queue.clear()
        self._pending_lines = self._pending_chars = 0
        self._dropped_unreported = self._dropped_total = self._dropped_at_flush = 0
        self._trimmed_total = 0
        self._trimmed_note.setVisible(False)
        self._streams.clear()
        self._replacements.clear()
        self._has_lines = False
        self._empty_edit()
        self._status.clear()
        self._set_following(True)

    def _empty_edit(self) -> None:
        """Empty the text and drop the search's match and cursor: the match's cursor keeps
        its place on insert, so after `clear()` it stayed at 0 while the new text grew
        behind it, and the whole next log showed selected (and copied whole)."""
        self._adjusting = True
        try:
            self._edit.clear()
            self._edit.setExtraSelections([])
            self._edit.setTextCursor(QTextCursor(self._edit.document()))
        finally:
            self._adjusting = False

    def has_pending(self) -> bool:
        """True while queued text waits for a flush."""
        return bool(self._queue) or self._dropped_unreported > 0

    @property
    def pending_line_count(self) -> int:
        return self._pending_lines

    @property
    def trimmed_line_count(self) -> int:
        """Lines shown and then trimmed from the top (the document keeps the latest
        `maximum_line_count()`), since the last `clear()`."""
        return self._trimmed_total

    def trimmed_note(self) -> str:
        """What the view says above the log once its top was trimmed ("" before)."""
        return self._trimmed_note.text() if self._trimmed_total else ""

    def _note_trimmed(self, lines: int) -> None:
        self._trimmed_total += lines
        self._trimmed_note.setText(  # (lines dropped unshown have a marker line of their own)
            f"The first {self._trimmed_total:,} lines shown are gone: this view keeps the "
            f"latest {self.maximum_line_count():,}."
            + (f" {self.trim_hint}" if self.trim_hint else ""))
        self._trimmed_note.setVisible(True)

    @property
    def dropped_line_count(self) -> int:
        """Lines dropped from the queue since the last `clear()`."""
        return self._dropped_total

    @property
    def longest_flush_seconds(self) -> float:
        """The longest time one flush held the event loop (seconds, since construction)."""
        return self._longest_flush

    @property
    def last_flush_seconds(self) -> float:
        return self._last_flush

    @property
    def flush_count(self) -> int:
        return self._flush_count

    def line_count(self) -> int:
        """Lines shown (0 when empty)."""
        return self._edit.document().blockCount() if self._has_lines else 0

    def text(self) -> str:
        """All shown text, lines joined by newlines."""
        return self._edit.toPlainText()

    def maximum_line_count(self) -> int:
        return self._edit.maximumBlockCount()

    def set_maximum_line_count(self, count: int) -> None:
        """Keep at most `count` lines (0: unbounded); older lines are trimmed."""
        self._edit.setMaximumBlockCount(max(0, count))
        self._line_limit = self._pending_line_limit()
        self._enforce_bounds()

    @property
    def text_edit(self) -> QPlainTextEdit:
        return self._edit

    @property
    def search_field(self) -> QLineEdit:
        return self._search

    @property
    def search_status(self) -> str:
        return self._status.text()

    def is_following(self) -> bool:
        """True while new lines scroll the view to the end."""
        return self._following

    def scroll_to_end(self) -> None:
        bar = self._edit.verticalScrollBar()
        bar.setValue(bar.maximum())
        self._set_following(True)

    def focus_search(self) -> None:
        self._search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self._search.selectAll()

    def find_next(self) -> bool:
        """Select the next match of the search text, wrapping at the end."""
        return self._find(backward=False)

    def find_previous(self) -> bool:
        """Select the previous match of the search text, wrapping at the start."""
        return self._find(backward=True)

    def copy(self) -> None:
        """Copy the selection to the clipboard, or every shown line if nothing is selected."""
        cursor = self._edit.textCursor()
        if cursor.hasSelection():
            text = cursor.selection().toPlainText()
        else:
            text = self._edit.toPlainText()
        QGuiApplication.clipboard().setText(text)

    def create_context_menu(self, parent: QWidget | None = None) -> QMenu:
        menu = QMenu(parent or self)
        has_selection = self._edit.textCursor().hasSelection()
        copy = QAction("Copy" if has_selection else "Copy All", menu)
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.triggered.connect(self.copy)
        menu.addAction(copy)
        select_all = QAction("Select All", menu)
        select_all.setShortcut(QKeySequence.StandardKey.SelectAll)
        select_all.triggered.connect(self._edit.selectAll)
        menu.addAction(select_all)
        menu.addSeparator()
        find = QAction("Find…", menu)
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.triggered.connect(self.focus_search)
        menu.addAction(find)
        clear = QAction("Clear", menu)
        clear.triggered.connect(self.clear)
        menu.addAction(clear)
        return menu

    # -- queue -----------------------------------------------------------------------

    def _pending_line_limit(self) -> int:
        if self._max_pending_lines is not None:
            return max(1, self._max_pending_lines)
        maximum = self._edit.maximumBlockCount()
        # Lines beyond this would be trimmed from the document as soon as they were shown;
        # one line is kept free for the "dropped" marker.
        return max(1, maximum - 1) if maximum > 0 else 1_000_000

    def _enforce_bounds(self) -> None:
        """Drop the oldest queued lines until the queue is within bounds again.

        Over a bound, the queue is cut a little further (1/50 of it) than needed,
        so a steady flood drops lines in batches instead of one per append.
        """
        if self._pending_lines <= self._line_limit and self._pending_chars <= self._max_pending_chars:
            return
        max_lines = self._line_limit - min(1_000, self._line_limit // 50)
        max_chars = self._max_pending_chars - min(1_000_000, self._max_pending_chars // 50)
        if self._pending_lines > max_lines and self._has_lines:
            self._clear_document()
        while self._queue and (self._pending_lines > max_lines or self._pending_chars > max_chars):
            stream, text, newlines = self._queue[0]
            if text is None:
                self._queue.popleft()
                self._finish_stream(stream, None)
                continue
            cut = len(text)
            need_lines = self._pending_lines - max_lines
            need_chars = self._pending_chars - max_chars
            if 0 < need_lines < newlines and need_chars < len(text):
                cut = _after_newline(text, need_lines, newlines)
                if need_chars > cut:
                    found = text.find("\n", need_chars - 1)
                    cut = found + 1 if found >= 0 else len(text)
            elif need_lines <= 0 and 0 < need_chars < len(text):
                found = text.find("\n", need_chars - 1)
                cut = found + 1 if found >= 0 else len(text)
            dropped = text[:cut]
            dropped_lines = dropped.count("\n")
            if cut < len(text):
                self._queue[0] = (stream, text[cut:], newlines - dropped_lines)
            else:
                self._queue.popleft()
            self._pending_lines -= dropped_lines
            self._pending_chars -= len(dropped)
            self._dropped_unreported += dropped_lines
            self._dropped_total += dropped_lines
            self._discard(stream, dropped)

    def _clear_document(self) -> None:
        """Empty the document, keeping the queue and the streams' state.

        Called when the queue holds more lines than the document keeps: every line shown
        now would be trimmed before the queue is through, and inserting into a full
        document costs Qt about four times what it costs into a filling one (each line
        shown trims one from the top). A step printing 100 MB is shown about twice as
        fast, with shorter stalls.
        """
        self._empty_edit()
        self._has_lines = False
        for state in self._streams.values():
            if state.shown is not None:  # its unfinished line is shown again, where it belongs
                state.shown = None
                state.dirty = bool(state.partial)

    def _discard(self, stream: str, text: str) -> None:
        """Drop `text` of `stream` unseen, keeping the stream's ANSI state and unfinished line."""
        state = self._state(stream)
        if state.parser.holding or "\r" in text or not is_plain(text):
            self._consume(stream, text, None)
            return
        newline = text.rfind("\n")
        if newline >= 0:  # as `_complete` does with a dropped line, without parsing megabytes
            state.partial = []
            state.partial_chars = 0
            state.cr_pending = False
            state.dirty = False
            state.shown = None  # an unfinished start already shown stays as it is
            text = text[newline + 1:]
        self._add(state, stream, text, state.parser.style, None)

    def _schedule(self, msec: int) -> None:
        self._scheduled = True
        self._timer.start(msec)

    def _on_timer(self) -> None:
        self._scheduled = False
        self._flush_once(min(self._slice_lines, self.flush_max_lines, self.TIMER_MAX_LINES),
                         self.flush_max_chars)
        self._size_next_slice()
        flooding = self._dropped_total > self._dropped_at_flush
        self._dropped_at_flush = self._dropped_total
        if self.has_pending():
            # More to do: again as soon as the event loop is idle; but while output comes
            # faster than it can be shown (lines were dropped since the last flush), at the
            # usual interval: most of what a flush shows then is trimmed moments later, and
            # flushing without pause took the CPU the run needed (100 MB: 4.2 s in the
            # window against 2.3 s headless).
            self._schedule(self.FLUSH_INTERVAL_MS if flooding else 0)

    def _flush_once(self, max_lines: int, max_chars: int) -> None:
        started = time.perf_counter()
        out: list[tuple[str, str | list[Span]]] = []
        if self._dropped_unreported:
            out.append((MARKER_STREAM, f"… {self._dropped_unreported:,} lines dropped …"))
            self._dropped_unreported = 0
        lines = chars = 0
        while self._queue and lines < max_lines and chars < max_chars:
            stream, text, newlines = self._queue[0]
            if text is None:
                self._queue.popleft()
                self._finish_stream(stream, out)
                continue
            room_lines = max_lines - lines
            room_chars = max_chars - chars
            if newlines > room_lines or len(text) > room_chars:
                cut = len(text)
                if newlines > room_lines:
                    cut = _after_newline(text, room_lines, newlines)
                if cut > room_chars:
                    found = text.rfind("\n", 0, room_chars)
                    cut = found + 1 if found >= 0 else room_chars
                head = text[:cut]
                head_lines = head.count("\n")
                self._queue[0] = (stream, text[cut:], newlines - head_lines)
                text, newlines = head, head_lines
            else:
                self._queue.popleft()
            self._pending_lines -= newlines
            self._pending_chars -= len(text)
            lines += newlines
            chars += len(text)
            self._consume(stream, text, out)
        unfinished = [(name, state) for name, state in self._streams.items()
                      if state.dirty and state.partial]
        if out or self._replacements or unfinished:
            self._insert(out, unfinished)
        elapsed = time.perf_counter() - started
        self._last_flush = elapsed
        self._longest_flush = max(self._longest_flush, elapsed)
        self._flush_count += 1
        self._last_flush_lines = lines

    def _size_next_slice(self) -> None:
        """Size the next timer flush from the cost per line, to about FLUSH_BUDGET_S.

        The cost is the highest measured lately (it decays by a tenth per flush), not the
        last one: right after the document was emptied (`_clear_document`) lines are cheap,
        and a slice sized from them took 120 ms once the document was full again.
        """
        lines = self._last_flush_lines
        if lines < self.MIN_FLUSH_LINES or self._last_flush <= 0:
            return  # too few lines to measure by
        self._line_cost = max(self._last_flush / lines, 0.9 * self._line_cost)
        fitting = int(self.FLUSH_BUDGET_S / self._line_cost)
        self._slice_lines = max(self.MIN_FLUSH_LINES, min(self.flush_max_lines, fitting))

    # -- lines -------------------------------------------------------------------------

    def _state(self, stream: str) -> _Stream:
        state = self._streams.get(stream)
        if state is None:
            state = self._streams[stream] = _Stream()
        return state

    def _consume(self, stream: str, text: str, out: list | None) -> None:
        """Parse `text` of `stream`, appending finished lines to `out` (None: discard them)."""
        state = self._state(stream)
        for chunk, style in state.parser.feed(text):
            if "\r" not in chunk:
                if "\n" not in chunk:
                    self._add(state, stream, chunk, style, out)
                    continue
                parts = chunk.split("\n")
                self._add(state, stream, parts[0], style, out)
                self._complete(state, stream, out)
                if out is not None:
                    plain = style is DEFAULT_STYLE
                    for middle in parts[1:-1]:
                        if len(middle) > self.MAX_PARTIAL_CHARS:
                            self._add(state, stream, middle, style, out)
                            self._complete(state, stream, out)
                        else:
                            out.append((stream, self._shown(middle) if plain
                                        else [(middle, style)]))
                self._add(state, stream, parts[-1], style, out)
                continue
            pos = 0
            for match in _BREAK.finditer(chunk):
                self._add(state, stream, chunk[pos:match.start()], style, out)
                if match.group() == "\r":
                    state.cr_pending = True
                else:
                    self._complete(state, stream, out)
                pos = match.end()
            self._add(state, stream, chunk[pos:], style, out)

    def _add(self, state: _Stream, stream: str, text: str, style: Style, out: list | None) -> None:
        if not text:
            return
        if state.cr_pending:
            state.partial.clear()
            state.partial_chars = 0
            state.cr_pending = False
        state.dirty = True
        if state.partial and state.partial[-1][1] == style:
            state.partial[-1] = (state.partial[-1][0] + text, style)
        else:
            state.partial.append((text, style))
        state.partial_chars += len(text)
        if state.partial_chars > self.MAX_PARTIAL_CHARS:
            self._complete(state, stream, out)

    def _complete(self, state: _Stream, stream: str, out: list | None) -> None:
        line: str | list[Span] = state.partial
        shown = state.shown
        state.partial = []
        state.partial_chars = 0
        state.cr_pending = False
        state.dirty = False
        state.shown = None
        if out is None:
            return  # dropped (an unfinished start already shown stays as it is)
        if not line:
            line = ""
        elif len(line) == 1 and line[0][1] is DEFAULT_STYLE:
            line = self._shown(line[0][0])
        elif line[0][1] is DEFAULT_STYLE:  # coloured text after a plain start: the prefix
            line = [(self._shown(line[0][0]), DEFAULT_STYLE), *line[1:]]
        if shown is not None:
            self._replacements.append((shown, state.shown_text, stream, line))
        else:
            out.append((stream, line))

    def _shown(self, line: str) -> str:
        return self.line_transform(line) if self.line_transform is not None else line

    def _finish_stream(self, stream: str, out: list | None) -> None:
        names = [stream] if stream else list(self._streams)
        for name in names:
            state = self._streams.get(name)
            if state is None:
                continue
            state.parser.flush()
            if state.partial:
                self._complete(state, name, out)
            state.cr_pending = False
            state.shown = None

    # -- document --------------------------------------------------------------------

    def _insert(self, out: list[tuple[str, str | list[Span]]],
                unfinished: list[tuple[str, _Stream]]) -> None:
        """Show one flush: complete lines shown unfinished, append finished lines, then
        show (or update in place) the unfinished last lines of the streams.

        Consecutive appended text of one format is one insertText call.
        """
        replacements, self._replacements = self._replacements, []
        document = self._edit.document()
        before = document.blockCount() if self._has_lines else 0
        bar = self._edit.verticalScrollBar()
        old_value = bar.value()
        self._adjusting = True
        try:
            cursor = self._cursor
            cursor.beginEditBlock()
            lost: list[tuple[str, str | list[Span]]] = []
            for shown, shown_text, stream, line in replacements:
                if shown.selectedText() == shown_text:
                    self._write_over(shown, stream, line)
                else:  # its start was trimmed away: show it as a new line
                    lost.append((stream, line))
            lines = lost + out if lost else out
            cursor.movePosition(QTextCursor.MoveOperation.End)
            for key, text in self._runs(lines):
                cursor.insertText(text, self._format(key))
            added = len(lines)
            if lines:
                self._has_lines = True
            for name, state in unfinished:
                text = "".join(chunk for chunk, _ in state.partial)
                if state.shown is not None and state.shown.selectedText() == state.shown_text:
                    start, end = self._write_over(state.shown, name, state.partial)
                else:
                    cursor.movePosition(QTextCursor.MoveOperation.End)
                    if self._has_lines:
                        cursor.insertText("\n", self._format((name, DEFAULT_STYLE)))
                    start = cursor.position()
                    for chunk, style in state.partial:
                        cursor.insertText(chunk, self._format((name, style)))
                    end = cursor.position()
                    added += 1
                    self._has_lines = True
                shown = QTextCursor(document)
                shown.setPosition(start)
                shown.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
                shown.setKeepPositionOnInsert(True)  # text appended after it stays out of it
                state.shown, state.shown_text, state.dirty = shown, text, False
            cursor.endEditBlock()
            removed = before + added - document.blockCount()
            if removed > 0:
                self._note_trimmed(removed)
            if self._following:
                bar.setValue(bar.maximum())
            elif removed > 0:
                bar.setValue(max(0, old_value - removed))
        finally:
            self._adjusting = False

    def _runs(self, lines: list[tuple[str, str | list[Span]]]) -> list[tuple[tuple[str, Style], str]]:
        """Lines to append as (format key, text) runs, newlines included, merged by format."""
        runs: list[tuple[tuple[str, Style], list[str]]] = []
        first = not self._has_lines
        for stream, line in lines:
            separator = "" if first else "\n"
            first = False
            spans = [(line, DEFAULT_STYLE)] if isinstance(line, str) else line
            for index, (text, style) in enumerate(spans):
                key = (stream, style)
                piece = separator + text if index == 0 else text
                if runs and runs[-1][0] == key:
                    runs[-1][1].append(piece)
                else:
                    runs.append((key, [piece]))
        return [(key, "".join(pieces)) for key, pieces in runs]

    def _write_over(self, selection: QTextCursor, stream: str,
                    line: str | list[Span]) -> tuple[int, int]:
        """Replace the selected text by `line`; return where the new text starts and ends."""
        cursor = QTextCursor(self._edit.document())
        start = selection.selectionStart()
        cursor.setPosition(start)
        cursor.setPosition(selection.selectionEnd(), QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        spans = [(line, DEFAULT_STYLE)] if isinstance(line, str) else line
        for text, style in spans:
            cursor.insertText(text, self._format((stream, style)))
        return start, cursor.position()

    def _format(self, key: tuple[str, Style]) -> QTextCharFormat:
        fmt = self._formats.get(key)
        if fmt is None:
            if len(self._formats) >= 4096:  # e.g. a truecolour rainbow: keep the cache bounded
                self._formats.clear()
            fmt = self._formats[key] = self._make_format(*key)
        return fmt

    def _make_format(self, stream: str, style: Style) -> QTextCharFormat:
        palette = self._edit.palette()
        dark = is_dark_palette(palette)
        fmt = QTextCharFormat()
        base: QColor | None = None
        if stream == "stderr":
            base = error_color(palette)
        elif stream != "stdout":  # the marker and any other named stream: muted
            base = palette.color(QPalette.ColorRole.PlaceholderText)
            fmt.setFontItalic(True)
        fg = QColor(*to_rgb(style.fg, dark)) if style.fg is not None else base
        bg = QColor(*to_rgb(style.bg, dark)) if style.bg is not None else None
        if style.inverse:
            fg, bg = (bg or palette.color(QPalette.ColorRole.Base),
                      fg or palette.color(QPalette.ColorRole.Text))
        if style.dim:
            fg = QColor(fg or palette.color(QPalette.ColorRole.Text))
            fg.setAlphaF(0.6)
        if fg is not None:
            fmt.setForeground(fg)
        if bg is not None:
            fmt.setBackground(bg)
        if style.bold:
            fmt.setFontWeight(QFont.Weight.Bold)
        if style.italic:
            fmt.setFontItalic(True)
        if style.underline:
            fmt.setFontUnderline(True)
        if style.strike:
            fmt.setFontStrikeOut(True)
        return fmt

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._formats.clear()  # new lines take the new theme's colours
        super().changeEvent(event)

    # -- following the tail ----------------------------------------------------------

    def _set_following(self, following: bool) -> None:
        if following != self._following:
            self._following = following
            self.following_changed.emit(following)

    def _on_scroll_value(self, value: int) -> None:
        if not self._adjusting:
            self._set_following(value >= self._edit.verticalScrollBar().maximum())

    def _on_scroll_range(self, _minimum: int, maximum: int) -> None:
        if self._following and not self._adjusting:
            self._adjusting = True
            try:
                self._edit.verticalScrollBar().setValue(maximum)
            finally:
                self._adjusting = False

    # -- search ----------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if watched is self._search and isinstance(event, QKeyEvent) \
                and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                    self.find_previous()
                else:
                    self.find_next()
                return True
            if key == Qt.Key.Key_Escape:
                self._edit.setExtraSelections([])
                self._status.clear()
                self._edit.setFocus(Qt.FocusReason.OtherFocusReason)
                return True
        return super().eventFilter(watched, event)

    def _on_search_edited(self, text: str) -> None:
        if not text:
            self._edit.setExtraSelections([])
            self._status.clear()
            return
        self._find(backward=False, refine=True)  # typing refines the match in place

    def _unsearched(self) -> str:
        """A search looks at the text shown: say when there is more (a long step's output
        is paged in; it said "No match" for a line an earlier page held)."""
        if not self._earlier.isHidden():
            return " in the output shown (Show earlier output for the rest)"
        if not self._trimmed_note.isHidden():
            return " in the lines kept (the earliest were dropped)"
        return ""

    def _search_origin(self, backward: bool, refine: bool) -> QTextCursor:
        """Where a search starts: around the current match, else at the edge of the visible text.

        (The widget's cursor without a selection usually sits at the end, carried
        along by appended lines, so it says nothing about where the user is looking.)
        """
        cursor = self._edit.textCursor()
        if cursor.hasSelection():
            if refine:
                cursor.setPosition(cursor.selectionStart())
            return cursor
        viewport = self._edit.viewport().rect()
        corner = viewport.bottomRight() if backward else viewport.topLeft()
        origin = self._edit.cursorForPosition(corner)
        if backward:
            origin.movePosition(QTextCursor.MoveOperation.EndOfBlock)
        else:
            origin.movePosition(QTextCursor.MoveOperation.StartOfBlock)
        return origin

    def _find(self, backward: bool, refine: bool = False) -> bool:
        needle = self._search.text()
        if not needle:
            self.focus_search()
            return False
        document = self._edit.document()
        flags = QTextDocument.FindFlag.FindBackward if backward else QTextDocument.FindFlag(0)
        found = document.find(needle, self._search_origin(backward, refine), flags)
        wrapped = False
        if found.isNull():
            start = QTextCursor(document)
            start.movePosition(QTextCursor.MoveOperation.End if backward
                               else QTextCursor.MoveOperation.Start)
            found = document.find(needle, start, flags)
            wrapped = not found.isNull()
        if found.isNull():
            self._edit.setExtraSelections([])
            self._status.setText("No match" + self._unsearched())
            return False
        found.setKeepPositionOnInsert(True)  # text appended after a match must not join it
        self._edit.setTextCursor(found)
        self._edit.ensureCursorVisible()
        highlight = QTextEdit.ExtraSelection()
        highlight.cursor = found
        highlight.format.setBackground(QColor("#b58900") if is_dark_palette(self._edit.palette())
                                       else QColor("#ffd54f"))
        highlight.format.setForeground(QColor("#000000"))
        self._edit.setExtraSelections([highlight])
        haystack = self._edit.toPlainText().lower()
        lowered = needle.lower()
        index = haystack.count(lowered, 0, found.selectionStart() + len(lowered)) or 1
        total = max(index, haystack.count(lowered))
        self._status.setText(f"{index} / {total}" + ("  (wrapped)" if wrapped else ""))
        return True


def _size(count: int) -> str:
    """A byte count as people read it: 512 bytes, 3.4 KB, 97.7 MB."""
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _after_newline(text: str, count: int, newlines: int) -> int:
    """Index just after the `count`-th newline of `text` (which has `newlines` of them)."""
    if count <= 0:
        return 0
    if count >= newlines:
        return text.rfind("\n") + 1
    # Jump to where the average line length puts it, count there (in C), then step the few
    # newlines between: stepping from an end took a Python call per line, tens of
    # milliseconds when a flood drops tens of thousands of lines at once.
    guess = len(text) * count // newlines
    before = text.count("\n", 0, guess)
    pos = guess - 1
    if before < count:
        for _ in range(count - before):
            pos = text.find("\n", pos + 1)
        return pos + 1
    pos = guess
    for _ in range(before - count + 1):
        pos = text.rfind("\n", 0, pos)
    return pos + 1
