"""Metaflow's `IncludeFile`: a parameter whose value is the contents of a file.

`IncludeFile("data", default="data.csv", is_text=True, encoding="utf-8")` takes a
path on the command line (`--data other.csv`, or `$METAFLOW_RUN_DATA`); the file
is read once, when the run starts, and in every step `self.data` is its text
(bytes with `is_text=False`), stored with the run like any parameter. A missing
file without a default and not `required` reads as None.
"""

from __future__ import annotations

from typing import Any

from flowdeck.authoring.spec import Parameter
from flowdeck.authoring.values import IncludedFile, contents

__all__ = ["IncludeFile", "IncludedFile", "contents"]


class IncludeFile(Parameter):
    """A parameter whose value is a file's contents (see the module docstring)."""

    def __init__(self, name: str = "", required: bool = False, is_text: bool = True,
                 encoding: str = "utf-8", help: str | None = None, default: Any = None,
                 **kwargs: Any):
        super().__init__(name, default=default, type=str, help=help, required=required,
                         **kwargs)
        self.is_text = is_text
        self.encoding = encoding

    @property
    def kind(self) -> str:
        return "path"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        value = super().__get__(obj, owner)
        return value if obj is None else contents(value)

    def convert(self, raw: Any) -> Any:
        """A path (str) is read now; a value already read (a resumed run's) is kept."""
        if not isinstance(raw, str):
            return raw
        try:
            with open(raw, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise ValueError(f"IncludeFile `{self.name}` cannot read {raw!r} "
                             f"({exc.strerror or exc}); pass an existing file as "
                             f"--{self.name} PATH") from None
        if not self.is_text:
            return IncludedFile(raw, data)
        try:
            return IncludedFile(raw, data.decode(self.encoding))
        except (UnicodeDecodeError, LookupError) as exc:
            raise ValueError(f"IncludeFile `{self.name}`: {raw!r} is not {self.encoding} text "
                             f"({exc}); pass is_text=False to read bytes, or the file's "
                             "encoding=") from None

    def default_value(self, flow_name: str = "") -> Any:
        path = super().default_value(flow_name)
        return None if path is None else self.convert(path)

    def __repr__(self) -> str:
        return f"IncludeFile({self.name!r}, default={self.default!r})"
