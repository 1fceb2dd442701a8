"""Why a flow process ended before its run started: the diagnosis a user sees.

A flow file can fail before the engine writes its first event: an ImportError at
the top of the file, a missing package, a Metaflow option the flow needs, or a
file that never starts its flow at all. The launcher sees only the process's
output and exit code; this turns them into the right message, with the
traceback and the line to open, instead of one guess for every case.
"""

from __future__ import annotations

import os
import re

from flowdeck.compiled_dataclasses import dataclass

_TRACEBACK = "Traceback (most recent call last):"
_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)"
                        r"|[A-Za-z_][\w.]*Error)(?::\s?(?P<message>.*))?$")
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')
_MISSING_MODULE = re.compile(r"No module named '(?P<module>[^']+)'")
#: An option the engine refused (Flowdeck's script: "run: no option --x (did you mean
#: ...)", argparse: "unrecognized arguments: --x", click: "no such option: --x"): the
#: user's run options, named so they can be fixed.
_UNKNOWN_OPTION = re.compile(
    r"(?:unrecognized arguments|no such option|: no option):?\s+(?P<option>--?\w[\w-]*)")
#: An option the flow needs (Metaflow: "@conda decorator requires --environment=conda").
_NEEDED_ENVIRONMENT = re.compile(r"requires\b[^\n]*?--environment=(?P<value>[\w.-]+)")


#: Where the user sets a flow's options, as `option_hint` names it: the window's Run
#: options, or the command they typed (`flowdeck run`: a terminal has no Parameters pane).
IN_WINDOW = "Run options (Parameters pane)"
IN_COMMAND = "the command"


@dataclass(frozen=True)
class StartFailure:
    """What went wrong before the run started, ready to show."""

    summary: str
    traceback: str
    error_type: str = ""
    file: str | None = None  # where to look: the deepest frame in the flow's file, if any
    line: int | None = None


def diagnose_start(output: str, exit_code: int, flow_file: str, flow: str,
                   interpreter: str, where: str = IN_WINDOW) -> StartFailure:
    """The diagnosis of a flow process that ended without starting its run (`where` the
    user sets its options: see `option_hint`)."""
    name = os.path.basename(flow_file)
    trace = _last_traceback(output)
    if trace:
        error_type, message = _exception_of(trace)
        file, line = _deepest_frame(trace, flow_file)
        at = f" (line {line})" if line and file == os.path.abspath(flow_file) else ""
        summary = (f"{name} failed before {flow} started{at}: {error_type}: {message}"
                   .rstrip(": "))
        missing = _MISSING_MODULE.search(message)
        if error_type.endswith("ModuleNotFoundError") and missing:
            summary += (f". Install it into the flow's interpreter: `{interpreter} -m pip "
                        f"install {missing.group('module').split('.')[0]}`")
        return StartFailure(summary + option_hint(output, where), trace, error_type, file, line)
    tail = "\n".join(output.strip().splitlines()[-8:])
    refusal = _refusal(output)
    if exit_code != 0 and refusal:  # the cause first: a banner that cuts it keeps it
        return StartFailure(f"{flow} did not start: {refusal}" + option_hint(output, where),
                            tail)
    if exit_code != 0:
        summary = (f"{name} exited with code {exit_code} before {flow} started. "
                   f"Its last output:\n{tail}" if tail else
                   f"{name} exited with code {exit_code} before {flow} started, "
                   "printing nothing.")
        return StartFailure(summary + option_hint(output, where), tail)
    return StartFailure(f"{name} ended without running {flow}. Make the file start the flow: "
                        f"end it with `if __name__ == \"__main__\": {flow}()`.", tail)




def option_hint(output: str, where: str = IN_WINDOW) -> str:
    """What to set or remove in the flow's run options (`where`: IN_WINDOW, IN_COMMAND),
    when the output says an option is unknown or needed (empty otherwise)."""
    unknown = _UNKNOWN_OPTION.search(output)
    if unknown:
        option = unknown.group("option").split("=", 1)[0]
        there = " if it is there" if where == IN_WINDOW else ""  # a command has it for sure
        return (f"\n{option} is not an option of this flow's command line: remove it from "
                f"{where}{there}, or correct its spelling.")
    needed = _NEEDED_ENVIRONMENT.search(output)
    if needed:
        option = f"--environment={needed.group('value')}"
        return (f"\nThe flow needs the option --environment: set it in {where}, e.g. "
                f"`{option}`.")
    return ""


def _refusal(output: str) -> str:
    """What the command refused the run for: its last `error: ...` (Flowdeck's command line
    prints a usage error so, e.g. a Dask scheduler it cannot reach) with the lines after
    it, without the prefix; "" when it printed none."""
    lines = output.rstrip().splitlines()
    at = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("error: ")),
              None)
    if at is None:
        return ""
    return "\n".join([lines[at][len("error: "):], *lines[at + 1:]]).strip()


def _last_traceback(output: str) -> str:
    at = output.rfind(_TRACEBACK)
    if at < 0:
        return ""
    lines = output[at:].splitlines()
    end = next((i for i, line in enumerate(lines[1:], 1) if _EXCEPTION.match(line)), None)
    return "\n".join(lines[:end + 1] if end is not None else lines).strip()


def _exception_of(trace: str) -> tuple[str, str]:
    for line in reversed(trace.splitlines()):
        found = _EXCEPTION.match(line)
        if found:
            return found.group("type"), (found.group("message") or "").strip()
    return "Error", trace.splitlines()[-1].strip() if trace else ""


def _deepest_frame(trace: str, flow_file: str) -> tuple[str | None, int | None]:
    """The deepest frame in the flow's own file, else the deepest frame at all."""
    frames = [(os.path.abspath(m.group("file")), int(m.group("line")))
              for m in _FRAME.finditer(trace)]
    own = [f for f in frames if f[0] == os.path.abspath(flow_file)]
    chosen = own[-1] if own else (frames[-1] if frames else (None, None))
    return chosen[0], chosen[1]
