"""Watch folders for flow sources changing, and deliver catalog diffs.

A watchdog observer (inotify on Linux) reports filesystem events; this module
turns the storm an editor makes when it saves (write, truncate, temp file and
rename, vim's backup rename, delete and recreate, bursts of writes) into one
catalog refresh per file, after the file has been quiet for `quiet_period`
seconds. Debouncing is one thread with one deadline table, not one timer per
event. Each refresh that changes something calls `on_change(diff)`.

Safety nets: a full rescan every `rescan_interval` seconds (events can be
lost: queue overflow, symlinked folders, which are not watched), polling
instead of inotify when the system refuses more watches or the folder is on a
network filesystem (where inotify sees nothing done by other machines), and a
watch on each root's parent so a deleted root is noticed and picked up again
when it comes back.

The watcher is long-lived: roots come and go with `add_root` / `add_file` /
`remove_root`, which only queue work. Everything that touches the disk
(creating the inotify instance, arming watches, every scan) runs on the
watcher's one thread, so a caller on a GUI thread never waits for a folder to
be walked. Adding a root scans that root only, and its first scan is
delivered through `on_change` like any other change.

Callbacks run on the watcher's thread. The desktop turns them into queued Qt
signals; nothing here knows about Qt.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.discovery.catalog import CatalogDiff, CatalogSnapshot, FlowCatalog

log = logging.getLogger(__name__)

#: Filesystems where inotify does not see changes made by other machines or
#: the host (network shares, VM and container shared folders): poll them.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs",
    "lustre", "gpfs", "beegfs", "vboxsf", "virtiofs", "davfs", "sshfs", "fakeowner",
    "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "fuse.glusterfs",
    "fuse.cephfs", "fuse.grpcfuse", "fuse.davfs2", "fuse.smbnetfs",
})

#: Errors with which the kernel refuses more inotify watches or instances.
_WATCH_LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM})

#: Paths whose quiet periods end this close together are refreshed in one batch.
_BATCH_SLACK = 0.01

#: Events that cannot change a file's content (reading it, our own scans included).
_IGNORED_EVENT_TYPES = frozenset({"opened", "closed_no_write"})


@dataclass(frozen=True)
class WatchStatus:
    """Something the user should know about the watching itself.

    `kind`: "polling" (inotify refused or network filesystem), "folder-missing",
    "folder-restored", "watch-error". `message` is the sentence to show.
    """

    kind: str
    path: str
    message: str

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "message": self.message}


# -- filesystem type ------------------------------------------------------------

def _unescape_mount_field(field: str) -> str:
    """/proc/mounts escapes space, tab, newline and backslash as octal (`\\040`)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_type(path: str | Path, mounts_file: str = "/proc/mounts") -> str | None:
    """The type of the filesystem holding `path` (longest mount point), or None if unknown."""
    try:
        with open(mounts_file, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point, fstype = _unescape_mount_field(fields[1]), fields[2]
        prefix = mount_point.rstrip("/") + "/"
        if target == mount_point or target.startswith(prefix) or mount_point == "/":
            if best is None or len(mount_point) >= best[0]:
                best = (len(mount_point), fstype)
    return best[1] if best else None


def is_network_filesystem(fstype: str | None) -> bool:
    return fstype is not None and (fstype in NETWORK_FILESYSTEMS or fstype.startswith("nfs"))


# -- the watcher --------------------------------------------------------------------

class _Handler(FileSystemEventHandler):
    """Forwards watchdog events to the watcher; runs on watchdog's dispatch thread."""

    def __init__(self, watcher: "FolderWatcher", root: str, parent_watch: bool) -> None:
        super().__init__()
        self._watcher = watcher
        self._root = root
        self._parent_watch = parent_watch

    def dispatch(self, event: FileSystemEvent) -> None:
        self._watcher._on_event(event, self._root, self._parent_watch)


@dataclass(frozen=True)
class _Armed:
    """One handler on one watchdog watch; equal watches share an emitter, so they are counted."""

    observer: BaseObserver
    watch: ObservedWatch
    handler: _Handler


@dataclass
class _RootState:
    present: bool = True
    identity: tuple[int, int] | None = None
    tree: _Armed | None = None
    parent: _Armed | None = None
    polling: bool = False


#: Work for the watcher's thread: ("adopt", "") scans the roots the catalog came
#: with; ("add", root) and ("remove", root) change one root.
_Job = tuple[str, str]


class FolderWatcher:
    """Keeps a `FlowCatalog` up to date from filesystem events; see the module docstring.

    `start()` starts the watcher's thread and returns at once; that thread
    arms the watches and scans. The roots the watcher was built with are
    scanned first, in one diff; each root added later with `add_root` or
    `add_file` is scanned alone, in its own diff (`diff.roots_added` names
    it). Every diff arrives as `on_change(diff)` on the watcher's thread,
    carrying the snapshot it was made from, and news about the watching
    itself as `on_status(WatchStatus)`. `wait_idle()` blocks until queued
    root changes are done (for tools and tests). `stop()` joins every thread
    the watcher started.
    """

    def __init__(self, paths: Iterable[str | Path] | FlowCatalog,
                 on_change: Callable[[CatalogDiff], None],
                 on_status: Callable[[WatchStatus], None] | None = None, *,
                 quiet_period: float = 0.15, rescan_interval: float = 30.0,
                 max_delay: float = 2.0, force_polling: bool = False,
                 poll_interval: float = 1.0, missing_check_interval: float = 1.0,
                 mounts_file: str = "/proc/mounts") -> None:
        self.catalog = paths if isinstance(paths, FlowCatalog) else FlowCatalog(paths)
        self.quiet_period = quiet_period
        self.rescan_interval = rescan_interval
        self.max_delay = max(max_delay, quiet_period)
        self.poll_interval = poll_interval
        self.missing_check_interval = missing_check_interval
        self._force_polling = force_polling
        self._mounts_file = mounts_file
        self._on_change = on_change
        self._on_status = on_status
        self._roots: dict[str, _RootState] = {}  # armed roots; the watcher's thread only
        self._cond = threading.Condition()
        self._pending: dict[str, tuple[float, float]] = {}
        self._jobs: deque[_Job] = deque([("adopt", "")] if self.catalog.roots else [])
        self._job_running = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._native: BaseObserver | None = None
        self._poller: BaseObserver | None = None
        self._watch_users: Counter[tuple[int, ObservedWatch]] = Counter()
        self.statuses: list[WatchStatus] = []
        #: The paths of the last debounced refreshes, newest last (for tests and tools).
        self.recent_batches: deque[tuple[str, ...]] = deque(maxlen=64)
        self.refreshes = 0
        self.diffs_delivered = 0

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the watcher's thread; it arms the watches and scans (nothing here blocks)."""
        if self._thread is not None:
            raise RuntimeError("FolderWatcher.start() called twice")
        self._thread = threading.Thread(target=self._run, name="flowdeck-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering, stop the observers and join every thread started.

        A scan in progress is not interrupted: the join waits up to `timeout`,
        and the watcher's thread stops the observers itself when it ends.
        """
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._stop_observers(timeout)

    def add_root(self, path: str | Path) -> None:
        """Watch one more folder (or file) and scan it alone, on the watcher's thread.

        Returns at once; the root's first scan arrives as a diff with the root
        in `roots_added`, even when it holds no flow or does not exist.
        """
        self._queue(("add", os.path.abspath(path)))

    def add_file(self, path: str | Path) -> None:
        """Watch one file as a root of its own; its folder's other files are not listed.

        The file is watched through a non-recursive watch on its folder,
        filtered to its own name (editors save by renaming in that folder).
        """
        if os.path.isdir(path):
            raise ValueError(f"{path} is a folder; add_file takes a file (use add_root)")
        self._queue(("add", os.path.abspath(path)))

    def remove_root(self, path: str | Path) -> None:
        """Stop watching a root; its flows leave in a diff unless another root covers them."""
        self._queue(("remove", os.path.abspath(path)))

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued root change is scanned and delivered (for tools and tests)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._jobs or self._job_running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _queue(self, job: _Job) -> None:
        with self._cond:
            self._jobs.append(job)
            self._cond.notify_all()

    def __enter__(self) -> "FolderWatcher":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def snapshot(self) -> CatalogSnapshot:
        """The latest snapshot (never waits for a scan in progress)."""
        return self.catalog.snapshot

    def mode(self, root: str | Path) -> str:
        """How a root is watched: "native" (inotify), "polling", "none" (missing or not armed)."""
        state = self._roots.get(os.path.abspath(root))
        if state is None or (state.tree is None and not os.path.isfile(os.path.abspath(root))):
            return "none"
        return "polling" if state.polling else "native"

    def wait_for_refreshes(self, count: int, timeout: float) -> bool:
        """Block until `count` debounced refreshes have run (for tests and tools)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.refreshes < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # -- arming watches --------------------------------------------------------------

    def _start_native(self) -> None:
        if self._force_polling:
            return
        try:
            observer = _native_observer()
            observer.start()
        except OSError as exc:
            if exc.errno in _WATCH_LIMIT_ERRNOS:
                self._status("polling", "", (
                    f"The system refused a new file watcher ({exc.strerror or exc}): flowdeck "
                    f"polls the folders every {self.poll_interval:g} s instead. Raise "
                    "fs.inotify.max_user_instances (sysctl) to get instant updates."))
            else:  # on our own thread there is no caller to raise to: poll instead
                log.exception("flowdeck watcher: cannot start the native observer")
                self._status("watch-error", "", (
                    f"Cannot start the file watcher ({exc.strerror or exc}): flowdeck polls "
                    f"the folders every {self.poll_interval:g} s instead."))
            return
        self._native = observer

    def _stop_observers(self, timeout: float = 5.0) -> None:
        for observer in (self._native, self._poller):
            if observer is not None and observer.is_alive():
                observer.stop()
                observer.join(timeout)

    def _observer_for(self, root: str, state: _RootState) -> BaseObserver:
        if self._native is not None and not state.polling:
            if not self._force_polling:
                fstype = filesystem_type(root, self._mounts_file)
                if is_network_filesystem(fstype):
                    state.polling = True
                    self._status("polling", root, (
                        f"{root} is on a network filesystem ({fstype}), where changes made "
                        "elsewhere raise no events: flowdeck polls it every "
                        f"{self.poll_interval:g} s."))
                    return self._polling_observer()
            return self._native
        state.polling = True
        return self._polling_observer()

    def _polling_observer(self) -> BaseObserver:
        if self._poller is None:
            self._poller = PollingObserver(timeout=self.poll_interval)
            self._poller.start()
        return self._poller

    def _arm(self, root: str, state: _RootState) -> None:
        """Watch a root folder recursively (a root file is covered by its parent's watch)."""
        try:
            st = os.stat(root)
        except OSError:
            state.present = False
            return
        state.identity = (st.st_dev, st.st_ino)
        if not os.path.isdir(root):
            return
        observer = self._observer_for(root, state)
        try:
            state.tree = self._schedule(observer, _Handler(self, root, parent_watch=False),
                                        root, recursive=True)
        except OSError as exc:
            if exc.errno in _WATCH_LIMIT_ERRNOS and not state.polling:
                state.polling = True
                self._status("polling", root, (
                    f"The system refused more file watches for {root} ({exc.strerror or exc}): "
                    f"flowdeck polls it every {self.poll_interval:g} s instead. Raise "
                    "fs.inotify.max_user_watches (sysctl) to get instant updates."))
                self._arm(root, state)
            elif exc.errno == errno.ENOENT:
                state.present = False
            else:
                self._status("watch-error", root, (
                    f"Cannot watch {root}: {exc.strerror or exc}. Its flows are still "
                    f"rescanned every {self.rescan_interval:g} s."))

    def _disarm(self, state: _RootState) -> None:
        if state.tree is not None:
            self._detach(state.tree)
            state.tree = None

    def _schedule(self, observer: BaseObserver, handler: _Handler, path: str,
                  recursive: bool) -> _Armed:
        """Add a handler to a watch; watchdog shares one watch between equal (path, recursive)."""
        watch = observer.schedule(handler, path, recursive=recursive)
        self._watch_users[(id(observer), watch)] += 1
        return _Armed(observer, watch, handler)

    def _detach(self, armed: _Armed) -> None:
        """Remove our handler; unschedule the watch only when no other root uses it.

        Two single-file roots in one folder share the folder's watch, so
        unscheduling it for one would silence the other.
        """
        key = (id(armed.observer), armed.watch)
        self._watch_users[key] -= 1
        try:
            if self._watch_users[key] > 0:
                armed.observer.remove_handler_for_watch(armed.handler, armed.watch)
            else:
                del self._watch_users[key]
                armed.observer.unschedule(armed.watch)
        except KeyError:
            log.debug("watch on %s was already gone", armed.watch.path)

    def _watch_root(self, root: str) -> None:
        """Arm a new root's watches (its parent's too, to see it deleted or created)."""
        state = self._roots[root] = _RootState()
        state.present = os.path.exists(root)
        if state.present:
            self._arm(root, state)
        else:
            self._status("folder-missing", root, self._missing_message(root))
        self._arm_parent(root, state)

    def _unwatch_root(self, root: str) -> None:
        state = self._roots.pop(root, None)
        if state is None:
            return
        self._disarm(state)
        if state.parent is not None:
            self._detach(state.parent)
            state.parent = None

    def _arm_parent(self, root: str, state: _RootState) -> None:
        """Watch the root's parent (not recursively) to see the root deleted or recreated."""
        parent = os.path.dirname(root)
        if parent == root or not os.path.isdir(parent):
            return
        observer = self._poller if state.polling or self._native is None else self._native
        if observer is None:
            observer = self._polling_observer()
        try:
            state.parent = self._schedule(observer, _Handler(self, root, parent_watch=True),
                                          parent, recursive=False)
        except OSError as exc:
            log.info("not watching %s for %s to come and go (%s); checking every %g s",
                     parent, root, exc, self.missing_check_interval)

    # -- events (watchdog's thread) --------------------------------------------------------

    def _on_event(self, event: FileSystemEvent, root: str, parent_watch: bool) -> None:
        if event.event_type in _IGNORED_EVENT_TYPES:
            return
        if event.is_directory and event.event_type in ("modified", "attrib"):
            return  # a folder's listing changed: the entries' own events say how
        raws = [event.src_path]
        dest = getattr(event, "dest_path", "")
        if dest:
            raws.append(dest)
        wanted: list[str] = []
        for raw in raws:
            path = os.path.abspath(os.fsdecode(raw))
            if (path == root) if parent_watch else self.catalog.wants(path, event.is_directory):
                wanted.append(path)
        if wanted:
            self._touch(wanted)

    def _touch(self, paths: list[str]) -> None:
        """Restart the quiet period of these paths (both ends of a move share one clock)."""
        now = time.monotonic()
        with self._cond:
            for path in paths:
                first, _ = self._pending.get(path, (now, now))
                self._pending[path] = (first, now)
            # All: threads in wait_idle/wait_for_refreshes share the condition, and a
            # single notify could wake one of them instead of the loop.
            self._cond.notify_all()

    # -- the loop (the watcher's thread) ------------------------------------------------------

    def _run(self) -> None:
        try:
            self._start_native()
            self._loop()
        finally:
            self._stop_observers()

    def _loop(self) -> None:
        now = time.monotonic()
        next_rescan = now + self.rescan_interval
        next_missing = now + self.missing_check_interval
        while True:
            with self._cond:
                job, due, now = self._wait_for_work(next_rescan, next_missing)
                if due is None:
                    return
            try:
                if job is not None:
                    self._run_job(job)
                if due:
                    self._process(due)
                if now >= next_rescan:
                    self._full_rescan()
                    next_rescan = time.monotonic() + self.rescan_interval
                if now >= next_missing:
                    self._check_missing_roots()
                    next_missing = time.monotonic() + self.missing_check_interval
            except Exception as exc:  # noqa: BLE001 - the watcher must keep watching
                log.exception("flowdeck watcher: refresh failed")
                self._status("watch-error", "", (
                    f"Refreshing the flow list failed ({type(exc).__name__}: {exc}). This is "
                    "a bug in flowdeck; the next change or rescan will try again."))
            finally:
                with self._cond:
                    if due:
                        self.refreshes += 1
                    self._job_running = False
                    self._cond.notify_all()

    def _deadline(self, first: float, last: float) -> float:
        return min(last + self.quiet_period, first + self.max_delay)

    def _wait_for_work(self, next_rescan: float, next_missing: float
                       ) -> tuple[_Job | None, list[str] | None, float]:
        """A queued root change and the paths whose quiet period is over (None when stopping).

        Called with the lock held. One root change at a time, so events that
        fall due while many roots are added are refreshed between their scans.
        """
        while not self._stopping:
            now = time.monotonic()
            # Paths due within a few milliseconds of each other (one folder move, one
            # editor save touching several names) are refreshed together: one diff.
            due = [p for p, (first, last) in self._pending.items()
                   if self._deadline(first, last) <= now + _BATCH_SLACK]
            missing = any(not s.present for s in self._roots.values())
            job = self._jobs.popleft() if self._jobs else None
            if job or due or now >= next_rescan or (missing and now >= next_missing):
                for path in due:
                    del self._pending[path]
                self._job_running = job is not None
                return job, due, now
            wake = [next_rescan] + [self._deadline(first, last) for first, last in self._pending.values()]
            if missing:
                wake.append(next_missing)
            self._cond.wait(max(0.0, min(wake) - now))
        return None, None, time.monotonic()

    def _run_job(self, job: _Job) -> None:
        """Arm and scan (or disarm and drop) one root; only that root is read."""
        kind, root = job
        if kind == "adopt":
            for existing in self.catalog.roots:
                self._watch_root(existing)
            _, diff = self.catalog.scan()
        elif kind == "add":
            if root not in self._roots:
                self._watch_root(root)
            _, diff = self.catalog.add_root(root)
        else:
            self._unwatch_root(root)
            _, diff = self.catalog.remove_root(root)
        self._deliver(diff)

    def _process(self, paths: list[str]) -> None:
        self.recent_batches.append(tuple(sorted(paths)))
        for root in [p for p in paths if p in self._roots]:
            self._check_root(root)
        _, diff = self.catalog.refresh(paths)
        self._deliver(diff)

    def _full_rescan(self) -> None:
        for root in self._roots:
            self._check_root(root)
        _, diff = self.catalog.scan()
        self._deliver(diff)

    def _check_missing_roots(self) -> None:
        back = [r for r, s in self._roots.items() if not s.present and self._check_root(r)]
        if back:
            _, diff = self.catalog.refresh(back)
            self._deliver(diff)

    def _check_root(self, root: str) -> bool:
        """Notice a root deleted, recreated or replaced; re-arm its watch. True if it came back."""
        state = self._roots[root]
        try:
            st = os.stat(root)
        except OSError:
            if state.present:
                state.present = False
                self._disarm(state)
                self._status("folder-missing", root, self._missing_message(root))
            if state.parent is None:
                self._arm_parent(root, state)
            return False
        if not state.present:
            state.present = True
            self._disarm(state)
            self._arm(root, state)
            if state.parent is None:
                self._arm_parent(root, state)
            self._status("folder-restored", root, (
                f"{root} is back: flowdeck is watching it again."))
            return True
        if state.identity != (st.st_dev, st.st_ino):
            # Deleted and recreated within one quiet period: the old watch died with it.
            self._disarm(state)
            self._arm(root, state)
        return False

    def _missing_message(self, root: str) -> str:
        return (f"{root} does not exist (deleted, moved or not mounted): its flows are "
                "removed from the list. Flowdeck picks it up again when it comes back.")

    # -- delivery ---------------------------------------------------------------------------

    def _deliver(self, diff: CatalogDiff) -> None:
        if diff.empty or self._stopping:
            return
        self.diffs_delivered += 1
        try:
            self._on_change(diff)
        except Exception:  # noqa: BLE001 - a listener's bug must not stop the watching
            log.exception("flowdeck watcher: on_change callback failed")

    def _status(self, kind: str, path: str, message: str) -> None:
        status = WatchStatus(kind, path, message)
        self.statuses.append(status)
        log.info("%s", message)
        if self._on_status is None:
            return
        try:
            self._on_status(status)
        except Exception:  # noqa: BLE001 - a listener's bug must not stop the watching
            log.exception("flowdeck watcher: on_status callback failed")


def _native_observer() -> BaseObserver:
    """inotify without descending into skipped folders on Linux; watchdog's default elsewhere."""
    try:
        from flowdeck.discovery.inotify_pruned import PrunedInotifyObserver
    except ImportError:  # not Linux, or a watchdog without these internals
        return Observer()
    return PrunedInotifyObserver()
