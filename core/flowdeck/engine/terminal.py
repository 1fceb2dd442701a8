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
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

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


def script_command(file: str, verb: str) -> str:
    """The command that runs `file`'s `verb` (`resume`, `run`) as the run was started,
    ready to paste: the path as the user would type it from here, quoted where it has
    spaces."""
    relative = os.path.relpath(file)
    shown = shlex.quote(file if relative.startswith("..") else relative)
    if under_metaflow_alias():
        return f"python -m flowdeck.engines.as_metaflow {shown} {verb}"
    return f"python {shown} {verb}"


def nothing_to_reuse(failed_step: str) -> bool:
    """Whether a run that failed in `failed_step` leaves a resume nothing to reuse (it
    failed in its first step): then the hint is to run again, perhaps with other
    parameter values, which a resume would keep."""
    return failed_step == "start"


class TerminalEcho:
    """Formats the orchestrator's terminal output; holds partial lines per task stream."""

    def __init__(self, run_id: str, quiet: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None, file: str = ""):
        self.run_id = run_id
        self.quiet = quiet
        self.file = file  # the flow file: the failure's resume command names it
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
            said = shown_text(f"{error.get('type', 'an error')}: {error.get('message', '')}")
            self._say(f"Run {self.run_id} failed: step `{failed.step}` (task {failed.task_id}) "
                      f"raised {said}\n" + self._next_move(failed.step), err=True)

    def _next_move(self, step: str) -> str:
        """What to do after a failure: resume, which reuses the finished steps; after a
        failed `start`, nothing finished, and a resume would keep the run's parameter
        values, which may be the cause: run again."""
        if nothing_to_reuse(step):
            again = script_command(self.file, "run") if self.file else "run"
            return (f"Fix it, then run the flow again (`{again}`, with other parameter "
                    "values if they were the cause): nothing finished before `start`, so a "
                    "resume would reuse nothing and keep this run's parameters.")
        return f"Fix it, then continue with `{self._resume()}` (finished steps are reused)."

    def _resume(self) -> str:
        return script_command(self.file, "resume") if self.file else "resume"

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
                      f"it: `{self._resume()} STEP --origin-run-id {origin_run_id}`.", err=True)

    def task_failed(self, step: str, task_id: str, result: "TaskResult", will_retry: bool) -> None:
        error = result.error or {}
        message = str(error.get("message", "")).rstrip()
        tail = (" Retrying." if message.endswith((".", "!", "?")) or not message
                else ". Retrying.") if will_retry else ""
        lines = [f"{self._prefix(step, task_id)} Task failed: "
                 + shown_text(f"{error.get('type', 'error')}: {message}{tail}")]
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
