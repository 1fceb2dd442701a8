"""A watchdog inotify observer that never descends into folders discovery skips.

watchdog's recursive inotify watch puts a watch on every subfolder, so a
watched project's `.flowdeck/` datastore (a folder per run, step and task),
`.git/` and virtual environments would use up the system's inotify watches
(192k here; a 10,000-task run alone makes 10,000 folders) and flood the
watcher with events it then drops. This observer prunes those folders when
it adds watches, at start and when folders are created.

It relies on watchdog's `InotifyWatchGroup._add_all_callbacks` (watchdog 5 to 7);
`pyproject.toml` pins that range and tests/test_watcher.py checks the pruning.
"""

from __future__ import annotations

import os

from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
from watchdog.observers.inotify import InotifyEmitter, InotifyWatchGroup
from watchdog.observers.inotify_c import InotifyFD

from flowdeck.discovery.catalog import VENV_MARKER, is_skipped_dir_name


def _skipped(folder: bytes) -> bool:
    name = os.fsdecode(os.path.basename(folder.rstrip(b"/")))
    return is_skipped_dir_name(name) or os.path.exists(os.path.join(folder, VENV_MARKER.encode()))


class PrunedWatchGroup(InotifyWatchGroup):
    """Adds watches like watchdog's, minus skipped folders and everything below them."""

    def _add_all_callbacks(self, path: bytes) -> None:
        if path != self.path and os.path.isdir(path) and _skipped(path):
            return
        self._add_callback(path)
        if not (self.is_recursive and os.path.isdir(path)):
            return
        for root, dirnames, _ in os.walk(path, followlinks=self.follow_symlink):
            dirnames[:] = [d for d in dirnames if not _skipped(os.path.join(root, d))]
            for dirname in dirnames:
                full = os.path.join(root, dirname)
                if self.follow_symlink or not os.path.islink(full):
                    self._add_callback(full)


class PrunedInotifyEmitter(InotifyEmitter):
    def on_thread_start(self) -> None:
        self._inotify = PrunedWatchGroup(
            self._inotify_fd, os.fsencode(self.watch.path),
            is_recursive=self.watch.is_recursive,
            event_mask=self.get_event_mask_from_filter(),
            follow_symlink=self.watch.follow_symlink)


class PrunedInotifyObserver(BaseObserver):
    """watchdog's InotifyObserver with `PrunedInotifyEmitter`."""

    def __init__(self, *, timeout: float = DEFAULT_OBSERVER_TIMEOUT) -> None:
        self._inotify_fd = InotifyFD()
        self._inotify_fd.start()
        super().__init__(PrunedInotifyEmitter, timeout=timeout, inotify_fd=self._inotify_fd)

    def on_thread_stop(self) -> None:
        super().on_thread_stop()
        self._inotify_fd.stop()
        self._inotify_fd.join()
