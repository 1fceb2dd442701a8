"""What a person sees in the terminal during a run: one line per task event, prefixed output.

Every line carries `[run/step/task]`, so interleaved output of parallel
tasks stays readable and greppable. Worker output is decoded leniently and
carriage returns are applied (a progress bar shows its last state), other
control characters (but tab) are replaced, and so is the ESC of every escape
sequence but a colour (SGR, `ESC [ ... m`, which steps print on purpose), so a
step that prints binary garbage cannot corrupt the terminal: no title, clipboard
write, reset, alternate screen or screen erase gets through, and an OSC whose BEL
was replaced cannot swallow the lines after it.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from flowdeck.analysis.command_line import option_value, without_options
from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engine.executors.base import EXECUTOR_ENV, SCHEDULER_ENV
from flowdeck.store.layout import DATASTORE_ENV, ROOT_ENV, is_store_url

if TYPE_CHECKING:  # pragma: no cover
    from flowdeck.analysis.diagnostics import Diagnostic
    from flowdeck.engine.runtime import TaskResult

#: C0 controls but tab, newline and ESC; DEL; the C1 controls (U+009B is CSI, U+009D OSC
#: to a terminal that takes them).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]")
#: An ESC that does not begin a colour sequence: shown as a visible symbol, so what follows
#: it is plain text to the terminal.
_NOT_COLOUR_ESC = re.compile(r"\x1b(?!\[[0-9;:]*m)")
SHOWN_ESC = "\u241b"  # ␛, SYMBOL FOR ESCAPE
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # CSI sequences: colours, cursor moves
_ERASE_LINE = re.compile(r"\x1b\[[012]?K")
MAX_PARTIAL = 64 * 1024  # a line longer than this is printed in pieces


def clean_line(data: bytes) -> str:
    """One line of a task's output as the terminal may show it after the prefix: decoded
    leniently, carriage returns applied (a progress bar's updates end as its last state,
    as a terminal shows them), other control characters replaced, and every escape
    sequence but a colour made visible (its ESC shown as ␛)."""
    text = data.decode("utf-8", errors="replace").rstrip("\r")
    if "\r" in text:
        text = _redrawn(text)
    text = _CONTROL.sub("\ufffd", text)
    if "\x1b" in text:  # rare: most lines pay one scan for it, not a regex
        text = _NOT_COLOUR_ESC.sub(SHOWN_ESC, text)
    return text


def shown_text(text: str) -> str:
    """Text of the step's making that Flowdeck prints itself (an exception's message, its
    traceback) as the terminal may show it: control characters replaced, escapes but a
    colour made visible, newlines and tabs kept. A step's output went through
    `clean_line`, while `raise ValueError("\x1b]0;title")` still retitled the terminal
    from the "Task failed" line."""
    text = _CONTROL.sub("\ufffd", text)
    return _NOT_COLOUR_ESC.sub(SHOWN_ESC, text) if "\x1b" in text else text


def print_diagnostics(diagnostics: Iterable[Diagnostic], stream: TextIO | None = None) -> None:
    """Each diagnostic on a line of its own (stderr by default), its file name and message
    as the terminal may show them (`shown_name`): the one printer of `flowdeck graph`,
    `flowdeck run` and `python flow.py check`, which each had a copy printing them raw."""
    for diagnostic in diagnostics:
        print(shown_name(diagnostic.format()), file=stream or sys.stderr)


def shown_name(text: str) -> str:
    """A name Flowdeck prints within one line (a file's path, a diagnostic about it, a
    value given on the command line) as the terminal may show it: every control character
    as its visible symbol (a newline ␊, a tab ␉, ESC ␛, a colour's too: a name colours
    nothing), DEL as ␡, C1 controls and a file name's undecodable bytes as �. `flowdeck
    list` printed a file named `esc\x1b]0;PWNED\x07.py` as it was (the terminal's title
    changed), a newline in a name split its entry in two, and an undecodable byte failed
    the write on a strict UTF-8 stdout."""
    return _NAME_UNSHOWN.sub(_symbol_of, text)


#: What `shown_name` replaces: C0 controls (tab and newline too), DEL, the C1 controls,
#: and the lone surrogates Python decodes a file name's undecodable bytes to.
_NAME_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _symbol_of(match: re.Match[str]) -> str:
    """A C0 control's symbol in Unicode's Control Pictures block (U+2400 + its code: ␊,
    ␛), DEL's (␡), else the replacement character."""
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else "\ufffd"


def _redrawn(text: str) -> str:
    """What a terminal shows of a line redrawn with carriage returns: each part overwrites
    the line from its start, an erase-line escape clears the rest; other escapes take no
    columns and are dropped (a redrawn line loses its colour here)."""
    shown = ""
    for part in text.split("\r"):
        column = 0
        for index, chunk in enumerate(_ERASE_LINE.split(part)):
            if index:
                shown = shown[:column]
            chunk = _ANSI.sub("", chunk)
            shown = shown[:column] + chunk + shown[column + len(chunk):]
            column += len(chunk)
    return shown


def under_metaflow_alias() -> bool:
    """True when this process runs a file written for Metaflow through Flowdeck's entry
    (`python -m flowdeck.engines.as_metaflow FILE`), whose import alias is on
    `sys.meta_path`: plain `python FILE` would run Metaflow itself."""
    return any(hasattr(finder, "import_refusal") for finder in sys.meta_path)


def reader_gone() -> int:
    """After a BrokenPipeError on stdout (`... | head`: the reader has what it wanted):
    stdout goes to /dev/null, so the exit's own flush fails no more, and the exit code is
    a process's ended by SIGPIPE, as the shell's tools give."""
    discard_output(sys.stdout)
    return 141


def discard_output(stream: TextIO) -> None:
    """Point `stream`'s file descriptor at /dev/null after a write to it failed, so what
    its buffer still holds, and the exit's own flush, go nowhere instead of failing again
    ("Exception ignored ... BrokenPipeError" at exit). A stream without a descriptor (a
    StringIO) is left as it is."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@dataclass(frozen=True)
class CommandHint:
    """The one builder of the commands Flowdeck's hints tell a user to paste (resume the
    run, run the flow again), so each can be pasted as it is: the entry the run was
    started with, the options that chose its store and its executor (a resume hint
    without them looked in this machine's local store and said there was no run; a
    rerun ran the tasks here), and for a rerun the flow's parameters as given, every
    word quoted for the shell where it needs it."""

    file: str
    #: After the command word: what chose the store and the executor (`placement_options`).
    placement: tuple[str, ...] = ()
    #: The flow's parameters as given (`--alpha 2`): said only in a hint that reruns.
    parameters: tuple[str, ...] = ()
    #: Before the command word, for the script (`--datastore-root DIR`, Metaflow's place).
    top: tuple[str, ...] = ()
    #: The `flowdeck run|resume` form with its own options (`--flow NAME`); None: the script.
    tool: tuple[str, ...] | None = None
    #: Variables the command needs set (`FLOWDECK_HOME=DIR`), said before it.
    env: tuple[tuple[str, str], ...] = ()

    def command(self, verb: str, rerun: bool = False, extra: Sequence[str] = ()) -> str:
        """The command that runs `verb` (`resume`, `run`), `extra` words after the verb
        (`STEP`); the parameters as given when it reruns the flow."""
        words = [*extra, *self.placement, *(self.parameters if rerun else ())]
        prefix = "".join(f"{name}={shlex.quote(value)} " for name, value in self.env)
        if self.tool is not None:
            return prefix + _joined(["flowdeck", verb, self.file, *self.tool, *words])
        relative = os.path.relpath(self.file)
        shown = self.file if relative.startswith("..") else relative
        entry = "python -m flowdeck.engines.as_metaflow " if under_metaflow_alias() \
            else "python "
        return prefix + entry + _joined([shown, *self.top, verb, *words])


def script_hint(file: str, executor: str | None = None, scheduler: str | None = None,
                parameters: Sequence[str] = ()) -> CommandHint:
    """The hint of a run this process makes (`python FILE run ...`, the script's command
    line already applied to the environment): its store and executor, and a local store
    folder other than the file's own (`--datastore-root DIR`, before the command as in
    Metaflow)."""
    placement = placement_options(executor=executor, scheduler=scheduler)
    folder = os.environ.get(ROOT_ENV, "")
    top = ("--datastore-root", folder) if folder and "--datastore" not in placement else ()
    return CommandHint(file, placement, tuple(parameters), top)


#: The options of a flow's command line that choose its store and executor.
PLACEMENT_FLAGS = ("--datastore", "--executor", "--scheduler")


def tool_hint(file: str, flow_args: Sequence[str], tool_options: Sequence[str] = (),
              own_engine: bool = True) -> CommandHint:
    """The hint of a run `flowdeck run|resume FILE` started with the flow command line
    `flow_args` (`run --alpha 2 --datastore s3://b/p`): its store and executor as given
    there, else (on Flowdeck's own engine, which reads them) as the environment chose
    them; a `run`'s other options (its parameters) for a rerun; `tool_options` are the
    command's own (`--flow NAME`)."""
    given = {flag: option_value(flow_args, flag) for flag in PLACEMENT_FLAGS}
    if own_engine:
        placement = placement_options(executor=given["--executor"],
                                      scheduler=given["--scheduler"],
                                      datastore=given["--datastore"])
    else:
        placement = tuple(word for flag, value in given.items() if value is not None
                          for word in (flag, value))
    rest = without_options(flow_args[1:], (*PLACEMENT_FLAGS, "--run-id", "--run-id-file"))
    folder = os.environ.get(ROOT_ENV, "")
    env = ((ROOT_ENV, folder),) if own_engine and folder and "--datastore" not in placement \
        else ()
    parameters = tuple(rest) if flow_args[:1] == ["run"] else ()
    return CommandHint(file, placement, parameters, tool=tuple(tool_options), env=env)


def _joined(words: Sequence[str]) -> str:
    """Words as a shell reads them back: each quoted where it needs it."""
    return " ".join(shlex.quote(word) for word in words)


def placement_options(environ: Mapping[str, str] | None = None, executor: str | None = None,
                      scheduler: str | None = None,
                      datastore: str | None = None) -> tuple[str, ...]:
    """The options that put a run where this one is: its object store (`--datastore URL`),
    its executor and its scheduler, as given (the arguments) or else as the environment
    chose them ($FLOWDECK_DATASTORE, $FLOWDECK_EXECUTOR, $FLOWDECK_DASK_SCHEDULER), so a
    hint pasted into another shell finds the same runs and runs on the same cluster.
    Every one of them is taken after `run` and `resume`, by the script and by
    `flowdeck run|resume FILE` alike."""
    environ = os.environ if environ is None else environ
    url = datastore if datastore is not None else environ.get(DATASTORE_ENV, "")
    options: list[str] = ["--datastore", url] if is_store_url(url) else []
    kind = (executor or environ.get(EXECUTOR_ENV, "").strip()).lower()
    if kind and kind != "local":
        options += ["--executor", kind]
        address = scheduler or environ.get(SCHEDULER_ENV, "").strip()
        if address:
            options += ["--scheduler", address]
    return tuple(options)


def said_error(error: Mapping[str, object], unnamed: str = "error") -> str:
    """A failed task's error as the terminal says it: `Type: message`; a store's failure
    (the object store or the store's folder, not the step) by its message alone, which
    says what failed where (it read as if the step had raised ObjectStoreError)."""
    message = str(error.get("message", ""))
    return message if error.get("store") else f"{error.get('type', unnamed)}: {message}"


def nothing_to_reuse(failed_step: str) -> bool:
    """Whether a run that failed in `failed_step` leaves a resume nothing to reuse (it
    failed in its first step): then the hint is to run again, perhaps with other
    parameter values, which a resume would keep."""
    return failed_step == "start"


class TerminalEcho:
    """Formats the orchestrator's terminal output; holds partial lines per task stream."""

    def __init__(self, run_id: str, quiet: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None, file: str = "",
                 hint: CommandHint | None = None):
        self.run_id = run_id
        self.quiet = quiet
        self.file = file  # the flow file: the failure's resume command names it
        #: How the hints say to resume or rerun (the file alone when the run says no more).
        self.hint = hint or CommandHint(file)
        self._out = out
        self._err = err
        self._partial: dict[tuple[str, str, bool], bytes] = {}
        self._live: dict[tuple[str, str, bool], str] = {}  # progress bars shown, not ended
        #: By stream (stderr: True): the width a progress bar's state left on the line the
        #: next text starts on (0: the line is new).
        self._open_line: dict[bool, int] = {}

    @property
    def out(self) -> TextIO | None:
        return self._out or sys.stdout

    @property
    def err(self) -> TextIO | None:
        return self._err or sys.stderr

    def _prefix(self, step: str, task_id: str, at: float | None = None) -> str:
        """The time (`at`, else now) and the task's path that begin each of its lines."""
        now = time.time() if at is None else at
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
        return f"{stamp} [{self.run_id}/{step}/{task_id}]"

    def _say(self, text: str, err: bool = False) -> None:
        self._write(text, "\n", err)

    def _write(self, text: str, end: str, err: bool) -> None:
        """`text` and `end` to the stream; its first line covers whatever a progress bar
        left on the line (any task's: a bar's state ends with a carriage return, so the
        next text on that stream starts over it)."""
        stream = self.err if err else self.out
        if stream is None:  # started without that fd (`>&-`): print() says nothing either
            return
        first, newline, others = text.partition("\n")
        width = self._open_line.get(err, 0)
        self._open_line[err] = len(text) if end == "\r" and not newline else 0
        try:
            stream.write(first.ljust(width) + newline + others + end)
            stream.flush()
        except (OSError, ValueError):
            pass

    # -- run --------------------------------------------------------------------

    def run_started(self, flow: str, origin_run_id: str | None) -> None:
        if self.quiet:
            return
        how = f"resuming run {origin_run_id}" if origin_run_id else "starting"
        self._say(f"{flow} run {self.run_id}: {how}")

    def run_finished(self, status: str, duration: float, failed: "TaskResult | None") -> None:
        if status == "succeeded":
            if not self.quiet:
                self._say(f"Run {self.run_id} succeeded in {duration:.2f} s.")
        elif status == "cancelled":
            self._say(f"Run {self.run_id} was cancelled after {duration:.2f} s.", err=True)
        elif failed is not None:
            error = failed.error or {}
            how = "could not use the store:" if error.get("store") else "raised"
            said = shown_text(said_error(error, "an error"))
            self._say(f"Run {self.run_id} failed: step `{failed.step}` (task {failed.task_id}) "
                      f"{how} {said}\n" + self._next_move(failed.step), err=True)

    def _next_move(self, step: str) -> str:
        """What to do after a failure: resume, which reuses the finished steps; after a
        failed `start`, nothing finished, and a resume would keep the run's parameter
        values, which may be the cause: run again."""
        if nothing_to_reuse(step):
            again = self.hint.command("run", rerun=True) if self.file else "run"
            return (f"Fix it, then run the flow again (`{again}`, with other parameter "
                    "values if they were the cause): nothing finished before `start`, so a "
                    "resume would reuse nothing and keep this run's parameters.")
        return f"Fix it, then continue with `{self._resume()}` (finished steps are reused)."

    def _resume(self, extra: Sequence[str] = ()) -> str:
        return self.hint.command("resume", extra=extra) if self.file else "resume"

    # -- tasks --------------------------------------------------------------------

    def task_started(self, step: str, task_id: str, attempt: int, pid: int | None,
                     where: str | None = None, at: float | None = None) -> None:
        """`at`: when its worker was forked (said after the burst it was forked in)."""
        if not self.quiet:
            what = "Task is starting" + (f" (retry {attempt})" if attempt else "")
            place = f" (on {where})" if where else f" (pid {pid})" if pid else ""
            self._say(f"{self._prefix(step, task_id, at)} {what}{place}.")

    def task_succeeded(self, step: str, task_id: str, result: "TaskResult") -> None:
        if self.quiet:
            return
        extra = f", {result.foreach_splits} foreach items" if result.foreach_splits else ""
        if result.caught:
            extra += f", @catch kept going after {result.caught.get('type')}"
        self._say(f"{self._prefix(step, task_id)} Task finished in {result.duration:.2f} s"
                  f"{extra}.")

    def control_task(self, step: str, task_id: str, workers: int) -> None:
        if not self.quiet:
            self._say(f"{self._prefix(step, task_id)} Control task of an unbounded foreach "
                      f"(runs no user code); {workers} worker tasks follow.")

    def task_reused(self, step: str, task_id: str, origin: str) -> None:
        if not self.quiet:
            self._say(f"{self._prefix(step, task_id)} Reusing finished task {origin}.")

    def changed_since_origin(self, steps: set[str], outside: bool, origin_run_id: str) -> None:
        """Said once at a resume's start: the steps whose code changed since run
        `origin_run_id` ran them run again (with what follows); a change outside the steps
        cannot be traced to steps, so the finished tasks are reused as they ran."""
        if self.quiet:
            return
        if steps:
            names = ", ".join(f"`{s}`" for s in sorted(steps))
            self._say(f"[flowdeck] Changed since run {origin_run_id} ran them, so they run "
                      f"again (with the steps after them): {names}.", err=True)
        if outside:
            self._say(f"[flowdeck] Code outside the steps changed since run {origin_run_id}: "
                      f"its finished tasks are reused as they ran. To run a step again, name "
                      f"it: `{self._resume(['STEP', '--origin-run-id', origin_run_id])}`.",
                      err=True)

    def task_failed(self, step: str, task_id: str, result: "TaskResult", will_retry: bool) -> None:
        error = result.error or {}
        message = str(error.get("message", "")).rstrip()
        tail = (" Retrying." if message.endswith((".", "!", "?")) or not message
                else ". Retrying.") if will_retry else ""
        lines = [f"{self._prefix(step, task_id)} Task failed: "
                 + shown_text(said_error({**error, "message": message + tail}))]
        trace = shown_text(str(error.get("traceback") or ""))
        lines += [f"    {line}" for line in trace.splitlines()]
        self._say("\n".join(lines), err=True)

    def task_cancelled(self, step: str, task_id: str) -> None:
        self._say(f"{self._prefix(step, task_id)} Task cancelled.", err=True)

    # -- worker output ------------------------------------------------------------

    def output(self, step: str, task_id: str, is_err: bool, data: bytes) -> None:
        key = (step, task_id, is_err)
        buffered = self._partial.pop(key, b"") + data
        *lines, rest = buffered.split(b"\n")
        if len(rest) > MAX_PARTIAL:
            lines.append(rest)
            rest = b""
        if rest:
            self._partial[key] = rest
        if lines:
            prefix = self._prefix(step, task_id)
            self._live.pop(key, None)
            self._say("\n".join(f"{prefix} {clean_line(line)}" for line in lines), err=is_err)
        if b"\r" in rest:
            self._show_live(key, clean_line(rest))

    def _show_live(self, key: tuple[str, str, bool], state: str) -> None:
        """A progress bar's current state (a line redrawn with carriage returns and not
        ended yet: tqdm's), shown now and redrawn in place, not held until its newline (a
        long step looked hung). The line that ends it covers it."""
        if self._live.get(key) == state or not state:
            return
        self._live[key] = state
        step, task_id, is_err = key
        self._write(f"{self._prefix(step, task_id)} {state}", "\r", is_err)

    def flush_task(self, step: str, task_id: str) -> None:
        for is_err in (False, True):
            rest = self._partial.pop((step, task_id, is_err), b"")
            self._live.pop((step, task_id, is_err), None)
            if rest:
                self._say(f"{self._prefix(step, task_id)} {clean_line(rest)}", err=is_err)
