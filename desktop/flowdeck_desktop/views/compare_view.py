"""Two runs side by side: run facts, parameters, step durations and artifacts.

A thin view of `flowdeck.observe.compare`: the comparison is read from the runs'
records on a pool thread (a 10,000-task run has 10,000 attempt records) and shown as
one tree, a section per kind, the older run on the left. Cells that differ are
highlighted; artifacts are equal when their content hashes are, so nothing is
unpickled (the window never unpickles) and another user's runs compare safely.
"""

from __future__ import annotations

import html
import time
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QCloseEvent, QColor, QFont, QKeySequence, QPalette, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from flowdeck.observe.compare import (
    ArtifactCell,
    ArtifactDiff,
    RunComparison,
    RunSide,
    StepTimes,
    compare_runs,
    compare_sides,
)
from flowdeck.store.layout import RunLayout
from flowdeck_desktop.views.theme import format_duration, palette_is_dark

#: Highlight of a differing cell (light palette, dark palette): a soft amber that keeps
#: the text readable and is not a status colour (red would read as "failed").
DIFF_COLORS = ("#ffe9a8", "#5c4a12")
DIFFERS_ROLE = Qt.ItemDataRole.UserRole + 1  # True on a row whose two sides differ
NAME, LEFT, RIGHT, CHANGE = range(4)


def diff_color(palette: QPalette) -> QColor:
    light, dark = DIFF_COLORS
    return QColor(dark if palette_is_dark(palette) else light)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def cell_text(cell: ArtifactCell | None) -> str:
    """An artifact as a cell shows it: a small scalar's value and type, anything else its
    type, size and the start of its content hash."""
    if cell is None:
        return "—"
    if cell.short is not None:
        return f"{cell.short} · {cell.type}"
    return f"{cell.type} · {_size(cell.size)} · #{cell.sha[:8]}"


def cell_tip(cell: ArtifactCell | None, task: str | None) -> str:
    if cell is None:
        return "Not in this run."
    where = f"Task {task}\n" if task else ""
    value = f"{cell.short}\n" if cell.short is not None else ""
    return f"{where}{value}{cell.type}, {cell.size:,} bytes\ncontent hash {cell.sha}"


def times_text(times: StepTimes | None) -> str:
    """A step's tasks in one run: count, how they ended, total and median duration."""
    if times is None:
        return "did not run"
    parts = [f"{times.tasks} task{'s' if times.tasks != 1 else ''}"]
    if times.failed:
        parts.append(f"{times.failed} failed")
    if times.reused:
        parts.append(f"{times.reused} reused")
    parts.append(f"total {format_duration(times.total) or '0 ms'}")
    if times.tasks > 1:
        parts.append(f"median {format_duration(times.median) or '0 ms'}")
    return " · ".join(parts)


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "—"


class _Relay(QObject):
    done = Signal(int, object)  # generation, RunComparison | str (why it failed)


class _Compare(QRunnable):
    """`compare_runs` on a pool thread: it reads every task's attempt record."""

    def __init__(self, relay: _Relay, generation: int, layout: RunLayout, left: str,
                 right: str):
        super().__init__()
        self.relay, self.generation = relay, generation
        self.layout, self.left, self.right = layout, left, right

    def run(self) -> None:
        result: RunComparison | str
        try:
            result = compare_runs(self.layout, self.left, self.right)
        except (OSError, ValueError) as exc:
            result = str(exc)
        self.relay.done.emit(self.generation, result)


class CompareView(QDialog):
    """Two runs of one flow side by side, differences highlighted (a window of its own, so
    the main window stays usable beside it; several can be open at once)."""

    loaded = Signal()

    def __init__(self, layout: RunLayout, left_id: str, right_id: str,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setSizeGripEnabled(True)
        self.layout_, self.left_id, self.right_id = layout, left_id, right_id
        self.comparison: RunComparison | None = None
        self.summary = QLabel("Reading both runs' records…")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.only_diffs = QCheckBox("Only differences")
        self.only_diffs.setToolTip("Hide the rows where both runs agree.")
        self.only_diffs.toggled.connect(self._apply_filter)
        self.swap_button = QPushButton("Swap sides")
        self.swap_button.clicked.connect(self.swap)
        self.reload_button = QPushButton("Reload")
        self.reload_button.setToolTip("Read both runs' records again (a run still going has "
                                      "more tasks by now).")
        self.reload_button.clicked.connect(self.reload)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(False)  # the highlight must be the only tint
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.tree.header()
        header.setStretchLastSection(True)
        for column in (NAME, LEFT, RIGHT):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.only_diffs)
        top.addWidget(self.swap_button)
        top.addWidget(self.reload_button)
        box = QVBoxLayout(self)
        box.addLayout(top)
        box.addWidget(self.tree)
        # The pool first: children go in creation order, so it waits for a comparison
        # under way before the relay that comparison reports through is deleted.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._generation = 0
        self.resize(1100, 680)
        # Escape closes a dialog already; Ctrl+W too, where no window manager draws a close
        # button (a tiling one, a bare X server).
        QShortcut(QKeySequence(QKeySequence.StandardKey.Close), self, self.close)
        self._set_title()
        self.reload()

    def _set_title(self) -> None:
        self.setWindowTitle(f"Compare runs of {self.layout_.flow}: {self.left_id} ↔ "
                            f"{self.right_id}")

    def reload(self) -> None:
        """Read both runs again (on a pool thread); `loaded` fires when they are shown."""
        self._generation += 1
        self._pool.start(_Compare(self._relay, self._generation, self.layout_, self.left_id,
                                  self.right_id))

    def swap(self) -> None:
        self.left_id, self.right_id = self.right_id, self.left_id
        self._set_title()
        if self.comparison is not None:
            old = self.comparison
            self.show_comparison(compare_sides(old.right, old.left))
        else:
            self.reload()

    def _on_done(self, generation: int, result: RunComparison | str) -> None:
        if generation != self._generation:
            return
        if isinstance(result, str):
            self.summary.setText(html.escape(f"Cannot compare {self.left_id} with "
                                             f"{self.right_id}: {result}"))
            self.loaded.emit()
            return
        self.show_comparison(result)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self._generation += 1
        self._pool.waitForDone()
        super().closeEvent(event)

    # -- filling the tree ------------------------------------------------------------

    def show_comparison(self, comparison: RunComparison) -> None:
        self.comparison = comparison
        self.left_id, self.right_id = comparison.left.run_id, comparison.right.run_id
        self._set_title()
        self.tree.clear()
        self.tree.setHeaderLabels(["", f"A  {self.left_id}", f"B  {self.right_id}",
                                   "Difference"])
        problems = comparison.problems
        text = f"<b>A</b> {self.left_id} and <b>B</b> {self.right_id}: {comparison.summary()}."
        if problems:
            text += html.escape(f" {len(problems)} record(s) could not be read: {problems[0]}")
            self.summary.setToolTip("\n".join(problems[:50]))
        self.summary.setText(text)
        self._run_section(comparison.left, comparison.right)
        self._param_section(comparison)
        self._step_section(comparison)
        self._artifact_section(comparison)
        self._apply_filter()
        self._fit_columns()
        self.loaded.emit()

    def _section(self, title: str, tip: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem(self.tree, [title])
        font = QFont(item.font(NAME))
        font.setBold(True)
        item.setFont(NAME, font)
        item.setToolTip(NAME, tip)
        item.setFirstColumnSpanned(True)
        item.setExpanded(True)
        return item

    def _row(self, parent: QTreeWidgetItem, name: str, left: str, right: str, differs: bool,
             change: str = "", tips: tuple[str, str] | None = None) -> QTreeWidgetItem:
        item = QTreeWidgetItem(parent, [name, left, right, change])
        item.setData(NAME, DIFFERS_ROLE, differs)
        item.setToolTip(NAME, name)
        item.setToolTip(LEFT, tips[0] if tips else left)
        item.setToolTip(RIGHT, tips[1] if tips else right)
        if change:
            item.setToolTip(CHANGE, change)
        if differs:
            color = diff_color(self.tree.palette())
            for column in (LEFT, RIGHT, CHANGE):
                item.setBackground(column, color)
        return item

    def _run_section(self, left: RunSide, right: RunSide) -> None:
        section = self._section("Run", "What each run's record says about the run itself.")
        a, b = left.record, right.record
        self._row(section, "Status", left.entry.status, right.entry.status,
                  left.entry.status != right.entry.status)
        self._row(section, "Started", _when(left.entry.start), _when(right.entry.start), False)
        dur_a = a.end - a.start if a and a.end else None
        dur_b = b.end - b.start if b and b.end else None
        change = ""
        if dur_a and dur_b:
            change = f"B {'+' if dur_b >= dur_a else '−'}{format_duration(abs(dur_b - dur_a))}"
        self._row(section, "Duration", format_duration(dur_a) or "—",
                  format_duration(dur_b) or "—", False, change)
        facts: list[tuple[str, Any, Any]] = [
            ("Engine", a.engine if a else None, b.engine if b else None),
            ("Resumed from", a.origin_run_id if a else None, b.origin_run_id if b else None),
            ("Tags", ", ".join(a.tags or []) if a else None, ", ".join(b.tags or []) if b else None),
            ("Code outside steps", a.outside_hash if a else None, b.outside_hash if b else None),
        ]
        for name, x, y in facts:
            if name == "Code outside steps":
                same = x == y or not x or not y
                self._row(section, name, "same" if same else "changed",
                          "same" if same else "changed", not same,
                          "" if same else "imports, constants or helpers changed",
                          (f"hash {x or 'unknown'}", f"hash {y or 'unknown'}"))
                continue
            self._row(section, name, x or "—", y or "—", (x or "") != (y or ""))

    def _param_section(self, comparison: RunComparison) -> None:
        section = self._section("Parameters", "The values each run was given.")
        for param in comparison.params:
            left = "—" if param.left is None else param.left
            right = "—" if param.right is None else param.right
            change = ""
            if param.left is None or param.right is None:
                change = "only in " + ("B" if param.left is None else "A")
            elif param.differs:
                change = "differs"
            self._row(section, param.name, left, right, param.differs, change)
        if not comparison.params:
            QTreeWidgetItem(section, ["No parameters"])

    def _step_section(self, comparison: RunComparison) -> None:
        section = self._section("Steps", "Tasks per step and their total and median duration "
                                "(from the attempt records). Durations never count as a "
                                "difference; task counts, failures and changed code do.")
        for step in comparison.steps:
            notes = []
            if step.change is not None:
                notes.append(f"B {step.change:+.0%} time".replace("-", "−"))
            if step.code_changed:
                notes.append("code changed")
            if step.counts_differ and step.left is not None and step.right is not None:
                notes.append("task counts differ")
            self._row(section, step.step, times_text(step.left), times_text(step.right),
                      step.differs, ", ".join(notes))

    def _artifact_section(self, comparison: RunComparison) -> None:
        section = self._section("Artifacts", "Per step, each artifact's type, size and content "
                                "hash; equal hashes are equal values. Parameters, listed "
                                "above, are not repeated here.")
        by_step: dict[str, QTreeWidgetItem] = {}
        for artifact in comparison.artifacts:
            parent = by_step.get(artifact.step)
            if parent is None:
                parent = QTreeWidgetItem(section, [artifact.step])
                parent.setFirstColumnSpanned(True)
                parent.setExpanded(True)
                by_step[artifact.step] = parent
            self._artifact_row(parent, artifact)

    def _artifact_row(self, parent: QTreeWidgetItem, artifact: ArtifactDiff) -> None:
        if artifact.single:
            task = artifact.tasks[0]
            self._row(parent, artifact.name, cell_text(task.left), cell_text(task.right),
                      task.differs, task.change, (cell_tip(task.left, task.left_task),
                                                  cell_tip(task.right, task.right_task)))
            return
        left = [t.left for t in artifact.tasks if t.left is not None]
        right = [t.right for t in artifact.tasks if t.right is not None]
        item = self._row(parent, artifact.name, _aggregate(left), _aggregate(right),
                         artifact.differs, artifact.change)
        for task in artifact.tasks:
            self._row(item, task.place or "task", cell_text(task.left), cell_text(task.right),
                      task.differs, task.change,
                      (cell_tip(task.left, task.left_task), cell_tip(task.right, task.right_task)))

    def _apply_filter(self) -> None:
        only = self.only_diffs.isChecked()

        def visit(item: QTreeWidgetItem) -> bool:
            """Hide the rows that agree (with `only`); True if anything under it shows."""
            shown_children = [visit(c) for c in _children(item)]
            differs = bool(item.data(NAME, DIFFERS_ROLE))
            shown = not only or differs or any(shown_children)
            item.setHidden(not shown)
            return shown

        for top in _children(self.tree.invisibleRootItem()):
            shown = [visit(c) for c in _children(top)]
            top.setHidden(only and not any(shown))

    def _fit_columns(self) -> None:
        """Name column to its contents; A and B share the rest, capped so Difference shows."""
        self.tree.resizeColumnToContents(NAME)
        self.tree.resizeColumnToContents(LEFT)
        self.tree.resizeColumnToContents(RIGHT)
        room = max(200, self.tree.viewport().width() - self.tree.columnWidth(NAME) - 180)
        for column in (LEFT, RIGHT):
            self.tree.setColumnWidth(column, min(self.tree.columnWidth(column) + 12, room // 2))

    def items(self) -> list[QTreeWidgetItem]:
        """Every row under the sections (for tests and for "copy")."""
        out: list[QTreeWidgetItem] = []

        def walk(item: QTreeWidgetItem) -> None:
            for child in _children(item):
                out.append(child)
                walk(child)

        for top in _children(self.tree.invisibleRootItem()):
            walk(top)
        return out


def _children(item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    return [c for c in (item.child(i) for i in range(item.childCount())) if c is not None]


def _aggregate(cells: list[ArtifactCell]) -> str:
    """Many tasks' values of one artifact in one run: how many, their type(s), how many
    distinct values (by hash)."""
    if not cells:
        return "—"
    types = sorted({c.type for c in cells})
    distinct = len({c.sha for c in cells})
    return (f"{len(cells)} tasks · {', '.join(types)} · {distinct} distinct value"
            f"{'s' if distinct != 1 else ''}")
