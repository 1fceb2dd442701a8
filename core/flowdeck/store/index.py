"""The runs of a flow: listed newest first, the latest successful one, and their status.

The one place that decides what a run's status is (including the crash rule)
and how runs are listed, for the client, resume, `flowdeck run`, rerun-on-save
and the window's history. A damaged run is listed as damaged, with its path and
why; it never hides the others.
"""

from __future__ import annotations

import heapq
import os
import time
from pathlib import Path

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.blobs import atomic_write_json
from flowdeck.store.layout import RunLayout, datastore_of, mark_datastore
from flowdeck.store.liveness import pid_alive
from flowdeck.store.records import AttemptRecord, DamagedRecord, RunRecord, final_attempt, hostname
from flowdeck.store.status import CRASHED, DAMAGED, RUNNING, SUCCEEDED


def effective_status(record: RunRecord) -> str:
    """The run's status, with the one crash rule: a `running` run whose process is gone
    (on this host) crashed, and so did one whose pid now belongs to a later process
    (`store.liveness`). Another host's run cannot be checked: it stays `running`."""
    if record.status != RUNNING:
        return record.status
    if record.host and record.host != hostname():
        return RUNNING
    return RUNNING if pid_alive(record.pid, record.process_start) else CRASHED


@dataclass(frozen=True)
class RunEntry:
    """One run folder: its record, or why it cannot be read, and whether it is pinned."""

    run_id: str
    path: Path
    record: RunRecord | None
    damage: str | None = None
    pinned: bool = False

    @property
    def status(self) -> str:
        return effective_status(self.record) if self.record else DAMAGED

    @property
    def start(self) -> float:
        if self.record:
            return self.record.start
        stamp = self.run_id.split("-", 1)[0]  # our ids start with their start in ms
        if stamp.isdigit() and len(stamp) == 13:
            return int(stamp) / 1000
        try:
            return self.path.parent.stat().st_mtime
        except OSError:
            return 0.0


def read_run(layout: RunLayout, run_id: str) -> RunEntry:
    """One run's entry; a damaged or unreadable record gives a `damaged` entry."""
    path = layout.run_json(run_id)
    pinned = layout.pin_marker(run_id).exists()
    try:
        return RunEntry(run_id, path, RunRecord.read(path), pinned=pinned)
    except DamagedRecord as exc:
        return RunEntry(run_id, path, None, str(exc), pinned)
    except OSError as exc:
        return RunEntry(run_id, path, None, f"{path} cannot be read: {exc.strerror or exc}",
                        pinned)


class RunIndex:
    """The runs of one flow under one root."""

    def __init__(self, layout: RunLayout):
        self.layout = layout

    def runs(self, limit: int | None = None) -> list[RunEntry]:
        """Every run (or the newest `limit`), newest first by start time, then id; damaged
        runs included.

        With a limit, records are read newest-written first and the reading stops once
        no unread run can start later than the ones kept: a run starts before its
        record's last write, so an unread record written before the `limit`-th newest
        start (less CLOCK_SKEW_S) cannot belong. History lists 200 of thousands of runs
        without reading thousands of files.
        """
        run_ids = self.layout.run_ids()
        if not limit or len(run_ids) <= limit:
            entries = [read_run(self.layout, run_id) for run_id in run_ids]
        else:
            entries = self._newest(run_ids, limit)
        entries.sort(key=lambda e: (e.start, e.run_id), reverse=True)
        return entries[:limit] if limit else entries

    #: How far a run's start may lie after its record's modification time (another
    #: host's clock on a shared folder, a copy that kept old times) and still be found.
    CLOCK_SKEW_S = 3600.0

    def _newest(self, run_ids: list[str], limit: int) -> list[RunEntry]:
        """At least the `limit` runs that started last, read newest-written first."""
        written = sorted(((self._written(run_id), run_id) for run_id in run_ids), reverse=True)
        entries: list[RunEntry] = []
        starts: list[float] = []  # a min-heap of the newest `limit` starts read so far
        for mtime, run_id in written:
            if len(starts) >= limit and mtime + self.CLOCK_SKEW_S < starts[0]:
                break
            entry = read_run(self.layout, run_id)
            entries.append(entry)
            if len(starts) < limit:
                heapq.heappush(starts, entry.start)
            else:
                heapq.heappushpop(starts, entry.start)
        return entries

    def _written(self, run_id: str) -> float:
        try:
            return self.layout.run_json(run_id).stat().st_mtime
        except OSError:
            return float("inf")  # unreadable: read it (it is listed as damaged)

    def newest_written(self) -> RunEntry | None:
        """The run whose record was written last: the one whose state changed last (a run
        ended, or is going on). One record read, where `runs(1)` reads every record written
        within CLOCK_SKEW_S of it (the window's marks for a folder of 200 flows with 200
        runs each took 6.9 s that way)."""
        run_ids = self.layout.run_ids()
        if not run_ids:
            return None
        return read_run(self.layout, max(run_ids, key=lambda r: (self._written(r), r)))

    def read(self, run_id: str) -> RunEntry:
        return read_run(self.layout, run_id)

    def latest(self) -> RunEntry | None:
        readable = [e for e in self.runs() if e.record is not None]
        return readable[0] if readable else None

    def resume_origin(self) -> RunEntry | None:
        """What `resume` continues unless told otherwise: the latest run that `run`
        started, not a resume, as in Metaflow (its `latest_run` is written by `run` only;
        from the latest resume, a resume that failed was resumed again and reused its tasks
        of a step the user had fixed since); the latest run when every such run is gone."""
        readable = [e for e in self.runs() if e.record is not None]
        started = next((e for e in readable if e.record and not e.record.origin_run_id), None)
        return started or (readable[0] if readable else None)

    def latest_successful(self) -> RunEntry | None:
        return next((e for e in self.runs() if e.status == SUCCEEDED), None)

    def pin(self, run_id: str) -> None:
        """Pin a run: the garbage collector keeps it however old. A marker file, not a
        run.json field, so a running run can be pinned without racing its own writer."""
        if not self.layout.run_json(run_id).exists():
            raise FileNotFoundError(f"No run {self.layout.flow}/{run_id} under "
                                    f"{self.layout.root}.")
        atomic_write_json(self.layout.pin_marker(run_id), {"pinned_at": time.time()})
        self._listing_changed()

    def unpin(self, run_id: str) -> None:
        """Unpin a run (nothing happens when it is not pinned)."""
        self.layout.pin_marker(run_id).unlink(missing_ok=True)
        self._listing_changed()

    def _listing_changed(self) -> None:
        """Touch the runs folder: a window watches its mtime to know when to list the runs
        again, and a marker written inside a run's folder does not change it (a pin made
        elsewhere, from a terminal or another window, stayed unseen). Past the mtime it
        had, always: the file system's clock is coarse (a pin and an unpin within a few
        milliseconds would leave the same mtime)."""
        try:
            before = os.stat(self.layout.runs_dir)
            mtime = max(time.time_ns(), before.st_mtime_ns + 1)
            os.utime(self.layout.runs_dir, ns=(before.st_atime_ns, mtime))
        except OSError:
            pass

    def is_pinned(self, run_id: str) -> bool:
        return self.layout.pin_marker(run_id).exists()

    def final_attempts(self, run_id: str) -> tuple[list[AttemptRecord], list[str]]:
        """The last attempt record of every task of a run, and the damaged ones' messages."""
        records, damaged = [], []
        run_dir = self.layout.run_dir(run_id)
        for step_dir in _subdirs(run_dir):
            for task_dir in _subdirs(step_dir):
                try:
                    record = final_attempt(task_dir)
                except DamagedRecord as exc:
                    damaged.append(str(exc))
                    continue
                except OSError as exc:
                    damaged.append(f"{task_dir} cannot be read: {exc.strerror or exc}")
                    continue
                if record is not None:
                    records.append(record)
        return records, damaged


# -- an object store's runs in its working copy --------------------------------------------

def fetch_shared_runs(layout: RunLayout, url: str) -> None:
    """Bring into `layout.root`, this machine's working copy of the object store `url`, the
    flow's runs that only the object store has: those made on another machine, or from
    another folder sharing the bucket. A reader of the working copy (the window's History,
    its marks, Resume from Failure) then lists them with the runs made here.

    Runs made here keep their own files (`ReadCache`'s "run" role fetches only what is
    missing); a run fetched while it went on elsewhere is read again until it ends (the
    object store is its truth, `fetch_shared_run`); a run fetched earlier that the store no
    longer has (deleted there: History's Delete, a collection) is dropped, unless it still
    goes on here (`_stale_fetched`). A run made here is never dropped: it reaches the
    store when it ends. An ObjectStoreError (an OSError) names the URL, what failed and
    what to do.
    """
    from flowdeck.store.objectstore import ReadCache
    if datastore_of(layout.root) is None:  # blobs are read from the object store, too
        mark_datastore(layout.root, url, "run")
    ReadCache(layout.root, url, "run").fetch_runs(layout.flow, _stale_fetched)
    for run_id in layout.run_ids():  # as recorded: its pid says nothing of another folder's run
        record = read_run(layout, run_id).record
        if _made_elsewhere(layout, run_id) and (record is None or record.status == RUNNING):
            fetch_shared_run(layout, url, run_id)


def fetch_shared_run(layout: RunLayout, url: str, run_id: str) -> None:
    """Bring into the working copy what the object store has of one run (its attempt
    records, logs, cards and events once it ended), so the run can be shown. A run made
    here keeps its files (they are the newer ones); another's are replaced where the
    object store's differ (it is their only writer). ObjectStoreError as above."""
    from flowdeck.store.objectstore import ReadCache
    role = "cache" if _made_elsewhere(layout, run_id) else "run"
    ReadCache(layout.root, url, role).fetch_run(layout.flow, run_id)


def _made_elsewhere(layout: RunLayout, run_id: str) -> bool:
    """Whether a run of the working copy was fetched rather than made here: a fetch marks
    the runs it brings (`RunLayout.fetched_marker`, before their record), and a run made
    here writes its events file from its start, which reaches the object store at its end
    (a working copy fetched into before the marks existed: no events, then)."""
    return layout.fetched_marker(run_id).exists() or not layout.events(run_id).exists()


def _stale_fetched(layout: RunLayout, run_id: str) -> bool:
    """Whether a run the object store no longer has may leave the working copy: it was
    fetched, not made here, and does not go on here (a running record whose process lives
    on this host: a run made here whose events file is not written yet)."""
    if not _made_elsewhere(layout, run_id):
        return False
    record = read_run(layout, run_id).record
    running_here = record is not None and record.status == RUNNING and \
        record.host in ("", hostname()) and effective_status(record) == RUNNING
    return not running_here


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
