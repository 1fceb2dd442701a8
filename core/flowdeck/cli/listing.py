"""`flowdeck list PATH... [--json]`: the flows found in files and folders, statically.

Nothing is imported or run: the same catalog the desktop's flow list uses.
Exit status 0 even when some flows have errors (they are listed, with their
diagnostics); 2 when a path does not exist or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from flowdeck.analysis.diagnostics import Diagnostic
from flowdeck.discovery.catalog import CatalogEntry, CatalogSnapshot, FlowCatalog
from flowdeck.engine.terminal import shown_name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowdeck list",
        description="List the flows defined in Python files, without running them.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="a flow file, or a folder to search recursively")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (flows, problems, skipped files)")
    return parser


def list_main(argv: list[str], stdout: TextIO | None = None,
              stderr: TextIO | None = None) -> int:
    """Run `flowdeck list`; returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        for path in missing:
            print(shown_name(f"flowdeck list: error: {path}: no such file or folder. Check "
                             "the path."), file=err)
        return 2
    snapshot, _ = FlowCatalog(args.paths).scan()
    if args.json:
        json.dump(snapshot.as_dict(), out, indent=2, default=repr)
        out.write("\n")
    else:
        print_human(snapshot, out)
    return 0


def print_human(snapshot: CatalogSnapshot, out: TextIO) -> None:
    """One line per flow, diagnostics indented under it, then broken and skipped files."""
    for entry in snapshot.entries:
        _line(out, _flow_line(entry))
        for diagnostic in [] if entry.is_base else entry.diagnostics:
            _line(out, "    " + _diagnostic_line(diagnostic))
    with_flows = {e.file for e in snapshot.entries}
    for problem in snapshot.problems:
        if problem.path in with_flows:
            continue  # already shown under its (last known) flows
        _line(out, f"{display(problem.path)}  (no flows: the file cannot be analysed)")
        for diagnostic in problem.diagnostics:
            _line(out, "    " + _diagnostic_line(diagnostic))
    for skipped in snapshot.skipped:
        _line(out, f"skipped {display(skipped.path)}: {skipped.reason}")
    broken = sum(1 for e in snapshot.entries if not e.ok and not e.is_base)
    files = len(with_flows)
    summary = (f"{len(snapshot.entries)} flow{'s' if len(snapshot.entries) != 1 else ''} "
               f"in {files} file{'s' if files != 1 else ''}")
    if broken:
        summary += f", {broken} with errors"
    others = len([p for p in snapshot.problems if p.path not in with_flows])
    if others:
        summary += f"; {others} file{'s' if others != 1 else ''} could not be analysed"
    if snapshot.skipped:
        summary += f"; {len(snapshot.skipped)} skipped"
    out.write(summary + "\n")


def _line(out: TextIO, text: str) -> None:
    """One line of the listing, whatever its names hold: a file name's newline, escape or
    undecodable byte is shown (`shown_name`), never obeyed by the terminal or split."""
    out.write(shown_name(text) + "\n")


def _flow_line(entry: CatalogEntry) -> str:
    steps = len(entry.flow.graph.nodes)
    status = "ok" if entry.ok else "errors"
    if entry.is_base:
        status = f"base class of {', '.join(entry.base_of)} (not run on its own)"
    if entry.stale:
        status = "errors (file no longer parses)"
    return (f"{display(entry.file)}:{entry.line}  {entry.name}  [{entry.engine}]  "
            f"{steps} step{'s' if steps != 1 else ''}  {status}")


def _diagnostic_line(d: Diagnostic) -> str:
    return f"{display(d.file)}:{d.line}:{max(d.column, 1)}: {d.severity}: {d.message}"


def display(path: str) -> str:
    """A path relative to the current folder when it is below it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith(os.pardir) else rel


if __name__ == "__main__":
    sys.exit(list_main(sys.argv[1:]))
