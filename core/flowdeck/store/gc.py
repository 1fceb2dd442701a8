"""The store's garbage collector: old runs, blobs nothing refers to, stale temporary files
and the headless logs of removed runs.

Nothing else ever deletes from a store, and every run (every rerun-on-save included)
adds about 10 kB, so without this a store only grows.

**Retention** (per flow). Kept are: the newest N runs (`keep_setting`: `--keep`, then
`$FLOWDECK_KEEP_RUNS`, then `keep_runs` in the store's `settings.json`, then 50), every
pinned run, every run whose effective status is running (its process is alive, or it
runs on another host), the latest successful run (rerun-on-save resumes from it), and
every run a kept run resumed from, transitively: a resumed run's reused tasks refer to
the origin's blobs, and their logs are the origin's files. Every other run is dropped:
its folder and its headless log are removed.

**Blobs** are shared by all flows of a store. A blob is removed only when all hold:

1. no kept run of any flow refers to it (run.json `param_refs`, and the `artifacts` of
   every attempt record, retries included);
2. it is older than `blob_grace_s` (15 minutes);
3. no run of the store is in progress: none is live (effective status running), no run
   folder is still without its run.json (a run being created; for an hour at most), and
   none appears while blobs are being removed (the sweep checks and stops).

Why rule 3, and not "younger than the oldest live run's start": a task writes its
artifacts' blobs before its attempt record, and a run its parameters' blobs before its
run.json, so for a while nothing refers to them. A time rule would protect the blobs
they *write*, but `BlobStore.write` does not rewrite a blob that is already present: a
live task whose value equals an old, unreferenced blob adopts that file as it is, old
time included, and refers to it only once its record is written. Nothing on disk tells
such a blob from garbage until then (tests/test_gc.py reproduces it), so blobs wait for
a moment when nothing runs; runs, temporary files and logs are collected regardless.
Rule 2 is for writers that are no run at all yet.

When any kept run's record cannot be read, its references are unknown: no blob is
removed, and the report says which file is at fault.

**Temporary files** (`.tmp-<pid>-<n>`, see `blobs._temporary_path`: a writer killed before
its rename leaves one) are removed when older than five minutes and their pid is not a
live process on this host, or older than an hour whatever the pid (pids are reused, and a
writer that has not written for an hour is gone). A live writer's file is never older.

**Never removed**: the two-hex-digit blob folders, even empty (a writer may be between
creating one and opening its temporary file in it); a run folder without run.json (a run
being created). A run is removed by renaming its folder to `.deleting-<id>` first, so a
removal cut short leaves nothing half-deleted in any listing; the next collection ends it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.blobs import BlobStore
from flowdeck.store.index import RunEntry, RunIndex, read_run
from flowdeck.store.layout import RunLayout, flows_in, headless_logs, settings_file
from flowdeck.store.liveness import pid_alive
from flowdeck.store.previews import previewed_blob
from flowdeck.store.records import DamagedRecord, read_json_file
from flowdeck.store.status import RUNNING, SUCCEEDED

DEFAULT_KEEP = 50
KEEP_ENV = "FLOWDECK_KEEP_RUNS"
KEEP_KEY = "keep_runs"  # in the store's settings.json
BLOB_GRACE_S = 15 * 60.0
TEMP_MIN_AGE_S = 5 * 60.0
TEMP_MAX_AGE_S = 60 * 60.0  # also: how long a run folder without run.json counts as starting
CHECK_EVERY_S = 0.2  # how often the blob sweep looks for a run that started meanwhile
_TEMP = re.compile(r"^\.tmp-(?P<pid>\d+)-\d+$")  # blobs._temporary_path's names
_ATTEMPT = re.compile(r"^attempt-\d+\.json$")


class GcSettingError(ValueError):
    """A keep setting that is not a whole number >= 0; the message names where it came from."""


class RunProtected(ValueError):
    """A run that cannot be deleted now (running or pinned); the message says what to do."""


# -- settings --------------------------------------------------------------------------

def keep_setting(root: str | os.PathLike[str], explicit: int | None = None,
                 default: int | None = DEFAULT_KEEP) -> int | None:
    """How many runs per flow to keep: `explicit` (`--keep`), `$FLOWDECK_KEEP_RUNS`, the
    store's settings.json `keep_runs`, else `default` (50). The most specific request wins."""
    if explicit is not None:
        return _check_keep(explicit, "--keep")
    env = os.environ.get(KEEP_ENV, "").strip()
    if env:
        try:
            return _check_keep(int(env), f"${KEEP_ENV}")
        except ValueError:
            raise GcSettingError(f"${KEEP_ENV} is {env!r}: give a whole number of runs to "
                                 "keep per flow, such as 50.") from None
    path = settings_file(root)
    try:
        data = read_json_file(path)
    except FileNotFoundError:
        return default
    except (OSError, DamagedRecord) as exc:
        raise GcSettingError(f"{path} cannot be read ({exc}). Fix or delete it.") from None
    if KEEP_KEY not in data:
        return default
    value = data[KEEP_KEY]
    if not isinstance(value, int) or isinstance(value, bool):
        raise GcSettingError(f"{path}: `{KEEP_KEY}` is {value!r}: give a whole number.")
    return _check_keep(value, f"{path} `{KEEP_KEY}`")


def _check_keep(value: int, source: str) -> int:
    if value < 0:
        raise GcSettingError(f"{source} is {value}: the number of runs to keep cannot be "
                             "negative (0 keeps only pinned, running and needed runs).")
    return value


# -- retention -------------------------------------------------------------------------

@dataclass(frozen=True)
class Retention:
    """Which runs of one flow stay (with why) and which go."""

    kept: dict[str, str]  # run id -> reason
    dropped: list[RunEntry]


def plan_retention(entries: list[RunEntry], keep: int) -> Retention:
    """Split a flow's runs (newest first, as `RunIndex.runs` lists them) into kept and dropped.

    Pure: reads only the entries (and whether their processes live), deletes nothing.
    """
    status = {e.run_id: e.status for e in entries}  # one liveness check per run
    reasons: dict[str, str] = {e.run_id: "newest" for e in entries[:keep]}
    for entry in entries:
        if entry.pinned:
            reasons.setdefault(entry.run_id, "pinned")
        if status[entry.run_id] == RUNNING:
            reasons.setdefault(entry.run_id, "running")
    latest_ok = next((e for e in entries if status[e.run_id] == SUCCEEDED), None)
    if latest_ok is not None:
        reasons.setdefault(latest_ok.run_id, "latest successful")
    _keep_origins(entries, reasons)
    return Retention(reasons, [e for e in entries if e.run_id not in reasons])


def _keep_origins(entries: list[RunEntry], reasons: dict[str, str]) -> None:
    """Add the runs kept runs resumed from, and theirs, to `reasons`."""
    by_id = {e.run_id: e for e in entries}
    todo = list(reasons)
    while todo:
        run_id = todo.pop()
        record = by_id[run_id].record if run_id in by_id else None
        origin = record.origin_run_id if record else None
        if origin and origin in by_id and origin not in reasons:
            reasons[origin] = f"origin of {run_id}"
            todo.append(origin)


# -- the report ------------------------------------------------------------------------

@dataclass(frozen=True)
class GcPolicy:
    """How to collect. `keep` None: from the store's settings (`keep_setting`)."""

    keep: int | None = None
    dry_run: bool = False
    #: False: runs are dropped only where a keep setting was chosen ($FLOWDECK_KEEP_RUNS,
    #: the store's `keep_runs`); the window collects so, in the background, and never deletes a run nobody asked it to
    #: (a 150-run sweep made in a terminal lost 100 runs to the default of 50).
    default_retention: bool = True
    blob_grace_s: float = BLOB_GRACE_S
    temp_min_age_s: float = TEMP_MIN_AGE_S
    temp_max_age_s: float = TEMP_MAX_AGE_S


@dataclass
class GcReport:
    """What one collection of one store did (or, in a dry run, would do)."""

    root: Path
    keep: int | None  # None: no keep setting chosen, and none applied (no run dropped)
    dry_run: bool = False
    runs_removed: list[str] = field(default_factory=list)  # "Flow/run_id"
    runs_kept: int = 0
    live_runs: int = 0
    blobs_removed: int = 0
    blobs_kept: int = 0
    #: Of the kept blobs, those no kept run refers to but written within the grace period:
    #: said, so "freed 188 kB" of a store whose dropped runs held more is not a mystery.
    blobs_recent: int = 0
    blob_grace_s: float = 0.0
    temps_removed: int = 0
    logs_removed: int = 0
    bytes_freed: int = 0  # disk space: allocated blocks, not file sizes
    blobs_skipped: str | None = None  # why no blob was considered at all
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        verb, freed = ("would remove", "would free") if self.dry_run else ("removed", "freed")
        text = (f"{verb} {_count(len(self.runs_removed), 'run')}, "
                f"{_count(self.blobs_removed, 'blob')}, "
                f"{_count(self.temps_removed, 'temporary file')}, "
                f"{_count(self.logs_removed, 'log')}; {freed} {human_bytes(self.bytes_freed)}; "
                f"kept {_count(self.runs_kept, 'run')} and {_count(self.blobs_kept, 'blob')}")
        if self.blobs_recent:
            text += (f"; {_count(self.blobs_recent, 'blob')} no kept run refers to "
                     f"{'is' if self.blobs_recent == 1 else 'are'} kept for now, written "
                     f"less than {self.blob_grace_s / 60:g} minutes ago (a task may be about "
                     "to name them); a later gc removes them")
        if self.blobs_skipped:
            text += f". No blob was removed: {self.blobs_skipped}"
        return text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


# -- collecting ------------------------------------------------------------------------

@dataclass
class _Marks:
    """What kept runs refer to, the temporary files seen in their folders, and the
    records that could not be read (whose references are therefore unknown)."""

    shas: set[str] = field(default_factory=set)
    temps: list[Path] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    live: set[tuple[str, str]] = field(default_factory=set)  # (flow, run id) in progress
    starting: set[Path] = field(default_factory=set)  # run folders without run.json yet
    seen: set[tuple[str, str]] = field(default_factory=set)  # (flow, run id) marked


def collect(root: str | os.PathLike[str], policy: GcPolicy | None = None) -> GcReport:
    """Collect one store: drop runs past retention, then unreferenced blobs, stale
    temporary files and orphaned headless logs. GcSettingError for a bad keep setting."""
    started = time.monotonic()
    policy = policy or GcPolicy()
    root = Path(root)
    keep = keep_setting(root, policy.keep,
                        default=DEFAULT_KEEP if policy.default_retention else None)
    report = GcReport(root, keep, policy.dry_run)
    marks = _Marks()
    dropped, listed = _plan(root, report.keep, marks)
    if not policy.dry_run:
        again, listed = _plan(root, report.keep, marks)
        dropped = [run for run in dropped if run in again]
        for flow in flows_in(root):
            _finish_deletions(RunLayout(root, flow), report)
    for flow, run_id in dropped:
        _drop_run(RunLayout(root, flow), run_id, report)
    report.runs_kept = listed - len(report.runs_removed)
    if not policy.dry_run:
        _remark(root, marks)
    report.live_runs = len(marks.live) + len(marks.starting)
    now = time.time()
    _sweep_blobs(root, marks, policy, now, report)
    _sweep_temps(_temp_candidates(root, marks), policy, now, report)
    removed = {run.split("/", 1)[1] for run in report.runs_removed}
    _sweep_logs(root, removed, policy, now, report)
    report.seconds = time.monotonic() - started
    return report


def _plan(root: Path, keep: int | None, marks: _Marks) -> tuple[list[tuple[str, str]], int]:
    """The (flow, run id) of every run retention drops (none with `keep` None), and how
    many runs are listed; kept runs not marked yet are marked.

    `collect` plans twice and removes only what both plans drop: in between, a run may
    have been pinned, started, or resumed from an old run, and the second plan keeps it.
    """
    dropped: list[tuple[str, str]] = []
    listed = 0
    for flow in flows_in(root):
        layout = RunLayout(root, flow)
        entries = RunIndex(layout).runs()
        retention = plan_retention(entries, len(entries) if keep is None else keep)
        listed += len(entries)
        dropped += [(flow, e.run_id) for e in retention.dropped]
        marks.starting.update(_starting(layout, TEMP_MAX_AGE_S))
        for entry in entries:
            if entry.run_id in retention.kept and (flow, entry.run_id) not in marks.seen:
                _mark_run(layout, entry, marks)
    return dropped, listed


def _mark_run(layout: RunLayout, entry: RunEntry, marks: _Marks) -> None:
    """Record every blob a kept run refers to, and the temporary files in its folder."""
    key = (layout.flow, entry.run_id)
    if entry.status == RUNNING:
        marks.live.add(key)
    marks.seen.add(key)
    if entry.record is None:
        marks.unreadable.append(entry.damage or f"{entry.path} cannot be read")
    else:
        marks.shas.update(_shas(entry.record.param_refs))
    for folder, _, names in os.walk(layout.run_dir(entry.run_id)):
        for name in names:
            if _ATTEMPT.match(name):
                _mark_attempt(Path(folder) / name, marks)
            elif _TEMP.match(name):
                marks.temps.append(Path(folder) / name)


def _mark_attempt(path: Path, marks: _Marks) -> None:
    """The artifacts of one attempt record, read leniently: only the digests matter here."""
    try:
        data = read_json_file(path)
    except FileNotFoundError:
        return
    except (OSError, DamagedRecord) as exc:
        marks.unreadable.append(str(exc))
        return
    artifacts = data.get("artifacts") or {}
    if not isinstance(artifacts, dict):
        marks.unreadable.append(f"{path}: `artifacts` is not an object")
        return
    marks.shas.update(_shas(artifacts))


def _shas(refs: Mapping[str, object]) -> Iterator[str]:
    for ref in refs.values():
        if isinstance(ref, dict) and isinstance(ref.get("sha"), str):
            yield ref["sha"]


def _remark(root: Path, marks: _Marks) -> None:
    """Look again right before blobs go: runs that started since planning, and runs that
    were live then, are (re)read, and what is in progress now is what counts."""
    was_live = set(marks.live)
    marks.live.clear()
    marks.starting.clear()
    for flow in flows_in(root):
        layout = RunLayout(root, flow)
        marks.starting.update(_starting(layout, TEMP_MAX_AGE_S))
        for run_id in layout.run_ids():
            if (flow, run_id) not in marks.seen or (flow, run_id) in was_live:
                _mark_run(layout, read_run(layout, run_id), marks)


def _starting(layout: RunLayout, max_age_s: float) -> list[Path]:
    """Run folders without run.json that are young enough to be runs being created."""
    now = time.time()
    found = []
    for folder in layout.starting_run_dirs():
        try:
            if now - folder.stat().st_mtime < max_age_s:
                found.append(folder)
        except FileNotFoundError:
            continue
    return found


def _run_folders(root: Path) -> set[str]:
    """Every run folder of the store (started, starting or finished), to notice new ones."""
    found: set[str] = set()
    for flow in flows_in(root):
        layout = RunLayout(root, flow)
        found.update(f"{flow}/{e.name}" for e in _scandir(layout.runs_dir)
                     if not e.name.startswith("."))
    return found


# -- removing runs ---------------------------------------------------------------------

def delete_run(layout: RunLayout, run_id: str) -> int:
    """Delete one run now (the window's "Delete run"): its folder and its headless log.

    Its blobs stay until the next collection (other runs may share them). RunProtected
    when the run is running or pinned; returns the bytes freed.
    """
    entry = read_run(layout, run_id)
    if not layout.run_dir(run_id).is_dir():
        raise FileNotFoundError(f"No run {layout.flow}/{run_id} under {layout.root}.")
    if entry.status == RUNNING:
        raise RunProtected(f"Run {layout.flow}/{run_id} is running: stop it before deleting it.")
    if entry.pinned:
        raise RunProtected(f"Run {layout.flow}/{run_id} is pinned: unpin it first.")
    freed = _remove_run_dir(layout, run_id)
    return freed + _remove_file(layout.headless_log(run_id))


def _drop_run(layout: RunLayout, run_id: str, report: GcReport) -> None:
    """Remove a dropped run (unless pinned meanwhile), or count it in a dry run."""
    path = layout.run_dir(run_id)
    if report.dry_run:
        report.bytes_freed += _tree_size(path)
    elif layout.pin_marker(run_id).exists():
        return
    else:
        try:
            report.bytes_freed += _remove_run_dir(layout, run_id)
        except OSError as exc:
            report.errors.append(f"{path} could not be removed: {exc}")
            return
    report.runs_removed.append(f"{layout.flow}/{run_id}")


def _remove_run_dir(layout: RunLayout, run_id: str) -> int:
    """Rename the run out of every listing, then remove it; the bytes it held."""
    source = layout.run_dir(run_id)
    size = _tree_size(source)
    staged = layout.deleting_dir(run_id)
    os.rename(source, staged)
    _remove_tree(staged)
    return size


def _finish_deletions(layout: RunLayout, report: GcReport) -> None:
    """Remove what an interrupted removal left (already out of every listing)."""
    for folder in layout.deletions_left():
        size = _tree_size(folder)
        try:
            _remove_tree(folder)
        except OSError as exc:
            report.errors.append(f"{folder} could not be removed: {exc}")
            continue
        report.bytes_freed += size


def _remove_tree(path: Path) -> None:
    """`shutil.rmtree`, where what is already gone is no error: a collection finishing
    interrupted removals and a "Delete run" may remove the same staged folder at once
    (the delete failed with "No such file or directory: 'events.jsonl'")."""
    def gone_is_fine(_function: object, _path: str, info: Any) -> None:
        if not isinstance(info[1], FileNotFoundError):
            raise info[1]
    shutil.rmtree(path, onerror=gone_is_fine)


def _tree_size(path: Path) -> int:
    """Disk space of a folder: its files' and folders' allocated blocks."""
    total = 0
    for folder, dirs, names in os.walk(path):
        for name in [*names, *dirs]:
            try:
                total += disk_bytes(os.lstat(os.path.join(folder, name)))
            except OSError:
                pass
    try:
        total += disk_bytes(os.lstat(path))
    except OSError:
        pass
    return total


def disk_bytes(stat: os.stat_result) -> int:
    """The disk space a file takes: its allocated blocks (a 200-byte record takes 4 kB,
    a run folder's directories take a block each), or its size where blocks are unknown."""
    blocks = getattr(stat, "st_blocks", None)
    return blocks * 512 if blocks is not None else stat.st_size


# -- sweeping files --------------------------------------------------------------------

def _sweep_blobs(root: Path, marks: _Marks, policy: GcPolicy, now: float,
                 report: GcReport) -> None:
    """Remove blobs no kept run refers to, older than the grace period, when (and for as
    long as) no run is in progress; see the module's rules."""
    if marks.unreadable:
        report.blobs_skipped = (f"{len(marks.unreadable)} record(s) of kept runs cannot be "
                                f"read, so their references are unknown; first: "
                                f"{marks.unreadable[0]}")
        return
    if marks.live or marks.starting:
        report.blobs_skipped = (f"{len(marks.live) + len(marks.starting)} run(s) in "
                                "progress, and a running task can adopt an existing blob "
                                "before its record refers to it; run gc again when they end")
        return
    protect_after = now - policy.blob_grace_s
    report.blob_grace_s = policy.blob_grace_s
    folders = _run_folders(root)
    checked = time.monotonic()
    for path, stat in _blob_files(BlobStore(root).dir):
        if not report.dry_run and time.monotonic() - checked > CHECK_EVERY_S:
            if _run_folders(root) - folders:
                report.blobs_skipped = "a run started during the collection; it stopped there"
                return
            checked = time.monotonic()
        if _TEMP.match(path.name):
            continue  # a writer's temporary file: the temporary-file rule decides
        if previewed_blob(path.name) in marks.shas or stat.st_mtime >= protect_after:
            report.blobs_kept += 1
            if previewed_blob(path.name) not in marks.shas:
                report.blobs_recent += 1
            continue
        if report.dry_run or _unlink(path, report):
            report.blobs_removed += 1
            report.bytes_freed += disk_bytes(stat)


def _blob_files(blobs_dir: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every file in the blob folders (`ab/<digest>`, set-aside and temporary files too)."""
    try:
        prefixes = [e for e in os.scandir(blobs_dir) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for prefix in prefixes:
        try:
            files = list(os.scandir(prefix.path))
        except OSError:
            continue
        for entry in files:
            try:
                if entry.is_file(follow_symlinks=False):
                    yield Path(entry.path), entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue


def _temp_candidates(root: Path, marks: _Marks) -> list[Path]:
    """Temporary files in the store's root, the blob folders and kept runs' folders
    (dropped runs' ones went with their folders)."""
    found = list(marks.temps)
    folders = [root, *(Path(p.path) for p in _scandir(BlobStore(root).dir) if p.is_dir())]
    for folder in folders:
        found += [Path(e.path) for e in _scandir(folder) if _TEMP.match(e.name)]
    return found


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(path))
    except OSError:
        return []


def stale_temp(name: str, mtime: float, now: float, policy: GcPolicy | None = None) -> bool:
    """True when a `.tmp-<pid>-<n>` file is left over: its writer is dead (and it is not
    brand new), or nothing has written it for an hour."""
    policy = policy or GcPolicy()
    match = _TEMP.match(name)
    if match is None:
        return False
    age = now - mtime
    if age >= policy.temp_max_age_s:
        return True
    return age >= policy.temp_min_age_s and not pid_alive(int(match["pid"]))


def _sweep_temps(paths: list[Path], policy: GcPolicy, now: float, report: GcReport) -> None:
    for path in dict.fromkeys(paths):  # a folder may be listed twice
        try:
            stat = path.lstat()
        except FileNotFoundError:
            continue  # renamed into place by its writer meanwhile
        if not stale_temp(path.name, stat.st_mtime, now, policy):
            continue
        if report.dry_run or _unlink(path, report):
            report.temps_removed += 1
            report.bytes_freed += disk_bytes(stat)


def _sweep_logs(root: Path, dropped: set[str], policy: GcPolicy, now: float,
                report: GcReport) -> None:
    """Headless logs of dropped runs, and old logs whose run is gone.

    A headless log is created just before its run's folder, so a log without a run is
    only removed when older than an hour (its run never started, or was deleted).
    """
    runs = {run_id for flow in flows_in(root) for run_id in RunLayout(root, flow).run_ids()}
    for run_id, path in headless_logs(root).items():
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        orphan = run_id not in runs and now - stat.st_mtime >= policy.temp_max_age_s
        if run_id not in dropped and not orphan:
            continue
        if report.dry_run or _unlink(path, report):
            report.logs_removed += 1
            report.bytes_freed += disk_bytes(stat)


def _unlink(path: Path, report: GcReport) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        report.errors.append(f"{path} could not be removed: {exc}")
        return False
    return True


def _remove_file(path: Path) -> int:
    try:
        size = disk_bytes(path.stat())
        path.unlink()
    except FileNotFoundError:
        return 0
    return size
