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
from flowdeck.analysis.command_line import FLOWDECK_TOP_OPTIONS
from flowdeck.analysis.diagnostics import FlowdeckError, UsageError
from flowdeck.analysis.lint import RESERVED_PARAMETER_NAMES
from flowdeck.analysis.show import format_dot, format_show
from flowdeck.authoring.runsetup import RunSetup
from flowdeck.authoring.spec import flow_parameters, is_config_expr
from flowdeck.engine import launch
from flowdeck.engine.runtime import MEMORY_LIMIT_ENV, RunOptions
from flowdeck.engine.terminal import (
    CommandHint,
    print_diagnostics,
    reader_gone,
    shown_name,
    shown_text,
    under_metaflow_alias,
)
from flowdeck.store.layout import (
    DATASTORE_ENV,
    ROOT_ENV,
    RUN_ID_ENV,
    STORE_URL_FORMS,
    is_store_url,
)

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from flowdeck.client import Run



def _fail(exc: FlowdeckError) -> int:
    print_diagnostics(exc.diagnostics)
    print(shown_name(f"error: {exc}"), file=sys.stderr)
    return exc.exit_code


# -- the flow script's command line ------------------------------------------

#: Options before the command, with how many values each takes (Metaflow's top level).
TOP_OPTIONS = FLOWDECK_TOP_OPTIONS
COMMANDS = ("run", "resume", "show", "check", "output-raw", "output-dot", "version", "help")
#: Metaflow's commands this engine does not have, with where to find what they give.
METAFLOW_ONLY_COMMANDS = {
    "dump": "read a run's artifacts with the client (`Run('FLOW/RUN')['STEP'].task.data`) "
            "or in the window's Artifacts pane",
    "logs": "a task's output is in the client (`task.stdout`, `task.stderr`) and in the "
            "window's Logs",
    "card": "cards are in the window's Cards pane, and `get_cards(task)` (flowdeck.cards, "
            "or metaflow.cards on this engine) reads them",
    "tag": "give a run tags with `run --tag NAME`, or tag a past run with the client: "
           "`Run('FLOW/RUN_ID').add_tag('NAME')` (`remove_tag`, `replace_tag` too)",
    "spin": "rerun a step with `resume STEP`",
    **{name: "it runs flows on Metaflow's remote compute or schedulers" for name in (
        "batch", "kubernetes", "argo-workflows", "step-functions", "airflow", "package",
        "deploy")},
}
#: The commands above that read or change runs already made: running the flow on another
#: engine is no answer for them (the run stays on this one).
ABOUT_PAST_RUNS = ("dump", "logs", "card", "tag")
#: What `--metadata` and `--environment` mean for a local Flowdeck run.
LOCAL_CHOICES = {"metadata": "local", "environment": "local"}
#: What a local run does instead of each option's other choices (said once, on stderr).
INSTEAD = {
    "metadata": "a local Flowdeck run keeps its records in its own store (local)",
    "environment": "no environment is built (the @conda/@pypi packages are not installed): "
                   "the steps run in this interpreter, with the packages it has (local)",
}


#: Where a finished command's run is: its pathspec and store root (a `Run` handle is made
#: from it only by a caller that wants one: the client's import costs every script ~3 ms).
RunAt = tuple[str, str]


def script_main(flow_cls: type, argv: list[str],
                defaults: dict[str, Any] | None = None) -> tuple[int, RunAt | None]:
    """Run the flow script's command line; returns (exit code, where its run is, or None)."""
    argv = list(argv)
    args: Any
    command = _command_word(argv)
    if command in METAFLOW_ONLY_COMMANDS:
        print(f"error: {_script_file(flow_cls)}: `{command}` is a Metaflow command that "
              f"Flowdeck's engine does not have ({METAFLOW_ONLY_COMMANDS[command]})."
              f"{'' if command in ABOUT_PAST_RUNS else _metaflow_hint(flow_cls)}",
              file=sys.stderr)
        return 2, None
    if not argv:  # the common case: `python flow.py`; no parser to build
        args = _no_arguments()
    else:
        try:
            parser = _script_parser(flow_cls)
            args, extras = parser.parse_known_args(
                with_default_command(argv, _parameter_flags(flow_cls)))
        except SystemExit as exc:  # argparse printed usage or help
            return int(exc.code or 0), None
        if extras:
            explicit = _command_word(argv) in _subparsers(parser)  # typed, not assumed
            misplaced = _top_option_after_command(
                parser, with_default_command(argv, _parameter_flags(flow_cls)),
                _script_file(flow_cls))
            return _fail(UsageError(misplaced or _unknown_arguments(
                parser, args.command, extras, explicit))), None
    try:
        return _dispatch(flow_cls, args, defaults or {})
    except FlowdeckError as exc:
        return _fail(exc), None


def _command_word(argv: list[str]) -> str | None:
    """The command of a script's command line: its first word past the top-level options."""
    i = 0
    while i < len(argv):
        name, has_value, _ = argv[i].partition("=")
        if name in TOP_OPTIONS:
            i += 1 + (0 if has_value else TOP_OPTIONS[name])
            continue
        return None if argv[i].startswith("-") else argv[i]
    return None


def _script_file(flow_cls: type) -> str:
    module = sys.modules.get(flow_cls.__module__)
    return str(getattr(module, "__file__", None) or flow_cls.__module__)


def _metaflow_hint(flow_cls: type) -> str:
    """How to use Metaflow's engine, for a file written for Metaflow (run through the
    as_metaflow entry, whose import alias is on `sys.meta_path`); nothing otherwise."""
    if not under_metaflow_alias():
        return ""
    from flowdeck.engines.as_metaflow import how_to_use_metaflow
    return " " + how_to_use_metaflow(_script_file(flow_cls))


def _no_arguments() -> SimpleNamespace:
    """The parsed form of an empty command line (`python flow.py`), without argparse."""
    return SimpleNamespace(command="run", max_workers=0, run_id=None, quiet=False,
                           top_quiet=False, memory_limit=None, tags=None, run_id_file=None,
                           max_num_splits=None, with_decorators=None, configs=None,
                           config_values=None, branch=None, production=False,
                           datastore_root=None, metadata=None, datastore=None,
                           environment=None, executor=None, scheduler=None)


def with_default_command(argv: list[str], parameters: frozenset[str] = frozenset()) -> list[str]:
    """`argv` with `run` inserted after the top-level options when no command is given
    (`python flow.py --quiet --alpha 2` runs the flow). Without a command, a flag of one
    of the flow's `parameters` is the run's, even where a top-level option has its name
    (`--branch`, `--quiet`); before a command it is the top-level option, as in Metaflow."""
    if _command_word(argv) in COMMANDS:
        return argv
    i = 0
    while i < len(argv):
        token = argv[i]
        name, has_value, _ = token.partition("=")
        if name in parameters:
            break
        if token in COMMANDS or token in ("-h", "--help", "--version"):
            return argv
        if name not in TOP_OPTIONS:
            break
        i += 1 + (0 if has_value else TOP_OPTIONS[name])
    return argv[:i] + ["run"] + argv[i:]


def _dispatch(flow_cls: type, args: Any,
              defaults: dict[str, Any]) -> tuple[int, RunAt | None]:
    if args.command in ("version", "help", "show", "check", "output-dot", "output-raw"):
        try:
            code = _print_command(flow_cls, args)
            sys.stdout.flush()  # here, where a closed pipe is caught, not at the exit
            return code, None
        except BrokenPipeError:  # `python flow.py output-raw | head`: the reader is done
            return reader_gone(), None
    return _run_command(flow_cls, args, defaults)


def _print_command(flow_cls: type, args: Any) -> int:
    """The commands that print about the flow and run nothing."""
    if args.command == "version":
        print(f"Flowdeck {__version__} (runs Metaflow-style flows; Python "
              f"{sys.version.split()[0]})")
        return 0
    if args.command == "help":
        _script_parser(flow_cls).print_help()
        return 0
    if args.command == "show":
        prepared = launch.prepare(flow_cls)
        print(shown_text(format_show(prepared.graph)))  # a docstring's escapes shown
        return 0
    if args.command == "check":
        prepared = launch.prepare(flow_cls)
        print_diagnostics(prepared.diagnostics)
        print(f"{flow_cls.__name__}: {len(prepared.graph.nodes)} steps, no errors.")
        return 0
    if args.command == "output-dot":
        prepared = launch.prepare(flow_cls)
        print("Visualizing the flow as a GraphViz graph\n    Try piping the output to 'dot -Tpng "
              "-o graph.png' to produce an actual image.", file=sys.stderr)
        print(format_dot(prepared.graph))
        return 0
    prepared = launch.prepare(flow_cls)  # output-raw
    print(json.dumps(prepared.graph.as_dict(), indent=4))
    return 0


def _run_command(flow_cls: type, args: Any,
                 defaults: dict[str, Any]) -> tuple[int, RunAt | None]:
    """`run` and `resume`."""
    quiet = bool(args.quiet or args.top_quiet)
    _apply_top_options(args, quiet, _script_file(flow_cls))
    options = RunOptions(max_workers=args.max_workers or 0,
                         run_id=args.run_id or os.environ.get(RUN_ID_ENV) or None,
                         origin_run_id=getattr(args, "origin_run_id", None),
                         quiet=quiet, memory_limit_mb=args.memory_limit,
                         executor=args.executor, scheduler=args.scheduler,
                         parameter_args=_parameter_args(flow_cls, args))
    decorators = [*(args.with_decorators or []), *(getattr(args, "run_with", None) or [])]
    setup = RunSetup(tags=list(args.tags or []), with_decorators=decorators,
                     config_files=_pairs(args.configs, "--config"),
                     config_values=_pairs(args.config_values, "--config-value"),
                     branch=args.branch, production=True if args.production else None,
                     max_num_splits=args.max_num_splits, quiet=quiet,
                     namespace=getattr(args, "user_namespace", None))
    if args.command == "resume":
        outcome = launch.resume(flow_cls, args.steps, options, setup, args.run_id_file)
    else:
        given = dict(defaults)
        for attr in flow_parameters(flow_cls):
            value = getattr(args, f"param_{attr}", None)
            if value is not None:
                given[attr] = value
        outcome = launch.execute(flow_cls, given, options, setup, args.run_id_file)
    return outcome.exit_code, (f"{flow_cls.__name__}/{outcome.run_id}", str(outcome.root))


def _parameter_args(flow_cls: type, args: Any) -> tuple[str, ...]:
    """The flow's parameters given on the command line, as options again (`--alpha 2`, a
    repeatable one once per value): what the hint to run the flow again repeats."""
    words: list[str] = []
    for attr, param in flow_parameters(flow_cls).items():
        value = getattr(args, f"param_{attr}", None)
        for one in value if isinstance(value, list) else [] if value is None else [value]:
            words += [f"--{param.name}", str(one)]
    return tuple(words)


def _pairs(values: list[list[str]] | None, option: str) -> dict[str, str]:
    """`--config NAME VALUE` given any number of times, as a dict (a repeated name is an error)."""
    out: dict[str, str] = {}
    for name, value in values or []:
        if name in out:
            raise UsageError(f"{option} {name} is given twice; give each config once.")
        out[name] = value
    return out


def _apply_top_options(args: Any, quiet: bool, file: str = "flow.py") -> None:
    """Metaflow's top-level options, as far as a local run has a use for them.

    `--datastore` and `--datastore-root` choose the store (`_apply_datastore`);
    `--metadata` and `--environment` other than `local` cannot be honoured here and
    say so; `--event-logger`, `--monitor` and `--[no-]pylint` have
    nothing to act on and are accepted silently.
    """
    _apply_datastore(args, file)
    for option, local in LOCAL_CHOICES.items():
        value = getattr(args, option, None)
        if value and value != local and not quiet:
            print(f"flowdeck: --{option} {value} is not used: {INSTEAD[option]}.",
                  file=sys.stderr)


#: Metaflow's `--datastore` kinds with an object store, and the variable that gives
#: Metaflow its root when `--datastore-root` is not given.
DATASTORE_KINDS = {"s3": "METAFLOW_DATASTORE_SYSROOT_S3", "gs": "METAFLOW_DATASTORE_SYSROOT_GS",
                   "azure": "METAFLOW_DATASTORE_SYSROOT_AZURE"}


def _apply_datastore(args: Any, file: str = "flow.py") -> None:
    """Where the run's store is: `--datastore URL` (after or before the command, also
    $FLOWDECK_DATASTORE), Metaflow's `--datastore s3 --datastore-root s3://...` (or its
    $METAFLOW_DATASTORE_SYSROOT_S3), or a local `--datastore-root DIR` ($FLOWDECK_HOME).
    The choice goes into the environment, where `store.layout.default_root` reads it.
    A refusal names the command that works, from the script `file`."""
    kind = getattr(args, "run_datastore", None) or args.datastore
    root = args.datastore_root
    url: str | None = None
    if is_store_url(kind):
        url = kind
    elif kind in DATASTORE_KINDS:
        url = root or os.environ.get(DATASTORE_ENV) or os.environ.get(DATASTORE_KINDS[kind])
        if not is_store_url(url):
            raise UsageError(_needs_url(kind, file, args.command))
    elif kind not in (None, "", "local"):
        raise UsageError(_not_a_datastore(kind, file, args.command))
    elif is_store_url(root):
        url = root
    elif root:
        os.environ[ROOT_ENV] = str(Path(root).expanduser().resolve())
    if kind == "local":
        os.environ.pop(DATASTORE_ENV, None)
    if url is not None:
        os.environ[DATASTORE_ENV] = url


def _needs_url(kind: str, file: str, command: str) -> str:
    """`--datastore s3` without the store's URL: the two spellings that work, as commands
    (Metaflow takes `--datastore-root` only before the command; the advice to "add
    --datastore-root" was followed after `run`, and refused)."""
    url = f"{ {'azure': 'az'}.get(kind, kind)}://BUCKET/PREFIX"
    ours = CommandHint(file, ("--datastore", url)).command(command)
    metaflow = CommandHint(file, top=("--datastore", kind, "--datastore-root", url)
                           ).command(command)
    return (f"--datastore {kind} needs the store's URL: give it as `{ours}`, or as Metaflow "
            f"spells it, with --datastore-root before the command: `{metaflow}` (or set "
            f"${DATASTORE_ENV} or ${DATASTORE_KINDS[kind]} to the URL).")


def _not_a_datastore(kind: str, file: str, command: str) -> str:
    """`--datastore` given something that is no store kind nor URL: a folder goes to
    `--datastore-root` (before the command), else the forms it takes."""
    if os.sep in kind or kind.startswith((".", "~")) or os.path.isdir(kind):
        folder = CommandHint(file, top=("--datastore-root", kind)).command(command)
        return (f"--datastore {kind}: a folder is given with --datastore-root, before the "
                f"command: `{folder}` (or set ${ROOT_ENV}); --datastore takes an object "
                f"store ({STORE_URL_FORMS}).")
    return (f"--datastore {kind}: use `local`, an object-store URL ({STORE_URL_FORMS}), or "
            "Metaflow's `s3`, `gs` or `azure` with --datastore-root URL before the command.")


def _script_parser(flow_cls: type) -> "argparse.ArgumentParser":
    import argparse
    prog = f"python {os.path.basename(sys.argv[0]) or 'flow.py'}"
    params = flow_parameters(flow_cls)
    doc = (flow_cls.__doc__ or "").strip()
    taken = _parameter_flags(flow_cls)
    # allow_abbrev=False: `--data` is a parameter's flag, never short for `--datastore`
    # (argparse's top-level parser looked at the run's arguments too, and found it ambiguous)
    parser = argparse.ArgumentParser(
        prog=prog, description=f"{flow_cls.__name__}: {doc}" if doc else flow_cls.__name__,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
        epilog=_parameters_epilog(params) + "\nWith no command, `run` is assumed.")
    if "--version" not in taken:
        parser.add_argument("--version", action="version", version=f"flowdeck {__version__}")
    _add_top_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the flow (the default)",
                         description="Run the flow.", allow_abbrev=False)
    _add_run_options(run, taken)
    for attr, param in params.items():
        if _reserved(param):  # refused by the flow's check, with its line, before a run
            continue
        try:
            _add_parameter(run, attr, param)
        except argparse.ArgumentError:  # a name given twice: the check names both lines
            continue
    setattr(parser, _PARAMETER_FLAGS, taken)
    resume = sub.add_parser("resume", help="rerun from the failed (or named) steps, "
                            "reusing finished tasks", allow_abbrev=False)
    resume.add_argument("steps", nargs="*", metavar="STEP",
                        help="steps to rerun (with all steps after them); default: the "
                        "steps that failed")
    resume.add_argument("--origin-run-id", help="the run to resume (default: the latest)")
    _add_run_options(resume)
    sub.add_parser("show", help="print the steps and their transitions", allow_abbrev=False)
    sub.add_parser("check", help="check the flow for errors without running it",
                   allow_abbrev=False)
    raw = sub.add_parser("output-raw", help="print the graph as JSON (Metaflow's shape)",
                         allow_abbrev=False)
    raw.add_argument("--json", action="store_true", help="(always JSON; for compatibility)")
    sub.add_parser("output-dot", help="print the graph for Graphviz (`| dot -Tpng -o "
                   "graph.png`)", allow_abbrev=False)
    sub.add_parser("version", help="print the engine's version", allow_abbrev=False)
    sub.add_parser("help", help="print this help", allow_abbrev=False)
    return parser


def _top_option_after_command(parser: "argparse.ArgumentParser", argv: list[str],
                              file: str) -> str | None:
    """Metaflow's option that goes before the command given after it (`run --datastore-root
    URL`, which Metaflow refuses there too): said with the command line that works, the
    option moved before the command. None when no such option is after the command."""
    command = _command_word(argv)
    sub = _subparsers(parser).get(command or "")
    if sub is None:
        return None
    at = argv.index(command)  # type: ignore[arg-type]
    own = {o for action in sub._actions for o in action.option_strings}
    top, rest, moved = list(argv[:at]), [], []
    i = at + 1
    while i < len(argv):
        name, has_value, _ = argv[i].partition("=")
        if name in TOP_OPTIONS and name not in own:
            width = 1 + (0 if has_value else TOP_OPTIONS[name])
            top += argv[i:i + width]
            moved.append(name)
            i += width
            continue
        rest.append(argv[i])
        i += 1
    if not moved:
        return None
    works = CommandHint(file, top=tuple(top)).command(command or "run", extra=rest)
    return (f"{' and '.join(moved)} {'goes' if len(moved) == 1 else 'go'} before the command "
            f"`{command}`, as in Metaflow: `{works}`.")


def _unknown_arguments(parser: "argparse.ArgumentParser", command: str | None,
                       extras: list[str], explicit: bool = False) -> str:
    """What argparse left over, said as the user needs it: the unknown option (or command)
    and the closest known one, the flow's parameters, and where the full list is; instead
    of the top-level usage and "unrecognized arguments". `explicit`: the user typed
    `command` (it was not assumed)."""
    import difflib
    prog, command = parser.prog, command or "run"
    sub = _subparsers(parser).get(command)
    known = sorted({o for a in (sub._actions if sub else []) for o in a.option_strings
                    if o.startswith("--") and o != "--help"})
    word = next((e for e in extras if e.startswith("-")), extras[0])
    name = word.partition("=")[0]
    if word in _subparsers(parser):
        if explicit:
            return (f"{prog}: one command at a time: `{command}` was given, then `{word}`.")
        return (f"{prog}: `{word}` is a command: give it first, before its options "
                f"(`{prog} {word} --help` lists them).")
    if word == "--":
        return f"{prog} {command}: unexpected `--`: options take the form --name value."
    if not word.startswith("-"):
        close = difflib.get_close_matches(word, list(_subparsers(parser)), n=1)
        guess = f" (did you mean the command `{close[0]}`?)" if close else ""
        return (f"{prog} {command}: unexpected argument `{word}`{guess}. Commands: "
                f"{', '.join(_subparsers(parser))}; options take the form --name value.")
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    guess = f" (did you mean {close[0]}?)" if close else ""
    params = [o for o in known if o in getattr(parser, _PARAMETER_FLAGS, ())]
    listed = f" The flow's parameters: {', '.join(params)}." if params else ""
    return (f"{prog} {command}: no option {name}{guess}.{listed} "
            f"`{prog} {command} --help` lists every option.")


def _subparsers(parser: "argparse.ArgumentParser") -> dict[str, "argparse.ArgumentParser"]:
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


#: The attribute of a script parser that holds the flow's parameter flags: the
#: unknown-option message lists them apart from the engine's own options.
_PARAMETER_FLAGS = "_fd_parameter_flags"


def _add_top_options(parser: "argparse.ArgumentParser") -> None:
    """Metaflow's options before the command (see _apply_top_options for what each does)."""
    parser.add_argument("--quiet", dest="top_quiet", action="store_true",
                        help="print only the steps' own output and errors")
    parser.add_argument("--with", dest="with_decorators", action="append", metavar="DECO",
                        help="add a step decorator to every step, as NAME[:key=value,...] "
                        "(e.g. retry:times=2); repeatable")
    parser.add_argument("--config", dest="configs", nargs=2, action="append",
                        metavar=("NAME", "PATH"), help="read config NAME from the file PATH "
                        "(also $METAFLOW_FLOW_CONFIG); repeatable")
    parser.add_argument("--config-value", dest="config_values", nargs=2, action="append",
                        metavar=("NAME", "JSON"), help="give config NAME as a value (also "
                        "$METAFLOW_FLOW_CONFIG_VALUE); repeatable")
    parser.add_argument("--branch", help="@project branch (test.BRANCH; also $METAFLOW_BRANCH)")
    parser.add_argument("--production", action="store_true",
                        help="@project production branch (also $METAFLOW_PRODUCTION)")
    parser.add_argument("--datastore-root", metavar="DIR|URL",
                        help=f"store the runs under DIR (as ${ROOT_ENV}), or in the object "
                        "store URL (with --datastore s3)")
    parser.add_argument("--metadata", help="Metaflow's metadata provider; only `local` here")
    parser.add_argument("--datastore", metavar="KIND|URL",
                        help="where artifacts and records go: local (default), an object "
                        f"store URL such as s3://BUCKET/PREFIX (also ${DATASTORE_ENV}), or "
                        "Metaflow's s3|gs|azure with --datastore-root URL")
    parser.add_argument("--environment", help="Metaflow's environment; only `local` here")
    parser.add_argument("--event-logger", help="accepted for Metaflow compatibility (no effect)")
    parser.add_argument("--monitor", help="accepted for Metaflow compatibility (no effect)")
    parser.add_argument("--no-pylint", "--pylint", dest="pylint", action="store_const",
                        const=None, help="accepted for Metaflow compatibility (Flowdeck's own "
                        "checks always run)")
    parser.add_argument("--package-suffixes", metavar="SUFFIXES",
                        help="accepted for Metaflow compatibility (the code package is for "
                        "remote runs; a local run reads the files where they are)")
    parser.add_argument("--not-quiet", dest="top_quiet", action="store_false",
                        help="print the run's progress lines (the default)")


def _worker_count(text: str) -> int:
    """`--max-workers N`: a whole number of at least 1 (a negative one ran every task at once)."""
    import argparse
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give how many "
                                         "tasks may run at once, e.g. --max-workers 4") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"{count} is too few: at least 1 task must run at "
                                         "once (leave the option out for the default)")
    return count


def _parameter_flags(flow_cls: type) -> frozenset[str]:
    """The command-line flags of the flow's parameters (`--name`, `--name-with-dashes`),
    leaving out a reserved name's: the flow's check refuses that one, naming its line."""
    return frozenset(flag for param in flow_parameters(flow_cls).values()
                     if not _reserved(param) for flag in _flags(param))


def _reserved(param: Any) -> bool:
    return param.name.replace("_", "-") in RESERVED_PARAMETER_NAMES


def _flags(param: Any) -> list[str]:
    return sorted({f"--{param.name}", f"--{param.name.replace('_', '-')}"})


def _add_run_options(parser: "argparse.ArgumentParser",
                     taken: frozenset[str] = frozenset()) -> None:
    """The run's options; one whose flag a flow parameter has (`--scheduler` for a learning
    rate schedule) yields to it, and keeps its default (its environment variable still
    sets it)."""
    parser = _Yielding(parser, taken)  # type: ignore[assignment]
    parser.add_argument("--max-workers", type=_worker_count, default=0, metavar="N",
                        help="tasks run in parallel at most (default: 16, as in Metaflow, or the CPU "
                        "count where larger; @resources(cpu=N) steps share the CPUs)")
    parser.add_argument("--run-id", help=f"choose the run id (also ${RUN_ID_ENV})")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the steps' own output and errors")
    parser.add_argument("--memory-limit", type=float, default=None, metavar="MB",
                        help="memory each task may allocate, for steps without "
                        f"@resources(memory=...); 0: no limit (also ${MEMORY_LIMIT_ENV})")
    parser.add_argument("--with", dest="run_with", action="append", metavar="DECO",
                        help="as the top-level --with (Metaflow takes it after `run` too)")
    parser.add_argument("--tag", dest="tags", action="append", metavar="TAG",
                        help="tag the run (repeatable); `namespace(TAG)` then finds it")
    parser.add_argument("--run-id-file", metavar="PATH",
                        help="write the run id to PATH before the first task starts")
    parser.add_argument("--max-num-splits", type=int, default=None, metavar="N",
                        help="fail a foreach that would start more than N tasks")
    parser.add_argument("--executor", choices=("local", "dask"), default=None,
                        help="where tasks run: forked here (local, the default) or on a Dask "
                        "cluster (dask; pip install 'flowdeck[dask]'; also $FLOWDECK_EXECUTOR)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="with --executor dask: the scheduler, e.g. tcp://host:8786 (also "
                        "$FLOWDECK_DASK_SCHEDULER; default: a LocalCluster on this machine)")
    parser.add_argument("--datastore", dest="run_datastore", metavar="URL", default=None,
                        help="keep artifacts and records in an object store, such as "
                        f"s3://BUCKET/PREFIX (also ${DATASTORE_ENV}; needs its fsspec "
                        "package: pip install 'flowdeck[s3]')")
    parser.add_argument("--namespace", dest="user_namespace", metavar="NS", default=None,
                        help="the client's namespace inside the run's steps (Metaflow's "
                        "option; default user:NAME; an empty one: every run)")
    parser.add_argument("--max-log-size", type=int, default=None, metavar="MB",
                        help="accepted for Metaflow compatibility (a task's output is kept "
                        "whole: the window and the client page through it)")


def run_option_names(command: str = "run") -> frozenset[str]:
    """The options `run` (or `resume`) takes besides the flow's parameters, as keyword
    names (`max_workers`): what Runner's keywords are checked against."""
    import argparse
    parser = argparse.ArgumentParser(add_help=False)
    _add_run_options(parser)
    if command == "resume":
        parser.add_argument("--origin-run-id")
    return frozenset(option[2:].replace("-", "_") for action in parser._actions
                     for option in action.option_strings if option.startswith("--"))


class _Yielding:
    """An argparse parser whose `add_argument` leaves out an option a parameter has taken
    (its dest then keeps the option's default)."""

    def __init__(self, parser: "argparse.ArgumentParser", taken: frozenset[str]) -> None:
        self.parser = parser
        self.taken = taken

    def add_argument(self, *flags: str, **kwargs: Any) -> None:
        if self.taken.intersection(flags):
            dest = kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")
            self.parser.set_defaults(**{dest: kwargs.get("default")})
            return
        self.parser.add_argument(*flags, **kwargs)


def _add_parameter(parser: "argparse.ArgumentParser", attr: str, param: Any) -> None:
    import argparse

    help_text = param.help or ""
    if param.has_default and param.show_default:
        help_text += f" (default: {_default_text(param)})"
    if param.required and not param.has_default:
        help_text += " (required)"
    flags = _flags(param)
    if getattr(param, "multiple", False):  # each `--name value` adds one value
        parser.add_argument(*flags, dest=f"param_{attr}", action="append",
                            metavar=_metavar(param), help=(help_text + " (repeatable)").strip())
    elif param.kind == "bool":
        parser.add_argument(*flags, dest=f"param_{attr}", nargs="?", const="true",
                            metavar="true|false", help=help_text.strip())
        parser.add_argument(f"--no-{param.name}", dest=f"param_{attr}", action="store_const",
                            const="false", help=argparse.SUPPRESS)
    else:
        parser.add_argument(*flags, dest=f"param_{attr}", metavar=_metavar(param),
                            help=help_text.strip())


def _metavar(param: Any) -> str:
    """What help shows for an option's value: its type, unless a `config_expr` default
    decides it once the run's configs are read."""
    if getattr(param, "typed_by_config", False):
        return "VALUE"
    return str(param.kind.upper())


def _default_text(param: Any) -> str:
    """A default as help shows it: its value, or what computes it (a function's repr
    showed its memory address)."""
    default = param.default
    if is_config_expr(default):  # config_expr('cfg.lr'): its value is read when the run starts
        return f"{default!r}, of its type"
    if callable(default) and not isinstance(default, type):
        return f"computed by {getattr(default, '__name__', 'a function')}()"
    return repr(default)


def _parameters_epilog(params: dict[str, Any]) -> str:
    if not params:
        return "This flow has no parameters."
    lines = ["parameters (for `run`):"]
    for param in params.values():
        default = f" [default: {_default_text(param)}]" if param.has_default else ""
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
    """Metaflow's idiom: making the flow in the script being run runs its command line:
    `MyFlow()` at module level or in a function of the script (`def main(): MyFlow()`),
    `flow = MyFlow()`, a loop over flow classes, a flow class imported from a module.
    A flow that gets `.run(...)` called on it (`MyFlow().run(lr=1)`, or `flow = MyFlow()`
    then `flow.run(lr=1)`: Flowdeck's API, which returns the Run) waits for that call."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", "") or ""
    if not main_file or "ipykernel" in sys.modules:
        return
    caller = _constructor_caller(flow_cls)
    if caller is None or not _same_file(caller.f_code.co_filename, main_file) or \
            _run_is_called_on(main_file, _call_position(caller)):
        return
    del caller
    code, _ = script_main(flow_cls, sys.argv[1:])
    sys.exit(code)


def _call_position(frame: FrameType) -> tuple[int, int, int, int]:
    """Where in its file the frame's current call is: (line, end line, column, end
    column), as the AST gives a Call node (the line alone when Python does not say)."""
    try:
        line, end, col, end_col = list(frame.f_code.co_positions())[frame.f_lasti // 2]
    except (AttributeError, IndexError, ValueError):
        return frame.f_lineno, frame.f_lineno, -1, -1
    if line is None or end is None or col is None or end_col is None:
        return frame.f_lineno, frame.f_lineno, -1, -1
    return line, end, col, end_col


def static_graph(flow_cls: type) -> Any:
    """The flow's static graph, lint errors or not (`flow._graph` outside a run)."""
    return launch.static_graph(flow_cls)


def run_flow_class(flow_cls: type, params: dict[str, Any]) -> "Run":
    """`MyFlow().run(**params)`: the script's command line, or only `params`."""
    from flowdeck.client import Run
    if is_flow_script(flow_cls):
        code, where = script_main(flow_cls, sys.argv[1:], defaults=params)
        if code != 0 or where is None:
            sys.exit(code)
        return Run(where[0], root=where[1], _namespace_check=False)
    options = RunOptions(install_signal_handlers=True)
    outcome = launch.execute(flow_cls, params, options)
    return Run(f"{flow_cls.__name__}/{outcome.run_id}", root=outcome.root, _namespace_check=False)


def _constructor_caller(flow_cls: type) -> FrameType | None:
    """The frame that made the flow (`MyFlow()`): the first one above `FlowSpec.__init__`
    and any `__init__` of the flow's own classes that called it through `super()`."""
    frame: FrameType | None = sys._getframe(2)  # above bare_script_call and FlowSpec.__init__
    while frame is not None and frame.f_code.co_name == "__init__" and \
            isinstance(frame.f_locals.get("self"), flow_cls):
        frame = frame.f_back
    return frame


def _same_file(a: str, b: str) -> bool:
    return bool(a and b) and os.path.abspath(a) == os.path.abspath(b)


def _run_is_called_on(file: str, where: tuple[int, int, int, int]) -> bool:
    """True when the flow made at `where` gets `.run(...)` called on it, which runs it
    with its parameters: `MyFlow().run(lr=1)`, or `flow = MyFlow()` with `flow.run(...)`
    later in the file (Flowdeck's API; Metaflow's FlowSpec has no `run`). An unreadable
    script counts as such, so that nothing runs twice."""
    try:
        # Bytes, as Python reads the script: a BOM or a `coding:` line is honoured (decoding
        # as UTF-8 text made such a file silently run nothing; reliability/bad_inputs.py).
        tree = ast.parse(Path(file).read_bytes())
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return True
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    made = _call_at(tree, where)
    if made is None:
        return True
    parent = parents.get(made)
    if isinstance(parent, ast.Attribute) and parent.attr == "run":
        return True
    if isinstance(parent, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        return any(isinstance(node, ast.Attribute) and node.attr == "run"
                   and isinstance(node.value, ast.Name) and node.value.id in names
                   for node in ast.walk(tree))
    return False


def _call_at(tree: ast.AST, where: tuple[int, int, int, int]) -> ast.Call | None:
    """The Call node at `where`; with only a line known, the innermost call over it."""
    line, end, col, end_col = where
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and n.lineno <= line and line <= (n.end_lineno or n.lineno)]
    exact = [n for n in calls if (n.lineno, n.end_lineno, n.col_offset, n.end_col_offset)
             == (line, end, col, end_col)]
    if exact:
        return exact[0]
    return min(calls, key=lambda n: ((n.end_lineno or n.lineno) - n.lineno,
                                     (n.end_col_offset or 0) - n.col_offset), default=None)
