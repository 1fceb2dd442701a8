"""One viewer per preview kind (`flowdeck.engines.preview`): table, plot, image, tree,
text and repr, plus a message for a preview that is loading or failed.

A viewer only draws the bounded preview the helper sent (nothing here unpickles or
reads the store). Each has `show_preview(preview)` and an `info` line saying what is
shown of the whole value (first rows, every k-th point, downscaled picture).
"""

from __future__ import annotations

import base64
import math
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QPalette,
    QPixmap,
    QResizeEvent,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextOption,
)
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QTableView,
    QTextEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from flowdeck_desktop.views.theme import status_color

AnyIndex = QModelIndex | QPersistentModelIndex


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def items_text(n: Any) -> str:
    """`1 item`, `2,000 items`."""
    return f"{_count(n)} item" + ("" if n == 1 else "s")



def _number(value: float) -> str:
    return f"{value:.6g}"


class Viewer(QWidget):
    """A viewer: a line saying what is shown, and the view itself."""

    kind = ""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.addWidget(self.info)

    def show_preview(self, preview: dict[str, Any]) -> None:
        raise NotImplementedError


# -- table ------------------------------------------------------------------------------------

def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before text before empty cells, each in its natural order."""
    if value is None:
        return (2, 0)
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value))


class FrameModel(QAbstractTableModel):
    """The rows a table preview holds; sorting reorders them (numbers sort as numbers)."""

    def __init__(self, preview: dict[str, Any], parent: QWidget | None = None):
        super().__init__(parent)
        self.columns: list[str] = [str(c) for c in preview.get("columns") or []]
        self.dtypes: list[str] = [str(d) for d in preview.get("dtypes") or []]
        self.cells: list[list[Any]] = [list(r) for r in preview.get("rows") or []]
        self.index_labels: list[str] = [str(i) for i in preview.get("index") or []]
        self.order = list(range(len(self.cells)))

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008 (Qt)
        return 0 if parent.isValid() else len(self.cells)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008 (Qt)
        return 0 if parent.isValid() else len(self.columns)

    def value(self, row: int, column: int) -> Any:
        """The cell shown at `row` (after sorting), as the helper sent it."""
        cells = self.cells[self.order[row]]
        return cells[column] if column < len(cells) else None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        value = self.value(index.row(), index.column())
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            if value is None:
                return "" if role == Qt.ItemDataRole.DisplayRole else "None"
            return _number(value) if isinstance(value, float) else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802 (Qt)
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        if role == Qt.ItemDataRole.DisplayRole:
            if horizontal:
                return self.columns[section] if section < len(self.columns) else None
            row = self.order[section] if section < len(self.order) else section
            return self.index_labels[row] if row < len(self.index_labels) else str(row)
        if role == Qt.ItemDataRole.ToolTipRole and horizontal and section < len(self.dtypes):
            return f"{self.columns[section]}: {self.dtypes[section]}"
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.layoutAboutToBeChanged.emit()
        if column < 0:  # no sort column (a new model): the helper's order
            self.order = list(range(len(self.cells)))
            self.layoutChanged.emit()
            return
        self.order.sort(key=lambda r: _sort_key(self.cells[r][column]
                                                if column < len(self.cells[r]) else None),
                        reverse=order == Qt.SortOrder.DescendingOrder)
        self.layoutChanged.emit()


class TableViewer(Viewer):
    """Data frames and 2-D arrays: the first rows and columns, sortable; shape and dtypes."""

    kind = "table"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = QTableView()
        self.view.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
        self.view.setSortingEnabled(True)
        self.view.setAlternatingRowColors(True)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.verticalHeader().setDefaultSectionSize(
            self.view.fontMetrics().height() + 6)
        self.dtypes = QLabel()
        self.dtypes.setWordWrap(True)
        self.dtypes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.layout_.addWidget(self.dtypes)
        self.layout_.addWidget(self.view, 1)
        self.model: FrameModel | None = None

    def show_preview(self, preview: dict[str, Any]) -> None:
        old = self.model
        self.model = FrameModel(preview, self)
        self.view.setModel(self.model)
        self.view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        if old is not None:
            old.deleteLater()
        rows, cols = (list(preview.get("shape") or [0, 0]) + [0, 0])[:2]
        shown_rows, shown_cols = self.model.rowCount(), self.model.columnCount()
        parts = [f"{_count(rows)} rows × {_count(cols)} columns"]
        if shown_rows < rows or shown_cols < cols:
            parts.append(f"showing the first {_count(shown_rows)} rows and "
                         f"{_count(shown_cols)} columns (sorting orders those)")
        self.info.setText(" · ".join(parts))
        pairs = list(zip(self.model.columns, self.model.dtypes, strict=False))
        distinct = {d for _, d in pairs}
        if len(distinct) == 1 and len(pairs) > 3:
            self.dtypes.setText(f"dtype: {next(iter(distinct))}")
        else:
            self.dtypes.setText("dtypes: " + ", ".join(f"{c} {d}" for c, d in pairs))
        self.view.resizeColumnsToContents()
        header = self.view.horizontalHeader()
        for column in range(shown_cols):  # a long text column must not push the rest away
            header.resizeSection(column, min(header.sectionSize(column), 320))


# -- plot -------------------------------------------------------------------------------------

class PlotViewer(Viewer):
    """1-D numbers: a line over their index, or a histogram (pyqtgraph, loaded on first use)."""

    kind = "plot"
    LINE, HISTOGRAM = "line", "histogram"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        import pyqtgraph as pg  # about 0.3 s to import: only when a plot is first shown

        self.pg = pg
        palette = self.palette()
        self.plot = pg.PlotWidget(background=palette.color(QPalette.ColorRole.Base))
        self._style_axes()
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.line_button = QPushButton("Line")
        self.histogram_button = QPushButton("Histogram")
        self.modes = QButtonGroup(self)
        for button in (self.line_button, self.histogram_button):
            button.setCheckable(True)
            self.modes.addButton(button)
        self.line_button.setChecked(True)
        self.modes.buttonClicked.connect(lambda _b: self._draw())
        row = QHBoxLayout()
        row.addWidget(self.line_button)
        row.addWidget(self.histogram_button)
        row.addStretch(1)
        self.layout_.addLayout(row)
        self.layout_.addWidget(self.plot, 1)
        self.values: list[float] = []
        self.step = 1

    def _style_axes(self) -> None:
        """The theme's text colour, and values as they are: pyqtgraph's automatic SI prefix
        turned 0.01 to 0.1 into "20 ... 100" with a "(x0.001)" at the end of the axis
        label, which a narrow plot cut off, so the axis read a thousand times too large."""
        text = self.palette().color(QPalette.ColorRole.Text)
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(self.pg.mkPen(text))
            axis.setTextPen(self.pg.mkPen(text))
            axis.enableAutoSIPrefix(False)

    @property
    def mode(self) -> str:
        return self.HISTOGRAM if self.histogram_button.isChecked() else self.LINE

    def set_mode(self, mode: str) -> None:
        (self.histogram_button if mode == self.HISTOGRAM else self.line_button).setChecked(True)
        self._draw()

    def show_preview(self, preview: dict[str, Any]) -> None:
        self.values = [math.nan if v is None else float(v) for v in preview.get("values") or []]
        self.step = int(preview.get("step") or 1)
        count = preview.get("count", len(self.values))
        stats = preview.get("stats") or {}
        parts = [f"{_count(count)} values ({preview.get('dtype', '')})"]
        if preview.get("downsampled"):
            parts.append(f"plotting one value in {_count(self.step)}: "
                         f"{_count(len(self.values))} points")
        if "min" in stats:
            of = f" of {preview['stats_of']}" if preview.get("stats_of") else ""
            parts.append(f"min {_number(stats['min'])}, max {_number(stats['max'])}, "
                         f"mean {_number(stats['mean'])}{of}")
        nonfinite = stats.get("nonfinite") or {}
        if nonfinite:  # left out of the statistics above and of the line (gaps)
            parts.append("not plotted: " + ", ".join(f"{_count(n)} {kind}"
                                                     for kind, n in nonfinite.items()))
        self.info.setText(" · ".join(parts))
        self._draw()

    def _draw(self) -> None:
        import numpy as np

        pg = self.pg
        self.plot.clear()
        self.plot.getPlotItem().setAxisItems(
            {"bottom": _index_axis(pg) if self.mode == self.LINE else pg.AxisItem("bottom")})
        self._style_axes()
        ys = np.asarray(self.values, dtype=float)
        color = self.palette().color(QPalette.ColorRole.Highlight)
        if self.mode == self.LINE:
            xs = np.arange(len(ys)) * self.step
            self.plot.plot(xs, ys, pen=pg.mkPen(color, width=1.5), connect="finite")
            alone = _isolated(ys)  # no finite neighbour: the line has no segment to draw
            if alone.any():
                self.plot.plot(xs[alone], ys[alone], pen=None, symbol="o", symbolSize=6,
                               symbolBrush=pg.mkBrush(color), symbolPen=pg.mkPen(color))
            self.plot.setLabel("bottom", "index")
            self.plot.setLabel("left", "value")
        else:
            finite = ys[np.isfinite(ys)]
            if finite.size:
                bins = min(100, max(1, int(math.sqrt(finite.size))))
                counts, edges = np.histogram(finite, bins=bins)
                fill = QColor(color)
                fill.setAlpha(140)
                self.plot.plot(edges, counts, stepMode="center", fillLevel=0,
                               brush=pg.mkBrush(fill), pen=pg.mkPen(color))
            self.plot.setLabel("bottom", "value")
            self.plot.setLabel("left", "count")
        self.plot.enableAutoRange()


_INDEX_AXIS: Any = None  # the class, made once pyqtgraph is imported


def _index_axis(pg: Any) -> Any:
    """A bottom axis for positions: whole-number ticks only (a list of two read 0, 0.5, 1)."""
    global _INDEX_AXIS
    if _INDEX_AXIS is None:
        class IndexAxis(pg.AxisItem):
            def tickValues(self, low: float, high: float, size: float) -> Any:  # noqa: N802
                levels = [(spacing, [v for v in values if float(v).is_integer()])
                          for spacing, values in super().tickValues(low, high, size)
                          if spacing >= 1]
                if any(values for _, values in levels):
                    return levels
                return [(1, [float(v) for v in range(math.ceil(low), math.floor(high) + 1)])]
        _INDEX_AXIS = IndexAxis
    return _INDEX_AXIS("bottom")


def _isolated(ys: Any) -> Any:
    """Mask of the finite values whose neighbours are both missing (NaN) or absent."""
    import numpy as np
    finite = np.isfinite(ys)
    before = np.concatenate(([False], finite[:-1]))
    after = np.concatenate((finite[1:], [False]))
    return finite & ~before & ~after


# -- image ------------------------------------------------------------------------------------

class _FitLabel(QLabel):
    """A picture scaled to fit the label, never blurred when enlarged (pixels stay pixels)."""

    MAX_ZOOM = 8

    def __init__(self) -> None:
        super().__init__()
        self.source = QPixmap()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(1, 1)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)

    def set_source(self, pixmap: QPixmap) -> None:
        self.source = pixmap
        self._fit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self.source.isNull():
            self.clear()
            return
        w, h = self.source.width(), self.source.height()
        scale = min(self.width() / w, self.height() / h, self.MAX_ZOOM)
        if scale <= 0:
            return
        mode = (Qt.TransformationMode.FastTransformation if scale > 1
                else Qt.TransformationMode.SmoothTransformation)
        self.setPixmap(self.source.scaled(max(1, int(w * scale)), max(1, int(h * scale)),
                                          Qt.AspectRatioMode.KeepAspectRatio, mode))


class ImageViewer(Viewer):
    """Images: the helper's downscaled PNG (or the original PNG/JPEG bytes), fit to the pane."""

    kind = "image"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.picture = _FitLabel()
        self.layout_.addWidget(self.picture, 1)

    def show_preview(self, preview: dict[str, Any]) -> None:
        pixmap = QPixmap()
        data = base64.b64decode(preview.get("png") or "")
        if not pixmap.loadFromData(data):
            self.picture.set_source(QPixmap())
            self.info.setText("The picture could not be decoded; export it to open it elsewhere.")
            return
        self.picture.set_source(pixmap)
        original = preview.get("original") or [pixmap.width(), pixmap.height()]
        text = f"{_count(original[0])} × {_count(original[1])} px"
        if preview.get("mode"):
            text += f" {preview['mode']}"
        if preview.get("scaled"):
            text += f" · preview downscaled to {pixmap.width()} × {pixmap.height()}"
        self.info.setText(text)


# -- tree -------------------------------------------------------------------------------------

class TreeViewer(Viewer):
    """Dicts and lists: a collapsible tree; what the preview left out is said where it was."""

    kind = "tree"
    OPEN_CHILDREN = 20

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Key", "Type", "Value"])
        self.tree.setUniformRowHeights(True)
        self.layout_.addWidget(self.tree, 1)

    def show_preview(self, preview: dict[str, Any]) -> None:
        self.tree.clear()
        root = preview.get("root") or {}
        for child in self._children(root):
            self.tree.addTopLevelItem(child)
        for i in range(self.tree.topLevelItemCount()):  # open the small ones: long lists
            item = self.tree.topLevelItem(i)              # would push the rest away
            if item is not None:
                item.setExpanded(item.childCount() <= self.OPEN_CHILDREN)
        for column in range(3):
            self.tree.resizeColumnToContents(column)
        self.tree.setColumnWidth(0, min(self.tree.columnWidth(0), 300))
        length = root.get("length", 0)
        text = f"{root.get('type', '')} of {_count(length)} item{'s' if length != 1 else ''}"
        if preview.get("truncated"):
            text += " · large: only part of it is shown (the rest is marked where it was)"
        self.info.setText(text)

    def _children(self, node: dict[str, Any]) -> list[QTreeWidgetItem]:
        items = [self._item(child) for child in node.get("children") or []]
        omitted = int(node.get("omitted") or 0)
        if omitted and node.get("children"):
            more = QTreeWidgetItem(["…", "", f"{_count(omitted)} more not shown"])
            font = more.font(2)
            font.setItalic(True)
            more.setFont(2, font)
            more.setForeground(2, self.palette().color(QPalette.ColorRole.PlaceholderText))
            items.append(more)
        return items

    def _item(self, node: dict[str, Any]) -> QTreeWidgetItem:
        value = node.get("value")
        if value is None and "length" in node:
            value = items_text(node["length"])
        item = QTreeWidgetItem([str(node.get("key", "")), str(node.get("type", "")),
                                str(value or "")])
        item.setToolTip(2, str(value or ""))
        item.addChildren(self._children(node))
        return item


# -- text and repr ----------------------------------------------------------------------------

def _mono() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


#: A run of this many characters with no space (a DNA sequence, a hash, a long token)
#: wraps anywhere: Qt's word wrapping lays such a line out in time that grows with its
#: length squared (a 200,000-letter sequence froze the window for 4.5 s; 0.1 s so).
UNBROKEN_RUN = 1000


def wrap_mode_for(text: str) -> QTextOption.WrapMode:
    """Words wrap at their boundaries, unless the text holds a run too long for that.
    (Measured by splitting: a regex `\\S{1000}` took 0.56 s on the GUI thread for 200,000
    characters of 999-letter words, the split 0.3 ms.)"""
    if max(map(len, text.split()), default=0) >= UNBROKEN_RUN:
        return QTextOption.WrapMode.WrapAnywhere
    return QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere


class TextViewer(Viewer):
    """Strings: the text, with a search box that finds and highlights every match."""

    kind = "text"
    MAX_MARKS = 2000

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search the text")
        self.search.setClearButtonEnabled(True)
        self.next_button = QPushButton("Find next")
        self.matches = QLabel()
        self.matches.setMinimumWidth(self.matches.fontMetrics().horizontalAdvance("2000+ found"))
        row = QHBoxLayout()
        row.addWidget(self.search, 1)
        row.addWidget(self.next_button)
        row.addWidget(self.matches)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(_mono())
        self.layout_.addLayout(row)
        self.layout_.addWidget(self.text, 1)
        self.search.textChanged.connect(self._mark_all)
        self.search.returnPressed.connect(self.find_next)
        self.next_button.clicked.connect(self.find_next)
        self.found = 0

    def show_preview(self, preview: dict[str, Any]) -> None:
        text = str(preview.get("text", ""))
        self.text.setWordWrapMode(wrap_mode_for(text))
        self.text.setPlainText(text)
        length = preview.get("length", 0)
        text = f"{_count(length)} characters"
        if preview.get("truncated"):
            text += (f" · showing the first {_count(len(preview.get('text', '')))} "
                     "(export it for the whole text)")
        self.info.setText(text)
        self._mark_all()

    def _mark_all(self) -> None:
        """Highlight every match (up to MAX_MARKS) and go to the first."""
        needle = self.search.text()
        marks: list[QTextEdit.ExtraSelection] = []
        self.found = 0
        if needle:
            document = self.text.document()
            fmt = QTextCharFormat()
            fmt.setBackground(status_color("running", self._dark()).lighter(130))
            cursor = document.find(needle, 0)
            while not cursor.isNull() and len(marks) < self.MAX_MARKS:
                mark = QTextEdit.ExtraSelection()
                mark.cursor = cursor
                mark.format = fmt
                marks.append(mark)
                cursor = document.find(needle, cursor)
            self.found = len(marks)
            self.matches.setText(f"{self.found}{'+' if self.found >= self.MAX_MARKS else ''} "
                                 "found" if self.found else "not found")
        else:
            self.matches.setText("")
        self.text.setExtraSelections(marks)
        if marks:
            self.text.setTextCursor(QTextCursor(self.text.document()))
            self.find_next()

    def find_next(self) -> bool:
        """Select the next match after the cursor, wrapping around at the end."""
        needle = self.search.text()
        if not needle:
            return False
        if self.text.find(needle):
            return True
        self.text.moveCursor(QTextCursor.MoveOperation.Start)
        return self.text.find(needle, QTextDocument.FindFlag(0))

    def _dark(self) -> bool:
        return self.palette().color(QPalette.ColorRole.Base).lightnessF() < 0.5


class ReprViewer(Viewer):
    """Anything else: its repr, clipped by the helper."""

    kind = "repr"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(_mono())
        self.layout_.addWidget(self.text, 1)

    def show_preview(self, preview: dict[str, Any]) -> None:
        self.text.setPlainText(str(preview.get("text", "")))
        parts = []
        if preview.get("shape") is not None:
            parts.append(f"shape {tuple(preview['shape'])} {preview.get('dtype', '')}")
        if preview.get("truncated"):
            parts.append("repr clipped (export it for the whole value)")
        if preview.get("note"):
            parts.append(str(preview["note"]))
        self.info.setText(" · ".join(parts) or "repr")


class MessageViewer(Viewer):
    """No preview to draw: what to do, that it is loading, or why it cannot be shown
    (wrapped and selectable: a reason may hold a path and a pip command to copy)."""

    kind = "message"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.info.hide()
        self.body = QPlainTextEdit()
        self.body.setReadOnly(True)
        self.body.setFrameShape(QFrame.Shape.NoFrame)
        self.body.viewport().setAutoFillBackground(False)
        self.layout_.addWidget(self.body, 1)
        self.failed = False

    def text(self) -> str:
        return self.body.toPlainText()

    def show_message(self, text: str, failure: bool = False) -> None:
        self.failed = failure
        self.body.setPlainText(text)
        dark = self.palette().color(QPalette.ColorRole.Base).lightnessF() < 0.5
        self.body.setStyleSheet(f"color: {status_color('failed', dark).name()};"
                                if failure else "")

    def show_preview(self, preview: dict[str, Any]) -> None:
        self.show_message(str(preview.get("text", "")))


VIEWERS: dict[str, type[Viewer]] = {cls.kind: cls for cls in (
    TableViewer, PlotViewer, ImageViewer, TreeViewer, TextViewer, ReprViewer)}
