"""The flow list's model: watched folders -> files -> flows, with diagnostics in place.

Fed by discovery snapshots and diffs (built from the files' AST, never by
importing them). Rows are updated in place, keyed by path and flow key, so
a save that changes one flow touches one row and the selection survives.
Each diff carries the snapshot it was made from; the model reads that, never
the live catalog, whose lock the watcher's thread holds while it scans.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from PySide6.QtCore import QModelIndex, QObject, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel

from flowdeck.analysis.diagnostics import Diagnostic
from flowdeck.discovery.catalog import CatalogDiff, CatalogEntry, CatalogSnapshot, FileProblem
from flowdeck.store.status import CANCELLED, RUNNING, SUCCEEDED

#: Between a flow row's name, engine and step count (the list's delegate drops the last
#: parts first when the row is narrow).
FLOW_ROW_SEPARATOR = "  ·  "
KIND_ROLE = Qt.ItemDataRole.UserRole + 1  # "folder" | "file" | "flow" | "diagnostic"
KEY_ROLE = Qt.ItemDataRole.UserRole + 2  # folder path, file path or flow key
STATUS_ROLE = Qt.ItemDataRole.UserRole + 3  # a key of BADGES
LINE_ROLE = Qt.ItemDataRole.UserRole + 4
FILE_ROLE = Qt.ItemDataRole.UserRole + 5
SEVERITY_ROLE = Qt.ItemDataRole.UserRole + 6  # a diagnostic's "error" | "warning" (views colour it)
#: A top-level row's watched roots: [the folder], or the files opened on their own that it
#: lists (files of one folder share its row; its KEY_ROLE is then the folder).
ROOTS_ROLE = Qt.ItemDataRole.UserRole + 7

#: The flow list's own words for a flow row's state; the outcome of its last run is marked
#: with that run's status word (flowdeck.store.status), but for a failed or crashed one.
READY = "ready"
HAS_ERRORS = "has errors"
LAST_RUN_FAILED = "last run failed"
BASE_CLASS = "base class"
#: A flow row's mark by its state: a stopped run's (cancelled) is not a never-run flow's.
BADGES = {READY: "●", HAS_ERRORS: "⚠", LAST_RUN_FAILED: "✖", RUNNING: "▶", SUCCEEDED: "✔",
          CANCELLED: "⊘", BASE_CLASS: "◇"}


class CatalogModel(QStandardItemModel):
    """Tree of the catalog; `set_run_status` overlays run outcomes on flow rows."""

    flow_removed = Signal(str)
    #: A flow's row is about to go (before the view moves its current row elsewhere).
    flow_removing = Signal(str)
    #: A flow listed anew (a file added, renamed or moved here): its key.
    flow_added = Signal(str)
    #: A listed flow's entry changed (its file was saved): its key.
    flow_changed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setHorizontalHeaderLabels(["Flows"])
        self._folders: dict[str, QStandardItem] = {}  # by root: the top-level row listing it
        #: By folder: the top-level row of its files opened on their own (not the folder).
        self._file_rows: dict[str, QStandardItem] = {}
        self._files: dict[str, QStandardItem] = {}
        self._flows: dict[str, QStandardItem] = {}
        self._entries: dict[str, CatalogEntry] = {}
        self._run_status: dict[str, str] = {}
        self._problems: dict[str, FileProblem] = {}  # by file: why it could not be read
        self.changes = 0  # rows touched; tests use it to prove updates are minimal

    # -- feeding ---------------------------------------------------------------

    def set_roots(self, roots: Iterable[str]) -> None:
        for root in roots:
            self._folder_item(root)

    def apply_snapshot(self, snapshot: CatalogSnapshot) -> None:
        """Make the model match a snapshot, touching only rows that differ."""
        self._sync_roots(snapshot)
        wanted = {e.key: e for e in snapshot.entries}
        for key in [k for k in self._flows if k not in wanted]:
            self._remove_flow(key)
        for entry in snapshot.entries:
            if self._entries.get(entry.key) != entry:
                self._put_flow(entry)
        self._sync_problems(snapshot)

    def apply_diff(self, diff: CatalogDiff, snapshot: CatalogSnapshot | None = None) -> None:
        """Touch only what a diff changed; a root's first scan is a diff like any other.

        `snapshot` defaults to the one the diff carries (consulted for file
        problems and for the list of roots).
        """
        snapshot = snapshot if snapshot is not None else diff.snapshot
        for entry in diff.removed:
            if entry.key in self._flows:
                self._remove_flow(entry.key)
        if snapshot is not None and (diff.roots_changed or diff.roots_removed):
            self._sync_roots(snapshot)
        for entry in diff.added + diff.changed:
            self._put_flow(entry)
        if snapshot is not None and (diff.problems_changed or diff.added or diff.removed
                                     or diff.roots_changed):
            self._sync_problems(snapshot)

    def entry(self, key: str) -> CatalogEntry | None:
        return self._entries.get(key)

    def entries(self) -> list[CatalogEntry]:
        return list(self._entries.values())

    def problem(self, path: str) -> FileProblem | None:
        """Why a listed file could not be read as Python (syntax error, encoding), if so."""
        return self._problems.get(path)

    def index_of(self, key: str) -> QModelIndex:
        item = self._flows.get(key)
        return item.index() if item is not None else QModelIndex()

    def set_run_status(self, key: str, status: str | None) -> None:
        """Overlay a run outcome (a key of BADGES: running, cancelled...) on a flow row."""
        if status is None:
            self._run_status.pop(key, None)
        else:
            self._run_status[key] = status
        item = self._flows.get(key)
        if item is not None and key in self._entries:
            self._decorate_flow(item, self._entries[key])

    # -- folders and files ---------------------------------------------------------

    def _folder_item(self, root: str) -> QStandardItem:
        """The top-level row of a root: a folder's own, or, for a file opened on its own,
        the one row of its folder's files opened so (its row below names the file)."""
        item = self._folders.get(root)
        if item is None:
            if os.path.isfile(root):
                folder = os.path.dirname(root)
                item = self._file_rows.get(folder) or self._top_row(folder)
                self._file_rows[folder] = item
            else:
                item = self._top_row(root)
            self._folders[root] = item
            self._describe_top_row(item)
        return item

    def _top_row(self, path: str) -> QStandardItem:
        item = _item(path, "folder", path)
        self.appendRow(item)
        return item

    def _describe_top_row(self, item: QStandardItem) -> None:
        """The roots a top-level row lists now, and its tooltip, which names them."""
        folder = item.data(KEY_ROLE)
        roots = [root for root, row in self._folders.items() if row is item]
        item.setData(roots, ROOTS_ROLE)
        if self._file_rows.get(folder) is not item:
            item.setToolTip(folder)
            return
        names = ", ".join(sorted(os.path.basename(r) for r in roots))
        item.setToolTip(f"{folder}\nOnly this file is watched, not the rest of its folder: "
                        f"{names}" if len(roots) == 1 else
                        f"{folder}\nOnly these files are watched, not the rest of their "
                        f"folder: {names}")

    def _sync_roots(self, snapshot: CatalogSnapshot) -> None:
        """One top-level row per root; a root that went loses its row.

        Flows under a removed root that another root still lists (a file
        whose folder is now watched) are put back under that root.
        """
        self.set_roots(snapshot.roots)
        for root in [r for r in self._folders if r not in snapshot.roots]:
            self._remove_root_row(root, snapshot)

    def _remove_root_row(self, root: str, snapshot: CatalogSnapshot) -> None:
        """Take a root's rows away: its top-level row, or only its file's row when that
        top-level row lists other files still."""
        item = self._folders.pop(root)
        files = [p for p, f in self._files.items() if _top(f) is item and _under(p, root)]
        still = {e.key: e for e in snapshot.entries if e.file in files}
        for key in [k for k, e in self._entries.items() if e.file in files]:
            self._forget_flow(key, quiet=key in still)
        shared = any(row is item for row in self._folders.values())
        for path in files:
            if shared:
                item.removeRow(self._files[path].row())
            del self._files[path]
        if shared:
            self._describe_top_row(item)
        else:
            if self._file_rows.get(item.data(KEY_ROLE)) is item:
                del self._file_rows[item.data(KEY_ROLE)]
            self.removeRow(item.row())
        for entry in still.values():
            self._put_flow(entry)

    def _root_for(self, path: str) -> str:
        best = ""
        for root in self._folders:
            if _under(path, root) and len(root) > len(best):
                best = root
        return best or os.path.dirname(path)

    def _file_item(self, path: str) -> QStandardItem:
        item = self._files.get(path)
        if item is None:
            root = self._root_for(path)
            folder = self._folder_item(root)
            rel = os.path.relpath(path, root) if os.path.isdir(root) else os.path.basename(path)
            item = _item(rel, "file", path)
            item.setData(path, FILE_ROLE)
            item.setToolTip(path)
            folder.appendRow(item)
            self._files[path] = item
        return item

    def _drop_file_if_empty(self, path: str) -> None:
        item = self._files.get(path)
        if item is not None and item.rowCount() == 0:
            parent = item.parent() or self.invisibleRootItem()
            parent.removeRow(item.row())
            del self._files[path]

    # -- flows ---------------------------------------------------------------------

    def _put_flow(self, entry: CatalogEntry) -> None:
        self.changes += 1
        item = self._flows.get(entry.key)
        if item is None:
            file_item = self._file_item(entry.file)
            item = _item(entry.name, "flow", entry.key)
            item.setData(entry.file, FILE_ROLE)
            item.setData(entry.line, LINE_ROLE)
            file_item.appendRow(item)
            self._flows[entry.key] = item
            added = True
        else:
            added = False
        previous = self._entries.get(entry.key)
        self._entries[entry.key] = entry
        self._decorate_flow(item, entry)
        _set_diagnostic_children(item, [] if entry.is_base else entry.diagnostics)
        if previous is not None and previous != entry:
            self.flow_changed.emit(entry.key)
        if added:
            self.flow_added.emit(entry.key)

    def _decorate_flow(self, item: QStandardItem, entry: CatalogEntry) -> None:
        status = self._run_status.get(entry.key) or (READY if entry.ok else HAS_ERRORS)
        if entry.is_base:
            status = BASE_CLASS
        elif not entry.ok:
            status = HAS_ERRORS
        engine = "Metaflow" if entry.engine == "metaflow" else "Flowdeck"
        text = FLOW_ROW_SEPARATOR.join((f"{BADGES.get(status, '')} {entry.name}", engine,
                                        f"{len(entry.steps)} steps"))
        if item.text() != text:
            item.setText(text)
        item.setData(status, STATUS_ROLE)
        item.setData(entry.line, LINE_ROLE)
        doc = entry.flow.doc or "(no docstring)"
        if entry.is_base:
            doc = (f"The base class of {', '.join(entry.base_of)}, which its file does not "
                   f"run: run a flow that inherits from it.\n{doc}")
        item.setToolTip(f"{entry.name} ({engine}) — {status}\n{entry.file}:{entry.line}\n{doc}")

    def _remove_flow(self, key: str) -> None:
        self.changes += 1
        self.flow_removing.emit(key)
        item = self._flows.pop(key)
        entry = self._entries.pop(key, None)
        parent = item.parent() or self.invisibleRootItem()
        parent.removeRow(item.row())
        if entry is not None:
            self._drop_file_if_empty(entry.file)
        self.flow_removed.emit(key)

    def _forget_flow(self, key: str, quiet: bool) -> None:
        """Drop a flow's bookkeeping (its row goes with its root's); `quiet`: it comes back."""
        self._flows.pop(key, None)
        self._entries.pop(key, None)
        if not quiet:
            self.changes += 1
            self.flow_removed.emit(key)

    def _sync_problems(self, snapshot: CatalogSnapshot) -> None:
        """Files that cannot be parsed at all show their diagnostics under the file row."""
        problem_paths = {p.path for p in snapshot.problems}
        self._problems = {p.path: p for p in snapshot.problems}
        flow_files = {e.file for e in snapshot.entries}
        for problem in snapshot.problems:
            if problem.path in flow_files:
                continue  # a stale flow row already carries the diagnostics
            item = self._file_item(problem.path)
            _set_diagnostic_children(item, list(problem.diagnostics))
        listed = {e.file for e in self._entries.values()}
        for path in list(self._files):
            if path not in problem_paths and path not in listed:
                item = self._files[path]
                item.removeRows(0, item.rowCount())
                self._drop_file_if_empty(path)


def _under(path: str, root: str) -> bool:
    """Whether a root lists `path`: the root itself (a file) or a path inside it."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _top(item: QStandardItem) -> QStandardItem:
    """The top-level (root) row an item sits under."""
    while item.parent() is not None:
        item = item.parent()
    return item


def _item(text: str, kind: str, key: str) -> QStandardItem:
    item = QStandardItem(text)
    item.setEditable(False)
    item.setData(kind, KIND_ROLE)
    item.setData(key, KEY_ROLE)
    return item


def _set_diagnostic_children(item: QStandardItem, diagnostics: list[Diagnostic]) -> None:
    """Rows under a flow or file, one per diagnostic: 'line N: message'."""
    wanted = [f"line {d.line}: {d.message}" for d in diagnostics]
    current = [item.child(i).text() for i in range(item.rowCount())
               if item.child(i).data(KIND_ROLE) == "diagnostic"]
    if current == wanted:
        return
    for i in reversed(range(item.rowCount())):
        if item.child(i).data(KIND_ROLE) == "diagnostic":
            item.removeRow(i)
    for d, text in zip(diagnostics, wanted):
        child = _item(text, "diagnostic", d.file)
        child.setData(d.line, LINE_ROLE)
        child.setData(d.file, FILE_ROLE)
        child.setToolTip(d.format())
        child.setData(d.severity, SEVERITY_ROLE)
        item.appendRow(child)


class CatalogFilter(QSortFilterProxyModel):
    """The filter box: keeps a row when it, an ancestor or a descendant matches."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setRecursiveFilteringEnabled(True)
        self.setAutoAcceptChildRows(True)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
