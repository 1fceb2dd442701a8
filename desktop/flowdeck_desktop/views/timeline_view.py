"""A run's tasks on a time axis: one row per step, one bar per task attempt.

Everything is painted in `paintEvent` (no item per task), bars of one colour
in one `drawRects` call, so a foreach of thousands of tasks stays cheap. The
tasks of one step share its row; tasks that overlap in time are stacked in
thin lanes inside the row (the row grows a little for a wide fan-out).

Only real changes repaint: `update_task` with an unchanged task does nothing,
and the ~4 Hz timer that lets running bars grow to "now" runs only while some
task is running. Times are unix seconds; the axis is labelled relative to the
first task's start.

A remote run (Dask) names the worker of each task (`TimelineTask.worker`): each worker
gets a short name (W1, W2... in order of first use) and a colour; a step's row puts
each worker's tasks in lanes of their own (W1's on top), with a strip of the worker's
colour along the bottom of each bar, the name inside a bar wide enough for it, a
"Workers" line under the legend (address and task count) and the address in the
bar's tooltip. A local run has no workers and looks as before.
"""

from __future__ import annotations

import heapq
import math
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import field, replace

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFontMetrics,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QToolTip, QWidget

from flowdeck.compiled_dataclasses import dataclass
from flowdeck_desktop.views.theme import STATUSES, format_duration, status_color

__all__ = ["STATUSES", "TimelineTask", "TimelineView", "status_color", "format_duration"]

@dataclass(frozen=True)
class TimelineTask:
    """One attempt of one task: when it ran and how it ended (times are unix seconds)."""

    task_id: str
    step: str
    start: float
    end: float | None
    status: str
    attempt: int = 0
    worker: str | None = None  # the remote worker that ran it (a Dask address); None: local

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown task status {self.status!r}; expected one of {STATUSES}")

    @property
    def placed_at(self) -> float:
        """Where its bar starts: `start`, or its end if the start is unknown (0), else 0."""
        if self.start > 0:
            return self.start
        return self.end if self.end is not None and self.end > 0 else 0.0

    @property
    def live(self) -> bool:
        """Running with no end yet: its bar grows with the clock."""
        return self.status == "running" and self.end is None

    def end_or(self, now: float) -> float:
        """Where its bar ends: its end, or `now` while it runs."""
        if self.end is not None:
            return self.end
        return max(self.start, now) if self.live else self.start


_Key = tuple[str, int]  # (task_id, attempt)


@dataclass
class _Row:
    step: str
    top: float = 0.0
    height: float = 0.0
    lanes: int = 1
    keys: tuple[_Key, ...] = ()  # drawing order (by start)
    lane_keys: list[list[_Key]] = field(default_factory=list)  # per lane, by start
    lane_starts: list[list[float]] = field(default_factory=list)  # for bisect in hit tests


def _nice_tick(min_seconds: float) -> float:
    """The smallest 'round' interval of at least `min_seconds`."""
    if min_seconds < 1:
        exponent = math.floor(math.log10(max(min_seconds, 1e-6)))
        for mantissa in (1, 2, 5, 10):
            if mantissa * 10 ** exponent >= min_seconds:
                return mantissa * 10 ** exponent
    for nice in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                 21600, 43200, 86400):
        if nice >= min_seconds:
            return float(nice)
    return 86400.0 * math.ceil(min_seconds / 86400.0)


def _tick_label(seconds: float, tick: float) -> str:
    if tick < 1:
        decimals = max(0, -math.floor(math.log10(tick) + 1e-9))
        return f"{seconds:.{decimals}f}s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    hours, rest = divmod(whole, 3600)
    return f"{hours}h{rest // 60:02d}m" if rest // 60 else f"{hours}h"


#: Worker colours: a strip under status colours, so distinct from every status's hue.
WORKER_COLORS = ("#1b3b8c", "#e377c2", "#bcbd22", "#8c564b", "#17becf", "#4d4d4d",
                 "#ff9896", "#9edae5")


def worker_address(worker: str) -> str:
    """A worker's address as the legend shows it: without the usual `tcp://`."""
    return worker.removeprefix("tcp://")


def _retired(old: TimelineTask, newer: TimelineTask) -> TimelineTask | None:
    """An attempt that a newer attempt of its task superseded.

    Still running: it failed (retries follow failures), at the latest when the
    newer one started. Still pending: it never ran (None). Otherwise: unchanged.
    """
    if old.status == "pending":
        return None
    if old.status == "running":
        end = old.end if old.end is not None else max(old.start, newer.start)
        return replace(old, status="failed", end=end)
    return old


class TimelineView(QWidget):
    """Gantt chart of a run's tasks; click a bar to get `task_clicked(task_id)`."""

    task_clicked = Signal(str)

    REPAINT_INTERVAL_MS = 250
    BASE_ROW_HEIGHT = 26
    LANE_HEIGHT = 6  # a row grows until each of its lanes has this many pixels...
    MAX_ROW_HEIGHT = 120  # ...but never beyond this
    ROW_PADDING = 4
    MIN_BAR_WIDTH = 2.0
    RIGHT_MARGIN = 14

    def __init__(self, parent: QWidget | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self._clock = clock
        self._tasks: dict[_Key, TimelineTask] = {}
        self._latest: dict[str, _Key] = {}  # task id -> key of its latest attempt
        self._step_order: list[str] = []
        self._rows: list[_Row] = []
        self._lane: dict[_Key, int] = {}
        self._row_of: dict[str, int] = {}
        self._layout_dirty = True
        self._gutter_width = 96.0
        self._span: tuple[float | None, float | None] = (None, None)  # first start, last end
        self._status_counts: dict[str, int] = {}
        self._live = 0  # tasks whose bar grows with the clock
        self._hovered: str | None = None
        self._selected: str | None = None
        self._workers: dict[str, int] = {}  # worker address -> its number (W1 is 0)
        self._tick = QTimer(self)
        self._tick.setInterval(self.REPAINT_INTERVAL_MS)
        self._tick.timeout.connect(self.update)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    # -- public API ---------------------------------------------------------------

    def set_tasks(self, rows: Iterable[TimelineTask], step_order: Sequence[str] | None = None) -> None:
        """Replace every task. `step_order` fixes the rows' order and shows steps not run yet
        (it stays in force until given again; by default rows come in order of appearance)."""
        tasks: dict[_Key, TimelineTask] = {}
        latest: dict[str, _Key] = {}
        for task in rows:
            key = (task.task_id, task.attempt)
            tasks[key] = task
            if task.task_id not in latest or task.attempt >= latest[task.task_id][1]:
                latest[task.task_id] = key
        for key in list(tasks):
            if key[1] < latest[key[0]][1]:
                retired = _retired(tasks[key], tasks[latest[key[0]]])
                if retired is None:
                    del tasks[key]
                else:
                    tasks[key] = retired
        order = list(step_order) if step_order is not None else self._step_order
        if tasks == self._tasks and order == self._step_order:
            return
        self._tasks = tasks
        self._step_order = order
        self._latest = latest
        if self._selected not in self._latest:
            self._selected = None
        if self._hovered not in self._latest:
            self._hovered = None
        self._changed()

    def update_task(self, task: TimelineTask) -> None:
        """Add or replace one task attempt; nothing happens if it is unchanged."""
        key = (task.task_id, task.attempt)
        if self._tasks.get(key) == task:
            return
        self._put(key, task)
        current = self._latest.get(task.task_id)
        if current is None or task.attempt >= current[1]:
            self._latest[task.task_id] = key
            # A newer attempt means the older ones ended: none may go on "running".
            for attempt in range(current[1] if current else 0, task.attempt):
                self._retire((task.task_id, attempt), task)
        else:  # a late event about an attempt that was already retried
            self._retire(key, self._tasks[current])
        self._changed_one()

    def _retire(self, key: _Key, newer: TimelineTask) -> None:
        old = self._tasks.get(key)
        if old is None:
            return
        retired = _retired(old, newer)
        if retired is not old:
            self._drop(key)
            if retired is not None:
                self._put(key, retired)

    def clear(self) -> None:
        self.set_tasks([], step_order=[])

    def tasks(self) -> list[TimelineTask]:
        return list(self._tasks.values())

    def task(self, task_id: str) -> TimelineTask | None:
        """The latest attempt of a task."""
        key = self._latest.get(task_id)
        return self._tasks[key] if key is not None else None

    def steps(self) -> list[str]:
        """The rows, top to bottom."""
        self._ensure_layout()
        return [row.step for row in self._rows]

    def workers(self) -> dict[str, str]:
        """The workers that ran tasks (remote runs only): address -> short name (W1...)."""
        self._ensure_layout()
        return {worker: f"W{number + 1}" for worker, number in self._workers.items()}

    def is_animating(self) -> bool:
        """True while the repaint timer runs (only while some task is running)."""
        return self._tick.isActive()

    def selected_task(self) -> str | None:
        return self._selected

    def set_selected_task(self, task_id: str | None) -> None:
        if task_id is not None and task_id not in self._latest:
            task_id = None
        if task_id != self._selected:
            self._selected = task_id
            self.update()

    def bar_rect(self, task_id: str) -> QRectF | None:
        """Where the latest attempt of `task_id` is drawn, in widget coordinates."""
        key = self._latest.get(task_id)
        if key is None:
            return None
        self._ensure_layout()
        return self._bar_rect(key, self._scale(self._clock()))

    def task_at(self, pos: QPointF) -> str | None:
        """The id of the task whose bar is under `pos` (a little slack for thin bars)."""
        key = self._key_at(QPointF(pos))
        return key[0] if key is not None else None

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(640, self.minimumSizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        self._ensure_layout()
        rows = self._rows[-1].top + self._rows[-1].height if self._rows else self._axis_height()
        return QSize(240, int(rows + self._legend_height() + 2))

    # -- model ---------------------------------------------------------------------

    def _put(self, key: _Key, task: TimelineTask) -> None:
        """Store a task attempt, keeping the status and live counts right."""
        self._drop(key)
        self._tasks[key] = task
        self._status_counts[task.status] = self._status_counts.get(task.status, 0) + 1
        self._live += task.live

    def _drop(self, key: _Key) -> None:
        old = self._tasks.pop(key, None)
        if old is not None:
            self._status_counts[old.status] -= 1
            self._live -= old.live

    def _changed(self) -> None:
        """After set_tasks: recount statuses, then as after any change."""
        counts: dict[str, int] = {}
        for task in self._tasks.values():
            counts[task.status] = counts.get(task.status, 0) + 1
        self._status_counts = counts
        self._live = sum(task.live for task in self._tasks.values())
        self._changed_one()

    def _changed_one(self) -> None:
        """Relayout lazily (at the next paint) and run the timer only while a task runs."""
        self._layout_dirty = True
        running = self._live > 0
        if running != self._tick.isActive():
            if running:
                self._tick.start()
            else:
                self._tick.stop()
        self.update()

    def _ensure_layout(self) -> None:
        if not self._layout_dirty:
            return
        self._layout_dirty = False
        by_step: dict[str, list[_Key]] = {step: [] for step in self._step_order}
        for key, task in self._tasks.items():
            by_step.setdefault(task.step, []).append(key)
        rows: list[_Row] = []
        lane_of: dict[_Key, int] = {}
        top = float(self._axis_height())
        workers: dict[str, int] = {}
        remote = [task for task in self._tasks.values() if task.worker]  # none for local runs
        for task in sorted(remote, key=lambda t: (t.placed_at, t.task_id)):
            if task.worker and task.worker not in workers:
                workers[task.worker] = len(workers)
        if workers != self._workers:
            self._workers = workers
            self.updateGeometry()  # the Workers line comes or goes
        # A remote run's lanes are grouped by worker (W1's on top), and tall enough for a
        # worker's name in a bar; a local run packs its lanes by time alone.
        lane_height = max(self.LANE_HEIGHT, self.fontMetrics().height() + 6) if workers \
            else self.LANE_HEIGHT

        def group(key: _Key) -> int:
            worker = self._tasks[key].worker
            return workers[worker] if worker else -1

        for step, keys in by_step.items():
            keys.sort(key=lambda k: (group(k), self._tasks[k].placed_at, k[1], k[0]))
            lanes: list[tuple[float, int]] = []  # heap of (end, lane), of the group
            count = 0
            current = None
            for key in keys:
                task = self._tasks[key]
                if group(key) != current:  # the next worker's tasks start lanes of their own
                    current, lanes = group(key), []
                end = task.end if task.end is not None else math.inf
                if lanes and lanes[0][0] <= task.placed_at:
                    _, lane = heapq.heapreplace(lanes, (end, lanes[0][1]))
                else:
                    lane = count
                    count += 1
                    heapq.heappush(lanes, (end, lane))
                lane_of[key] = lane
            count = max(1, count)
            inner = count * lane_height + 2 * self.ROW_PADDING
            height = float(min(self.MAX_ROW_HEIGHT, max(self.BASE_ROW_HEIGHT, inner)))
            lane_keys: list[list[_Key]] = [[] for _ in range(count)]
            for key in keys:
                lane_keys[lane_of[key]].append(key)
            lane_starts = [[self._tasks[key].placed_at for key in lane] for lane in lane_keys]
            rows.append(_Row(step, top, height, count, tuple(keys), lane_keys, lane_starts))
            top += height
        old_height = self._rows[-1].top + self._rows[-1].height if self._rows else None
        placed = [task for task in self._tasks.values() if task.placed_at > 0]
        self._span = (min((task.placed_at for task in placed), default=None),
                      max((task.end if task.end is not None else task.placed_at for task in placed),
                          default=None))
        self._rows = rows
        self._lane = lane_of
        self._row_of = {row.step: index for index, row in enumerate(rows)}
        self._gutter_width = self._measure_gutter()
        if (rows[-1].top + rows[-1].height if rows else None) != old_height:
            self.updateGeometry()  # rows were added or grew: tell the layout

    # -- geometry --------------------------------------------------------------------

    def _axis_height(self) -> int:
        return self.fontMetrics().height() + 10

    def _legend_height(self) -> int:
        if not self._tasks:
            return 0
        line = self.fontMetrics().height() + 12
        return line + (self.fontMetrics().height() + 4 if self._workers else 0)

    def _worker_color(self, worker: str) -> QColor:
        return QColor(WORKER_COLORS[self._workers.get(worker, 0) % len(WORKER_COLORS)])

    def _measure_gutter(self) -> float:
        metrics = self.fontMetrics()
        widest = max((metrics.horizontalAdvance(row.step) for row in self._rows), default=40)
        counter = metrics.horizontalAdvance(" ×9999")
        return float(min(max(widest + counter, 80), 260) + 16)

    def _time_range(self, now: float) -> tuple[float, float]:
        self._ensure_layout()
        t0, t1 = self._span
        if t0 is None or t1 is None:
            return (now, now + 1.0)
        if self._live:
            t1 = max(t1, now)
        return (t0, max(t1, t0 + 1e-3))

    def _scale(self, now: float) -> tuple[float, float, float, float, float]:
        """(t0, t1, x of t0, pixels per second, now)."""
        t0, t1 = self._time_range(now)
        left = self._gutter_width + 8
        right = max(left + 10, self.width() - self.RIGHT_MARGIN)
        return (t0, t1, left, (right - left) / (t1 - t0), now)

    def _bar_rect(self, key: _Key, scale: tuple[float, float, float, float, float]) -> QRectF | None:
        task = self._tasks[key]
        start = task.placed_at
        if start <= 0:
            return None
        row = self._rows[self._row_of[task.step]]
        t0, _t1, left, ppsec, now = scale
        x0 = left + (start - t0) * ppsec
        width = max((task.end_or(now) - start) * ppsec, self.MIN_BAR_WIDTH)
        if task.status == "pending":
            width = max(width, 10.0)
        inner = row.height - 2 * self.ROW_PADDING
        lane_height = inner / row.lanes
        gap = 1.0 if lane_height >= 4 else 0.0
        y = row.top + self.ROW_PADDING + self._lane[key] * lane_height
        return QRectF(x0, y, width, max(lane_height - gap, 1.0))

    def _key_at(self, pos: QPointF) -> _Key | None:
        self._ensure_layout()
        row = next((r for r in self._rows if r.top <= pos.y() < r.top + r.height), None)
        if row is None or not self._tasks:
            return None
        scale = self._scale(self._clock())
        t0, _t1, left, ppsec, _now = scale
        slack = 3.0
        lane_height = (row.height - 2 * self.ROW_PADDING) / row.lanes
        lane = int((pos.y() - row.top - self.ROW_PADDING) // lane_height)
        hit: _Key | None = None
        best = math.inf
        for index in (lane - 1, lane, lane + 1):  # a pixel of slack across lanes too
            if not 0 <= index < row.lanes:
                continue
            keys, starts = row.lane_keys[index], row.lane_starts[index]
            # Tasks of one lane do not overlap: walk back from the last one starting
            # before the pointer until one ends (visibly) before it.
            position = bisect_right(starts, t0 + (pos.x() + slack - left) / ppsec) - 1
            while position >= 0:
                key = keys[position]
                position -= 1
                rect = self._bar_rect(key, scale)
                if rect is None:
                    continue
                if rect.right() + slack < pos.x():
                    break
                if not (rect.top() - 1 <= pos.y() <= rect.bottom() + 1):
                    continue
                if rect.left() - slack <= pos.x():
                    distance = 0.0 if rect.left() <= pos.x() <= rect.right() else min(
                        abs(pos.x() - rect.left()), abs(pos.x() - rect.right()))
                    if distance < best:
                        hit, best = key, distance
        return hit

    # -- painting --------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.FontChange:
            self._layout_dirty = True
            self.updateGeometry()
        super().changeEvent(event)

    def _is_dark(self) -> bool:
        return self.palette().color(QPalette.ColorRole.Base).lightness() < 128

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        self._ensure_layout()
        painter = QPainter(self)
        palette = self.palette()
        dark = self._is_dark()
        text = palette.color(QPalette.ColorRole.Text)
        muted = QColor(text)
        muted.setAlphaF(0.6)
        grid = QColor(text)
        grid.setAlphaF(0.12)
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))
        metrics = QFontMetrics(self.font())
        if not self._tasks and not self._rows:
            painter.setPen(muted)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No tasks yet")
            return
        now = self._clock()
        scale = self._scale(now)
        t0, t1, left, ppsec, _now = scale
        gutter = self._gutter_width
        width = self.width()
        axis_height = self._axis_height()
        bottom = self._rows[-1].top + self._rows[-1].height if self._rows else axis_height

        # Rows: alternating bands, step names, task counts.
        band = palette.color(QPalette.ColorRole.AlternateBase)
        for index, row in enumerate(self._rows):
            if index % 2:
                painter.fillRect(QRectF(0, row.top, width, row.height), band)
            label_rect = QRectF(8, row.top, gutter - 16, row.height)
            count = len({key[0] for key in row.keys})
            suffix = f"×{count}" if count > 1 else ""
            suffix_width = metrics.horizontalAdvance(suffix + " ") if suffix else 0
            painter.setPen(text)
            name = metrics.elidedText(row.step, Qt.TextElideMode.ElideRight,
                                      int(label_rect.width() - suffix_width))
            painter.drawText(label_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, name)
            if suffix:
                painter.setPen(muted)
                painter.drawText(label_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                                 suffix)

        # Axis: ticks every "round" interval at least a label and a half apart.
        label_width = metrics.horizontalAdvance("00m00s") + 16
        tick = _nice_tick(label_width / ppsec)
        painter.setPen(QPen(grid, 1))
        painter.drawLine(QPointF(gutter, axis_height - 0.5), QPointF(width, axis_height - 0.5))
        painter.drawLine(QPointF(gutter - 0.5, 0), QPointF(gutter - 0.5, bottom))
        count = int((t1 - t0) / tick) + 1
        for index in range(count + 1):
            offset = index * tick
            x = left + offset * ppsec
            if x > width - 4:
                break
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(x, axis_height - 4), QPointF(x, bottom))
            painter.setPen(muted)
            label = _tick_label(offset, tick)
            label_x = min(x - metrics.horizontalAdvance(label) / 2, width - 4 - metrics.horizontalAdvance(label))
            painter.drawText(QPointF(max(gutter + 2, label_x), axis_height - 8 - metrics.descent() + 2), label)

        # Bars: one drawRects per colour; small counts get rounded corners.
        painter.setClipRect(QRectF(gutter, axis_height, width - gutter, bottom - axis_height))
        buckets: dict[str, list[QRectF]] = {}
        pending_outline: list[QRectF] = []
        for row in self._rows:
            for key in row.keys:
                rect = self._bar_rect(key, scale)
                if rect is None:
                    continue
                status = self._tasks[key].status
                if status == "pending":
                    pending_outline.append(rect)
                else:
                    buckets.setdefault(status, []).append(rect)
        total = sum(len(rects) for rects in buckets.values())
        rounded = total <= 400
        painter.setPen(Qt.PenStyle.NoPen)
        for status, rects in buckets.items():
            color = status_color(status, dark)
            painter.setBrush(color)
            if rounded:
                painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
                for rect in rects:
                    radius = min(3.0, rect.height() / 3, rect.width() / 2)
                    painter.drawRoundedRect(rect, radius, radius)
                painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            else:
                painter.drawRects(rects)
        if self._workers:
            self._paint_workers(painter, scale, metrics, rounded)
        if pending_outline:  # waiting to start: a pale bar with a solid edge
            pending = status_color("pending", dark)
            fill = QColor(pending)
            fill.setAlphaF(0.35)
            painter.setBrush(fill)
            painter.setPen(QPen(pending, 1))
            painter.drawRects([rect.adjusted(0.5, 0.5, -0.5, -0.5) for rect in pending_outline])

        # "Now" while running, then the hovered and the selected bar.
        if self._live:
            x = left + (now - t0) * ppsec
            now_color = status_color("running", dark)
            now_color.setAlphaF(0.5)
            painter.setPen(QPen(now_color, 1, Qt.PenStyle.DashLine))
            painter.drawLine(QPointF(x, axis_height), QPointF(x, bottom))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for task_id, color, pen_width in ((self._hovered, text, 1.0),
                                          (self._selected, palette.color(QPalette.ColorRole.Highlight), 2.0)):
            bar = self._latest.get(task_id) if task_id else None
            rect = self._bar_rect(bar, scale) if bar else None
            if rect is not None:
                painter.setPen(QPen(color, pen_width))
                painter.drawRect(rect.adjusted(-1, -1, 1, 1))
        painter.setClipping(False)

        # Legend: the statuses present.
        present = [status for status in STATUSES if self._status_counts.get(status)]
        x = float(gutter)
        y = bottom + 6
        box = metrics.height() - 6
        for status in present:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(status_color(status, dark))
            painter.drawRect(QRectF(x, y + 3, box, box))
            painter.setPen(muted)
            painter.drawText(QPointF(x + box + 5, y + metrics.ascent()), status)
            x += box + 5 + metrics.horizontalAdvance(status) + 16
        if self._workers:
            self._paint_worker_legend(painter, metrics, gutter, y + metrics.height() + 4, muted)
        painter.end()

    def _paint_workers(self, painter: QPainter, scale: tuple[float, float, float, float, float],
                       metrics: QFontMetrics, labelled: bool) -> None:
        """Each remote task's worker: a strip of its colour along the bar's bottom, a thin
        gap where one task follows another, and (few enough bars to read) the worker's
        short name in the first bar of each lane wide enough for it."""
        strips: dict[str, list[QRectF]] = {}
        names: list[tuple[QRectF, str]] = []
        edges: list[QPointF] = []
        for row in self._rows:
            for lane in row.lane_keys:
                named = not labelled
                for key in lane:
                    task = self._tasks[key]
                    rect = self._bar_rect(key, scale) if task.worker else None
                    if rect is None or task.worker is None:
                        continue
                    height = max(2.0, min(4.0, rect.height() / 4))
                    strips.setdefault(task.worker, []).append(
                        QRectF(rect.left(), rect.bottom() - height, rect.width(), height))
                    if rect.width() > 4:
                        edges += [QPointF(rect.left() + 0.5, rect.top()),
                                  QPointF(rect.left() + 0.5, rect.bottom())]
                    name = f"W{self._workers.get(task.worker, 0) + 1}"
                    if not named and rect.height() - height >= metrics.height() and \
                            rect.width() >= metrics.horizontalAdvance(name) + 10:
                        names.append((rect.adjusted(5, 0, -2, -height), name))
                        named = True
        painter.setPen(Qt.PenStyle.NoPen)
        for worker, rects in strips.items():
            painter.setBrush(self._worker_color(worker))
            painter.drawRects(rects)
        painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Base), 1))
        painter.drawLines(edges)
        painter.setPen(QColor("#ffffff"))
        for rect, name in names:
            painter.drawText(rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                             name)

    def _paint_worker_legend(self, painter: QPainter, metrics: QFontMetrics, gutter: float,
                             y: float, muted: QColor) -> None:
        """The "Workers" line: each worker's colour, short name, address and task count."""
        counts: dict[str, int] = {}
        for key in self._latest.values():
            worker = self._tasks[key].worker if key in self._tasks else None
            if worker:
                counts[worker] = counts.get(worker, 0) + 1
        painter.setPen(muted)
        painter.drawText(QPointF(8, y + metrics.ascent()), "Workers")
        x = float(gutter)
        box = metrics.height() - 6
        for worker, number in self._workers.items():
            text = f"W{number + 1} {worker_address(worker)} ({counts.get(worker, 0)})"
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self._worker_color(worker))
            painter.drawRect(QRectF(x, y + 3, box, box))
            painter.setPen(muted)
            painter.drawText(QPointF(x + box + 5, y + metrics.ascent()), text)
            x += box + 5 + metrics.horizontalAdvance(text) + 16

    # -- interaction -----------------------------------------------------------------

    def event(self, event: QEvent) -> bool:  # noqa: D401 (Qt override)
        if isinstance(event, QHelpEvent) and event.type() == QEvent.Type.ToolTip:
            key = self._key_at(QPointF(event.pos()))
            if key is None:
                QToolTip.hideText()
                event.ignore()
            else:
                QToolTip.showText(event.globalPos(), self.tooltip_text(key[0]), self)
            return True
        return super().event(event)

    def tooltip_text(self, task_id: str) -> str:
        """What hovering a task's bar shows."""
        task = self.task(task_id)
        if task is None:
            return ""
        now = self._clock()
        duration = format_duration(task.end_or(now) - task.start) if task.start > 0 else "–"
        status = task.status + (f" (attempt {task.attempt + 1})" if task.attempt else "")
        if task.status == "running":
            duration += " so far"
        self._ensure_layout()
        worker = (f"\nworker: W{self._workers.get(task.worker, 0) + 1} "
                  f"{worker_address(task.worker)}") if task.worker else ""
        return (f"task {task.task_id}\nstep: {task.step}\n"
                f"status: {status}\nduration: {duration}{worker}")

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        key = self._key_at(event.position())
        hovered = key[0] if key is not None else None
        if hovered != self._hovered:
            self._hovered = hovered
            self.setCursor(Qt.CursorShape.PointingHandCursor if hovered else Qt.CursorShape.ArrowCursor)
            self.update()
        super().mouseMoveEvent(event)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if self._hovered is not None:
            self._hovered = None
            self.update()
        super().leaveEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            key = self._key_at(event.position())
            if key is not None:
                self.set_selected_task(key[0])
                self.task_clicked.emit(key[0])
                event.accept()
                return
        super().mousePressEvent(event)
