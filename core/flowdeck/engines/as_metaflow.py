"""`python -m flowdeck.engines.as_metaflow FILE ARGS...`: a Metaflow file, unchanged, on
Flowdeck's engine.

A flow written for Metaflow imports `metaflow`. Rather than edit its import line, this
entry makes `metaflow` (and the `metaflow.<module>` names Flowdeck provides) *be* the
`flowdeck` modules in this one process, then runs the file as `python FILE ARGS` would:
as `__main__`, with `sys.argv` and `sys.path[0]` set the same way. The tasks the engine
forks inherit the alias; nothing is installed, no file is written, and a real Metaflow
installed elsewhere is neither shadowed nor imported (the alias is found before the path
is searched, so it is never reached either).

The aliases are the same module objects, not copies: `metaflow.FlowSpec is
flowdeck.FlowSpec`, `metaflow.exception.MetaflowException is
flowdeck.exception.MetaflowException`, so `except` clauses, `isinstance` and pickles
agree whichever name a flow or a helper module used. A `metaflow.<module>` Flowdeck does
not provide stops the import with a message naming the importing file and line and the
way to run the flow on Metaflow's own engine instead.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import runpy
import sys
import traceback
from collections.abc import Sequence
from types import FrameType, ModuleType, TracebackType

#: The module this file is, for a launcher's `python -m`.
ENTRY_MODULE = "flowdeck.engines.as_metaflow"

#: Metaflow's module names a flow may import on Flowdeck's engine, and the Flowdeck module
#: each one is. Anything else under `metaflow.` is refused by name (see NotOnFlowdeck), as
#: is a name here whose Flowdeck module this installation lacks. A new Flowdeck module
#: that mirrors one of Metaflow's is added here.
MODULES = {
    "metaflow": "flowdeck",
    "metaflow.client": "flowdeck.client",
    "metaflow.exception": "flowdeck.exception",
    "metaflow.metaflow_current": "flowdeck.metaflow_current",
    "metaflow.plugins": "flowdeck.plugins",
    # cards (flowdeck.cards), and the card modules Metaflow's own tests import
    "metaflow.cards": "flowdeck.cards",
    **{f"metaflow.plugins.cards{m}": f"flowdeck.plugins.cards{m}" for m in (
        "", ".card_client", ".exception", ".card_modules", ".card_modules.card",
        ".card_modules.basic", ".card_modules.components", ".card_modules.test_cards")},
}

_USAGE = ("usage: python -m flowdeck.engines.as_metaflow FLOW_FILE [run|resume|show|check ...]\n"
          "Runs a flow written for Metaflow, unchanged, on Flowdeck's engine.")


def how_to_use_metaflow(file: str) -> str:
    """How to run `file` on Metaflow's own engine instead (the end of every refusal). A
    script that defines no flow (a driver that uses Metaflow's Runner, say) is no flow for
    `flowdeck run`: plain `python` runs it with Metaflow itself."""
    from flowdeck.analysis.flowfile import analyze_file
    try:
        is_flow = bool(analyze_file(file).flows)
    except OSError:
        is_flow = True
    if not is_flow:
        return (f"{file} is not a flow: run it with plain `python {file}` to use Metaflow "
                "itself (Flowdeck's engine runs flow files).")
    return (f"Run it with Metaflow's engine: `flowdeck run --engine metaflow {file}`, or "
            "choose \"Metaflow (bridge)\" as the flow's engine in the window.")


class NotOnFlowdeck(ModuleNotFoundError):
    """An import of a `metaflow` module or name that Flowdeck's engine does not provide.

    A ModuleNotFoundError, so a flow's own `try: import metaflow.x / except ImportError:`
    fallback keeps working; uncaught, the entry prints `message` without a traceback.
    """

    def __init__(self, wanted: str, file: str | None, line: int | None, flow_file: str):
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        self.message = (f"{where}error: `{wanted}` is not available on Flowdeck's engine "
                        f"(it provides {', '.join(_provided())} and the names `flowdeck` "
                        f"has). {how_to_use_metaflow(flow_file)}")
        super().__init__(self.message, name=wanted)


def _provided() -> list[str]:
    """The `metaflow` modules (not their submodules) this installation of Flowdeck can
    stand in for, to name in a refusal."""
    found = []
    for alias, own in MODULES.items():
        if alias.count(".") > 1:
            continue
        try:
            if own == "flowdeck" or importlib.util.find_spec(own) is not None:
                found.append(alias)
        except (ImportError, ValueError):  # its parent is no package here
            continue
    return sorted(found)


class _SameModule(importlib.abc.Loader):
    """Loads an alias as the Flowdeck module it names: that very object, not a copy."""

    def __init__(self, module: ModuleType):
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        # The import system has just set `__spec__` to the alias's spec (it does so
        # whatever the loader returns); the module stays Flowdeck's own.
        module.__spec__ = self.spec


class MetaflowAlias(importlib.abc.MetaPathFinder):
    """First on `sys.meta_path`: `metaflow[.x]` is found here, before any path is searched."""

    def __init__(self, flow_file: str):
        self.flow_file = flow_file

    def import_refusal(self, exc: BaseException) -> str | None:
        """For a step that imports from metaflow what Flowdeck's engine lacks (`from
        metaflow import S3` inside the step): the line an import at the top of the file
        gets, not Python's "cannot import name 'S3' from 'flowdeck'"; None for any other
        exception. The task finds it on `sys.meta_path` (this module may run as __main__)."""
        return _refusal(exc, self.flow_file)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "metaflow" and not fullname.startswith("metaflow."):
            return None
        own = MODULES.get(fullname)
        try:
            if own is None:
                raise ModuleNotFoundError(name=fullname)
            module = importlib.import_module(own)
        except ModuleNotFoundError as exc:
            if own is not None and exc.name != own and not own.startswith(f"{exc.name}."):
                raise  # the Flowdeck module itself lacks something: its own error
            raise NotOnFlowdeck(fullname, *_importing_line(sys._getframe(1)),
                                self.flow_file) from None
        return importlib.util.spec_from_loader(fullname, _SameModule(module),
                                               is_package=hasattr(module, "__path__"))


def install(flow_file: str) -> MetaflowAlias:
    """Put the alias first on this process's `sys.meta_path` (the tasks it forks keep it).

    A `metaflow` imported before (there should be none) is dropped from `sys.modules`, so
    every later import resolves to Flowdeck.
    """
    for name in [n for n in sys.modules if n == "metaflow" or n.startswith("metaflow.")]:
        del sys.modules[name]
    finder = MetaflowAlias(flow_file)
    sys.meta_path.insert(0, finder)
    return finder


def _importing_line(frame: FrameType | None) -> tuple[str | None, int | None]:
    """The file and line of the import statement that asked for a module: the innermost
    frame outside the import machinery and this module."""
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith("<frozen") and name != __file__ and "importlib" not in name:
            return name, frame.f_lineno
        frame = frame.f_back
    return None, None


_MISSING_NAME = re.compile(r"cannot import name '([^']+)' from 'flowdeck(?:\.[\w.]+)?'")


def _refusal(exc: BaseException, flow_file: str) -> str | None:
    """The one-line message for an import the flow's file (or a module it imports) cannot
    make on Flowdeck's engine; None for anything else (that keeps its traceback)."""
    if isinstance(exc, NotOnFlowdeck):
        return exc.message
    if not isinstance(exc, ImportError):
        return None
    file, line = _user_line(exc.__traceback__)
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.name.startswith("metaflow."):
        # below a module that is no package here (`metaflow.plugins.x`): no finder was asked
        return NotOnFlowdeck(exc.name, file, line, flow_file).message
    match = _MISSING_NAME.match(str(exc))
    if match is None:
        return None
    where = f"{file}:{line}: " if file else ""
    return (f"{where}error: `{match.group(1)}` is imported from metaflow, and Flowdeck's "
            f"engine has no `{match.group(1)}`. {how_to_use_metaflow(flow_file)}")


def _user_line(tb: TracebackType | None) -> tuple[str | None, int | None]:
    """The innermost frame of a traceback outside the import machinery and this module."""
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(tb):
        if not frame.filename.startswith("<frozen") and frame.filename != __file__ \
                and "runpy" not in os.path.basename(frame.filename):
            found = (frame.filename, frame.lineno)
    return found


def main(argv: list[str] | None = None) -> int:
    """Install the alias and run FILE as `__main__` with ARGS; returns its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr if not args else sys.stdout)
        return 2 if not args else 0
    file, flow_args = args[0], args[1:]
    from flowdeck.analysis.diagnostics import flow_file_problem
    problem = flow_file_problem(file)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    install(file)
    sys.argv = [file, *flow_args]
    # As `python FILE`: the script's own folder first on the path, not the working directory.
    folder = os.path.dirname(os.path.realpath(file))
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path[0] = folder
    else:
        sys.path.insert(0, folder)
    try:
        runpy.run_path(file, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc.code)
    except ImportError as exc:
        message = _refusal(exc, file)
        print(message if message is not None else _script_traceback(exc), file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 (the script's own error, as `python FILE` shows it)
        _show_script_error(file, exc)
        return 1
    return 0


def _show_script_error(file: str, exc: Exception) -> None:
    """As `python FILE` shows it: a mistake in the flow's definition (a misspelt decorator
    argument, `@stpe`) as the lint's lines, as `import flowdeck`'s hook says it; any other
    error as its traceback."""
    from flowdeck.authoring.exceptions import show_user_errors
    hook = show_user_errors(lambda _kind, value, _tb: print(_script_traceback(value),
                                                            file=sys.stderr), script=file)
    hook(type(exc), exc, exc.__traceback__)


def _script_traceback(exc: BaseException) -> str:
    """The traceback `python FILE` prints for an error of the script (a syntax error, a
    missing environment variable at import): without this module's and runpy's frames."""
    report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    report.stack = traceback.StackSummary.from_list(
        [f for f in report.stack if f.filename != __file__
         and "runpy" not in os.path.basename(f.filename)])
    return "".join(report.format()).rstrip("\n")


def _exit_code(code: object) -> int:
    """`sys.exit(x)` as the interpreter turns it into a status (a message goes to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
