"""The components a step appends to a card: `Markdown`, `Table`, `Image`, `Artifact`,
`VegaChart`, `ProgressBar` and `Error`, and Metaflow 2.19's `ValueBox`, `JSONViewer`,
`YAMLViewer`, `PythonCode` and `EventsTimeline`, with Metaflow's constructors and `update`
(the later five drawn with the same blocks: text, a value's text, a table).

Each renders to a small JSON-able dict (`{"type": "markdown", ...}`) that
`flowdeck.cards.html` turns into HTML; a component whose `render` raises renders as an
error block in its place (`render_safely`). A constructor never raises on the wrong kind
of data (a flat list for a Table, a file name for an Image): the step goes on, and the
card shows an error block saying what was given and what to pass
(`ComponentInputError`). Values are bounded here, where they are made: a table keeps
its first rows, an artifact its first characters, so a card never carries a whole
large value.
"""

from __future__ import annotations

import base64
import json
import reprlib
import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from flowdeck.cards.card import (
    ComponentInputError,
    MetaflowCardComponent,
    error_value,
    render_safely,
    with_default_component_id,
)

#: A table shows at most this many rows (Table.from_dataframe, and appended data).
MAX_TABLE_ROWS = 1000
#: An Artifact's repr is cut after this many characters.
MAX_REPR_CHARS = 2000
#: Images larger than this (encoded) are not embedded: the card says so instead.
MAX_IMAGE_BYTES = 8 * 1024 * 1024

_REPR = reprlib.Repr()
_REPR.maxstring = 400
_REPR.maxother = 400
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxdict = 30
_REPR.maxlevel = 4


def bounded_repr(value: Any, limit: int = MAX_REPR_CHARS) -> str:
    """A repr of at most `limit` characters that never fails (a repr that raises says so)."""
    try:
        text = _REPR.repr(value)
        if len(text) < 60:  # reprlib abbreviates objects it does not know; short ones in full
            full = repr(value)
            text = full if len(full) <= limit else text
    except Exception as exc:
        text = f"<{type(value).__name__}: repr failed: {exc}>"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more)"


def type_name(value: Any) -> str:
    """A value's type as a message names it: `float`, `pandas.core.series.Series`."""
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__}.{kind.__qualname__}"


def given(value: Any) -> str:
    """What a component was given, for its error block: the type and a short repr, on one
    line (a DataFrame's repr has many)."""
    kind = type_name(value)
    text = " ".join(bounded_repr(value, 80).split())
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} ({text})"


class UserComponent(MetaflowCardComponent):
    """Base of the built-in components (Metaflow's name)."""

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot be updated; append a new one.")


class Markdown(UserComponent):
    """Text written in Markdown: `Markdown("# Title\\n*some* text")`."""

    REALTIME_UPDATABLE = True

    def __init__(self, text: str | None = None):
        self._text: Any = "" if text is None else text  # never `text or`: a DataFrame raises

    def update(self, text: str | None = None) -> None:
        self._text = "" if text is None else text

    @with_default_component_id
    @render_safely
    def render(self) -> dict[str, Any]:
        if not isinstance(self._text, str):
            raise ComponentInputError(
                f"Markdown takes a string of Markdown, not {given(self._text)}. Pass "
                "Markdown(f\"...{value}...\") to write a value into text, or "
                "Artifact(value) to show the value itself.")
        return {"type": "markdown", "id": self.component_id, "source": self._text}


class Artifact(UserComponent):
    """A value shown as its (bounded) repr, with an optional name."""

    REALTIME_UPDATABLE = True

    def __init__(self, artifact: Any, name: str | None = None, compressed: bool = True):
        self._artifact = artifact
        self._name = name
        self._compressed = compressed

    def update(self, artifact: Any) -> None:
        self._artifact = artifact

    @with_default_component_id
    @render_safely
    def render(self) -> dict[str, Any]:
        return {"type": "artifact", "id": self.component_id, "name": self._name,
                "data_type": type(self._artifact).__name__,
                "repr": bounded_repr(self._artifact)}


def _cell(value: Any) -> Any:
    """A table cell: a component renders itself; anything else is shown as text."""
    if isinstance(value, MetaflowCardComponent):
        try:
            return value.render()
        except Exception as exc:
            return error_value(f"{type(value).__name__} in a table could not be rendered", exc)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value if not isinstance(value, str) else value[:MAX_REPR_CHARS]
    return bounded_repr(value, 400)


_ROWS_EXAMPLE = "Table([[1, 'a'], [2, 'b']], headers=['n', 'name'])"


def _is_sequence(value: Any) -> bool:
    """A list-like of rows or cells: iterable, but not text, bytes or a mapping, whose
    iteration gives characters or keys, never what a table means."""
    return isinstance(value, Iterable) and not isinstance(
        value, (str, bytes, bytearray, Mapping))


def _is_dataframe(value: Any) -> bool:
    return hasattr(value, "columns") and (hasattr(value, "itertuples")
                                          or hasattr(value, "iter_rows"))


def table_rows(data: Any) -> list[list[Any]]:
    """A Table's data as rows of cells; ComponentInputError (what was given, what to pass)
    when it is not a list of rows: a flat list is the common slip."""
    if data is None:
        return []
    if _is_dataframe(data):
        raise ComponentInputError(f"Table's data is {given(data)}: for a DataFrame use "
                                  "Table.from_dataframe(df).")
    if not _is_sequence(data):
        raise ComponentInputError(f"Table's data is {given(data)}, not a list of rows. Pass "
                                  f"a list of rows, each a list of cells: {_ROWS_EXAMPLE}.")
    rows = []
    try:
        for number, row in enumerate(data):
            if not _is_sequence(row):
                raise ComponentInputError(
                    f"Row {number} of the Table's data is {given(row)}, not a list of cells. "
                    "Each row is a list: for one column of values, pass "
                    f"Table([[v] for v in values], headers=[...]); in general {_ROWS_EXAMPLE}.")
            rows.append(list(row))
    except TypeError as exc:  # iterable by type, not in fact (a 0-d numpy array)
        raise ComponentInputError(f"Table's data ({type_name(data)}) cannot be read as rows: "
                                  f"{exc}. Pass {_ROWS_EXAMPLE}.") from None
    return rows


def table_headers(headers: Any) -> list[str]:
    """A Table's header row as text; ComponentInputError unless a list of column names."""
    if headers is None:
        return []
    if not _is_sequence(headers):
        raise ComponentInputError(f"Table's headers are {given(headers)}, not a list of "
                                  "column names: pass headers=['n', 'name'].")
    return [str(h) for h in headers]


def _not_a_dataframe(value: Any) -> str:
    """Why `Table.from_dataframe` cannot take `value`, and what to pass instead."""
    if hasattr(value, "to_frame"):
        hint = "A Series is one column: pass series.to_frame()."
    elif hasattr(value, "ndim") and hasattr(value, "tolist"):
        hint = ("For an array use Table(array.tolist()) (2-D) or "
                "Table([[v] for v in array.tolist()]) (1-D).")
    else:
        hint = f"For other data use {_ROWS_EXAMPLE}."
    return (f"Table.from_dataframe takes a pandas or polars DataFrame, not {given(value)}. "
            f"{hint}")


class Table(UserComponent):
    """Rows of cells (text, numbers or other components), with an optional header row."""

    REALTIME_UPDATABLE = True

    def __init__(self, data: list[list[Any]] | None = None, headers: list[str] | None = None,
                 disable_updates: bool = False):
        self._problem: str | None = None
        try:
            self._data = table_rows(data)
            self._headers = table_headers(headers)
        except ComponentInputError as exc:
            self._data, self._headers = [], []
            self._problem = str(exc)

    @classmethod
    def from_dataframe(cls, dataframe: Any = None, truncate: bool = True) -> "Table":
        """The first MAX_TABLE_ROWS rows of a pandas (or polars) DataFrame; anything else
        gives a Table that shows why (as Metaflow's shows "not supported")."""
        table = cls()
        if not _is_dataframe(dataframe):
            table._problem = _not_a_dataframe(dataframe)
            return table
        try:
            headers = [str(c) for c in dataframe.columns]
            frame = dataframe.head(MAX_TABLE_ROWS) if truncate else dataframe
            if hasattr(frame, "itertuples"):
                rows = [list(r) for r in frame.itertuples(index=False)]
            else:  # polars
                rows = [list(r) for r in frame.iter_rows()]
        except Exception as exc:  # a frame-like object that is not one after all
            table._problem = (f"Table.from_dataframe could not read the {type_name(dataframe)}"
                              f" ({type(exc).__name__}: {exc}); pass a pandas or polars "
                              "DataFrame.")
            return table
        return cls(rows, headers)

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("A Table cannot be updated; update the components inside "
                                  "it, or append a new Table.")

    @with_default_component_id
    @render_safely
    def render(self) -> dict[str, Any]:
        if self._problem is not None:
            raise ComponentInputError(self._problem)
        rows = self._data[:MAX_TABLE_ROWS]
        return {"type": "table", "id": self.component_id, "headers": self._headers,
                "data": [[_cell(c) for c in row] for row in rows],
                "truncated": max(0, len(self._data) - MAX_TABLE_ROWS)}


def _image_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.lstrip()[:5] in (b"<svg ", b"<?xml"):
        return "image/svg+xml"
    return None


_IMAGE_KINDS = ("PNG/JPEG/GIF/WebP/SVG bytes, a data:image/... URI, a PIL image, a matplotlib "
                "figure or a uint8 array")


def png_from_pixels(pixels: Any) -> bytes:
    """PNG bytes of a uint8 array of shape (H, W), (H, W, 3) or (H, W, 4), without PIL."""
    shape = tuple(getattr(pixels, "shape", ()))
    if str(getattr(pixels, "dtype", "")) != "uint8" or len(shape) not in (2, 3) or (
            len(shape) == 3 and shape[2] not in (1, 3, 4)):
        raise ComponentInputError(
            f"an image array must be uint8 of shape (H, W), (H, W, 3) or (H, W, 4), not "
            f"{getattr(pixels, 'dtype', type(pixels).__name__)} {shape}. Floats in [0, 1] "
            "become one with (array * 255).astype('uint8').")
    height, width = shape[0], shape[1]
    channels = 1 if len(shape) == 2 else shape[2]
    color = {1: 0, 3: 2, 4: 6}[channels]
    raw = pixels.tobytes()
    stride = width * channels
    scanlines = b"".join(b"\x00" + raw[y * stride:(y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(scanlines, 6)) + chunk(b"IEND", b""))


def _image_src(src: Any) -> str:
    """The `data:` URI of an Image's picture (one already given as a `data:image/` URI, as
    Metaflow takes, is kept); ComponentInputError for anything else (a card fetches
    nothing, so a file name or URL is not a picture)."""
    if src is None:
        raise ComponentInputError(f"the Image has no picture (src is None): pass {_IMAGE_KINDS}.")
    if isinstance(src, str):
        if not src.startswith("data:image/"):
            raise ComponentInputError(
                f"Image takes the picture itself, not {given(src)}: a card embeds its "
                "pictures and fetches nothing, so for a file pass its bytes, "
                f"Image(open(path, 'rb').read()). It takes {_IMAGE_KINDS}.")
        size = len(src) * 3 // 4
    else:
        data, mime = _image_bytes(src)
        size = len(data)
        src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    if size > MAX_IMAGE_BYTES:
        raise ComponentInputError(
            f"the image is {size / 1e6:.1f} MB encoded, more than a card embeds "
            f"({MAX_IMAGE_BYTES // (1024 * 1024)} MB); downscale it first")
    return src


def _image_bytes(src: Any) -> tuple[bytes, str]:
    """(encoded bytes, MIME type) of bytes, a PIL image, a matplotlib figure or a uint8 array."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        mime = _image_mime(data)
        if mime is None:
            raise ComponentInputError(f"the bytes ({bounded_repr(data[:24], 80)}...) are not a "
                                      "PNG, JPEG, GIF, WebP or SVG image: pass an encoded "
                                      "image file's bytes")
        return data, mime
    import io
    if hasattr(src, "savefig"):  # a matplotlib figure
        buffer = io.BytesIO()
        src.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue(), "image/png"
    if hasattr(src, "save") and hasattr(src, "mode"):  # a PIL image
        buffer = io.BytesIO()
        src.save(buffer, format="PNG")
        return buffer.getvalue(), "image/png"
    if hasattr(src, "shape") and hasattr(src, "dtype"):
        return png_from_pixels(src), "image/png"
    raise ComponentInputError(f"cannot make an image of {given(src)}: pass {_IMAGE_KINDS}")


class Image(UserComponent):
    """A picture: PNG/JPEG/GIF/WebP/SVG bytes, a `data:image/` URI, a PIL image, a
    matplotlib figure or a uint8 array (H, W[, 3|4]); embedded in the card, so the card
    stays one file."""

    REALTIME_UPDATABLE = True

    def __init__(self, src: Any = None, label: str | None = None,
                 disable_updates: bool = True):
        self._src = src
        self._label = label

    @classmethod
    def from_pil_image(cls, pilimage: Any, label: str | None = None,
                       disable_updates: bool = False) -> "Image":
        return cls(pilimage, label=label)

    @classmethod
    def from_matplotlib(cls, plot: Any, label: str | None = None,
                        disable_updates: bool = False) -> "Image":
        figure = plot.get_figure() if hasattr(plot, "get_figure") and not hasattr(
            plot, "savefig") else plot
        return cls(figure, label=label)

    def update(self, image: Any, label: str | None = None) -> None:
        self._src = image
        if label is not None:
            self._label = label

    @with_default_component_id
    @render_safely
    def render(self) -> dict[str, Any]:
        return {"type": "image", "id": self.component_id, "label": self._label,
                "src": _image_src(self._src)}


class VegaChart(UserComponent):
    """A Vega-Lite chart from its spec (a dict, or an Altair chart with `from_altair_chart`).

    Cards are drawn offline, without Vega's JavaScript: a spec with inline
    `data.values` and a `line`, `bar`, `point` or `area` mark over two quantitative
    fields is drawn as a simple SVG; every chart also shows its spec.
    """

    REALTIME_UPDATABLE = True

    def __init__(self, spec: dict[str, Any], show_controls: bool = False):
        self._spec = spec
        self._show_controls = show_controls

    @classmethod
    def from_altair_chart(cls, altair_chart: Any) -> "VegaChart":
        """A chart of an Altair chart; anything else raises ValueError, as in Metaflow."""
        if not callable(getattr(altair_chart, "to_dict", None)):
            raise ValueError(f"VegaChart.from_altair_chart takes an Altair chart, not "
                             f"{given(altair_chart)}; for a Vega-Lite spec (a dict) use "
                             "VegaChart(spec).")
        return cls(altair_chart.to_dict())

    def update(self, spec: dict[str, Any] | None = None) -> None:
        if spec is not None:
            self._spec = spec

    @with_default_component_id
    @render_safely
    def render(self) -> dict[str, Any]:
        spec = self._spec.to_dict() if hasattr(self._spec, "to_dict") else self._spec
        if not isinstance(spec, dict):
            raise ComponentInputError(
                f"VegaChart takes a Vega-Lite spec as a dict, not {given(spec)}: "
                "VegaChart({'mark': 'line', 'data': {'values': [{'x': 1, 'y': 2}]}, "
                "'encoding': {'x': {'field': 'x'}, 'y': {'field': 'y'}}}), or "
                "VegaChart.from_altair_chart(chart).")
        try:
            json.dumps(spec)
        except (TypeError, ValueError) as exc:
            raise ComponentInputError(
                f"the VegaChart's spec is not JSON ({exc}): use plain dicts, lists, numbers "
                "and strings (df.to_dict('records') for a DataFrame's rows).") from None
        return {"type": "vegaChart", "id": self.component_id, "spec": spec}


class ProgressBar(UserComponent):
    """A progress bar; `update(value, metadata=...)` and `current.card.refresh()` move it
    while the task runs."""

    REALTIME_UPDATABLE = True

    def __init__(self, max: int = 100, label: str | None = None, value: int = 0,
                 unit: str | None = None, metadata: str | None = None):
        self._max = max
        self._label = label
        self._value = value
        self._unit = unit
        self._metadata = metadata

    def update(self, new_value: int, metadata: str | None = None) -> None:
        self._value = new_value
        if metadata is not None:
            self._metadata = metadata

    @with_default_component_id
    @render_safely
    def render(self) -> dict[str, Any]:
        return {"type": "progressBar", "id": self.component_id, "max": self._max,
                "value": self._value, "label": self._label, "unit": self._unit,
                "details": self._metadata}


class ValueBox(UserComponent):
    """A headline number: `ValueBox(title="Accuracy", value="0.93", subtitle="val set")`,
    changed in place with `update(value=..., ...)` while the task runs."""

    REALTIME_UPDATABLE = True

    def __init__(self, title: str | None = None, value: Any = "", subtitle: str | None = None,
                 theme: str | None = None, change_indicator: str | None = None):
        self._fields = {"title": title, "value": value, "subtitle": subtitle,
                        "change_indicator": change_indicator}
        self._theme = theme

    def update(self, **fields: Any) -> None:
        self._fields.update({k: v for k, v in fields.items() if k in self._fields})

    @with_default_component_id
    @render_safely
    def render(self) -> dict[str, Any]:
        f = self._fields
        lines = [f"**{f['title']}**" if f["title"] else "", f"## {f['value']}",
                 " ".join(str(x) for x in (f["subtitle"], f["change_indicator"]) if x)]
        return {"type": "markdown", "id": self.component_id,
                "source": "\n\n".join(line for line in lines if line)}


class JSONViewer(UserComponent):
    """A JSON-able value shown as indented JSON (Metaflow's collapsible viewer)."""

    REALTIME_UPDATABLE = True
    LABEL = "JSON"

    def __init__(self, data: Any, collapsible: bool = True, max_height: str | None = None,
                 show_copy_button: bool = True):
        self._data = data

    def update(self, data: Any) -> None:
        self._data = data

    def _text(self) -> str:
        return json.dumps(self._data, indent=2, default=str)

    @with_default_component_id
    @render_safely
    def render(self) -> dict[str, Any]:
        text = self._text()
        if len(text) > MAX_REPR_CHARS * 10:
            text = text[:MAX_REPR_CHARS * 10] + f"\n... ({len(text) - MAX_REPR_CHARS * 10} more)"
        return {"type": "artifact", "id": self.component_id, "name": self.LABEL,
                "data_type": type(self._data).__name__, "repr": text}


class YAMLViewer(JSONViewer):
    """A value shown as YAML (as JSON where PyYAML is not installed)."""

    LABEL = "YAML"

    def _text(self) -> str:
        try:
            import yaml
        except ImportError:
            return super()._text()
        return str(yaml.safe_dump(json.loads(super()._text()), sort_keys=False))


class PythonCode(UserComponent):
    """Source code: a function's (`PythonCode(f)`) or a string's (`code_string=`)."""

    def __init__(self, f: Any = None, code_string: str | None = None):
        if code_string is None and f is not None:
            import inspect
            try:
                code_string = inspect.getsource(f)
            except (OSError, TypeError) as exc:
                code_string = f"# the source of {f!r} cannot be read: {exc}"
        self._code = code_string or ""

    @with_default_component_id
    @render_safely
    def render(self) -> dict[str, Any]:
        return {"type": "artifact", "id": self.component_id, "name": "Python",
                "data_type": "code", "repr": self._code[:MAX_REPR_CHARS * 10]}


class EventsTimeline(UserComponent):
    """Events as they happen, newest first: `add_event({"stage": "fit", "loss": 0.3})`,
    then `current.card.refresh()`; at most `max_events` are kept."""

    REALTIME_UPDATABLE = True

    def __init__(self, title: str | None = None, max_events: int = 100,
                 show_stats: bool = True, show_relative_time: bool = True):
        self._title = title
        self._max = max(1, int(max_events or 100))
        self._events: list[tuple[float, dict[str, Any]]] = []

    def add_event(self, event_data: dict[str, Any], timestamp: Any = None) -> None:
        import time
        when = timestamp.timestamp() if hasattr(timestamp, "timestamp") else (
            float(timestamp) if timestamp is not None else time.time())
        self._events.append((when, dict(event_data)))
        del self._events[:-self._max]

    def update(self, events: list[dict[str, Any]] | None = None) -> None:
        for event in events or []:
            self.add_event(event)

    @with_default_component_id
    @render_safely
    def render(self) -> dict[str, Any]:
        import time
        keys: list[str] = []
        for _, data in self._events:
            keys += [k for k in data if k not in keys]
        rows = [[time.strftime("%H:%M:%S", time.localtime(when)),
                 *[_cell(data.get(k, "")) for k in keys]]
                for when, data in reversed(self._events)]
        return {"type": "table", "id": self.component_id, "headers": ["time", *keys],
                "data": rows, "title": self._title}


class Error(UserComponent):
    """An exception shown in a card (Metaflow's `Error(exception, title)`)."""

    def __init__(self, exception: BaseException | str, title: str | None = None):
        self._exception = exception
        self._title = title or "Error"

    @with_default_component_id
    def render(self) -> dict[str, Any]:
        value = error_value(self._title, self._exception)
        value["id"] = self.component_id
        return value


class StubComponent(UserComponent):
    """What `current.card[id].components["missing"]` gives: updates go nowhere."""

    def __init__(self, component_id: str):
        self.component_id = component_id

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def render(self) -> None:
        return None


class WarningComponent(UserComponent):
    """A card warning (a misuse of `current.card`), shown in the card as Metaflow does."""

    def __init__(self, message: str):
        self._message = message

    def render(self) -> dict[str, Any]:
        return {"type": "error", "title": "@card WARNING", "message": self._message,
                "detail": "", "warning": True}
