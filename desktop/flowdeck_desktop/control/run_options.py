"""A flow's run options: the text a user puts before the parameters on the command line,
and, for a file written for Metaflow, the engine it runs on.

`--max-workers 2`, `--environment=conda`, `--with kubernetes`: written as in a
shell, split with `shlex`, and checked before a run so a mistake is named
(which option, what is wrong) instead of surfacing as the flow's usage error.

A Metaflow file runs on Metaflow's engine through the bridge (the default, for
Metaflow's own features) or, unchanged, on Flowdeck's engine (its `metaflow`
imports resolve to Flowdeck in that run's process only); the choice is per flow.
"""

from __future__ import annotations

import os
import re
import shlex

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.layout import is_store_url, store_url_problem
from flowdeck.store.objectstore import PACKAGES as STORE_SCHEMES

#: Options the window sets itself: a user's value would break how it follows the run.
RESERVED = {"--run-id": "the window chooses the run id so it can follow the run",
            "--run-id-file": "the window follows the run's id itself",
            "--origin-run-id": "Resume from Failure and History choose the run to resume"}


#: The engines a file written for Metaflow can run on, as the window names them; the first
#: is the default (what such a file always ran on).
ENGINE_LABELS = {"metaflow": "Metaflow (bridge)", "flowdeck": "Flowdeck (fast)"}


def engine_choice(written_for: str, chosen: str) -> str:
    """The engine a run uses: for a Metaflow file the one chosen for it (Metaflow's when
    none was), for any other file the engine it imports."""
    if written_for != "metaflow":
        return written_for
    return chosen if chosen in ENGINE_LABELS else "metaflow"


def engine_announcement(written_for: str, engine: str) -> str:
    """The log's header line saying which engine runs a Metaflow file, and the other choice."""
    if written_for == "metaflow" and engine == "flowdeck":
        return (f"Engine: {ENGINE_LABELS['flowdeck']}: the file runs unchanged on Flowdeck's "
                "engine, its `metaflow` imports resolving to Flowdeck in this run only. For "
                f"Metaflow's own features choose {ENGINE_LABELS['metaflow']}.")
    return (f"Engine: {ENGINE_LABELS.get(engine, engine)}: Metaflow runs the flow. To run it "
            f"on Flowdeck's engine, choose {ENGINE_LABELS['flowdeck']}.")


class RunOptionsError(ValueError):
    """Run options that cannot be used; the message names the option and the fix."""


def parse_run_options(text: str) -> list[str]:
    """The options as command-line arguments, or RunOptionsError saying what is wrong."""
    try:
        args = shlex.split(text)
    except ValueError as exc:
        raise RunOptionsError(_quote_problem(text, str(exc))) from None
    for i, arg in enumerate(args):
        name = arg.split("=", 1)[0]
        if name in RESERVED:
            raise RunOptionsError(f"Run options: remove {name}: {RESERVED[name]}.")
        if not arg.startswith("-") and (i == 0 or not args[i - 1].startswith("-")):
            after = f" after {args[i - 1]}" if i else ""
            raise RunOptionsError(
                f"Run options: `{arg}`{after} is not an option. Options start with "
                "`--` (e.g. `--max-workers 2`); an option takes one value at most.")
    return args


def _quote_problem(text: str, error: str) -> str:
    """Name the option whose quote is never closed (or that ends with a lone backslash)."""
    quote, start, escaped = "", -1, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote and char == quote:
            quote = ""
        elif not quote and char in "'\"":
            quote, start = char, i
    if quote:
        word_start = max(text.rfind(" ", 0, start), text.rfind("\t", 0, start)) + 1
        word = text[word_start:].split()[0] if text[word_start:].split() else text[word_start:]
        option = _option_before(text[:word_start]) if not word.startswith("-") else \
            word.split("=", 1)[0]
        where = f" of {option}" if option else ""
        return (f"Run options: the {quote} opened in `{word}`{where} is never closed. "
                "Close it, or escape it with a backslash.")
    if escaped:
        return ("Run options: the text ends with a backslash, which escapes nothing. "
                "Remove it.")
    return f"Run options cannot be read: {error}."


def _option_before(prefix: str) -> str:
    words = prefix.split()
    return words[-1].split("=", 1)[0] if words and words[-1].startswith("-") else ""


# -- where a run's tasks run and where its records go ----------------------------------------

#: Where a flow's tasks can run, as the toolbar's "Run on" box names them.
EXECUTOR_LABELS = {"local": "This machine", "dask": "Dask cluster…"}
#: The run options the Run on and Store controls own: typed in Run Options as well, the two
#: would disagree about where the run goes.
PLACEMENT_OPTIONS = ("--executor", "--scheduler", "--datastore", "--datastore-root")
#: Schemes of a Dask scheduler's address (`distributed`'s comm backends).
SCHEDULER_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")

_LOCAL, _DASK = EXECUTOR_LABELS["local"], EXECUTOR_LABELS["dask"]
#: The command line's words for where a run goes, and the window's (its Run on and Store
#: boxes give them to the runs it starts), most specific first.
_WINDOW_TERMS = (
    (re.compile(r"\bwith --scheduler(?: or \$FLOWDECK_DASK_SCHEDULER)?"),
     f"in Run on ({_DASK})"),
    (re.compile(r"--scheduler(?: or \$FLOWDECK_DASK_SCHEDULER)?|\$FLOWDECK_DASK_SCHEDULER"),
     f"Run on ({_DASK})"),
    (re.compile(r"without --executor dask the flow runs on this machine"),
     f"or set Run on to {_LOCAL} to run the flow here"),
    (re.compile(r"\brun without --executor dask"), f"set Run on to {_LOCAL}"),
    (re.compile(r"without --executor dask"), f"with Run on set to {_LOCAL}"),
    (re.compile(r"\b([Ww])ith --executor dask"), rf"\1ith Run on set to {_DASK}"),
    (re.compile(r"--executor dask"), f"Run on: {_DASK}"),
    (re.compile(r"\b(?:given )?with --datastore(?: URL)?(?: \(or \$FLOWDECK_DATASTORE\))?"),
     "in Store"),
    (re.compile(r"--datastore(?: URL)?(?: \(or \$FLOWDECK_DATASTORE\))?|\$FLOWDECK_DATASTORE"),
     "Store"),
)


def window_terms(text: str) -> str:
    """A core message about a run the window started, in the window's terms: the command
    line's --executor, --scheduler and --datastore (and their variables) are its Run on and
    Store boxes, which is where the user changes them (the advice "give the right address
    with --scheduler" sent a window's user to a terminal)."""
    for pattern, words in _WINDOW_TERMS:
        text = pattern.sub(words, text)
    return text


@dataclass(frozen=True)
class Placement:
    """Where a flow's tasks run (this machine, or a Dask cluster at `scheduler`; blank: a
    local cluster) and where its records go (`store`: blank for the flow's `.flowdeck`
    folder, another folder, or an object-store URL). Kept per flow, like its parameters,
    and checked before every run so a mistake is named before a process starts."""

    executor: str = "local"
    scheduler: str = ""
    store: str = ""

    @property
    def remote(self) -> bool:
        return self.executor == "dask"

    @property
    def default(self) -> bool:
        return not self.remote and not self.store.strip()

    def checked(self) -> "Placement":
        """The placement with its values in normal form; RunOptionsError says what is wrong."""
        if self.executor not in EXECUTOR_LABELS:
            raise RunOptionsError(f"Run on: `{self.executor}` is not a choice; choose "
                                  f"{' or '.join(EXECUTOR_LABELS.values())}.")
        scheduler = check_scheduler(self.scheduler) if self.remote else ""
        return Placement(self.executor, scheduler, check_store(self.store))

    def args(self) -> list[str]:
        """The run's command-line options for a Flowdeck run (`script_cli` reads them): a
        folder store travels in the environment (`launching.store_environment`)."""
        placed = self.checked()
        args: list[str] = []
        if placed.remote:
            args += ["--executor", "dask"]
            if placed.scheduler:
                args += ["--scheduler", placed.scheduler]
        if is_store_url(placed.store):
            args += ["--datastore", placed.store]
        return args

    def describe(self) -> str:
        """One line for the run's log: where its tasks run and where its records go."""
        try:
            placed = self.checked()
        except RunOptionsError:
            placed = self
        where = "this machine" if not placed.remote else (
            f"the Dask cluster at {placed.scheduler}" if placed.scheduler
            else "a Dask cluster started on this machine")
        store = placed.store or "the flow's .flowdeck folder"
        return f"Run on: {where}; store: {store}."


def check_scheduler(text: str) -> str:
    """A Dask scheduler's address in normal form (`tcp://host:port`), "" for a local cluster;
    RunOptionsError says what is wrong with anything else."""
    address = text.strip()
    if not address:
        return ""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme.lower() not in SCHEDULER_SCHEMES:
        raise RunOptionsError(
            f"Run on: the scheduler address `{address}` starts with {scheme}://, which Dask "
            f"does not use. Give host:port (e.g. 10.0.0.5:8786) or tcp://host:port, or leave "
            "it blank to start a cluster on this machine.")
    match = _HOST_PORT.match(rest.rstrip("/"))
    if not match or not 0 < int(match.group(2)) < 65536:
        raise RunOptionsError(
            f"Run on: the scheduler address `{address}` is not host:port. Give the address "
            "the scheduler printed (e.g. tcp://10.0.0.5:8786), or leave it blank to start a "
            "cluster on this machine.")
    return f"{scheme.lower()}://{match.group(1)}:{int(match.group(2))}"


def check_store(text: str) -> str:
    """The store in normal form: "" (the flow's folder), an absolute folder, or an
    object-store URL of a scheme Flowdeck writes; RunOptionsError says what is wrong."""
    store = text.strip()
    if not store:
        return ""
    if "://" in store:
        scheme, _, rest = store.partition("://")
        if scheme.lower() == "file":
            store = rest
        elif scheme.lower() not in STORE_SCHEMES or not is_store_url(store):
            raise RunOptionsError(
                f"Store: `{store}` is not a store Flowdeck can write: use an object-store URL "
                f"({', '.join(f'{s}://' for s in sorted(STORE_SCHEMES))}BUCKET/PREFIX), a "
                "folder, or leave it blank for the flow's .flowdeck folder.")
        else:  # the store's own rule for its URLs (`flowdeck run` and the script ask it too)
            problem = store_url_problem(store)
            if problem:
                raise RunOptionsError(f"Store: `{store}`: {problem}.")
            return store.rstrip("/")
    folder = os.path.expanduser(store)
    if not os.path.isabs(folder):
        raise RunOptionsError(f"Store: `{store}` is not an absolute folder. Give a full path "
                              "(e.g. ~/flowdeck-store), an s3:// URL, or leave it blank.")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise RunOptionsError(f"Store: {folder} is a file, not a folder. Choose a folder.")
    return os.path.normpath(folder)


def placement_clash(options: list[str], placement: Placement) -> None:
    """RunOptionsError when Run Options also set where the run goes while the toolbar does
    (the two would disagree; the toolbar's choice is the one the window follows)."""
    if placement.default:
        return
    typed = [a.split("=", 1)[0] for a in options if a.split("=", 1)[0] in PLACEMENT_OPTIONS]
    if typed:
        raise RunOptionsError(
            f"Run options: remove {', '.join(dict.fromkeys(typed))}: the toolbar's Run on and "
            "Store choose where this flow runs.")

