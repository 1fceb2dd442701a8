"""`flowdeck gc [PATH...] [--keep N] [--dry-run]`: collect the stores under folders.

Each store is collected by `flowdeck.store.gc.collect` (which says what is kept and
why it is safe while runs are in progress). Without PATH: `$FLOWDECK_HOME` when set,
else the stores under the current folder. Exit status 0; 1 when something could not be
removed; 2 for a path that does not exist or a bad keep setting.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from flowdeck.store.gc import GcPolicy, GcReport, GcSettingError, collect
from flowdeck.store.layout import DEFAULT_DIRNAME, ROOT_ENV, looks_like_store

#: Folders never searched for stores: they hold no project's runs, and can be huge.
_SKIP = {"node_modules", "__pycache__", "site-packages", "venv", "env"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowdeck gc",
        description="Remove old runs (keeping the newest N per flow, pinned and running runs "
                    "and the runs they resumed from), then blobs no kept run uses (once "
                    "they are 15 minutes old, and while no run is in progress), temporary "
                    "files left by killed writers and the logs of removed runs.")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help=f"a store, or a folder to search for {DEFAULT_DIRNAME} stores "
                             f"(default: ${ROOT_ENV}, else the current folder)")
    parser.add_argument("--keep", type=int, metavar="N",
                        help="runs to keep per flow (default: $FLOWDECK_KEEP_RUNS, else the "
                             "store's settings.json `keep_runs`, else 50)")
    parser.add_argument("--dry-run", action="store_true",
                        help="say what would be removed; remove nothing")
    return parser


def gc_main(argv: list[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run `flowdeck gc`; returns the exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    missing = [p for p in args.paths if not os.path.isdir(p)]
    for path in missing:
        print(f"flowdeck gc: error: {path}: no such folder. Give a folder or a store.", file=err)
    if missing:
        return 2
    stores = find_stores(args.paths)
    if not stores:
        where = ", ".join(args.paths) or os.environ.get(ROOT_ENV) or os.getcwd()
        print(f"No Flowdeck store ({DEFAULT_DIRNAME} folder) under {where}: nothing to do.",
              file=out)
        return 0
    status = 0
    for store in stores:
        try:
            report = collect(store, GcPolicy(keep=args.keep, dry_run=args.dry_run))
        except GcSettingError as exc:
            print(f"flowdeck gc: error: {exc}", file=err)
            return 2
        print_report(report, out, err)
        status = max(status, 1 if report.errors else 0)
    return status


def find_stores(paths: list[str]) -> list[Path]:
    """The stores to collect: the given stores, the `.flowdeck` folders under the given
    folders, or (no paths) `$FLOWDECK_HOME` or the stores under the current folder."""
    if not paths and os.environ.get(ROOT_ENV):
        home = Path(os.environ[ROOT_ENV]).expanduser().resolve()
        return [home] if home.is_dir() else []
    found: dict[Path, None] = {}
    for path in paths or [os.getcwd()]:
        folder = Path(path).resolve()
        if looks_like_store(folder):
            found[folder] = None
            continue
        for store in _stores_below(folder):
            found[store] = None
    return list(found)


def _stores_below(folder: Path) -> list[Path]:
    """`.flowdeck` folders below `folder`; hidden folders, environments and caches skipped."""
    stores = []
    for current, dirs, _ in os.walk(folder):
        if DEFAULT_DIRNAME in dirs:
            stores.append(Path(current) / DEFAULT_DIRNAME)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP
                         and not os.path.exists(os.path.join(current, d, "pyvenv.cfg")))
    return stores


def print_report(report: GcReport, out: TextIO, err: TextIO) -> None:
    what = "dry run" if report.dry_run else f"{report.seconds:.2f} s"
    print(f"{report.root} (keeping {report.keep} runs per flow; {what}):", file=out)
    print(f"  {report.summary()}", file=out)
    if report.live_runs:
        print(f"  {report.live_runs} run(s) in progress: kept, with the runs they need.",
              file=out)
    if report.dry_run and report.runs_removed:
        shown = report.runs_removed[:10]
        more = len(report.runs_removed) - len(shown)
        print("  runs: " + ", ".join(shown) + (f" and {more} more" if more else ""), file=out)
    for error in report.errors:
        print(f"  error: {error}", file=err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(gc_main(sys.argv[1:]))
