"""The flow script's own command line, and the engine's entry points for `FlowSpec`.

`python flow.py [run|resume|show|check|output-raw]`, Metaflow's bare `MyFlow()`
and `MyFlow().run(**params)` all arrive here (through `authoring.runner`, wired by
the package root). User mistakes print a clear message and exit non-zero; they
never show an engine traceback.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import TYPE_CHECKING, Any

from flowdeck import __version__
from flowdeck.analysis.diagnostics import Diagnostic, FlowdeckError
from flowdeck.analysis.show import format_show
from flowdeck.authoring.spec import flow_parameters
from flowdeck.engine import launch
from flowdeck.engine.runtime import MEMORY_LIMIT_ENV, RunOptions
from flowdeck.store.layout import RUN_ID_ENV

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from flowdeck.client import Run



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
    args: Any
    if not argv:  # the common case: `python flow.py`; no parser to build
        args = SimpleNamespace(command="run", max_workers=0, run_id=None, quiet=False,
                               memory_limit=None)
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
                         quiet=args.quiet, memory_limit_mb=args.memory_limit)
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
    parser.add_argument("--memory-limit", type=float, default=None, metavar="MB",
                        help="memory each task may allocate, for steps without "
                        f"@resources(memory=...); 0: no limit (also ${MEMORY_LIMIT_ENV})")


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


def is_flow_script(flow_cls: type) -> bool:
    """True when the flow's own file is the script being run (so argv is ours)."""
    if flow_cls.__module__ != "__main__":
        return False
    main = sys.modules.get("__main__")
    return bool(getattr(main, "__file__", None)) and "ipykernel" not in sys.modules


def bare_script_call(flow_cls: type) -> None:
    """Metaflow's idiom: a bare `MyFlow()` statement in the script runs the command line."""
    if not is_flow_script(flow_cls):
        return
    line = _calling_module_line()
    main_file = getattr(sys.modules["__main__"], "__file__", "")
    if line is None or not _is_bare_call_statement(main_file, line, flow_cls.__name__):
        return
    code, _ = script_main(flow_cls, sys.argv[1:])
    sys.exit(code)


def run_flow_class(flow_cls: type, params: dict[str, Any]) -> "Run":
    """`MyFlow().run(**params)`: the script's command line, or only `params`."""
    from flowdeck.client import Run
    if is_flow_script(flow_cls):
        code, handle = script_main(flow_cls, sys.argv[1:], defaults=params)
        if code != 0 or handle is None:
            sys.exit(code)
        return handle
    options = RunOptions(install_signal_handlers=True)
    outcome = launch.execute(flow_cls, params, options)
    return Run(f"{flow_cls.__name__}/{outcome.run_id}", root=outcome.root)


def _calling_module_line() -> int | None:
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__":
            return frame.f_lineno
        frame = frame.f_back
    return None


def _is_bare_call_statement(file: str, line: int, class_name: str) -> bool:
    try:
        tree = ast.parse(Path(file).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and node.lineno <= line <= (node.end_lineno or line):
            call = node.value
            if isinstance(call, ast.Call):
                func = call.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name == class_name:
                    return True
    return False
