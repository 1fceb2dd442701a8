"""The bottom and side panes that are tables or text: history, artifacts, error.

Artifacts are described by a helper process running the flow's own
interpreter (`python -m flowdeck.engines.inspect_task`), so the window never
unpickles user data; history reads only `run.json` files.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QProcess, QProcessEnvironment, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from flowdeck.engines.launching import child_env, inspect_argv
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout
from flowdeck.store.records import RunRecord
from flowdeck_desktop.control.run_process import core_path


@dataclass(frozen=True)
class RunSummary:
    """One past run as the history table shows it (a damaged one has no record)."""

    run_id: str
    status: str
    start: float
    duration: float | None
    params: dict[str, Any]
    origin_run_id: str | None
    events_path: str
    record: RunRecord | None = None
    damage: str | None = None


def list_runs(layout: RunLayout, limit: int = 200) -> list[RunSummary]:
    """Past runs of a flow, newest first, from their records alone (nothing unpickled)."""
    found = []
    for entry in RunIndex(layout).runs(limit):
        record = entry.record
        duration = (record.end - record.start) if record and record.end else None
        found.append(RunSummary(entry.run_id, entry.status, entry.start, duration,
                                record.param_values if record else {},
                                record.origin_run_id if record else None,
                                str(layout.events(entry.run_id)), record, entry.damage))
    return found


def _read_only_table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setStretchLastSection(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table


class HistoryPane(QWidget):
    """Past runs of the selected flow; select one to view it, or rerun it."""

    run_selected = Signal(object)  # RunSummary
    rerun_requested = Signal(object)  # RunSummary

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.table = _read_only_table(["Status", "Run", "Started", "Duration", "Parameters"])
        self.rerun = QPushButton("Rerun with these parameters")
        self.rerun.setEnabled(False)
        self._runs: list[RunSummary] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.rerun)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.rerun.clicked.connect(lambda: self.selected() and
                                   self.rerun_requested.emit(self.selected()))

    def set_runs(self, runs: list[RunSummary]) -> None:
        if runs == self._runs:
            return
        selected = self.selected()
        self._runs = runs
        self.table.blockSignals(True)
        self.table.setRowCount(len(runs))
        for row, run in enumerate(runs):
            cells = [run.status, run.run_id, time.strftime("%Y-%m-%d %H:%M:%S",
                                                           time.localtime(run.start)),
                     f"{run.duration:.2f} s" if run.duration is not None else "—",
                     ", ".join(f"{k}={v}" for k, v in run.params.items())]
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
            if selected and run.run_id == selected.run_id:
                self.table.selectRow(row)
        self.table.blockSignals(False)

    def selected(self) -> RunSummary | None:
        rows = self.table.selectionModel().selectedRows()
        return self._runs[rows[0].row()] if rows and rows[0].row() < len(self._runs) else None

    def _on_selection(self) -> None:
        run = self.selected()
        self.rerun.setEnabled(run is not None)
        if run is not None:
            self.run_selected.emit(run)


class ArtifactsPane(QWidget):
    """Artifacts of one task, described by a helper process of the flow's interpreter."""

    loaded = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = QLabel("Select a step in the graph to see its artifacts.")
        self.table = _read_only_table(["Name", "Type", "Size", "Preview"])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.table)
        self._proc: QProcess | None = None
        self.rows: list[dict[str, Any]] = []

    def show_task(self, interpreter: str, root: str, flow: str, run_id: str, step: str,
                  task_id: str, add_core: bool) -> None:
        """Ask the helper process for the task's artifacts; the table fills when it answers."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.deleteLater()
        self.title.setText(f"Artifacts of {flow}/{run_id}/{step}/{task_id} (loading…)")
        self.table.setRowCount(0)
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        for key, value in child_env(core_path() if add_core else None).items():
            env.insert(key, value)
        proc.setProcessEnvironment(env)
        proc.finished.connect(lambda code, _status, p=proc,
                              t=f"{flow}/{run_id}/{step}/{task_id}": self._on_done(p, code, t))
        program, *args = inspect_argv(interpreter, root, flow, run_id, step, task_id)
        proc.start(program, args)
        self._proc = proc

    def _on_done(self, proc: QProcess, code: int, title: str) -> None:
        if proc is not self._proc:
            return
        out = bytes(proc.readAllStandardOutput()).decode("utf-8", "replace")
        err = bytes(proc.readAllStandardError()).decode("utf-8", "replace")
        try:
            data = json.loads(out) if code == 0 else {"artifacts": [], "error": err.strip()}
        except ValueError:
            data = {"artifacts": [], "error": f"unreadable answer from the helper: {out[:200]}"}
        self.rows = list(data.get("artifacts") or [])
        error = data.get("error")
        self.title.setText(f"Artifacts of {title}" + (f" — {error}" if error else ""))
        self.table.setRowCount(len(self.rows))
        for row, art in enumerate(self.rows):
            preview = art.get("preview", "")
            if art.get("shape") is not None:
                preview = f"shape {tuple(art['shape'])} {art.get('dtype', '')}  {preview}"
            for col, text in enumerate([art["name"], art.get("type", ""),
                                        _size(art.get("size", 0)), preview]):
                item = QTableWidgetItem(str(text))
                item.setToolTip(str(art.get("preview", "")))
                self.table.setItem(row, col, item)
        self.loaded.emit()


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')


class ErrorPane(QWidget):
    """The failed task's traceback, with a button that opens the failing line."""

    open_requested = Signal(str, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = QLabel("No failure.")
        self.summary.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.open_button = QPushButton("Open the failing line")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self._open)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.text)
        self.location: tuple[str, int] | None = None

    def show_error(self, step: str, task_id: str, error: dict[str, Any] | None,
                   flow_file: str) -> None:
        if not error:
            self.clear()
            return
        self.summary.setText(f"Step {step} (task {task_id}) failed: {error.get('type')}: "
                             f"{error.get('message')}")
        trace = error.get("traceback") or ""
        self.text.setPlainText(trace or error.get("message", ""))
        self.location = failing_line(trace, flow_file)
        self.open_button.setEnabled(self.location is not None)

    def clear(self) -> None:
        self.summary.setText("No failure.")
        self.text.clear()
        self.location = None
        self.open_button.setEnabled(False)

    def _open(self) -> None:
        if self.location:
            self.open_requested.emit(*self.location)


def failing_line(traceback_text: str, flow_file: str) -> tuple[str, int] | None:
    """The deepest frame in the flow's own file, else the deepest frame at all."""
    frames = [(m.group("file"), int(m.group("line"))) for m in _FRAME.finditer(traceback_text)]
    own = [f for f in frames if os.path.abspath(f[0]) == os.path.abspath(flow_file)]
    if own:
        return own[-1]
    return frames[-1] if frames else None

