"""The `flowdeck` command's core verbs: `graph`, `list` and `run` (headless).

The flow script's own command line (`python flow.py run ...`) is the engine's,
in `flowdeck.engine.script_cli`; this module never loads the engine.
"""

from __future__ import annotations

import json
import os
import sys

from flowdeck import __version__
from flowdeck.analysis.diagnostics import flow_file_problem, has_errors
from flowdeck.analysis.flowfile import analyze_file, no_flow_problem, pick_flow
from flowdeck.analysis.show import format_show
from flowdeck.engine.terminal import print_diagnostics, reader_gone, shown_name, shown_text

# -- the `flowdeck` command ---------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """`flowdeck graph FILE`, `flowdeck list PATH...`, `flowdeck run|resume FILE ...`,
    `flowdeck precompile`."""
    _fill_missing_streams()
    try:
        code = _command(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the exit
        return code
    except BrokenPipeError:  # `flowdeck list | head`: the reader has what it wanted
        return reader_gone()


def precompile_command() -> int:
    """`flowdeck precompile`: what every flow process would otherwise compile at its start
    where PYTHONDONTWRITEBYTECODE forbids keeping it (0.23 s of bytecode and 0.033 s of
    dataclass methods per `python flow.py` here), written once into the install, as
    `compileall` and pip do for bytecode. The core alone: flows never load the window."""
    import compileall

    from flowdeck import compiled_dataclasses
    if getattr(sys, "frozen", False):
        print("flowdeck precompile: this is the packaged app, whose own modules come "
              "compiled; run it with the Python your flows use (python3 -m flowdeck.cli.main "
              "precompile, with the bundle's pylib/ on PYTHONPATH).", file=sys.stderr)
        return 1
    folder = os.path.dirname(os.path.abspath(compiled_dataclasses.__file__))
    if not compileall.compile_dir(folder, quiet=1):
        print(f"flowdeck precompile: some modules of {folder} could not be compiled (above); "
              "check that the folder is writable.", file=sys.stderr)
        return 1
    held = compiled_dataclasses.write_cache_for(["flowdeck"])
    path = compiled_dataclasses.cache_path()
    if not held:  # nowhere to keep them, or the file could not be written
        print("flowdeck precompile: the dataclass methods could not be kept "
              f"({path or 'no place for them: a frozen app, or PYTHONPYCACHEPREFIX set'}); "
              "check that the folder is writable.", file=sys.stderr)
        return 1
    print(f"Compiled {folder} and {held} dataclass methods ({path}).")
    return 0


def _fill_missing_streams() -> None:
    """Started without fd 1 or 2 (`flowdeck run flow.py >&-`), Python sets sys.stdout or
    sys.stderr to None: what would be written there goes nowhere, as print() does, instead
    of failing the command (a run left behind) on its first write."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the process's stream until exit)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115


def _command(argv: list[str]) -> int:
    import argparse
    if argv and argv[0] == "list":
        from flowdeck.cli.listing import list_main
        return list_main(argv[1:])
    if argv and argv[0] == "gc":
        from flowdeck.cli.gc_cmd import gc_main
        return gc_main(argv[1:])
    if argv and argv[0] in ("run", "resume"):
        from flowdeck.observe import headless
        return headless.main(argv[0], argv[1:])
    parser = argparse.ArgumentParser(prog="flowdeck", description="Write, run and watch "
                                     "Metaflow-style flows on your own machine.")
    parser.add_argument("--version", action="version", version=f"flowdeck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    graph = sub.add_parser("graph", help="print a flow file's static graph (never runs it)",
                           description="Print a flow file's steps and how they connect, "
                           "read from its source (the file is never run), with its "
                           "problems and their lines.")
    graph.add_argument("file", metavar="FILE", help="the flow's .py file")
    graph.add_argument("--flow", help="which flow, when the file has several")
    graph.add_argument("--json", action="store_true",
                       help="Metaflow's `output-raw --json` shape")
    sub.add_parser("list", help="list the flows under folders (see `flowdeck list -h`)")
    sub.add_parser("run", help="run a flow without a window: run FILE [--param v] "
                   "(see `flowdeck run -h`)")
    sub.add_parser("resume", help="resume a flow's latest run from its failure: resume FILE "
                   "[STEP] (see `flowdeck resume -h`)")
    sub.add_parser("gc", help="remove old runs and blobs no kept run uses "
                   "(see `flowdeck gc -h`)")
    precompile_help = ("compile Flowdeck's modules and the methods of its dataclasses where "
                       "it is installed (an image built with PYTHONDONTWRITEBYTECODE: every "
                       "flow then starts without compiling them)")
    sub.add_parser("precompile", help=precompile_help,
                   description=precompile_help[0].upper() + precompile_help[1:] + ".")
    args, extras = parser.parse_known_args(argv)
    if extras:  # said by the command's own parser, with its usage (not the top level's)
        own = sub.choices.get(args.command) if args.command else None
        (own or parser).error(f"unrecognized arguments: {' '.join(extras)}")
    if args.command == "graph":
        return graph_command(args.file, args.flow, args.json)
    if args.command == "precompile":
        return precompile_command()
    parser.print_help()
    return 0


def graph_command(file: str, flow_name: str | None, as_json: bool) -> int:
    """`flowdeck graph`: the flow's `show` text (its docstrings' escapes shown, never obeyed
    by the terminal), then its diagnostics."""
    problem = flow_file_problem(file)
    if problem:
        print(shown_name(f"error: {problem}"), file=sys.stderr)
        return 2
    analysis = analyze_file(file)
    if not analysis.flows:
        print_diagnostics(analysis.diagnostics)
        print(shown_name(f"error: {no_flow_problem(analysis, file)}"), file=sys.stderr)
        return 1
    flow, problem = pick_flow(analysis.flows, flow_name, file, to_run=False)
    if flow is None:
        print(shown_name(f"error: {problem}"), file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(flow.graph.as_dict(), indent=4, default=str))
    else:
        print(shown_text(format_show(flow.graph)))
    print_diagnostics(flow.diagnostics)
    return 1 if has_errors(flow.diagnostics) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
