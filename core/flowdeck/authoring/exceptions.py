"""Exceptions a step can meet at run time, and how a failure is described to a person."""

from __future__ import annotations

import os
from typing import Any

# The flowdeck package folder: frames from any of its modules are the engine's, not the user's.
_ENGINE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class MergeArtifactsException(Exception):
    """`merge_artifacts` found artifacts whose values differ between inputs."""

    def __init__(self, message: str, names: list[str]):
        super().__init__(message)
        self.artifact_names = names


class StepTimeout(Exception):
    """Raised inside a step that ran past its @timeout."""


class ExceptionWrapper:
    """What @catch stores in its `var`: a picklable record of the caught exception.

    Like Metaflow's wrapper it has `type`, `exception` (the message) and
    `stacktrace`; `str()` gives the one-line summary.
    """

    def __init__(self, exc: BaseException | None = None, *, type: str = "",
                 message: str = "", stacktrace: str = ""):
        if exc is not None:
            type = f"{exc.__class__.__module__}.{exc.__class__.__qualname__}".removeprefix(
                "builtins.")
            message = str(exc)
            stacktrace = user_traceback(exc)
        self.type = type
        self.exception = message
        self.stacktrace = stacktrace

    def __str__(self) -> str:
        return f"{self.type}: {self.exception}" if self.exception else self.type

    def __repr__(self) -> str:
        return f"ExceptionWrapper({str(self)!r})"

    def __bool__(self) -> bool:
        return True


def is_engine_frame(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_ENGINE_DIR + os.sep)


def user_traceback(exc: BaseException) -> str:
    """The traceback of `exc` without Flowdeck's own frames: only what the user can fix."""
    import traceback  # only failures pay for it

    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not is_engine_frame(f.filename)]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip("\n")


def error_info(exc: BaseException, message: str | None = None,
               with_traceback: bool = True) -> dict[str, Any]:
    """The `error` object of a failed task in metadata and events."""
    name = f"{exc.__class__.__module__}.{exc.__class__.__qualname__}".removeprefix("builtins.")
    return {
        "type": name,
        "message": message if message is not None else str(exc),
        "traceback": user_traceback(exc) if with_traceback else "",
    }
