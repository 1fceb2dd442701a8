"""What the artifact helper says about a task's artifacts before previewing one.

A task's artifacts as either store lists them (`TaskArtifacts`, shared by
`inspect_task` and `inspect_metaflow`), and a short, safe one-line description of a
value for the list (in the helper process, never the window).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowdeck.compiled_dataclasses import dataclass

PREVIEW_CHARS = 400


@dataclass(frozen=True)
class Listed:
    """An artifact as the task's record knows it, before anything is unpickled."""

    name: str
    type: str
    size: int


@dataclass
class TaskArtifacts:
    """A task's artifacts from either store: what is listed, and how to load one value."""

    listed: list[Listed]
    load: Callable[[str], Any]
    source: str = ""  # the flow file, to name where code saved with a value failed


def describe_value(value: Any) -> dict[str, Any]:
    """A short, safe description: repr, or shape/dtype for arrays, head for data frames."""
    out: dict[str, Any] = {}
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and isinstance(shape, tuple):
        out["shape"] = list(shape)
    if dtype is not None:
        out["dtype"] = str(dtype)
    head = getattr(value, "head", None)
    if callable(head) and hasattr(value, "columns"):
        try:
            out["preview"] = _clip(head(5).to_string())
            return out
        except Exception as exc:  # a broken __repr__ is the value's problem, not ours
            out["preview"] = f"<head() failed: {type(exc).__name__}: {exc}>"
            return out
    try:
        out["preview"] = _clip(repr(value))
    except Exception as exc:  # user-defined __repr__ may raise anything
        out["preview"] = f"<repr() failed: {type(exc).__name__}: {exc}>"
    return out


def _clip(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + " …"
