"""The window's side of the folder watcher: one long-lived watcher, its news as queued signals.

`FolderWatcher` (core) does all of its disk work, arming watches and every
scan, on its own thread and calls back there. `WatchBridge` re-emits those
callbacks as Qt signals; the bridge lives in the GUI thread, so Qt queues
them into the GUI's event loop (a signal is the only safe way across:
`QTimer.singleShot` from a thread without a Qt event loop never fires).

Roots are added and removed one at a time and return at once; nothing is
restarted, and no other root is rescanned. The bridge also keeps, on the GUI
side, what the GUI needs to know about the roots without asking the watcher's
thread: which roots were asked for, which are single files, and which have not
had their first scan delivered yet (`scanning`), with callbacks waiting for
that (`when_listed` / `settle`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import field
from typing import Any

from PySide6.QtCore import QObject, Signal

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.discovery.catalog import CatalogDiff
from flowdeck.discovery.watcher import FolderWatcher

log = logging.getLogger(__name__)


@dataclass
class _Waiter:
    """A callback to run once these roots have had their first scan delivered."""

    roots: set[str]
    callback: Callable[[], None] = field(compare=False)


class WatchBridge(QObject):
    """Carries watcher callbacks (on its own thread) into the GUI thread as queued signals.

    `diff_ready(CatalogDiff)`: every diff, first scans included; the diff
    carries the snapshot it was made from, so the GUI never reads the
    catalog (whose lock a scan holds). `status_ready(WatchStatus)`: news
    about the watching (polling, folder missing or back).
    """

    diff_ready = Signal(object)
    status_ready = Signal(object)

    def __init__(self, parent: QObject | None = None, **watcher_options: Any) -> None:
        super().__init__(parent)
        self.watcher = FolderWatcher((), on_change=self.diff_ready.emit,
                                     on_status=self.status_ready.emit, **watcher_options)
        self._started = False
        self._stopped = False
        self._roots: list[str] = []
        self._files: set[str] = set()
        self._unlisted: set[str] = set()
        self._waiters: list[_Waiter] = []

    # -- roots (GUI thread; each call returns at once) --------------------------------

    def add_root(self, path: str) -> None:
        """Watch a folder (recursively); its first scan arrives later as a diff."""
        self._add(os.path.abspath(path), single_file=False)

    def add_file(self, path: str) -> None:
        """Watch one file as its own root: its folder is not watched or listed."""
        self._add(os.path.abspath(path), single_file=True)

    def remove_root(self, path: str) -> None:
        """Stop watching a root; its flows leave in a diff (`roots_removed`)."""
        root = os.path.abspath(path)
        if root not in self._roots or not self._running():
            return
        self._roots.remove(root)
        self._files.discard(root)
        self._unlisted.discard(root)
        for waiter in self._waiters:
            waiter.roots.discard(root)  # released by the next diff (this removal's)
        self.watcher.remove_root(root)

    def roots(self) -> list[str]:
        """Every root asked for, folders and single files, in the order they were added."""
        return list(self._roots)

    def is_file_root(self, path: str) -> bool:
        return os.path.abspath(path) in self._files

    def scanning(self) -> bool:
        """True while a root has not had its first scan delivered (through `settle`)."""
        return bool(self._unlisted)

    def stop(self) -> None:
        """Stop the watcher for good (joins its threads); later root changes are ignored."""
        self._stopped = True
        if self._started:
            self.watcher.stop()

    # -- waiting for first scans -------------------------------------------------------

    def when_listed(self, callback: Callable[[], None], roots: list[str] | None = None) -> None:
        """Run `callback` (GUI thread) once these roots (default: all) have been listed.

        Runs it now when none of them is still waiting for its first scan.
        Callbacks run in the order they were registered.
        """
        wanted = set(self._unlisted if roots is None else
                     (os.path.abspath(r) for r in roots)) & self._unlisted
        if not wanted and not self._waiters:
            callback()
            return
        self._waiters.append(_Waiter(wanted, callback))
        if not wanted:
            self._release()

    def settle(self, diff: CatalogDiff) -> None:
        """Note the roots this diff lists for the first time; run the callbacks now due.

        Called by the diff's consumer after it applied the diff, so a callback
        sees the flows of its roots in the model.
        """
        for root in diff.roots_added:
            self._unlisted.discard(root)
        for waiter in self._waiters:
            waiter.roots.difference_update(diff.roots_added)
            waiter.roots.difference_update(diff.roots_removed)
        self._release()

    def _release(self) -> None:
        """Run waiters whose roots are listed, in order, stopping at the first still waiting."""
        while self._waiters and not self._waiters[0].roots:
            waiter = self._waiters.pop(0)
            try:
                waiter.callback()
            except Exception:  # noqa: BLE001 - one caller's bug must not block the others
                log.exception("flowdeck: a callback waiting for a folder listing failed")

    # -- internals -----------------------------------------------------------------------

    def _add(self, root: str, single_file: bool) -> None:
        if root in self._roots or not self._running():
            return
        self._roots.append(root)
        self._unlisted.add(root)
        if single_file:
            self._files.add(root)
            self.watcher.add_file(root)
        else:
            self.watcher.add_root(root)

    def _running(self) -> bool:
        """Start the watcher's thread on first use; False once stopped (shutting down)."""
        if self._stopped:
            log.info("flowdeck: the folder watcher is stopped; ignoring a change of roots")
            return False
        if not self._started:
            self._started = True
            self.watcher.start()
        return True
