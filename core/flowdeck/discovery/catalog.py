"""Flow discovery: a catalog of every flow class below some folders, built statically.

The catalog is what the window's flow list stands on. It never imports or
executes a user's file: each `.py` file is read as bytes and handed to
`flowdeck.analysis.flowfile`, which works from the AST alone.

It is incremental. Each file's analysis is cached under the file's stat key
(size, mtime, inode, ctime); a file whose key is unchanged is not read again,
and a file whose key changed but whose bytes hash the same (a save without an
edit) is not analysed again and is not reported as a change. Every scan hands
back an immutable `CatalogSnapshot` and a `CatalogDiff` (flows added, changed,
removed) relative to the previous scan; the diff carries that snapshot too.

Roots can be added and removed one at a time (`add_root`, `remove_root`):
adding a root scans that root only, and its first scan comes back as a diff
like any other (`CatalogDiff.roots_added` names it).

Threading: a `FlowCatalog` is driven by one thread at a time (the watcher's
loop, or the command line), which holds the catalog's lock for a whole scan.
`snapshot` may be read from any thread without waiting for that lock: it is an
immutable object swapped in whole when a scan ends.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import field, replace
from pathlib import Path
from typing import Any

from flowdeck.analysis.diagnostics import Diagnostic, has_errors, not_regular_file
from flowdeck.analysis.flowfile import (
    FileAnalysis,
    FlowInfo,
    analyze_source,
    decode_source,
    module_candidates,
)
from flowdeck.compiled_dataclasses import dataclass

log = logging.getLogger(__name__)

#: Files above this size are not flow sources a person edits; they are skipped.
MAX_FILE_BYTES = 2 * 1024 * 1024

#: Folders that never hold a user's flow sources.
SKIPPED_DIR_NAMES = frozenset({
    ".flowdeck", ".metaflow", "__pycache__", ".git", ".hg", ".svn", "node_modules",
    ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
})

#: A folder holding this file is a virtual environment (PEP 405).
VENV_MARKER = "pyvenv.cfg"

#: A file modified this close to (or after) the moment it was read may have
#: changed again within the same mtime tick; its bytes are re-hashed next time.
_RACY_WINDOW_NS = 2_000_000_000

_KEY_SEPARATOR = "::"


# -- skip rules ------------------------------------------------------------

def is_editor_dropping(name: str) -> bool:
    """True for temporary, lock and backup files that editors leave beside a source.

    Emacs lock links `.#x.py`, backups `x.py~`, vim swap files `.x.py.swp` and
    its `4913` write test, JetBrains safe-write `x.py___jb_tmp___` and
    `x.py___jb_old___`, GNOME's `.goutputstream-XXXX`, Sublime's `.subl*.tmp`.
    """
    if name.startswith((".#", ".goutputstream-")) or name == "4913":
        return True
    if name.endswith(("~", "___jb_tmp___", "___jb_old___", ".swp", ".swo", ".swx")):
        return True
    return name.startswith(".subl") and name.endswith(".tmp")


def is_skipped_dir_name(name: str) -> bool:
    """Folders a user would not call flow sources: tool state, caches, hidden folders."""
    return name in SKIPPED_DIR_NAMES or name.startswith(".")


def is_source_name(name: str) -> bool:
    """A file name that may hold flows when found inside a scanned folder."""
    return (name.endswith(".py") and not name.startswith(".")
            and not is_editor_dropping(name))


# -- data crossing the boundary --------------------------------------------

def entry_key(file: str, flow_name: str) -> str:
    """Stable identity of a flow in the catalog: its file and its class name."""
    return f"{file}{_KEY_SEPARATOR}{flow_name}"


def key_file(key: str) -> str:
    """The file of an `entry_key` (what is left of a flow once its entry is gone)."""
    return key.rsplit(_KEY_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class CatalogEntry:
    """One flow class found in one file.

    `stale` is True when the file no longer parses (say, a syntax error in the
    middle of an edit): the entry keeps the flow's last known steps, so the
    window does not drop and re-add the row while a person types, and carries
    the file's current diagnostics, so its status is an error.
    """

    key: str
    flow: FlowInfo
    stale: bool = False
    #: The flows (by name) that inherit from this class, in any catalogued file.
    base_of: tuple[str, ...] = ()

    @property
    def file(self) -> str:
        return self.flow.file

    @property
    def name(self) -> str:
        return self.flow.name

    @property
    def line(self) -> int:
        return self.flow.line

    @property
    def engine(self) -> str:
        return self.flow.engine

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.flow.diagnostics

    @property
    def steps(self) -> list[str]:
        """Step names in graph order (start first)."""
        graph = self.flow.graph
        return list(graph.sorted_nodes) + [n for n in graph.nodes if n not in graph.sorted_nodes]

    @property
    def ok(self) -> bool:
        return not self.stale and not has_errors(self.flow.diagnostics)

    @property
    def is_base(self) -> bool:
        """Other flows inherit from this class and its file does not start it: a base
        class, not a flow to run. What its lint finds (a step only its subclasses define)
        is not an error here; the subclasses' own analysis covers these steps."""
        return bool(self.base_of) and self.flow.start_problem is not None and not self.stale

    @property
    def status(self) -> str:
        return "base" if self.is_base else "ok" if self.ok else "error"

    def as_dict(self) -> dict[str, Any]:
        data = self.flow.as_dict()
        data["key"] = self.key
        data["stale"] = self.stale
        data["status"] = self.status
        data["base_of"] = list(self.base_of)
        return data

    def signature(self) -> str:
        """Everything a view shows about this flow, as one comparable string."""
        return json.dumps(self.as_dict(), sort_keys=True, default=repr)


@dataclass(frozen=True)
class SkippedFile:
    """A path the scanner met but did not analyse, and why (shown to the user)."""

    path: str
    code: str  # too-large | not-regular | unreadable | dangling-symlink | symlink-loop | already-scanned
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "code": self.code, "reason": self.reason}


@dataclass(frozen=True)
class FileProblem:
    """A flow source that could not be read as Python: syntax error, NUL byte, encoding."""

    path: str
    diagnostics: tuple[Diagnostic, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "diagnostics": [d.as_dict() for d in self.diagnostics]}


@dataclass(frozen=True)
class CatalogSnapshot:
    """The catalog at one moment: immutable, safe to hand to another thread."""

    roots: tuple[str, ...]
    entries: tuple[CatalogEntry, ...] = ()
    problems: tuple[FileProblem, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    missing_roots: tuple[str, ...] = ()
    files_seen: int = 0

    def entry(self, key: str) -> CatalogEntry | None:
        return next((e for e in self.entries if e.key == key), None)

    def flows_in(self, path: str | Path) -> list[CatalogEntry]:
        wanted = os.path.abspath(path)
        return [e for e in self.entries if e.file == wanted]

    def problem(self, path: str | Path) -> FileProblem | None:
        wanted = os.path.abspath(path)
        return next((p for p in self.problems if p.path == wanted), None)

    def skip_reason(self, path: str | Path) -> SkippedFile | None:
        wanted = os.path.abspath(path)
        return next((s for s in self.skipped if s.path == wanted), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "roots": list(self.roots),
            "flows": [e.as_dict() for e in self.entries],
            "problems": [p.as_dict() for p in self.problems],
            "skipped": [s.as_dict() for s in self.skipped],
            "missing_roots": list(self.missing_roots),
            "files_seen": self.files_seen,
        }


@dataclass(frozen=True)
class CatalogDiff:
    """What changed between two snapshots; empty when a save changed nothing.

    `removed` holds the entries as they were before removal, so a view can
    find its row. `problems_changed` / `skipped_changed` tell a view to re-read
    those lists from the snapshot; `paths` are the files this diff came from.
    `roots_added` are roots whose first scan this diff carries (a root with no
    flows still makes the diff non-empty, so a listener learns it was scanned);
    `roots_removed` are roots that are no longer watched. `roots_changed` is set
    when roots were added or removed or one went missing or came back.

    `snapshot` is the catalog as it was when this diff was made, captured by
    the thread that made it: a listener on another thread (the window) reads
    it instead of asking the catalog, which may be busy scanning another root.
    """

    added: tuple[CatalogEntry, ...] = ()
    changed: tuple[CatalogEntry, ...] = ()
    removed: tuple[CatalogEntry, ...] = ()
    problems_changed: bool = False
    skipped_changed: bool = False
    roots_changed: bool = False
    paths: tuple[str, ...] = ()
    seconds: float = 0.0
    roots_added: tuple[str, ...] = ()
    roots_removed: tuple[str, ...] = ()
    snapshot: CatalogSnapshot | None = field(default=None, compare=False, repr=False)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed or self.problems_changed
                    or self.skipped_changed or self.roots_changed)

    def __bool__(self) -> bool:
        return not self.empty

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": [e.as_dict() for e in self.added],
            "changed": [e.as_dict() for e in self.changed],
            "removed": [e.key for e in self.removed],
            "problems_changed": self.problems_changed,
            "skipped_changed": self.skipped_changed,
            "roots_changed": self.roots_changed,
            "roots_added": list(self.roots_added),
            "roots_removed": list(self.roots_removed),
            "paths": list(self.paths),
            "seconds": self.seconds,
        }


# -- the catalog -------------------------------------------------------------

@dataclass
class _FileRecord:
    """Cache of one analysed file: its stat key, its hash and what it yielded."""

    stat_key: tuple[int, ...]
    mtime_ns: int
    read_ns: int
    digest: str
    entries: tuple[CatalogEntry, ...] = ()
    problem: FileProblem | None = None
    depends_on: tuple[str, ...] = ()  # modules read for its flows' base classes
    #: Each of those modules' stat key when the file was analysed (None: it did not exist)
    depends_keys: tuple[tuple[int, ...] | None, ...] = ()

    def dependency_changed(self) -> bool:
        """A module its flows' bases come from changed (or appeared, or went) since."""
        return _looked_changed(self.depends_on, self.depends_keys)

    def is_racy(self) -> bool:
        """The file may have changed within the mtime tick it was read in."""
        return self.mtime_ns >= self.read_ns - _RACY_WINDOW_NS


class _Vanished(Exception):
    """The file disappeared between listing and reading; it is simply gone."""


@dataclass
class _Changes:
    """State of the touched keys before a scan, to compute the diff after it."""

    before: dict[str, CatalogEntry | None] = field(default_factory=dict)
    paths: set[str] = field(default_factory=set)

    def touch(self, key: str, current: CatalogEntry | None) -> None:
        self.before.setdefault(key, current)


@dataclass(frozen=True)
class _Before:
    """The catalog's side state before an operation, to tell what the operation changed."""

    started: float
    problems: dict[str, FileProblem]
    skipped: dict[str, SkippedFile]
    missing: frozenset[str]
    roots: tuple[str, ...]
    listed: frozenset[str]


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_ctime_ns)


def _stat_key_of(path: str) -> tuple[int, ...] | None:
    """The file's stat key, or None when it is not there (or cannot be stat'ed)."""
    try:
        return _stat_key(os.stat(path))
    except OSError:
        return None


def _stat_keys(paths: tuple[str, ...]) -> tuple[tuple[int, ...] | None, ...]:
    """The stat keys of these files (None for one that is not there)."""
    return tuple(_stat_key_of(path) for path in paths)


def _looked_changed(looked: tuple[str, ...], keys: tuple[tuple[int, ...] | None, ...]) -> bool:
    """Whether a file an answer was drawn from (`looked`, with each one's stat key then)
    changed, appeared or went since: the one test of a catalog record's `depends_on` and of
    a prefilter verdict kept in `_MODULE_SKIPS`."""
    return bool(looked) and _stat_keys(looked) != keys


class FlowCatalog:
    """Every flow below a set of folders and files, kept up to date incrementally.

    Roots may be folders (walked recursively, with the skip rules) or single
    files (analysed whatever their name). `scan()` looks at everything;
    `refresh(paths)` only at the given files and folders, which is what the
    watcher calls after a quiet period.

    `prefilter`: a file that never says `FlowSpec` and has no class whose bases name a
    class imported from a module beside it cannot define a flow (`_prefilter_skips`), so
    it is not parsed at all; it is analysed again when such a module appears.
    A file whose flows inherit from a module beside it is analysed again when that
    module changes.
    `before_read` is called with each path just before it is opened; tests use
    it to race the scanner with real filesystem changes.
    """

    def __init__(self, roots: Iterable[str | Path], *, max_bytes: int = MAX_FILE_BYTES,
                 prefilter: bool = True,
                 before_read: Callable[[str], None] | None = None) -> None:
        self.roots: tuple[str, ...] = tuple(dict.fromkeys(os.path.abspath(r) for r in roots))
        self.max_bytes = max_bytes
        self.prefilter = prefilter
        self._before_read = before_read
        self._records: dict[str, _FileRecord] = {}
        self._entries: dict[str, CatalogEntry] = {}
        self._skipped: dict[str, SkippedFile] = {}
        self._dirs: dict[tuple[int, int], str] = {}
        self._venvs: set[str] = set()
        self._missing: set[str] = set()
        self._listed: set[str] = set()  # roots scanned at least once (see roots_added)
        self._lock = threading.RLock()
        self._snapshot = CatalogSnapshot(self.roots)

    # -- public API ----------------------------------------------------------

    @property
    def snapshot(self) -> CatalogSnapshot:
        """The latest snapshot; never waits for a scan in progress (it is swapped in whole)."""
        return self._snapshot

    def scan(self) -> tuple[CatalogSnapshot, CatalogDiff]:
        """Look at every root again; unchanged files cost one stat each."""
        with self._lock:
            changes = _Changes()
            before = self._before()
            self._dirs.clear()
            self._venvs.clear()
            skipped: dict[str, SkippedFile] = {}
            files: list[tuple[str, bool]] = []
            self._missing = set()
            for root in self.roots:
                self._collect_root(root, files, skipped)
            self._skipped = skipped
            listed: dict[str, bool] = {}  # path -> named explicitly (overlapping roots)
            for path, explicit in files:
                listed[path] = listed.get(path, False) or explicit
            for path in [p for p in self._records if p not in listed]:
                self._drop_record(path, changes)
            for path, explicit in listed.items():
                self._examine(path, explicit, changes)
            self._examine_dependents(changes)
            self._listed.update(self.roots)
            return self._finish(changes, before, tuple(self.roots))

    def refresh(self, paths: Iterable[str | Path]) -> tuple[CatalogSnapshot, CatalogDiff]:
        """Look again at these files or folders only (created, changed, moved or gone)."""
        with self._lock:
            changes = _Changes()
            before = self._before()
            wanted = sorted({os.path.abspath(p) for p in paths})
            self._refresh_paths(wanted, changes)
            self._examine_dependents(changes)
            return self._finish(changes, before, tuple(wanted))

    def add_root(self, path: str | Path) -> tuple[CatalogSnapshot, CatalogDiff]:
        """Add a root (folder or single file) and scan it alone; the other roots are not read.

        The diff is the root's first scan: its flows as `added`, the root in
        `roots_added` (so an empty or missing root still yields a diff). A root
        already present is only refreshed.
        """
        root = os.path.abspath(path)
        with self._lock:
            changes = _Changes()
            before = self._before()
            if root not in self.roots:
                self.roots = self.roots + (root,)
            self._refresh_paths([root], changes)
            return self._finish(changes, before, (root,))

    def remove_root(self, path: str | Path) -> tuple[CatalogSnapshot, CatalogDiff]:
        """Stop cataloguing a root: its flows are removed unless another root covers them."""
        root = os.path.abspath(path)
        with self._lock:
            changes = _Changes()
            before = self._before()
            if root in self.roots:
                self.roots = tuple(r for r in self.roots if r != root)
                self._listed.discard(root)
                self._missing.discard(root)
                self._forget_tree(root, changes)
                self._relist_covered(root, changes)
            return self._finish(changes, before, (root,))

    def _refresh_paths(self, wanted: list[str], changes: _Changes) -> None:
        """`refresh` with the lock held; `wanted` sorted and absolute."""
        # Gone paths first, so a folder moved from A to B is dropped under A
        # before it is registered under B.
        gone = [p for p in wanted if not os.path.lexists(p)]
        present = [p for p in wanted if p not in gone]
        for path in gone:
            self._forget_tree(path, changes)
            if path in self.roots:
                self._missing.add(path)
                self._listed.add(path)  # scanned, and found missing
        folders: list[str] = []
        for path in present:  # sorted: a folder comes before what is inside it
            if any(_is_under(path, f) for f in folders):
                continue  # the folder's walk already looked at it
            self._refresh_one(path, changes)
            if os.path.isdir(path):
                folders.append(path)

    def _relist_covered(self, removed: str, changes: _Changes) -> None:
        """After a root went: what the remaining roots still cover under it comes back."""
        if self.root_of(removed) is not None and os.path.lexists(removed):
            self._refresh_one(removed, changes)  # a folder root above it still lists it
        for nested in [r for r in self.roots if r != removed and _is_under(r, removed)]:
            self._refresh_paths([nested], changes)

    def root_of(self, path: str) -> str | None:
        """The root a path belongs to (the deepest one), or None."""
        best: str | None = None
        for root in self.roots:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                if best is None or len(root) > len(best):
                    best = root
        return best

    def wants(self, path: str, is_directory: bool = False) -> bool:
        """Whether an event at this path can matter to the catalog (cheap, for the watcher)."""
        path = os.path.abspath(path)
        root = self.root_of(path)
        if root is None:
            return False
        if path == root:
            return True
        rel = os.path.relpath(path, root).split(os.sep)
        if any(is_skipped_dir_name(part) for part in rel[:-1]):
            return False
        name = rel[-1]
        if is_directory and is_skipped_dir_name(name):
            return False
        if not is_directory and not is_source_name(name):
            # A file event for a non-source name can still be a folder deleted
            # (inotify cannot always tell) when we have records below it.
            return self._has_records_under(path)
        return not self._inside_venv(root, path)

    # -- walking -------------------------------------------------------------

    def _collect_root(self, root: str, files: list[tuple[str, bool]],
                      skipped: dict[str, SkippedFile]) -> None:
        try:
            st = os.stat(root)
        except OSError:
            self._missing.add(root)
            return
        if stat.S_ISDIR(st.st_mode):
            self._walk(root, st, files, skipped)
        else:
            files.append((root, True))

    def _walk(self, top: str, top_stat: os.stat_result, files: list[tuple[str, bool]],
              skipped: dict[str, SkippedFile]) -> None:
        """Walk a folder: real folders first, then symlinked ones, each real folder once.

        Following symlinks only after every real folder is known means a flow
        is listed under its real path, and a link back up the tree (a symlink
        loop) is recognised as already scanned instead of walked forever.
        """
        top_key = (top_stat.st_dev, top_stat.st_ino)
        if top_key in self._dirs and self._dirs[top_key] != top:
            return  # overlapping roots: already covered
        self._dirs[top_key] = top
        real: list[str] = [top]
        links: list[str] = []
        while real or links:
            if real:
                folder = real.pop()
            else:
                folder = links.pop(0)
                if not self._enter_link(folder, skipped):
                    continue
            self._list_folder(folder, top, real, links, files, skipped)

    def _enter_link(self, link: str, skipped: dict[str, SkippedFile]) -> bool:
        try:
            st = os.stat(link)
        except OSError as exc:
            self._skip_link_error(link, exc, skipped)
            return False
        key = (st.st_dev, st.st_ino)
        if key in self._dirs:
            target = os.path.realpath(link)
            here = os.path.realpath(os.path.dirname(link))
            if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
                skipped[link] = SkippedFile(link, "symlink-loop", (
                    f"This symlink leads back to {target}, a folder that contains it, so "
                    "following it would never end. That folder is scanned once; remove "
                    "the link if it is a mistake."))
            else:
                skipped[link] = SkippedFile(link, "already-scanned", (
                    f"This symlink leads to {target}, which is already scanned as "
                    f"{self._dirs[key]}; its flows are listed there."))
            return False
        self._dirs[key] = link
        return True

    def _list_folder(self, folder: str, top: str, real: list[str], links: list[str],
                     files: list[tuple[str, bool]], skipped: dict[str, SkippedFile]) -> None:
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except FileNotFoundError:
            return  # deleted while we walked: nothing there any more
        except OSError as exc:
            skipped[folder] = SkippedFile(folder, "unreadable", (
                f"Cannot list this folder: {exc.strerror or exc}. Check its permissions "
                "if it holds flows."))
            return
        if folder != top and any(e.name == VENV_MARKER for e in entries):
            self._venvs.add(folder)
            return
        for entry in sorted(entries, key=lambda e: e.name):
            self._classify_entry(entry, real, links, files, skipped)

    def _classify_entry(self, entry: os.DirEntry[str], real: list[str], links: list[str],
                        files: list[tuple[str, bool]],
                        skipped: dict[str, SkippedFile]) -> None:
        name = entry.name
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            return  # vanished between listing and looking
        if is_dir:
            if not is_skipped_dir_name(name):
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    return
                key = (st.st_dev, st.st_ino)
                if key in self._dirs:
                    return  # another root already covers it (overlapping roots)
                self._dirs[key] = entry.path
                real.append(entry.path)
            return
        if is_link:
            self._classify_link(entry, links, files, skipped)
            return
        if is_source_name(name):
            files.append((entry.path, False))

    def _classify_link(self, entry: os.DirEntry[str], links: list[str],
                       files: list[tuple[str, bool]],
                       skipped: dict[str, SkippedFile]) -> None:
        name = entry.name
        try:
            target_is_dir = entry.is_dir(follow_symlinks=True)
        except OSError as exc:
            if name.endswith(".py"):
                self._skip_link_error(entry.path, exc, skipped)
            return
        if target_is_dir:
            if not is_skipped_dir_name(name):
                links.append(entry.path)
        elif is_source_name(name):
            try:
                os.stat(entry.path)
            except OSError as exc:
                self._skip_link_error(entry.path, exc, skipped)
                return
            files.append((entry.path, False))

    def _skip_link_error(self, path: str, exc: OSError,
                         skipped: dict[str, SkippedFile]) -> None:
        if exc.errno == errno.ELOOP:
            skipped[path] = SkippedFile(path, "symlink-loop", (
                "This symlink points to itself through other links and never reaches a "
                "file. Remove it or point it at a real file."))
        elif exc.errno == errno.ENOENT:
            target = _readlink(path)
            skipped[path] = SkippedFile(path, "dangling-symlink", (
                f"This symlink points to {target}, which does not exist. Remove the link "
                "or restore its target."))
        else:
            skipped[path] = SkippedFile(path, "unreadable", (
                f"Cannot follow this symlink: {exc.strerror or exc}."))

    def _inside_venv(self, root: str, path: str) -> bool:
        """Whether a folder between root (excluded) and path holds a `pyvenv.cfg`."""
        parent = os.path.dirname(path)
        while parent != root and len(parent) > len(root):
            if parent in self._venvs or os.path.exists(os.path.join(parent, VENV_MARKER)):
                return True
            parent = os.path.dirname(parent)
        return False

    # -- refreshing one path ---------------------------------------------------

    def _refresh_one(self, path: str, changes: _Changes) -> None:
        root = self.root_of(path)
        if root is None:
            return
        self._missing.discard(root)
        if path == root:
            self._refresh_root(root, changes)
            self._listed.add(root)
            return
        is_dir = os.path.isdir(path)
        if not self.wants(path, is_directory=is_dir):
            self._forget_tree(path, changes)
            return
        if is_dir:
            self._refresh_folder(path, changes)
            return
        # It may have been a folder before: forget what was below it.
        self._forget_tree(path, changes, keep_self=True)
        self._skipped.pop(path, None)
        if not is_source_name(os.path.basename(path)):
            self._drop_record(path, changes)
            return
        self._examine(path, False, changes)

    def _refresh_root(self, root: str, changes: _Changes) -> None:
        files: list[tuple[str, bool]] = []
        skipped: dict[str, SkippedFile] = {}
        self._forget_dirs_under(root)
        self._collect_root(root, files, skipped)
        self._replace_tree(root, files, skipped, changes)

    def _refresh_folder(self, folder: str, changes: _Changes) -> None:
        files: list[tuple[str, bool]] = []
        skipped: dict[str, SkippedFile] = {}
        self._forget_dirs_under(folder)
        try:
            st = os.stat(folder)
        except OSError:
            self._forget_tree(folder, changes)
            return
        if os.path.islink(folder):
            self._dirs.pop((st.st_dev, st.st_ino), None)
            if self._enter_link(folder, skipped):
                self._dirs.pop((st.st_dev, st.st_ino), None)
                self._walk(folder, st, files, skipped)
        else:
            self._walk(folder, st, files, skipped)
        self._replace_tree(folder, files, skipped, changes)

    def _replace_tree(self, top: str, files: list[tuple[str, bool]],
                      skipped: dict[str, SkippedFile], changes: _Changes) -> None:
        """Make the records under `top` exactly the files just listed there."""
        listed = {p for p, _ in files}
        for path in [p for p in self._records if _is_under(p, top) and p not in listed]:
            self._drop_record(path, changes)
        for path in [p for p in self._skipped if _is_under(p, top)]:
            del self._skipped[path]
        self._skipped.update(skipped)
        for path, explicit in files:
            self._examine(path, explicit, changes)

    def _forget_tree(self, path: str, changes: _Changes, keep_self: bool = False) -> None:
        for p in [p for p in self._records if _is_under(p, path)]:
            if not (keep_self and p == path):
                self._drop_record(p, changes)
        for p in [p for p in self._skipped if _is_under(p, path)]:
            if not (keep_self and p == path):
                del self._skipped[p]
        if not keep_self:
            self._forget_dirs_under(path)

    def _forget_dirs_under(self, path: str) -> None:
        for key in [k for k, p in self._dirs.items() if _is_under(p, path)]:
            del self._dirs[key]
        self._venvs = {v for v in self._venvs if not _is_under(v, path)}

    def _has_records_under(self, path: str) -> bool:
        prefix = path.rstrip(os.sep) + os.sep
        # A copy: the watcher asks from watchdog's thread while its loop refreshes.
        return any(p.startswith(prefix) for p in tuple(self._records))

    # -- examining one file ----------------------------------------------------

    def _examine_dependents(self, changes: _Changes) -> None:
        """Analyse again the files whose flows inherit from a module that changed, appeared
        or went since they were analysed (their own bytes did not change, so their records
        would be kept as they are), wherever that module is: inside the roots or not."""
        for path, record in list(self._records.items()):
            if path not in changes.paths and record.dependency_changed():
                record.digest, record.stat_key = "", ()
                self._examine(path, path in self.roots, changes)  # a root file is explicit

    def _examine(self, path: str, explicit: bool, changes: _Changes) -> None:
        """Bring one file's record up to date; never raises for what the disk does."""
        try:
            self._examine_or_raise(path, explicit, changes)
        except _Vanished:
            self._drop_record(path, changes)
        except OSError as exc:
            self._drop_record(path, changes)
            self._skipped[path] = _unreadable(path, exc)

    def _examine_or_raise(self, path: str, explicit: bool, changes: _Changes) -> None:
        try:
            st = os.stat(path)
        except OSError as exc:
            if not os.path.islink(path):
                if isinstance(exc, FileNotFoundError):
                    raise _Vanished() from None
                raise
            self._drop_record(path, changes)
            self._skip_link_error(path, exc, self._skipped)
            return
        if not self._regular_and_small(path, st, changes):
            return
        self._skipped.pop(path, None)
        key = _stat_key(st)
        record = self._records.get(path)
        if record is not None and record.stat_key == key and not record.is_racy() \
                and not record.dependency_changed():
            return
        read_ns = time.time_ns()
        data, st = self._read(path)
        if not self._regular_and_small(path, st, changes, size=len(data)):
            return
        digest = hashlib.sha1(data).hexdigest()
        if record is not None and record.digest == digest and not record.dependency_changed():
            record.stat_key, record.mtime_ns, record.read_ns = _stat_key(st), st.st_mtime_ns, read_ns
            return
        analysis = self._analyze(data, path, explicit)
        self._store(path, _FileRecord(_stat_key(st), st.st_mtime_ns, read_ns, digest),
                    analysis, changes)

    def _regular_and_small(self, path: str, st: os.stat_result, changes: _Changes,
                           size: int | None = None) -> bool:
        size = st.st_size if size is None else size
        if not stat.S_ISREG(st.st_mode):
            self._drop_record(path, changes)
            self._skipped[path] = SkippedFile(path, "not-regular", (
                f"{not_regular_file(st.st_mode)} Rename it if it is not meant to be a Python source."))
            return False
        if size > self.max_bytes:
            self._drop_record(path, changes)
            self._skipped[path] = SkippedFile(path, "too-large", (
                f"The file is {size / 1_048_576:.1f} MB, over the {self.max_bytes / 1_048_576:g} MB "
                "limit for flow sources, so it is not scanned. Move generated or data "
                "files out of the flows folder."))
            return False
        return True

    def _read(self, path: str) -> tuple[bytes, os.stat_result]:
        """The file's bytes, without blocking on FIFOs and without reading past the limit."""
        if self._before_read is not None:
            self._before_read(path)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise _Vanished() from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return b"", st
            chunks: list[bytes] = []
            remaining = self.max_bytes + 1
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks), st
        finally:
            os.close(fd)

    def _analyze(self, data: bytes, path: str, explicit: bool) -> FileAnalysis:
        """Static analysis of the bytes; a flowdeck bug becomes a diagnostic, not a crash."""
        try:
            return _analyze_bytes(data, path, prefilter=self.prefilter and not explicit)
        except Exception as exc:  # noqa: BLE001 - the scanner must outlive a bug in analysis
            log.exception("flowdeck could not analyse %s", path)
            return FileAnalysis(path, diagnostics=[Diagnostic(
                path, 1, f"Flowdeck failed while analysing this file ({type(exc).__name__}: "
                f"{exc}). This is a bug in flowdeck; please report it with the file.",
                "internal-error")])

    def _store(self, path: str, record: _FileRecord, analysis: FileAnalysis,
               changes: _Changes) -> None:
        previous = self._records.get(path)
        entries: list[CatalogEntry] = [CatalogEntry(entry_key(path, f.name), f)
                                       for f in analysis.flows]
        if analysis.diagnostics:
            record.problem = FileProblem(path, tuple(analysis.diagnostics))
            if not entries and previous is not None:
                entries = [CatalogEntry(e.key, replace(e.flow, diagnostics=list(
                    analysis.diagnostics)), stale=True) for e in previous.entries]
        record.entries = tuple(entries)
        record.depends_on = tuple(analysis.depends_on)
        record.depends_keys = _stat_keys(record.depends_on)
        self._drop_record(path, changes)
        self._records[path] = record
        for entry in record.entries:
            changes.touch(entry.key, self._entries.get(entry.key))
            self._entries[entry.key] = entry
        changes.paths.add(path)

    def _drop_record(self, path: str, changes: _Changes) -> None:
        record = self._records.pop(path, None)
        if record is None:
            return
        for entry in record.entries:
            changes.touch(entry.key, self._entries.get(entry.key))
            self._entries.pop(entry.key, None)
        changes.paths.add(path)

    # -- snapshot and diff -------------------------------------------------------

    def _side_state(self) -> tuple[dict[str, FileProblem], dict[str, SkippedFile], set[str]]:
        problems = {p: r.problem for p, r in self._records.items() if r.problem is not None}
        return problems, dict(self._skipped), set(self._missing)

    def _before(self) -> _Before:
        problems, skipped, missing = self._side_state()
        return _Before(time.perf_counter(), problems, skipped, frozenset(missing), self.roots,
                       frozenset(self._listed))

    def _mark_bases(self, changes: _Changes) -> None:
        """Give each entry the flows that inherit from it (`CatalogEntry.base_of`), in any
        file: a change to a subclass can change its base's entry."""
        inheritors: dict[tuple[str, str], set[str]] = {}
        for entry in self._entries.values():
            for file, name in entry.flow.bases:
                inheritors.setdefault((os.path.abspath(file), name), set()).add(entry.name)
        for key, entry in list(self._entries.items()):
            base_of = tuple(sorted(inheritors.get((entry.file, entry.name), ())))
            if base_of != entry.base_of:
                changes.touch(key, entry)
                self._entries[key] = replace(entry, base_of=base_of)

    def _finish(self, changes: _Changes, before: _Before,
                paths: tuple[str, ...]) -> tuple[CatalogSnapshot, CatalogDiff]:
        self._mark_bases(changes)
        added: list[CatalogEntry] = []
        changed: list[CatalogEntry] = []
        removed: list[CatalogEntry] = []
        for key, old in changes.before.items():
            new = self._entries.get(key)
            if old is None and new is not None:
                added.append(new)
            elif old is not None and new is None:
                removed.append(old)
            elif old is not None and new is not None and old is not new:
                if old.signature() != new.signature():
                    changed.append(new)
        problems, skipped, missing = self._side_state()
        self._snapshot = CatalogSnapshot(
            roots=self.roots,
            entries=tuple(sorted(self._entries.values(), key=lambda e: (e.file, e.line, e.name))),
            problems=tuple(problems[p] for p in sorted(problems)),
            skipped=tuple(skipped[p] for p in sorted(skipped)),
            missing_roots=tuple(r for r in self.roots if r in missing),
            files_seen=len(self._records),
        )
        order = lambda e: (e.file, e.line, e.name)  # noqa: E731
        roots_added = tuple(r for r in self.roots if r in self._listed and r not in before.listed)
        roots_removed = tuple(r for r in before.roots if r not in self.roots)
        diff = CatalogDiff(
            added=tuple(sorted(added, key=order)),
            changed=tuple(sorted(changed, key=order)),
            removed=tuple(sorted(removed, key=order)),
            problems_changed=problems != before.problems,
            skipped_changed=skipped != before.skipped,
            roots_changed=missing != before.missing or bool(roots_added or roots_removed),
            paths=paths,
            seconds=time.perf_counter() - before.started,
            roots_added=roots_added,
            roots_removed=roots_removed,
            snapshot=self._snapshot,
        )
        return self._snapshot, diff


# -- helpers -------------------------------------------------------------------

#: `class Name(` and the text after it up to the first colon: its bases, if their closing
#: parenthesis is in it (`_bases_text`). Each pattern starts with a literal, which `re`
#: looks for quickly (no `\b`: a word ending in `class` or `import` only adds a match).
_CLASS_BASES = re.compile(r"class[\s\\]+\w+[\s\\]*(?:\[[^\]]*\][\s\\]*)?\(([^:]*)")
#: `from M import names` (parenthesised, or to the end of the line with its continuations)
_FROM_IMPORT = re.compile(r"from[\s\\]+(\.*)[\s\\]*([\w.]*)[\s\\]+import\b[\s\\]*"
                          r"(\([^)]*|(?:[^\n\\]|\\[\s\S])*)")
#: `import M as N, ...` (a `from` statement's `import` too: its words add modules only)
_IMPORT = re.compile(r"import[\s\\]+((?:[^\n\\]|\\[\s\S])*)")
_WORD = re.compile(r"\w+")
_DOTTED = re.compile(r"[\w.]+")


def _bases_text(after: str) -> str | None:
    """The bases in the text after `class Name(` (to the first colon), or None when their
    closing parenthesis is not there (a colon in a base or a comment stopped the match)."""
    depth = 0
    for at, char in enumerate(after):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                return after[:at]
    return None


def _imports_of(text: str, names: set[str]) -> set[tuple[str, int]]:
    """The modules (and relative levels) the file may import any of `names` from: every
    word of an import statement counts as a name it binds (a superset is safe here)."""
    found: set[tuple[str, int]] = set()
    for dots, module, imported in _FROM_IMPORT.findall(text):
        if names.intersection(_WORD.findall(imported)):
            found.add((module, len(dots)))
    for plain in _IMPORT.findall(text):
        for part in plain.split(","):
            module_name = _DOTTED.search(part)
            if module_name is not None and names.intersection(_WORD.findall(part)):
                found.add((module_name.group(), 0))
    return found


@dataclass
class _Walk:
    """The modules one prefilter question has followed (an import cycle ends there), and
    whether it ended one (an answer that depends on where the walk began)."""

    seen: set[str]
    cut: bool = False


@dataclass(frozen=True)
class _Verdict:
    """What the prefilter concluded of a file: whether it may define a flow (parse it),
    and every file the conclusion was drawn from, the modules it imports its bases from
    and theirs in turn, looked for or read (`looked`), each with its stat key taken before
    it was read (None: not there)."""

    may_define: bool
    looked: tuple[str, ...] = ()
    keys: tuple[tuple[int, ...] | None, ...] = ()


def _prefilter_skips(text: str, path: str) -> tuple[str, ...] | None:
    """The files whose appearance or change could make this file define a flow, when it
    cannot now (the catalog analyses it again then); None when it may: parse it.

    A flow derives from FlowSpec: a file that never says `FlowSpec` can only define one
    through a class whose bases name a class imported from a module beside the file
    (static analysis follows a base nowhere else; `flowfile.module_candidates`), and only
    when that module says `FlowSpec` or is such a file itself. The prefilter follows those
    imports as the full analysis does, so it never hides a flow that analysis finds, and
    skips the many files whose classes derive from other classes (a third of a Python
    tree, whose every parse also reads the modules beside it). Python folds identifiers
    with NFKC (`ＦｌｏｗＳｐｅｃ` is `FlowSpec`): non-ASCII text is judged folded too."""
    verdict = _judge(text, path, _Walk({os.path.abspath(path)}))
    return None if verdict.may_define else verdict.looked


def _judge(text: str, path: str, walk: _Walk) -> _Verdict:
    """`_prefilter_skips`, with the stat key of every file looked at (see `_Verdict`)."""
    forms = [text] if text.isascii() else [text, unicodedata.normalize("NFKC", text)]
    looked: list[str] = []
    keys: list[tuple[int, ...] | None] = []
    for form in forms:
        if "FlowSpec" in form:
            return _Verdict(True, tuple(looked), tuple(keys))
        named: set[str] = set()
        for after in _CLASS_BASES.findall(form):
            bases = _bases_text(after)
            if bases is None:
                return _Verdict(True, tuple(looked), tuple(keys))
            named.update(_WORD.findall(bases))
        for module, level in sorted(_imports_of(form, named)) if named else ():
            found = None
            for candidate in module_candidates(path, module, level):
                try:  # its key before it is read: a write after that changes it
                    st: os.stat_result | None = os.stat(candidate)
                except OSError:
                    st = None
                looked.append(candidate)
                keys.append(None if st is None else _stat_key(st))
                if found is None and st is not None and stat.S_ISREG(st.st_mode):
                    found = candidate
            further = _module_verdict(found, walk) if found is not None else _Verdict(False)
            looked.extend(further.looked)
            keys.extend(further.keys)
            if further.may_define:
                return _Verdict(True, tuple(looked), tuple(keys))
    return _Verdict(False, tuple(looked), tuple(keys))


#: `_module_verdict` by (path, content digest): a module beside many files is judged once,
#: and judged again when a file its verdict was drawn from changed (`_Verdict.looked`):
#: its own bytes are the key, but the modules it imports its bases from decide too.
_MODULE_SKIPS: dict[tuple[str, str], _Verdict] = {}
_MODULE_SKIPS_MAX = 4096


def _module_verdict(path: str, walk: _Walk) -> _Verdict:
    """`_judge` of a module a class is imported from, judged on its text as the full
    analysis reads it (undecodable bytes replaced; none when it cannot be read, and then it
    has no class there either). Kept unless the answer came from a cut cycle."""
    if path in walk.seen:
        walk.cut = True
        return _Verdict(False)
    walk.seen.add(path)
    try:
        data = Path(path).read_bytes()
    except OSError:
        return _Verdict(False)
    key = (path, hashlib.sha1(data).hexdigest())
    kept = _MODULE_SKIPS.get(key)
    if kept is not None and not _looked_changed(kept.looked, kept.keys):
        return kept
    source, _ = decode_source(data, path)
    outer_cut, walk.cut = walk.cut, False
    result = _judge(source if source is not None else data.decode("utf-8", "replace"),
                    path, walk)
    if result.may_define or not walk.cut:
        if len(_MODULE_SKIPS) >= _MODULE_SKIPS_MAX:
            _MODULE_SKIPS.clear()
        _MODULE_SKIPS[key] = result
    else:
        _MODULE_SKIPS.pop(key, None)
    walk.cut = walk.cut or outer_cut
    return result


def _skipped(path: str, content_hash: str, looked: Iterable[str]) -> FileAnalysis:
    return FileAnalysis(path, content_hash=content_hash, depends_on=sorted(set(looked)))


def _analyze_bytes(data: bytes, path: str, prefilter: bool) -> FileAnalysis:
    """`flowfile.analyze_bytes`, skipping the parse of files that cannot hold a flow."""
    content_hash = hashlib.sha1(data).hexdigest()
    if prefilter and data.isascii():
        looked = _prefilter_skips(data.decode("ascii"), path)
        if looked is not None:
            return _skipped(path, content_hash, looked)
    source, problem = decode_source(data, path)
    if source is None:
        looked = _prefilter_skips(data.decode("utf-8", "replace"), path) if prefilter else None
        if looked is not None:
            return _skipped(path, content_hash, looked)
        return FileAnalysis(path, diagnostics=[problem] if problem else [],
                            content_hash=content_hash)
    if prefilter and not source.isascii():
        looked = _prefilter_skips(source, path)
        if looked is not None:
            return _skipped(path, content_hash, looked)
    result = analyze_source(source, path)
    result.content_hash = content_hash
    return result


def _is_under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip(os.sep) + os.sep)


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "a missing target"


def _unreadable(path: str, exc: OSError) -> SkippedFile:
    if isinstance(exc, PermissionError):
        return SkippedFile(path, "unreadable", (
            "Permission denied: flowdeck may not read this file. Give your user read "
            f"permission (for example `chmod u+r {os.path.basename(path)}`)."))
    return SkippedFile(path, "unreadable", (
        f"Cannot read the file: {exc.strerror or exc}. Check that it is a readable file."))


def scan_paths(paths: Iterable[str | Path], **options: Any) -> CatalogSnapshot:
    """One-shot scan, for the command line and tools."""
    snapshot, _ = FlowCatalog(paths, **options).scan()
    return snapshot
