"""The DAG of one flow as a Qt graphics scene, with live step states.

`DagScene` mirrors a graph dict (Metaflow's `output-raw --json` shape): one
`StepItem` per step, one `EdgeItem` per edge, placed by the pure-Python
`dag_layout`. Run progress arrives through `set_step_state`, which touches
only the step it names and only when the value really changes, so a busy run
never turns into a repaint storm. A foreach body is one item with a k/N
counter and a progress bar however many tasks it has.

Running steps share ONE `QTimer` owned by the scene (about 30 frames a
second: smooth enough for a spinner, gentle on a laptop during a long run);
it runs only while at least one step is running and repaints only those
steps. The phase comes from a monotonic clock, so late ticks never slow the
spinner down.

Colours come from the application palette (light or dark); status colours
are mid-tones chosen to read on both, and each status also has its own icon
shape so colour is never the only cue.

`DagView` is the zoomable, pannable window onto the scene. Its default view
keeps text readable: it fits the graph to the width but never scales below
the zoom at which step names reach the platform's UI font size (and the
detail row the small UI font); a graph taller or wider than that scrolls.
A legend row above the canvas names the status colours, and drops of files
on the canvas go to whatever handles drops for the rest of the window.

A switch step (`split-switch`) is a diamond; each of its out-edges carries its
case label. Once a switch task has picked, the taken case's edge is coloured
and, when none of its tasks can take them any more, the other cases' edges are
dashed and faint and the steps only they lead to are drawn faded as "not taken"
(the run fold's `skipped`). A recursive switch's loop is a back edge beside it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QElapsedTimer, QEvent, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QFontInfo,
    QFontMetricsF,
    QHelpEvent,
    QKeyEvent,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
    QPolygonF,
    QResizeEvent,
    QShowEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QGraphicsItem,
    QGraphicsScene,
    QGraphicsSceneHoverEvent,
    QGraphicsSceneMouseEvent,
    QGraphicsView,
    QHBoxLayout,
    QStyleOptionGraphicsItem,
    QToolButton,
    QToolTip,
    QWidget,
)

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.observe.fold import StepSummary
from flowdeck.store.status import NOT_RUN, REUSED, SKIPPED, SUCCEEDED
from flowdeck_desktop.views.dag_layout import (
    DagLayout,
    EdgeRoute,
    LayoutOptions,
    foreach_body_steps,
    layout_graph,
    node_table,
)
from flowdeck_desktop.views.theme import STATUSES, format_duration, status_color


def drawn_status(state: StepSummary) -> str:
    """The status used for drawing: a known status, else "pending" (so a word from a
    newer schema never throws inside a paint or signal handler)."""
    return state.status if state.status in STATUSES else "pending"


PENDING = StepSummary()

#: The view's anchor meaning "the top of the graph" (where `start` is).
HOME: tuple[str, ...] = ()


def blend(a: QColor, b: QColor, t: float) -> QColor:
    """`a` moved a fraction `t` toward `b`: palette-relative tints instead of fixed colours."""
    return QColor.fromRgbF(a.redF() + (b.redF() - a.redF()) * t,
                           a.greenF() + (b.greenF() - a.greenF()) * t,
                           a.blueF() + (b.blueF() - a.blueF()) * t, 1.0)


@dataclass(frozen=True)
class DagTheme:
    """Colours derived from a palette once, so paint() does no palette look-ups."""

    background: QColor
    node: QColor
    text: QColor
    muted: QColor
    edge: QColor
    highlight: QColor
    dark: bool

    @classmethod
    def from_palette(cls, palette: QPalette) -> "DagTheme":
        """Background from Window, boxes a step toward Base (light) or toward text (dark)."""
        window = palette.color(QPalette.ColorRole.Window)
        text = palette.color(QPalette.ColorRole.WindowText)
        dark = window.lightnessF() < 0.5
        node = blend(window, text, 0.08) if dark else palette.color(QPalette.ColorRole.Base)
        return cls(background=window, node=node, text=text, muted=blend(text, node, 0.42),
                   edge=blend(window, text, 0.45), highlight=palette.color(QPalette.ColorRole.Highlight),
                   dark=dark)

    def status_color(self, status: str) -> QColor:
        """The status hue, lifted slightly on dark backgrounds so it does not sink."""
        color = status_color(status, self.dark)
        return color.lighter(118) if self.dark else color

    def fill(self, status: str) -> QColor:
        """Box fill: a light wash of the status hue over the node colour (none when pending)."""
        if status == "pending":
            return QColor(self.node)
        return blend(self.node, self.status_color(status), 0.26 if self.dark else 0.16)


def type_hint(node: Mapping[str, Any]) -> str:
    """The small grey word under a step name: what kind of transition it is."""
    kind = str(node.get("type") or "")
    if kind in ("split-foreach", "foreach"):
        artifact = node.get("foreach_artifact")
        return f"foreach {artifact}" if isinstance(artifact, str) and artifact else "foreach"
    if kind == "split-parallel":  # Metaflow's @parallel: `num_parallel` tasks of the next step
        count = node.get("num_parallel")
        return f"parallel \u00d7{count}" if isinstance(count, int) and count > 0 else "parallel"
    if kind in ("split-static", "split"):
        nexts = node.get("next")
        return f"split \u00d7{len(nexts)}" if isinstance(nexts, list) else "split"
    if kind == "join":
        return "join"
    if kind == "split-switch":
        condition = node.get("condition")
        return f"switch {condition}" if isinstance(condition, str) and condition else "switch"
    return "" if kind in ("start", "end", "linear") else "?"


SWITCH = "split-switch"
#: Share of a diamond's width its name row can use (the row sits near the widest part).
DIAMOND_TEXT_SHARE = 0.62


def case_labels(node: Mapping[str, Any]) -> dict[str, str]:
    """Target step -> the label of its edge from a switch node: its case(s), comma-joined."""
    cases = node.get("switch_cases")
    labels: dict[str, list[str]] = {}
    if isinstance(cases, Mapping):
        for case, target in cases.items():
            if isinstance(target, str):
                labels.setdefault(target, []).append(str(case))
    return {target: ", ".join(names) for target, names in labels.items()}


def diamond(rect: QRectF) -> QPolygonF:
    """The rhombus inscribed in `rect`: a switch step's outline."""
    return QPolygonF([QPointF(rect.center().x(), rect.top()), QPointF(rect.right(), rect.center().y()),
                      QPointF(rect.center().x(), rect.bottom()), QPointF(rect.left(), rect.center().y())])


SMALL_FONT_STEP_PT = 2.0  # the small UI font is the normal one minus this...
SMALL_FONT_MIN_PT = 8.0  # ...but never below this (smaller is hard to read on any screen)


def small_font(base: QFont) -> QFont:
    """The platform's small UI font, derived from `base` (never from a family name).

    Sizes go through QFontInfo so a pixel-sized application font works too.
    """
    size = QFontInfo(base).pointSizeF()
    font = QFont(base)
    font.setPointSizeF(min(size, max(SMALL_FONT_MIN_PT, size - SMALL_FONT_STEP_PT)))
    return font


def font_pixels(font: QFont) -> int:
    """The pixel size `font` really renders at (logical pixels, at zoom 1)."""
    return QFontInfo(font).pixelSize()


#: A box is at most this wide; a longer name wraps onto a second row rather than being cut.
MAX_BOX_WIDTH = 300.0
MIN_BOX_WIDTH = 150.0
#: Rows a step's name may take: a name longer than two rows is cut (whole in the tooltip).
MAX_NAME_ROWS = 2


def wrap_name(name: str, metrics: QFontMetricsF, width: float, rows: int = MAX_NAME_ROWS) -> list[str]:
    """`name` on at most `rows` rows of `width`: broken after an underscore (a step name is
    snake_case), else before a capital (camelCase), else anywhere; the last row is elided."""
    lines: list[str] = []
    rest = name
    while rest and len(lines) < rows - 1 and metrics.horizontalAdvance(rest) > width:
        cut = _break_at(rest, metrics, width)
        lines.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        lines.append(metrics.elidedText(rest, Qt.TextElideMode.ElideRight, width))
    return lines


def _break_at(text: str, metrics: QFontMetricsF, width: float) -> int:
    """Where the first row of `text` ends: the last word boundary that fits, else as many
    characters as fit (at least one, so wrapping always moves on)."""
    fits = 1
    while fits < len(text) and metrics.horizontalAdvance(text[:fits + 1]) <= width:
        fits += 1
    for cut in range(fits, 0, -1):
        if text[cut - 1] in "_-. " or (text[cut - 1].islower() and text[cut:cut + 1].isupper()):
            if cut > fits // 3:  # a boundary very near the start would waste the row
                return cut
            break
    return fits


@dataclass(frozen=True)
class _Fonts:
    """Fonts and their metrics, measured once per graph rather than per paint."""

    name: QFont
    detail: QFont
    name_metrics: QFontMetricsF
    detail_metrics: QFontMetricsF

    @classmethod
    def from_font(cls, base: QFont) -> "_Fonts":
        """Bold name in the application font; detail row in the small UI font."""
        name = QFont(base)
        name.setBold(True)
        detail = small_font(base)
        return cls(name, detail, QFontMetricsF(name), QFontMetricsF(detail))

    def legible_zoom(self, base: QFont) -> float:
        """The smallest zoom at which names render at `base`'s size and details at its small size."""
        needs = ((base, self.name), (small_font(base), self.detail))
        return max(font_pixels(want) / max(1, font_pixels(have)) for want, have in needs)


def paint_status_icon(painter: QPainter, status: str, rect: QRectF, theme: "DagTheme",
                      phase: float = 0.0) -> None:
    """A distinct shape per status, so the state reads without colour too.

    Shared by the step boxes and the legend, so the legend can never disagree
    with what the boxes show.
    """
    color = theme.status_color(status)
    if status == "pending":
        painter.setPen(QPen(blend(theme.node, theme.text, 0.45), 1.5))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawEllipse(rect.adjusted(1, 1, -1, -1))
        return
    if status == "running":
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(blend(theme.node, color, 0.3), 2.0))
        painter.drawEllipse(rect.adjusted(1, 1, -1, -1))
        pen = QPen(color, 2.0)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        painter.drawArc(rect.adjusted(1, 1, -1, -1), int(-phase * 360 * 16), 100 * 16)
        return
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    painter.drawEllipse(rect)
    mark = QPen(QColor("white"), 1.8 * rect.width() / ICON)
    mark.setCapStyle(Qt.PenCapStyle.RoundCap)
    mark.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(mark)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    _paint_mark(painter, status, rect)


def _paint_mark(painter: QPainter, status: str, r: QRectF) -> None:
    """The white glyph inside a finished step's icon disc."""
    c, k = r.center(), r.width() / 14.0
    if status == "succeeded":
        painter.drawPolyline(QPolygonF([QPointF(c.x() - 3.5 * k, c.y()), QPointF(c.x() - 1 * k, c.y() + 2.5 * k),
                                        QPointF(c.x() + 3.5 * k, c.y() - 2.5 * k)]))
    elif status == "failed":
        d = 2.8 * k
        painter.drawLine(QPointF(c.x() - d, c.y() - d), QPointF(c.x() + d, c.y() + d))
        painter.drawLine(QPointF(c.x() - d, c.y() + d), QPointF(c.x() + d, c.y() - d))
    elif status == "cancelled":
        painter.drawLine(QPointF(c.x() - 3.5 * k, c.y()), QPointF(c.x() + 3.5 * k, c.y()))
    else:  # reused: a circular arrow
        arc = QRectF(c.x() - 3.5 * k, c.y() - 3.5 * k, 7 * k, 7 * k)
        painter.drawArc(arc, 90 * 16, 270 * 16)
        painter.drawPolyline(QPolygonF([QPointF(c.x() - 1.5 * k, c.y() - 5.5 * k),
                                        QPointF(c.x() + 0.5 * k, c.y() - 3.5 * k),
                                        QPointF(c.x() - 1.5 * k, c.y() - 1.5 * k)]))


PAD = 10.0
ICON = 14.0
BAR = 3.0


class StepItem(QGraphicsItem):
    """One step box. State changes go through `set_state`, which returns whether anything changed.

    `paint_count` and `change_count` exist so tests can prove that an
    unchanged state causes no repaint.
    """

    def __init__(self, scene: "DagScene", name: str, node: Mapping[str, Any], width: float,
                 height: float, foreach_body: bool) -> None:
        """Static facts (name, hint, doc, size) are fixed here; only the state changes later."""
        super().__init__()
        self._dag = scene
        self.name = name
        self.hint = type_hint(node)
        self.doc = str(node.get("doc") or "")
        self.foreach_body = foreach_body
        self.is_switch = node.get("type") == SWITCH  # drawn as a diamond
        condition = node.get("condition")
        #: What the diamond's detail row starts with: the artifact that picks the case
        #: (the shape already says "switch"; the tooltip says both).
        self.condition = str(condition) if self.is_switch and condition else ""
        self._rect = QRectF(0, 0, width, height)
        self._state = PENDING
        self._hovered = False
        self._detail_left = ""
        self._detail_right = ""
        self.paint_count = 0
        self.change_count = 0
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, True)
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._refresh_text()

    # -- state -------------------------------------------------------------------------

    @property
    def state(self) -> StepSummary:
        """The state currently drawn (read-only: change it through `set_state`)."""
        return self._state

    def set_state(self, state: StepSummary) -> bool:
        """Adopt `state`; repaint and return True only if it differs from the current one."""
        if state == self._state:
            return False
        self._state = state
        self.change_count += 1
        self.setOpacity(0.55 if self.skipped else 1.0)
        self._refresh_text()
        self.update()
        return True

    @property
    def skipped(self) -> bool:
        """No task ran or will run here: the switch before it took another case, or the
        run ended (failed, cancelled) before it. Drawn faded and dashed either way."""
        return self._state.status in (SKIPPED, NOT_RUN)

    def shows_progress(self) -> bool:
        """Counter and bar for foreach bodies, and for any step that reports several tasks."""
        return (self.foreach_body or self._state.total > 1) and not self.skipped

    def _refresh_text(self) -> None:
        """Build the detail strings and tooltip once per change, not once per paint."""
        s = self._state
        left = [self.condition or self.hint] if self.hint else []
        if s.attempt > 0:
            left.append(f"retry {s.attempt}")
        right = []
        if self.shows_progress() and s.total > 0:
            right.append(f"{s.done}/{s.total}")
        if s.duration is not None:
            right.append(format_duration(s.duration))
        not_run = s.status == NOT_RUN
        if self.skipped:
            right = ["not run" if not_run else "not taken"]
        self._detail_left = " \u00b7 ".join(left)
        self._detail_right = "  ".join(right)
        status = s.status
        if self.skipped:
            status = "not run: the run ended before it" if not_run else \
                f"{s.status} (not taken: its switch took another case)"
        lines = [f"{self.name}" + (f" ({self.hint})" if self.hint else ""), f"status: {status}",
                 f"tasks: {s.done}/{s.total} done" if s.total else "tasks: none yet"]
        if s.taken:
            lines.append("took: " + ", ".join(s.taken))
        lines += [f"attempt: {s.attempt + 1}"] if s.attempt else []
        lines += [f"duration: {format_duration(s.duration)}"] if s.duration is not None else []
        self.setToolTip("\n".join(lines + ([f"\n{self.doc}"] if self.doc else [])))

    def text(self) -> str:
        """Everything written on the box, one line per row (for tests and accessibility)."""
        detail = "  ".join(t for t in (self._detail_left, self._detail_right) if t)
        return f"{self.name}\n{detail}" if detail else self.name

    def fill_color(self) -> QColor:
        """Computed from the live theme, so a palette switch needs no per-item bookkeeping."""
        return self._dag.theme.fill(drawn_status(self._state))

    def brush(self) -> QBrush:
        """The brush the box is filled with: changes with status and with the palette."""
        return QBrush(self.fill_color())

    # -- geometry and painting ---------------------------------------------------------

    def boundingRect(self) -> QRectF:
        """The box plus room for the selection ring drawn outside it."""
        return self._rect.adjusted(-6, -6, 6, 6)

    def shape(self) -> QPainterPath:
        """Rounded box (a diamond for a switch), so clicks just outside fall through."""
        path = QPainterPath()
        if self.is_switch:
            path.addPolygon(diamond(self._rect))
            path.closeSubpath()
        else:
            path.addRoundedRect(self._rect, 8, 8)
        return path

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        """Box, then (unless zoomed far out) icon, name, detail row and progress bar."""
        self.paint_count += 1
        theme = self._dag.theme
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(self._border_pen(theme))
        painter.setBrush(self.fill_color())
        if self.is_switch:
            painter.drawPolygon(diamond(self._rect.adjusted(0.75, 0.75, -0.75, -0.75)))
        else:
            painter.drawRoundedRect(self._rect.adjusted(0.75, 0.75, -0.75, -0.75), 8, 8)
        if self.isSelected():
            self._paint_selection(painter, theme)
        if option.levelOfDetailFromTransform(painter.worldTransform()) < 0.3:
            return
        fonts = self._dag.fonts
        if self.is_switch:
            self._paint_switch_texts(painter, theme, fonts)
            return
        self._paint_icon(painter, theme)
        self._paint_texts(painter, theme, fonts)
        if self.shows_progress():
            self._paint_bar(painter, theme)

    def _paint_switch_texts(self, painter: QPainter, theme: DagTheme, fonts: _Fonts) -> None:
        """Inside the diamond: icon and name centred on the wide middle, the detail below."""
        w, h = self._rect.width(), self._rect.height()
        name_h, detail_h = fonts.name_metrics.height(), fonts.detail_metrics.height()
        top = h / 2 - name_h + 1
        room = w * DIAMOND_TEXT_SHARE - ICON - 5
        name = fonts.name_metrics.elidedText(self.name, Qt.TextElideMode.ElideRight, room)
        name_w = fonts.name_metrics.horizontalAdvance(name)
        left = (w - (ICON + 5 + name_w)) / 2
        icon = QRectF(left, top + (name_h - ICON) / 2, ICON, ICON)
        paint_status_icon(painter, drawn_status(self._state), icon, theme, self._dag.phase)
        painter.setPen(theme.text)
        painter.setFont(fonts.name)
        painter.drawText(QRectF(left + ICON + 5, top, name_w + 2, name_h),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        width = w * DIAMOND_TEXT_SHARE
        detail = "  ".join(t for t in (self._detail_left, self._detail_right) if t)
        if fonts.detail_metrics.horizontalAdvance(detail) > width and self._detail_right:
            detail = self._detail_right  # the diamond already says "switch": counts first
        if detail:
            painter.setFont(fonts.detail)
            painter.setPen(theme.muted)
            text = fonts.detail_metrics.elidedText(detail, Qt.TextElideMode.ElideRight, width)
            painter.drawText(QRectF((w - width) / 2, top + name_h + 1, width, detail_h),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, text)

    def _paint_selection(self, painter: QPainter, theme: DagTheme) -> None:
        """A ring outside the box, so selection never hides (or mimics) the status outline."""
        painter.setPen(QPen(theme.highlight, 2.0))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if self.is_switch:
            painter.drawPolygon(diamond(self._rect.adjusted(-5, -5, 5, 5)))
        else:
            painter.drawRoundedRect(self._rect.adjusted(-4, -4, 4, 4), 11, 11)

    def _border_pen(self, theme: DagTheme) -> QPen:
        """Status-coloured outline; a running step's outline breathes."""
        status = drawn_status(self._state)
        color = theme.status_color(status) if status != "pending" else blend(theme.node, theme.text, 0.35)
        width = 1.5
        if status == "running":
            wave = 0.5 + 0.5 * math.cos(2 * math.pi * self._dag.phase)
            color = blend(theme.node, color, 0.45 + 0.55 * wave)
            width = 2.0
        if self._hovered:
            width += 0.75
        pen = QPen(color, width)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        if self.skipped:
            pen.setStyle(Qt.PenStyle.DashLine)
        return pen

    def _icon_rect(self) -> QRectF:
        """The status icon, vertically centred on the name row."""
        top = PAD + (self._dag.fonts.name_metrics.height() - ICON) / 2
        return QRectF(PAD, top, ICON, ICON)

    def _paint_icon(self, painter: QPainter, theme: DagTheme) -> None:
        """The status icon left of the name (the same shapes the legend shows)."""
        paint_status_icon(painter, drawn_status(self._state), self._icon_rect(), theme, self._dag.phase)

    def _paint_texts(self, painter: QPainter, theme: DagTheme, fonts: _Fonts) -> None:
        """Name on the first row; hint and retry left, counter and duration right, below."""
        w = self._rect.width()
        name_left = PAD + ICON + 7
        painter.setPen(theme.text)
        painter.setFont(fonts.name)
        name_h = fonts.name_metrics.height()
        lines = self.name_lines()
        for i, line in enumerate(lines):
            painter.drawText(QRectF(name_left, PAD + i * name_h, w - name_left - PAD, name_h),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, line)
        painter.setFont(fonts.detail)
        detail_top = PAD + self._dag.name_rows * name_h + 2
        row = QRectF(name_left, detail_top, w - name_left - PAD, fonts.detail_metrics.height())
        right_w = fonts.detail_metrics.horizontalAdvance(self._detail_right)
        if self._detail_right:
            painter.setPen(theme.text if drawn_status(self._state) == "running" else theme.muted)
            painter.drawText(row, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, self._detail_right)
        if self._detail_left:
            painter.setPen(theme.muted)
            space = max(0.0, row.width() - right_w - (8 if right_w else 0))
            left = fonts.detail_metrics.elidedText(self._detail_left, Qt.TextElideMode.ElideRight, space)
            painter.drawText(row, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, left)

    def name_lines(self) -> list[str]:
        """The name as drawn: one row, or wrapped onto the rows the scene gives every box."""
        room = self._rect.width() - (PAD + ICON + 7) - PAD
        return wrap_name(self.name, self._dag.fonts.name_metrics, room, self._dag.name_rows)

    def _paint_bar(self, painter: QPainter, theme: DagTheme) -> None:
        """Thin done/total bar along the bottom edge; only the track while nothing is known."""
        s = self._state
        track = QRectF(PAD, self._rect.height() - PAD / 2 - BAR, self._rect.width() - 2 * PAD, BAR)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(blend(theme.node, theme.text, 0.12))
        painter.drawRoundedRect(track, BAR / 2, BAR / 2)
        if s.total > 0 and s.done > 0:
            done = QRectF(track)
            done.setWidth(track.width() * min(1.0, s.done / s.total))
            painter.setBrush(theme.status_color(drawn_status(s) if drawn_status(s) != "pending" else "running"))
            painter.drawRoundedRect(done, BAR / 2, BAR / 2)

    # -- interaction -------------------------------------------------------------------

    def hoverEnterEvent(self, event: QGraphicsSceneHoverEvent) -> None:
        """A slightly heavier outline says "this is clickable"."""
        self._hovered = True
        self.update()
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event: QGraphicsSceneHoverEvent) -> None:
        """Back to the normal outline."""
        self._hovered = False
        self.update()
        super().hoverLeaveEvent(event)

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:
        """Tell the scene about selection so connected edges can light up."""
        if change == QGraphicsItem.GraphicsItemChange.ItemSelectedHasChanged:
            self._dag._highlight_edges(self.name, bool(value))
        return super().itemChange(change, value)


class EdgeItem(QGraphicsItem):
    """One routed edge: smooth path through the layout's points, arrow head at the target."""

    ARROW_LENGTH = 8.0
    ARROW_HALF_WIDTH = 4.5

    def __init__(self, scene: "DagScene", route: EdgeRoute, case_label: str = "") -> None:
        """Path and arrow are built once: edges never move, they only change colour.

        `case_label` names the switch case(s) the edge stands for ("" for other edges).
        """
        super().__init__()
        self._dag = scene
        self.route = route
        self.highlighted = False
        self.case_label = case_label
        self.taken: bool | None = None  # a switch case: taken, not taken, or not known yet
        self._path = edge_path(route.points)
        self._arrow = arrow_head(route.points, self.ARROW_LENGTH, self.ARROW_HALF_WIDTH)
        self._bounds = self._path.boundingRect().united(self._arrow.boundingRect()).adjusted(-3, -3, 3, 3)
        self._label_rect = QRectF()
        if case_label:
            self._label_rect = self._place_label(scene.fonts.detail_metrics)
            self._bounds = self._bounds.united(self._label_rect.adjusted(-2, -2, 2, 2))
        self.setZValue(-1)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def _place_label(self, metrics: QFontMetricsF) -> QRectF:
        """Where the case label goes: mid-way down the edge's first hop (where a switch's
        edges have spread apart), or beside a loop's lane."""
        text_w = metrics.horizontalAdvance(self.case_label) + 8
        text_h = metrics.height() + 2
        points = self.route.points
        if self.route.back:
            lane_x = max(x for x, _ in points)
            mid_y = (points[1][1] + points[2][1]) / 2 if len(points) > 2 else points[0][1]
            return QRectF(lane_x + 4, mid_y - text_h / 2, text_w, text_h)
        (x0, y0), (x1, y1) = points[0], points[1]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2  # where an S-curve hop crosses its middle
        if y1 - y0 > 3 * text_h:  # a long straight run: near its top instead
            cy = y0 + 1.5 * text_h
        return QRectF(cx - text_w / 2, cy - text_h / 2, text_w, text_h)

    def label_rect(self) -> QRectF:
        """The case label's box in scene coordinates (empty when the edge has none)."""
        return QRectF(self._label_rect)

    def set_taken(self, taken: bool | None) -> None:
        """Colour a switch case as taken (True) or dim it as not taken (False)."""
        if taken != self.taken:
            self.taken = taken
            self.update()

    def set_highlighted(self, on: bool) -> None:
        """Repaint only when the highlight really flips."""
        if on != self.highlighted:
            self.highlighted = on
            self.update()

    def boundingRect(self) -> QRectF:
        """Precomputed: Qt asks for it far more often than the edge changes."""
        return self._bounds

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        """Muted line (highlighted when an end is selected, dashed if it closes a cycle) and arrow."""
        theme = self._dag.theme
        color = self.color()
        pen = QPen(color, 2.2 if self.highlighted or self.taken else 1.4)
        pen.setCapStyle(Qt.PenCapStyle.FlatCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        if self.route.back or self.taken is False:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self._path)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawPolygon(self._arrow)
        if self.case_label:
            painter.setBrush(theme.background)
            painter.setPen(QPen(color, 1.0))
            painter.drawRoundedRect(self._label_rect, 4, 4)
            painter.setFont(self._dag.fonts.detail)
            painter.setPen(theme.text if self.taken else theme.muted if self.taken is None else color)
            painter.drawText(self._label_rect, Qt.AlignmentFlag.AlignCenter, self.case_label)

    def color(self) -> QColor:
        """Highlight when an end is selected; a taken case in the success colour; a case not
        taken faded toward the background; else the muted edge colour."""
        theme = self._dag.theme
        if self.highlighted:
            return QColor(theme.highlight)
        if self.taken:
            return theme.status_color(SUCCEEDED)
        if self.taken is False:
            return blend(theme.edge, theme.background, 0.5)
        return theme.edge


def edge_path(points: list[tuple[float, float]]) -> QPainterPath:
    """Polyline to path: vertical and horizontal runs stay straight, slanted hops become S-curves.

    An S-curve between two ordered points stays between them at every height,
    so curves keep the layout's no-crossing guarantee and leave vertically.
    """
    path = QPainterPath(QPointF(*points[0]))
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 == x1 or y0 == y1:
            path.lineTo(x1, y1)
        else:
            mid = (y0 + y1) / 2
            path.cubicTo(QPointF(x0, mid), QPointF(x1, mid), QPointF(x1, y1))
    return path


def arrow_head(points: list[tuple[float, float]], length: float, half_width: float) -> QPolygonF:
    """Triangle with its tip on the last point, pointing along the edge's final direction."""
    (x0, y0), (x1, y1) = points[-2], points[-1]
    if x0 != x1 and y0 != y1:
        x0, y0 = x1, y1 - 1  # S-curves arrive vertically
    dx, dy = x1 - x0, y1 - y0
    norm = math.hypot(dx, dy) or 1.0
    ux, uy = dx / norm, dy / norm
    bx, by = x1 - ux * length, y1 - uy * length
    return QPolygonF([QPointF(x1, y1), QPointF(bx - uy * half_width, by + ux * half_width),
                      QPointF(bx + uy * half_width, by - ux * half_width)])


class DagScene(QGraphicsScene):
    """Scene mirroring one flow graph and its step states.

    Signals carry step names: `step_clicked` on a left press on a step,
    `step_double_clicked` on a double click, `step_state_changed` after a
    state really changed, `graph_changed` after `set_graph` built new items.
    """

    step_clicked = Signal(str)
    step_double_clicked = Signal(str)
    step_state_changed = Signal(str)
    graph_changed = Signal()

    PULSE_MS = 1200  # one breath of the outline / one spinner turn
    LAYER_GAP = 32.0  # between rows of boxes: room for S-curves and arrow heads
    FRAME_MS = 33

    def __init__(self, parent: Any = None) -> None:
        """Theme and fonts from the application; the shared pulse is created idle."""
        super().__init__(parent)
        self.theme = DagTheme.from_palette(QApplication.palette())
        self.fonts = _Fonts.from_font(QApplication.font())
        self.phase = 0.0
        self.dag_layout: DagLayout | None = None
        #: Rows every box keeps for its step's name: 2 when some name is wider than a box.
        self.name_rows = 1
        self._graph: Any = None
        self._items: dict[str, StepItem] = {}
        self._edges: list[EdgeItem] = []
        self._running: set[str] = set()
        self._pulse = QTimer(self)
        self._pulse.setInterval(self.FRAME_MS)
        self._pulse.timeout.connect(self._on_pulse)
        self._clock = QElapsedTimer()
        self.setBackgroundBrush(self.theme.background)
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)  # few items; states repaint often

    # -- graph -------------------------------------------------------------------------

    def set_graph(self, graph: Mapping[str, Any] | None) -> bool:
        """Rebuild items for a new graph (all steps pending); an equal graph is a no-op.

        Returns whether anything was rebuilt, so callers can skip follow-up work.
        """
        if self._graph is not None and graph == self._graph:
            return False
        self._graph = copy.deepcopy(graph)
        self._teardown()
        table = node_table(graph)
        bodies = foreach_body_steps(graph)
        # One width for all boxes (the widest need, capped): columns line up and read calmly.
        steps = {n: node for n, node in table.items() if isinstance(node, Mapping)}
        width, self.name_rows = self._box_size(steps)
        # Text stays at its real size, so tall graphs scroll: a tighter gap shows more steps at once.
        labels = {name: case_labels(node) for name, node in table.items()
                  if isinstance(node, Mapping) and node.get("type") == SWITCH}
        # A recursive switch's loop and its label sit right of its box: room for the widest.
        loop_labels = [cases[name] for name, cases in labels.items() if name in cases]
        gap = LayoutOptions().back_edge_gap
        loop_room = max([gap + 4 + self.fonts.detail_metrics.horizontalAdvance(t) + 8 + 6
                         for t in loop_labels], default=LayoutOptions().loop_room)
        opts = LayoutOptions(node_height=self._node_height(), layer_gap=self.LAYER_GAP,
                             loop_room=loop_room)
        self.dag_layout = layout_graph(graph, node_width=lambda _: width, options=opts)
        for route in self.dag_layout.edges:
            edge = EdgeItem(self, route, labels.get(route.source, {}).get(route.target, ""))
            self._edges.append(edge)
            self.addItem(edge)
        for name, place in self.dag_layout.nodes.items():
            item = StepItem(self, name, table.get(name, {}), place.width, place.height, name in bodies)
            item.setPos(place.x, place.y)
            self._items[name] = item
            self.addItem(item)
        self.setSceneRect(QRectF(0, 0, self.dag_layout.width, self.dag_layout.height))
        self.graph_changed.emit()
        return True

    def _teardown(self) -> None:
        """Drop every item and the animation before building anew."""
        self._running.clear()
        self._sync_animation()
        self._items.clear()  # first, so selection callbacks during clear() find nothing
        self._edges.clear()
        self.clear()

    def _node_height(self) -> float:
        """Name rows, detail row, room for the progress bar, padding."""
        return math.ceil(PAD + self.name_rows * self.fonts.name_metrics.height() + 2
                         + self.fonts.detail_metrics.height() + BAR + PAD)

    def _box_size(self, steps: Mapping[str, Mapping[str, Any]]) -> tuple[float, int]:
        """One width for every box (columns line up and read calmly), and the rows each
        keeps for its name. A name wider than MAX_BOX_WIDTH wraps onto a second row, and
        the boxes then take the narrowest width that keeps every name whole on two rows
        (never below any box's detail row): a wide graph shows more of its columns."""
        needs = [self._node_width(n, node) for n, node in steps.items()]
        width = float(min(MAX_BOX_WIDTH, max([MIN_BOX_WIDTH, *needs])))
        names = [n for n, node in steps.items() if node.get("type") != SWITCH]  # a diamond elides
        if all(self._name_fits(n, width, rows=1) for n in names):
            return width, 1
        if not all(self._name_fits(n, width, MAX_NAME_ROWS) for n in names):
            return width, MAX_NAME_ROWS  # too long even for two rows: cut, whole in the tooltip
        low = max([MIN_BOX_WIDTH, *(self._node_width("", node) for node in steps.values()),
                   *(self._node_width(n, node) for n, node in steps.items()  # a diamond's
                     if node.get("type") == SWITCH)])  # name stays on its one row
        while width - low > 2:  # the narrowest width at which every name fits two rows
            middle = (low + width) / 2
            if all(self._name_fits(n, middle, MAX_NAME_ROWS) for n in names):
                width = middle
            else:
                low = middle
        return float(math.ceil(width)), MAX_NAME_ROWS

    def _name_fits(self, name: str, width: float, rows: int) -> bool:
        """Whether `name` is drawn whole on `rows` rows of a box `width` wide."""
        room = width - (PAD + ICON + 7) - PAD
        return "".join(wrap_name(name, self.fonts.name_metrics, room, rows)) == name

    def _node_width(self, name: str, node: Mapping[str, Any]) -> float:
        """Wide enough for the name on one row, and for the hint beside a typical counter
        and duration (uncapped: `_box_size` caps it)."""
        fm, dm = self.fonts.name_metrics, self.fonts.detail_metrics
        name_w = fm.horizontalAdvance(name) + PAD + ICON + 7 + PAD
        detail_w = dm.horizontalAdvance(type_hint(node)) + dm.horizontalAdvance("  12/100  10.0 s") + 2 * PAD + ICON + 15
        if node.get("type") == SWITCH:  # a diamond's text has only its middle
            name_w = (fm.horizontalAdvance(name) + ICON + 5) / DIAMOND_TEXT_SHARE
            detail_w = dm.horizontalAdvance(f"{node.get('condition')}  10/10  10 ms") / DIAMOND_TEXT_SHARE
        return float(math.ceil(max(name_w, detail_w)))

    # -- states ------------------------------------------------------------------------

    def set_step_state(self, step: str, state: StepSummary) -> bool:
        """Show `state` on `step`'s item only; unknown steps and equal states do nothing."""
        item = self._items.get(step)
        if item is None or not item.set_state(state):
            return False
        if drawn_status(state) == "running":
            self._running.add(step)
        else:
            self._running.discard(step)
        self._sync_animation()
        self._refresh_cases(step)
        self.step_state_changed.emit(step)
        return True

    def _refresh_cases(self, step: str) -> None:
        """Re-colour the switch cases touching `step`: taken once a task took them; not
        taken when the switch is done and took others, or their step was skipped."""
        for edge in self._edges:
            if step not in (edge.route.source, edge.route.target):
                continue
            switch = self._items.get(edge.route.source)
            target = self._items.get(edge.route.target)
            if switch is None or target is None:
                continue
            state = switch.state
            taken: bool | None = None
            if not edge.case_label:  # a plain edge out of a step no task reached: dimmed too
                edge.set_taken(False if switch.skipped else None)
                continue
            if edge.route.target in state.taken:
                taken = True
            elif target.skipped or (state.status in (SUCCEEDED, REUSED) and state.taken):
                taken = False
            edge.set_taken(taken)

    def step_state(self, step: str) -> StepSummary | None:
        """The state shown for `step`, or None for a step not in the graph."""
        item = self._items.get(step)
        return item.state if item else None

    def clear_states(self) -> None:
        """Every step back to pending (only those not already pending repaint)."""
        for name in list(self._items):
            self.set_step_state(name, PENDING)

    # -- animation ---------------------------------------------------------------------

    def is_animating(self) -> bool:
        """Whether the shared pulse runs (it must exactly when some step is running)."""
        return self._pulse.isActive()

    def _sync_animation(self) -> None:
        """Start the one shared pulse when a step starts running, stop it when none runs."""
        if self._running and not self.is_animating():
            self._clock.start()
            self._pulse.start()
        elif not self._running and self.is_animating():
            self._pulse.stop()
            self.phase = 0.0

    def _on_pulse(self) -> None:
        """One tick: advance the phase and repaint the running steps, nothing else."""
        self.phase = (self._clock.elapsed() % self.PULSE_MS) / self.PULSE_MS
        for name in self._running:
            self._items[name].update()

    # -- queries -----------------------------------------------------------------------

    def item_for(self, step: str) -> StepItem | None:
        """The item drawing `step` (tests and tooltips look at it; do not mutate its state)."""
        return self._items.get(step)

    def steps(self) -> list[str]:
        """Step names in graph order."""
        return list(self._items)

    def steps_drawn(self, status: str) -> list[str]:
        """The steps drawn with `status`, in graph order (the view follows the running
        ones and shows the first failed one)."""
        return [name for name, item in self._items.items() if drawn_status(item.state) == status]

    def edge_items(self) -> list[EdgeItem]:
        """Edge items in layout order."""
        return list(self._edges)

    def selected_step(self) -> str | None:
        """The selected step's name (single selection), or None."""
        for item in self.selectedItems():
            if isinstance(item, StepItem):
                return item.name
        return None

    def select_step(self, step: str | None) -> None:
        """Select one step (or none) from code, e.g. to mirror a list's selection."""
        for name, item in self._items.items():
            item.setSelected(name == step)

    # -- palette -----------------------------------------------------------------------

    def set_palette(self, palette: QPalette) -> None:
        """Recolour for a new palette (dark mode switch); items repaint once."""
        theme = DagTheme.from_palette(palette)
        if theme == self.theme:
            return
        self.theme = theme
        self.setBackgroundBrush(theme.background)
        self.update()

    # -- mouse -------------------------------------------------------------------------

    def _step_at(self, pos: QPointF) -> StepItem | None:
        """The step under a point; edges and the background do not count."""
        for item in self.items(pos):
            if isinstance(item, StepItem):
                return item
        return None

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        """Let Qt select first, then report which step (if any) was clicked."""
        super().mousePressEvent(event)
        item = self._step_at(event.scenePos())
        if item is not None and event.button() == Qt.MouseButton.LeftButton:
            self.step_clicked.emit(item.name)

    def mouseDoubleClickEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        """A double click opens a step (the app decides what that means: logs, artifacts)."""
        super().mouseDoubleClickEvent(event)
        item = self._step_at(event.scenePos())
        if item is not None and event.button() == Qt.MouseButton.LeftButton:
            self.step_double_clicked.emit(item.name)

    def _highlight_edges(self, step: str, on: bool) -> None:
        """Light up the edges touching a selected step."""
        for edge in self._edges:
            if step in (edge.route.source, edge.route.target):
                edge.set_highlighted(on or self._endpoint_selected(edge))

    def _endpoint_selected(self, edge: EdgeItem) -> bool:
        """An edge stays lit while either of its steps is selected."""
        ends = (self._items.get(edge.route.source), self._items.get(edge.route.target))
        return any(item is not None and item.isSelected() for item in ends)


class StatusLegend(QWidget):
    """One row naming every status with the icon and colour the step boxes use.

    Painted, not built from child widgets: six entries stay cheap and the
    icons come from `paint_status_icon`, the boxes' own painter. Colours are
    read from `theme()` at paint time, so a palette switch needs no bookkeeping.
    When the row is too narrow for the words it shows icons only; every
    entry keeps a tooltip with its word either way.
    """

    SPACING = 12.0
    GAP = 5.0

    def __init__(self, theme: Callable[[], DagTheme], parent: QWidget | None = None) -> None:
        """`theme` is the canvas's live theme (the view passes its scene's)."""
        super().__init__(parent)
        self._theme = theme
        self.setFont(small_font(QApplication.font()))
        self.setAccessibleName("Status colours: " + ", ".join(STATUSES))

    def theme(self) -> DagTheme:
        """The theme the legend draws with (the same one the step boxes use)."""
        return self._theme()

    def colors(self) -> dict[str, QColor]:
        """Status -> the colour its legend entry shows (for tests and accessibility checks)."""
        theme = self.theme()
        return {status: theme.status_color(status) for status in STATUSES}

    def _icon_size(self) -> float:
        """Icons as tall as the legend's text, a little smaller than on the boxes."""
        return float(min(ICON, self.fontMetrics().height()))

    def _full_width(self) -> float:
        """Width needed to show every entry with its word."""
        fm = self.fontMetrics()
        return sum(self._icon_size() + self.GAP + fm.horizontalAdvance(s) for s in STATUSES) \
            + self.SPACING * (len(STATUSES) - 1)

    def compact(self) -> bool:
        """Icons only: the words do not fit the width the legend was given."""
        return self.width() < self._full_width()

    def entry_rects(self) -> dict[str, QRectF]:
        """Where each status is drawn (icon plus word, or icon alone when compact)."""
        fm, icon = self.fontMetrics(), self._icon_size()
        words = not self.compact()
        x, rects = 0.0, {}
        for status in STATUSES:
            width = icon + (self.GAP + fm.horizontalAdvance(status) if words else 0.0)
            rects[status] = QRectF(x, 0, width, self.height())
            x += width + (self.SPACING if words else self.GAP + 2)
        return rects

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """Room for every word on one line."""
        return QSize(math.ceil(self._full_width()), self.minimumSizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """Icons only, on one line."""
        icon = self._icon_size()
        return QSize(math.ceil(len(STATUSES) * (icon + self.GAP + 2)),
                     math.ceil(max(icon, self.fontMetrics().height())) + 2)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        """Icon (exactly as on a box) and the status word, for each status in order."""
        theme, icon = self.theme(), self._icon_size()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        words = not self.compact()
        for status, rect in self.entry_rects().items():
            top = rect.top() + (rect.height() - icon) / 2
            paint_status_icon(painter, status, QRectF(rect.left(), top, icon, icon), theme, 0.1)
            if words:
                painter.setPen(theme.text)
                painter.drawText(rect.adjusted(icon + self.GAP, 0, 0, 0),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, status)
        painter.end()

    def event(self, event: QEvent) -> bool:
        """Tooltips per entry, so the compact (icons only) form stays explained."""
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            for status, rect in self.entry_rects().items():
                if rect.contains(QPointF(event.pos())):
                    QToolTip.showText(event.globalPos(), f"{status}: step outline and icon", self)
                    return True
            QToolTip.hideText()
            event.ignore()
            return True
        return super().event(event)


class DagHeader(QWidget):
    """The strip above the canvas: the status legend, then the two explicit zoom actions."""

    def __init__(self, view: "DagView") -> None:
        """Buttons call the view directly; the legend reads the view's live theme."""
        super().__init__(view)
        self.legend = StatusLegend(lambda: view.dag_scene().theme, self)
        self.fit_button = self._button("Fit", "Readable size, as wide as the canvas allows (0)", view.fit)
        self.all_button = self._button("Whole graph", "Show every step at once; names may get too "
                                       "small to read (Ctrl+wheel or +/- zoom, 0 goes back)", view.fit_all)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 2, 4, 2)
        row.setSpacing(4)
        row.addWidget(self.legend, 1)
        row.addWidget(self.fit_button)
        row.addWidget(self.all_button)

    def _button(self, text: str, tip: str, slot: Callable[[], None]) -> QToolButton:
        """A flat, small-font button: the strip must not compete with the graph."""
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.setFont(small_font(QApplication.font()))
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        button.clicked.connect(slot)
        return button


class DagView(QGraphicsView):
    """Zoomable, pannable view of a `DagScene`, readable by default.

    The default view ("fit", also `0`) fits the graph to the width but
    never below `legible_zoom()`, the zoom at which names render at the UI
    font size; what does not fit scrolls. "Whole graph" (`fit_all`) shows
    everything at once as an explicit choice. Ctrl+wheel, pinch and `+`/`-`
    zoom; the plain wheel scrolls (set `wheel_zooms = True` to zoom with it),
    drag pans, Home/End jump to the first/last steps. After the user zooms,
    the view keeps that zoom until they ask to fit again; until then it
    re-fits on resizes.

    A long graph scrolls, so the view goes where the run is: it follows the
    running steps (`follow_run` starts that for a new run) until the user pans
    or zooms, and it brings a run's first failed step into view, centred at a
    readable zoom; `fit()` goes back to that. Resizes keep the anchor (the top,
    the steps followed, or the user's own place) in view.
    """

    MIN_ZOOM = 0.05
    MAX_ZOOM = 4.0
    MAX_FIT_ZOOM = 1.0
    ZOOM_STEP = 1.2
    FIT_MARGIN = 12.0

    def __init__(self, scene: DagScene | None = None, parent: QWidget | None = None) -> None:
        """Takes the scene (the model's mirror) from outside, or makes its own."""
        super().__init__(parent)
        self.wheel_zooms = False
        self._mode = "fit"  # "fit" (readable, to width), "all" (whole graph) or "manual"
        self._anchor: tuple[str, ...] | None = HOME  # what resizes keep in view
        self._steered = False  # the user panned or zoomed since this run began to be followed
        self._failure_shown = False  # this run's first failed step was brought into view
        self._press_scroll: tuple[int, int] | None = None  # scroll position at a mouse press
        self._forwarding_drag = False  # the current drag went to drop_receiver(), not the scene
        self._drag_answer = Qt.DropAction.IgnoreAction  # the receiver's last answer to this drag
        self.setScene(scene if scene is not None else DagScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing
                            | QPainter.RenderHint.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.header = DagHeader(self)
        self.legend = self.header.legend
        self.setViewportMargins(0, self.header.sizeHint().height(), 0, 0)
        for bar in (self.horizontalScrollBar(), self.verticalScrollBar()):
            bar.actionTriggered.connect(self._user_steered)

    def setScene(self, scene: QGraphicsScene | None) -> None:
        """Follow the new scene's `graph_changed` (and stop following the old one's).

        A scene without a Qt parent is adopted: it then dies with this view on the
        GUI thread. Left to Python's garbage collector it could be freed on any
        thread, and its running pulse timer would outlive it (a crash later).
        """
        old = self.scene()
        if isinstance(old, DagScene):
            old.graph_changed.disconnect(self._on_graph_changed)
            old.step_state_changed.disconnect(self._on_step_state)
        super().setScene(scene)
        if scene is not None and scene.parent() is None:
            scene.setParent(self)
        if isinstance(scene, DagScene):
            scene.graph_changed.connect(self._on_graph_changed)
            scene.step_state_changed.connect(self._on_step_state)
            scene.set_palette(self.palette())

    def dag_scene(self) -> DagScene:
        """The scene, typed (`scene()` is a plain QGraphicsScene to type checkers)."""
        scene = self.scene()
        assert isinstance(scene, DagScene)
        return scene

    def item_for(self, step: str) -> StepItem | None:
        """Shortcut to the scene's item for `step`, for tests."""
        return self.dag_scene().item_for(step)

    # -- zoom --------------------------------------------------------------------------

    def zoom(self) -> float:
        """Current scale (1.0 = natural size); the view never rotates or shears."""
        return self.transform().m11()

    def fit_mode(self) -> str:
        """The zoom policy: "fit" (readable default), "all" (whole graph) or "manual" (user's)."""
        return self._mode

    def legible_zoom(self) -> float:
        """The smallest zoom at which step names reach the UI font size and details the small one."""
        return min(self.MAX_ZOOM, self.dag_scene().fonts.legible_zoom(QApplication.font()))

    def set_zoom(self, factor: float) -> None:
        """Absolute zoom, clamped so the graph can neither vanish nor explode."""
        factor = max(self.MIN_ZOOM, min(self.MAX_ZOOM, factor))
        self.scale(factor / self.zoom(), factor / self.zoom())

    def zoom_by(self, factor: float) -> None:
        """Relative zoom by the user: kept (across resizes and runs) until `fit()`."""
        self._mode = "manual"
        self._user_steered()
        self.set_zoom(self.zoom() * factor)

    def fit(self) -> None:
        """The default view: readable text, fitted to the width when that is larger,
        showing where the run is (its first failed step, else its running steps, else
        the top). The view follows the run again."""
        self._mode = "fit"
        self._steered = False
        self._apply_mode()
        self._anchor = self._focus()
        self._show_anchor()

    def fit_all(self) -> None:
        """The whole graph at once (an explicit overview: text may get too small to read).
        The user's choice: a run's steps are all in view, so it is not followed."""
        self._mode = "all"
        self._apply_mode()
        self._user_steered()
        self._anchor = HOME
        self._show_anchor()

    def fit_zoom(self) -> float:
        """Zoom of the default view: the width fit, capped at natural size, floored at legible."""
        rect = self._padded_scene_rect()
        area = self.maximumViewportSize()  # the viewport without scroll bars: no feedback loop
        zoom = area.width() / rect.width()
        if rect.height() * zoom > area.height():  # it will scroll: leave room for the scroll bar
            zoom = (area.width() - self.verticalScrollBar().sizeHint().width()) / rect.width()
        return max(self.legible_zoom(), min(self.MAX_FIT_ZOOM, zoom))

    def overview_zoom(self) -> float:
        """Zoom that shows the whole padded graph, never enlarged past natural size."""
        rect = self._padded_scene_rect()
        area = self.maximumViewportSize()
        zoom = min(area.width() / rect.width(), area.height() / rect.height())
        return max(self.MIN_ZOOM, min(self.MAX_FIT_ZOOM, zoom))

    def natural_width(self) -> int:
        """The view's width that shows the whole padded graph across at natural size (the
        most the default view zooms in), with a vertical scroll bar and the frame."""
        if self.sceneRect().isEmpty():
            return 0
        return int(self._padded_scene_rect().width() * self.MAX_FIT_ZOOM
                   + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()) + 1

    def wanted_height(self) -> int:
        """The view's height that shows the whole graph at the default view's zoom for the
        view's present width (its header and frame included): the window gives the DAG
        this much, and the panes under it the rest (a 2-step graph took 350 of 720 px)."""
        if self.sceneRect().isEmpty():
            return 0
        rect = self._padded_scene_rect()
        width = self.maximumViewportSize().width()
        zoom = max(self.legible_zoom(), min(self.MAX_FIT_ZOOM, width / rect.width()))
        margins = self.viewportMargins()
        return int(rect.height() * zoom + margins.top() + margins.bottom()
                   + 2 * self.frameWidth()) + 1

    def _padded_scene_rect(self) -> QRectF:
        """The scene rect plus the fit margin on every side."""
        m = self.FIT_MARGIN
        return self.sceneRect().adjusted(-m, -m, m, m)

    def _apply_mode(self) -> None:
        """Re-apply the fit mode's zoom (the user's own zoom stays)."""
        if self._mode == "manual" or self.sceneRect().isEmpty():
            return
        zoom = self.fit_zoom() if self._mode == "fit" else self.overview_zoom()
        self.resetTransform()
        self.scale(zoom, zoom)

    def scroll_home(self) -> None:
        """Show the top of the graph (where `start` is), centred horizontally."""
        rect = self.sceneRect()
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        y = rect.center().y() if visible.height() >= rect.height() else rect.top() + visible.height() / 2
        self.centerOn(rect.center().x(), y)

    def _user_steered(self) -> None:
        """The user scrolled, panned or zoomed: their view stays (across resizes, and while
        the run goes on) until they ask to fit again or another run starts."""
        self._steered = True
        self._anchor = None

    def _on_graph_changed(self) -> None:
        """A new graph starts in the default view, whatever the previous zoom was."""
        self.fit()

    # -- following a run ---------------------------------------------------------------

    def follow_run(self) -> None:
        """A run starts, or another run is shown: follow its running steps and show its
        first failure, whatever the user did to the view during the run before."""
        self._steered = False
        self._failure_shown = False

    def is_following(self) -> bool:
        """Whether running steps are followed (the user has not moved the view this run)."""
        return not self._steered

    def visible_scene_rect(self) -> QRectF:
        """The part of the scene the viewport shows."""
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def _focus(self) -> tuple[str, ...]:
        """Where the run is: its first failed step, else its running steps, else the top."""
        scene = self.dag_scene()
        failed = scene.steps_drawn("failed")
        return (failed[0],) if failed else tuple(scene.steps_drawn("running"))

    def _on_step_state(self, step: str) -> None:
        """A step failed: show it (`_show_failure`). A step started: bring the running
        steps into view, unless the user moved the view or a failure is shown."""
        state = self.dag_scene().step_state(step)
        status = drawn_status(state) if state is not None else "pending"
        if status == "failed":
            self._show_failure(step)
        elif status == "running" and not (self._steered or self._failure_shown):
            self._anchor = tuple(self.dag_scene().steps_drawn("running"))
            self._show_anchor(centre=False)

    def _show_failure(self, step: str) -> None:
        """The run's first failed step, centred at a readable zoom: in a long graph it is
        off-screen and the steps in view are all green. A view the user moved during the
        run stays when it already shows the failed step."""
        item = self.item_for(step)
        if self._failure_shown or item is None:
            return
        self._failure_shown = True
        if self._steered and self.visible_scene_rect().intersects(item.sceneBoundingRect()):
            return
        if self.zoom() < self.legible_zoom() - 1e-6:
            self._mode = "fit"  # the whole graph's zoom: names too small to read
            self._apply_mode()
        self._anchor = (step,)
        self._show_anchor()

    def _anchor_rect(self, steps: tuple[str, ...]) -> QRectF | None:
        """The scene rectangle to show for `steps`: all of them when they fit in the
        viewport together (parallel branches), else the last one."""
        rects = [item.sceneBoundingRect() for s in steps if (item := self.item_for(s)) is not None]
        if not rects:
            return None
        union = QRectF(rects[0])
        for rect in rects[1:]:
            union = union.united(rect)
        room = self.visible_scene_rect()
        fits = union.width() <= room.width() and union.height() <= room.height()
        return union if fits else rects[-1]

    def _show_anchor(self, centre: bool = True) -> None:
        """Scroll to the anchor: the top, or its steps centred (with `centre` False, only
        when they are not all in view already); the user's own place stays as it is."""
        if self._anchor is None:
            return
        if not self._anchor:
            self.scroll_home()
            return
        target = self._anchor_rect(self._anchor)
        if target is not None and (centre or not self.visible_scene_rect().contains(target)):
            self.centerOn(target.center())

    # -- drops -------------------------------------------------------------------------

    def drop_receiver(self) -> QWidget | None:
        """The nearest ancestor that takes drops (the main window): file drops go there.

        A QGraphicsView's viewport accepts drags and hands them to the scene,
        which refuses them, so without this the largest area of the window
        would refuse the drops every other part takes.
        """
        widget = self.parentWidget()
        while widget is not None:
            if widget.acceptDrops() and widget.isEnabled():
                return widget
            if widget.isWindow():
                return None
            widget = widget.parentWidget()
        return None

    def _forward_drag(self, event: QEvent) -> bool:
        """Re-send a file drag to `drop_receiver()` (positions mapped); False if not ours."""
        target = self.drop_receiver()
        if isinstance(event, QDragLeaveEvent):
            if target is not None and self._forwarding_drag:
                target.event(QDragLeaveEvent())
            forwarded, self._forwarding_drag = self._forwarding_drag, False
            return forwarded
        assert isinstance(event, QDropEvent)
        self._forwarding_drag = target is not None and event.mimeData().hasUrls()
        if target is None or not self._forwarding_drag:
            return False
        pos = self.viewport().mapTo(target, event.position().toPoint())
        args = (event.possibleActions(), event.mimeData(), event.buttons(), event.modifiers())
        if isinstance(event, QDragEnterEvent):
            copy_: QDropEvent = QDragEnterEvent(pos, *args)
        elif isinstance(event, QDragMoveEvent):
            copy_ = QDragMoveEvent(pos, *args)
            if self._drag_answer != Qt.DropAction.IgnoreAction:
                # As Qt does for a real drag: accepting the enter suffices, moves start accepted.
                copy_.setDropAction(self._drag_answer)
                copy_.accept()
        else:
            copy_ = QDropEvent(QPointF(pos), *args)
        # The receiver's own dispatch, not QApplication.sendEvent: notify() would route a
        # drag event by position and could hand it straight back to this canvas.
        target.event(copy_)
        event.setDropAction(copy_.dropAction())
        event.setAccepted(copy_.isAccepted())
        if event.type() == QEvent.Type.Drop:
            self._forwarding_drag = False
        elif isinstance(event, QDragMoveEvent):  # enter or move: what the receiver answered
            self._drag_answer = copy_.dropAction() if copy_.isAccepted() else Qt.DropAction.IgnoreAction
        return True

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        """File drags go where the rest of the window sends them; others to the scene."""
        if not self._forward_drag(event):
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 (Qt override)
        """As `dragEnterEvent` (the scene would answer IgnoreAction here)."""
        if not self._forward_drag(event):
            super().dragMoveEvent(event)

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:  # noqa: N802 (Qt override)
        """Tell the receiver the drag left, so it can drop any highlight."""
        if not self._forward_drag(event):
            super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        """The drop itself: the receiver opens (and perhaps runs) the files."""
        if not self._forward_drag(event):
            super().dropEvent(event)

    # -- events ------------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        """Ctrl+wheel zooms around the cursor (one notch is one `ZOOM_STEP`); the wheel scrolls."""
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if not (ctrl or self.wheel_zooms):
            self._user_steered()
            super().wheelEvent(event)
            return
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta:
            self.zoom_by(self.ZOOM_STEP ** (delta / 120.0))
        event.accept()

    def viewportEvent(self, event: QEvent) -> bool:
        """Touchpad pinch zooms like Ctrl+wheel."""
        if isinstance(event, QNativeGestureEvent) and \
                event.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
            self.zoom_by(1.0 + event.value())
            return True
        return super().viewportEvent(event)

    def _scroll_position(self) -> tuple[int, int]:
        return self.horizontalScrollBar().value(), self.verticalScrollBar().value()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """A press may start a pan (see `mouseMoveEvent`); a click alone moves nothing."""
        self._press_scroll = self._scroll_position()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """A drag that scrolled is the user's pan: the view stops following the run."""
        super().mouseMoveEvent(event)
        if self._press_scroll is not None and event.buttons() != Qt.MouseButton.NoButton \
                and self._scroll_position() != self._press_scroll:
            self._press_scroll = None
            self._user_steered()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """`+`/`=` zoom in, `-` out, `0` fit, Home/End first/last steps; other keys scroll."""
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(self.ZOOM_STEP)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.zoom_by(1 / self.ZOOM_STEP)
        elif key == Qt.Key.Key_0:
            self.fit()
        elif key == Qt.Key.Key_Home:
            self._user_steered()
            self.scroll_home()
        elif key == Qt.Key.Key_End:
            self._user_steered()
            self.centerOn(self.sceneRect().center().x(), self.sceneRect().bottom())
        else:
            before = self._scroll_position()
            super().keyPressEvent(event)
            if self._scroll_position() != before:  # arrows, Page Up/Down
                self._user_steered()
            return
        event.accept()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Keep the header across the top; re-fit (unless the user zoomed) and keep the
        anchor (the top, or the steps followed) in view until the user moves the view."""
        super().resizeEvent(event)
        self._place_header()
        self._apply_mode()
        self._show_anchor()

    def _place_header(self) -> None:
        """Over the viewport's columns only, like a tree view's header: never under a scroll bar."""
        port = self.viewport().geometry()
        height = self.header.sizeHint().height()
        self.header.setGeometry(port.left(), port.top() - height, port.width(), height)

    def showEvent(self, event: QShowEvent) -> None:
        """Fit on show, when the viewport finally has its real size."""
        super().showEvent(event)
        self._apply_mode()
        self._show_anchor()

    def changeEvent(self, event: QEvent) -> None:
        """Follow palette switches (e.g. the system going dark)."""
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.dag_scene().set_palette(self.palette())
            self.header.update()
        super().changeEvent(event)
