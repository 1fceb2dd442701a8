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

import shlex

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
