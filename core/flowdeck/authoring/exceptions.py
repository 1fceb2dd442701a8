"""Exceptions a step can meet at run time, and how a failure is described to a person."""

from __future__ import annotations

import os
import sys
from typing import Any

from flowdeck.analysis.diagnostics import (
    UNDEFINED_DECORATOR,
    Diagnostic,
    FlowdeckError,
    FlowDefinitionError,
)

# The flowdeck package folder: frames from any of its modules are the engine's, not the user's.
_ENGINE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DefinitionError(FlowDefinitionError, TypeError):
    """A mistake in a flow class caught while Python defines the class (a Parameter
    without a name, a misspelt decorator argument): it names the user's file and line, as
    the lint does, and `import flowdeck`'s exception hook shows it without a traceback
    (`show_user_errors`). A TypeError too, as Python's own error for it was."""

    def __init__(self, message: str):
        frame = sys._getframe(1)  # up to the user's code: the first frame not Flowdeck's
        while frame.f_back is not None and \
                os.path.abspath(frame.f_code.co_filename).startswith(_ENGINE_DIR + os.sep):
            frame = frame.f_back
        self.diagnostic = Diagnostic(frame.f_code.co_filename, frame.f_lineno, message,
                                     "definition")
        super().__init__(self.diagnostic.format(), [self.diagnostic])


def show_user_errors(previous: Any, script: str | None = None) -> Any:
    """An exception hook: a FlowdeckError nobody caught (one raised while the flow's module
    is defined) is shown as its message alone; every other exception as before.

    Python stops at the first mistake in a class; for a DefinitionError the hook reads the
    script Python runs (statically, as the window does) and shows every error the lint
    finds in it, so one run names them all, and the error itself if the lint missed it
    (`@retry(**options)`, code outside the script). `script`: the file the flow came from,
    when it is not `__main__`'s (the Metaflow entry runs it with runpy)."""

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        told = _undefined_decorator_errors(tb, script) if isinstance(value, NameError) else []
        if told:
            print("\n".join(d.format() for d in told), file=sys.stderr)
            return
        if not isinstance(value, FlowdeckError):
            previous(kind, value, tb)
            return
        lines = ([d.format() for d in _script_diagnostics(script=script)]
                 if isinstance(value, DefinitionError) else [])
        own = str(value)
        print("\n".join(lines if own in lines else [own, *lines]), file=sys.stderr)

    return hook


def _script_diagnostics(also: str = "", script: str | None = None) -> list[Any]:
    """Every error the static analysis finds in the script Python runs (its flows, with
    the bases they inherit), as the lint prints them, and the findings of code `also`
    as errors; none if it has no file."""
    script = script or _main_script()
    if not script or not os.path.isfile(script):
        return []
    from dataclasses import replace

    from flowdeck.analysis.flowfile import analyze_file
    analysis = analyze_file(script)
    return [d if d.severity == "error" else replace(d, severity="error")
            for d in analysis.all_diagnostics() if d.severity == "error" or d.code == also]


def _main_script() -> str | None:
    return getattr(sys.modules.get("__main__"), "__file__", None)


def _undefined_decorator_errors(tb: Any, script: str | None = None) -> list[Any]:
    """For a NameError raised in the script at a line where the lint finds a decorator it
    never defines (`@stpe`): the script's errors, that one among them, which say it with
    the fix instead of a traceback; none for any other NameError (it keeps its traceback).
    The script is analysed once."""
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    script = script or _main_script()
    if tb is None or not script or \
            os.path.abspath(tb.tb_frame.f_code.co_filename) != os.path.abspath(script):
        return []
    found = _script_diagnostics(UNDEFINED_DECORATOR, script)
    hit = any(d.code == UNDEFINED_DECORATOR and d.line == tb.tb_lineno for d in found)
    return found if hit else []


class MetaflowException(Exception):
    """Metaflow's base exception, so `except MetaflowException` in a flow works unchanged.

    Same constructor and `str()` as Metaflow's (`msg`, `lineno`, `source_file`,
    `headline`). A class may set `metaflow_name`, the dotted name Metaflow gives
    the same error: @catch records that name as the caught exception's `type`,
    because flows written for Metaflow compare it as a string.
    """

    headline = "Flow failed"
    metaflow_name = "metaflow.exception.MetaflowException"

    def __init__(self, msg: str = "", lineno: int | None = None,
                 source_file: str | None = None):
        self.message = msg
        self.line_no = lineno
        self.source_file = source_file
        super().__init__(msg)

    def __str__(self) -> str:
        prefix = f"{self.source_file}:" if self.source_file else ""
        if self.line_no:
            prefix = f"line {self.line_no}:"
        return f"{prefix} {self.message}" if prefix else str(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other constructor arguments than `args` holds: rebuild
        # from the state, so a caught exception pickles whatever its signature.
        return _rebuild_exception, (type(self), self.message), self.__dict__


def _rebuild_exception(cls: type[BaseException], message: str) -> BaseException:
    exc: BaseException = cls.__new__(cls)
    Exception.__init__(exc, message)
    return exc


def metaflow_type_name(exc: BaseException) -> str:
    """The dotted type name of an exception as Metaflow reports it (`@catch`'s `type`).

    A class's own `metaflow_name` wins (our compatibility classes carry
    Metaflow's module path); otherwise `module.Name`, `builtins.ValueError` included.
    """
    own = type(exc).__dict__.get("metaflow_name")
    if isinstance(own, str):
        return own
    return f"{exc.__class__.__module__}.{exc.__class__.__name__}"


class MergeArtifactsException(MetaflowException):
    """`merge_artifacts` could not merge: values differ, or names are missing."""

    metaflow_name = "metaflow.exception.MergeArtifactsException"

    def __init__(self, message: str, names: list[str]):
        super().__init__(message)
        self.artifact_names = names


class UnhandledInMergeArtifactsException(MergeArtifactsException):
    """Artifacts whose values differ between the inputs of a join, not set in the join."""

    headline = "Unhandled artifacts in merge"
    metaflow_name = "metaflow.exception.UnhandledInMergeArtifactsException"


class MissingInMergeArtifactsException(MergeArtifactsException):
    """`merge_artifacts(include=...)` names artifacts that no input has."""

    headline = "Missing artifacts in merge"
    metaflow_name = "metaflow.exception.MissingInMergeArtifactsException"


class StepTimeout(MetaflowException):
    """Raised inside a step that ran past its @timeout (Metaflow's TimeoutException)."""

    headline = "@timeout"
    metaflow_name = "metaflow.plugins.timeout_decorator.TimeoutException"


class FailureHandledByCatch(MetaflowException):
    """What @catch stores when the task's process died (a signal, a crash) on every attempt.

    The step's own code never raised: the extra attempt @catch gets after the
    retries runs no user code and records this instead, as Metaflow does.
    """

    headline = "Task execution failed but @catch handled it"
    metaflow_name = "metaflow.plugins.catch_decorator.FailureHandledByCatch"

    def __init__(self, retry_count: int):
        super().__init__(f"Task execution kept failing over {retry_count} attempts. Your code "
                         "did not raise an exception. Something in the execution environment "
                         "caused the failure.")


class ExceptionWrapper(Exception):
    """What @catch stores in its `var`: a picklable record of the caught exception.

    Like Metaflow's wrapper it is an Exception (`isinstance(err, Exception)`, `raise err`
    in a later step) with `type` (`builtins.ValueError`), `exception` (the message) and
    `stacktrace` (without Flowdeck's frames); `str()` and `repr()` give the stack trace,
    as Metaflow's do, and `summary` the one line.
    """

    def __init__(self, exc: BaseException | None = None, *, type: str = "",
                 message: str = "", stacktrace: str = ""):
        super().__init__()  # no args: pickled as its attributes (the original may not pickle)
        if exc is not None:
            type = metaflow_type_name(exc)
            message = str(exc)
            stacktrace = user_traceback(exc)
        self.type = type
        self.exception = message
        self.stacktrace = stacktrace

    @property
    def summary(self) -> str:
        return f"{self.type}: {self.exception}" if self.exception else self.type

    def __str__(self) -> str:
        return self.stacktrace or f"[no stacktrace]\n{self.summary}"

    def __repr__(self) -> str:
        return str(self)

    def __bool__(self) -> bool:
        return True


def is_engine_frame(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_ENGINE_DIR + os.sep)


def user_traceback(exc: BaseException) -> str:
    """The traceback of `exc` without Flowdeck's own frames: only what the user can fix.
    With its chain, as Python prints it: the exception it was raised from (`raise ... from
    err`, a library wrapping a KeyError) or while handling, often the real cause."""
    import traceback  # only failures pay for it

    report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    pending, seen = [report], set()
    while pending:  # every exception of the chain (a cycle is shown once, as Python does)
        part = pending.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        part.stack = traceback.StackSummary.from_list(
            [f for f in part.stack if not is_engine_frame(f.filename)])
        pending += [p for p in (part.__cause__, part.__context__) if p is not None]
    return "".join(report.format()).rstrip("\n")


def error_info(exc: BaseException, message: str | None = None,
               with_traceback: bool = True) -> dict[str, Any]:
    """The `error` object of a failed task in metadata and events."""
    own = type(exc).__dict__.get("metaflow_name")  # the engine's own errors: Metaflow's name
    name = own if isinstance(own, str) else \
        f"{exc.__class__.__module__}.{exc.__class__.__qualname__}".removeprefix("builtins.")
    return {
        "type": name,
        "message": message if message is not None else exception_text(exc),
        "traceback": user_traceback(exc) if with_traceback else "",
    }


def exception_text(exc: BaseException) -> str:
    """`str(exc)`, or a note when the exception's own `__str__` raises: before, that escaped
    the worker, which died with exit code 130 and lost the step's error (found by
    reliability/bad_inputs.py)."""
    try:
        return str(exc)
    except Exception as inner:  # the user's __str__: anything may come out of it
        return (f"<{type(exc).__name__}.__str__ raised {type(inner).__name__}, so the "
                "message cannot be shown>")
