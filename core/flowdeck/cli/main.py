"""Command lines: the flow script's own (`python flow.py [run|show|resume|check]`) and `flowdeck`.

User mistakes (bad parameters, lint errors, unknown steps) print a clear
message and exit non-zero; they never show an engine traceback.
"""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from flowdeck import __version__
from flowdeck.analysis.diagnostics import Diagnostic, FlowdeckError, has_errors
from flowdeck.analysis.flowfile import FlowInfo, analyze_file
from flowdeck.analysis.graph import FlowGraph
from flowdeck.engine.runtime import RunOptions
from flowdeck.authoring.spec import flow_parameters

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from flowdeck.client import Run

SCRIPT_COMMANDS = ("run", "resume", "show", "check", "output-raw")
RUN_ID_ENV = "FLOWDECK_RUN_ID"


def print_diagnostics(diagnostics: list[Diagnostic]) -> None:
    for d in diagnostics:
        print(d.format(), file=sys.stderr)


def _fail(exc: FlowdeckError) -> int:
    print_diagnostics(exc.diagnostics)
    print(f"error: {exc}", file=sys.stderr)
    return exc.exit_code


# -- the flow script's command line ------------------------------------------

def script_main(flow_cls: type, argv: list[str],
                defaults: dict[str, Any] | None = None) -> tuple[int, "Run | None"]:
    """Run the flow script's command line; returns (exit code, run handle or None)."""
    argv = list(argv)
    if not argv:  # the common case: `python flow.py`; no parser to build
        args = SimpleNamespace(command="run", max_workers=0, run_id=None, quiet=False)
    else:
        if argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
            argv = ["run"] + argv
        try:
            args = _script_parser(flow_cls).parse_args(argv)
        except SystemExit as exc:  # argparse printed usage or help
            return int(exc.code or 0), None
    try:
        return _dispatch(flow_cls, args, defaults or {})
    except FlowdeckError as exc:
        return _fail(exc), None


def _dispatch(flow_cls: type, args: Any,
              defaults: dict[str, Any]) -> tuple[int, "Run | None"]:
    from flowdeck.engine import launch
    from flowdeck.client import Run
    if args.command == "show":
        prepared = launch.prepare(flow_cls)
        print(format_show(prepared.graph))
        return 0, None
    if args.command == "check":
        prepared = launch.prepare(flow_cls)
        print_diagnostics(prepared.diagnostics)
        print(f"{flow_cls.__name__}: {len(prepared.graph.nodes)} steps, no errors.")
        return 0, None
    if args.command == "output-raw":
        prepared = launch.prepare(flow_cls)
        print(json.dumps(prepared.graph.as_dict(), indent=4))
        return 0, None
    options = RunOptions(max_workers=args.max_workers or 0,
                         run_id=args.run_id or os.environ.get(RUN_ID_ENV) or None,
                         origin_run_id=getattr(args, "origin_run_id", None),
                         quiet=args.quiet)
    if args.command == "resume":
        outcome = launch.resume(flow_cls, args.steps, options)
    else:
        given = dict(defaults)
        for attr in flow_parameters(flow_cls):
            value = getattr(args, f"param_{attr}", None)
            if value is not None:
                given[attr] = value
        outcome = launch.execute(flow_cls, given, options)
    return outcome.exit_code, Run(f"{flow_cls.__name__}/{outcome.run_id}", root=outcome.root)


def _script_parser(flow_cls: type) -> "argparse.ArgumentParser":
    import argparse
    prog = f"python {os.path.basename(sys.argv[0]) or 'flow.py'}"
    params = flow_parameters(flow_cls)
    doc = (flow_cls.__doc__ or "").strip()
    parser = argparse.ArgumentParser(
        prog=prog, description=f"{flow_cls.__name__}: {doc}" if doc else flow_cls.__name__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_parameters_epilog(params) + "\nWith no command, `run` is assumed.")
    parser.add_argument("--version", action="version", version=f"flowdeck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the flow (the default)",
                         description="Run the flow.")
    _add_run_options(run)
    for attr, param in params.items():
        _add_parameter(run, attr, param)
    resume = sub.add_parser("resume", help="rerun from the failed (or named) steps, "
                            "reusing finished tasks")
    resume.add_argument("steps", nargs="*", metavar="STEP",
                        help="steps to rerun (with all steps after them); default: the "
                        "steps that failed")
    resume.add_argument("--origin-run-id", help="the run to resume (default: the latest)")
    _add_run_options(resume)
    sub.add_parser("show", help="print the steps and their transitions")
    sub.add_parser("check", help="check the flow for errors without running it")
    raw = sub.add_parser("output-raw", help="print the graph as JSON (Metaflow's shape)")
    raw.add_argument("--json", action="store_true", help="(always JSON; for compatibility)")
    return parser


def _add_run_options(parser: "argparse.ArgumentParser") -> None:
    parser.add_argument("--max-workers", type=int, default=0, metavar="N",
                        help="tasks run in parallel at most (default: the CPU count)")
    parser.add_argument("--run-id", help=f"choose the run id (also ${RUN_ID_ENV})")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the steps' own output and errors")


def _add_parameter(parser: "argparse.ArgumentParser", attr: str, param: Any) -> None:
    import argparse

    help_text = param.help or ""
    if param.has_default and param.show_default:
        help_text += f" (default: {param.default!r})"
    if param.required and not param.has_default:
        help_text += " (required)"
    flags = sorted({f"--{param.name}", f"--{param.name.replace('_', '-')}"})
    if param.kind == "bool":
        parser.add_argument(*flags, dest=f"param_{attr}", nargs="?", const="true",
                            metavar="true|false", help=help_text.strip())
        parser.add_argument(f"--no-{param.name}", dest=f"param_{attr}", action="store_const",
                            const="false", help=argparse.SUPPRESS)
    else:
        parser.add_argument(*flags, dest=f"param_{attr}", metavar=param.kind.upper(),
                            help=help_text.strip())


def _parameters_epilog(params: dict[str, Any]) -> str:
    if not params:
        return "This flow has no parameters."
    lines = ["parameters (for `run`):"]
    for param in params.values():
        default = f" [default: {param.default!r}]" if param.has_default else ""
        required = " [required]" if param.required and not param.has_default else ""
        lines.append(f"  --{param.name} {param.kind.upper():<6} {param.help}{default}{required}")
    return "\n".join(lines)


def format_show(graph: FlowGraph) -> str:
    """Metaflow's `show`: the flow's doc, then each step, its doc and where it goes."""
    lines = [graph.name + (f": {graph.doc}" if graph.doc else ""), ""]
    for name in graph.sorted_nodes or list(graph.nodes):
        node = graph[name]
        kind = {"join": " (join)", "foreach": " (foreach)", "split": " (split)"}.get(
            node.type or "", "")
        lines.append(f"Step {name}{kind}")
        if node.doc:
            lines += [f"    ? {line}" for line in node.doc.splitlines()]
        if node.type == "foreach":
            lines.append(f"    => {node.out_funcs[0]} (foreach over {node.foreach_param})")
        elif node.out_funcs:
            lines.append("    => " + ", ".join(node.out_funcs))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# -- the `flowdeck` command ---------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """`flowdeck graph FILE`, `flowdeck list PATH...`, `flowdeck run FILE ...`."""
    import argparse
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "list":
        from flowdeck.cli.listing import list_main
        return list_main(argv[1:])
    if argv and argv[0] == "run":
        if len(argv) < 2 or argv[1] in ("-h", "--help"):
            print("usage: flowdeck run FILE [--param value ...]\n\nRun a flow headless with "
                  "a live progress display.")
            return 0 if len(argv) >= 2 else 2
        from flowdeck.observe.headless import run_headless
        return run_headless(argv[1], argv[2:])
    parser = argparse.ArgumentParser(prog="flowdeck", description="Write, run and watch "
                                     "Metaflow-style flows on your own machine.")
    parser.add_argument("--version", action="version", version=f"flowdeck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    graph = sub.add_parser("graph", help="print a flow file's static graph (never runs it)")
    graph.add_argument("file")
    graph.add_argument("--flow", help="which flow, when the file has several")
    graph.add_argument("--json", action="store_true",
                       help="Metaflow's `output-raw --json` shape")
    sub.add_parser("list", help="list the flows under folders (see `flowdeck list -h`)")
    sub.add_parser("run", help="run a flow headless with live progress: run FILE [--param v]")
    args = parser.parse_args(argv)
    if args.command == "graph":
        return graph_command(args.file, args.flow, args.json)
    parser.print_help()
    return 0


def graph_command(file: str, flow_name: str | None, as_json: bool) -> int:
    if not os.path.exists(file):
        print(f"error: {file}: no such file. Give the path of a flow's .py file.",
              file=sys.stderr)
        return 2
    analysis = analyze_file(file)
    if not analysis.flows:
        print_diagnostics(analysis.diagnostics)
        print(f"error: {file} defines no flow (a class deriving from FlowSpec).",
              file=sys.stderr)
        return 1
    flow = _pick_flow(analysis.flows, flow_name, file)
    if flow is None:
        return 2
    if as_json:
        print(json.dumps(flow.graph.as_dict(), indent=4, default=str))
    else:
        print(format_show(flow.graph))
    print_diagnostics(flow.diagnostics)
    return 1 if has_errors(flow.diagnostics) else 0


def _pick_flow(flows: list[FlowInfo], name: str | None, file: str) -> FlowInfo | None:
    if name is None and len(flows) == 1:
        return flows[0]
    chosen = next((f for f in flows if f.name == name), None)
    if chosen is None:
        names = ", ".join(f.name for f in flows)
        what = f"has no flow {name}" if name else "has several flows"
        print(f"error: {file} {what}; choose one with --flow ({names}).", file=sys.stderr)
    return chosen


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
