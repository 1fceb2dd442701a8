"""Bounded previews of artifact values, by type, for the window's viewers.

Runs in the artifact helper (`flowdeck.engines.inspect_task`), in the flow's own
interpreter: the window never unpickles, and never receives a value whole. A
preview is JSON-able data whose `kind` picks the window's viewer:

    table  pandas/polars DataFrames, 2-D numpy arrays: first rows and columns,
           shape, column names and dtypes
    plot   1-D numeric arrays, numeric Series, lists of numbers: the numbers
           (every k-th one past `points`, and it says so) and their statistics
    image  PIL images, uint8 arrays HxW / HxWx3 / HxWx4, PNG or JPEG bytes: a PNG
           at most `image_side` pixels on its longer side, with the original size
    tree   dicts, lists, tuples, sets: depth, children and node count limited,
           with how many were left out
    text   strings: the first `text_chars` characters and the full length
    repr   anything else: a clipped repr

Every preview is serialised and checked against `max_bytes`; one that is still too
large is rebuilt with halved limits, then replaced by a clipped repr, so the
bound is hard. Only numpy is imported here (lazily, when a value is an array);
pandas, polars and PIL are recognised by their type's module, never imported to
find out, so a flow without them pays nothing.

`export_value` writes the full value (the "Export…" button) in a format its type
has: .csv for data frames, .npy for arrays, .png for images, .pkl for anything.
"""

from __future__ import annotations

import base64
import io
import json
import math
import pickle
import re
import struct
import sys
import traceback
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from flowdeck.compiled_dataclasses import dataclass

TABLE, PLOT, IMAGE, TREE, TEXT, REPR = "table", "plot", "image", "tree", "text", "repr"


@dataclass(frozen=True)
class PreviewLimits:
    """How much of a value a preview may hold (all bounds, never targets)."""

    rows: int = 200
    columns: int = 50
    cell_chars: int = 200
    points: int = 10_000
    image_side: int = 1024
    tree_depth: int = 6
    tree_children: int = 100
    tree_nodes: int = 2_000
    text_chars: int = 200_000
    repr_chars: int = 20_000
    max_bytes: int = 1_000_000
    #: Statistics of a plot over every value (False: over the plotted points only, what a
    #: task storing a preview pays for: a pass over 100 MB costs more than the rest).
    whole_stats: bool = True

    def halved(self) -> PreviewLimits:
        return replace(self, rows=max(1, self.rows // 2), columns=max(1, self.columns // 2),
                       cell_chars=max(16, self.cell_chars // 2),
                       points=max(16, self.points // 2),
                       image_side=max(32, self.image_side // 2),
                       tree_children=max(4, self.tree_children // 2),
                       tree_nodes=max(16, self.tree_nodes // 2),
                       text_chars=max(1000, self.text_chars // 2))


#: Export formats by suffix, with the label the file dialog shows.
FORMAT_LABELS = {".csv": "CSV", ".npy": "NumPy array", ".png": "PNG image",
                 ".jpg": "JPEG image", ".txt": "Text", ".pkl": "Pickle"}

#: Import names whose pip package is called something else.
PIP_NAMES = {"PIL": "pillow", "sklearn": "scikit-learn", "cv2": "opencv-python",
             "yaml": "PyYAML", "skimage": "scikit-image", "bs4": "beautifulsoup4",
             "Crypto": "pycryptodome", "dateutil": "python-dateutil"}


def type_name(value: Any) -> str:
    """`module.Class` for the window (builtins without their module)."""
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def preview_value(value: Any, limits: PreviewLimits | None = None) -> dict[str, Any]:
    """A JSON-able preview of `value` whose serialised size is at most `limits.max_bytes`."""
    limits = limits or PreviewLimits()
    current = limits
    for _ in range(6):
        try:
            preview = _build(value, current)
        except Exception as exc:  # a value's own methods (len, iloc, repr) may raise anything
            preview = _repr_preview(value, current, f"{type(exc).__name__}: {exc}")
        preview.setdefault("type", type_name(value))
        preview["export"] = export_formats(value)
        if len(json.dumps(preview, default=str)) <= limits.max_bytes:
            return preview
        current = current.halved()
    fallback = _repr_preview(value, replace(limits, repr_chars=min(limits.repr_chars, 10_000)),
                             "the preview did not fit its size bound")
    fallback["type"] = type_name(value)
    fallback["export"] = export_formats(value)
    return fallback


#: Kinds whose preview costs little next to pickling a large value (a REPR may format a
#: huge object whole), so a task writes them beside its large blobs (store/previews.py).
CHEAP_KINDS = (TABLE, PLOT, IMAGE, TREE, TEXT)


def stored_preview(value: Any) -> dict[str, Any] | None:
    """The preview a task stores beside a large blob of `value`, or None when building it
    could cost more than it saves (then the window's helper builds it on demand)."""
    if _kind(value) not in CHEAP_KINDS:
        return None
    return preview_value(value, PreviewLimits(whole_stats=False))


def _build(value: Any, limits: PreviewLimits) -> dict[str, Any]:
    kind = _kind(value)
    builders: dict[str, Callable[[Any, PreviewLimits], dict[str, Any]]] = {
        TABLE: _table_preview, PLOT: _plot_preview, IMAGE: _image_preview,
        TREE: _tree_preview, TEXT: _text_preview}
    builder = builders.get(kind)
    return builder(value, limits) if builder else _repr_preview(value, limits)


def _module(value: Any) -> str:
    return type(value).__module__.split(".", 1)[0]


def _is_ndarray(value: Any) -> bool:
    return _module(value) == "numpy" and type(value).__name__ == "ndarray"


def _is_frame(value: Any) -> bool:
    return _module(value) in ("pandas", "polars") and type(value).__name__ == "DataFrame"


def _is_series(value: Any) -> bool:
    return _module(value) in ("pandas", "polars") and type(value).__name__ == "Series"


def _is_pil(value: Any) -> bool:
    return _module(value) == "PIL" and hasattr(value, "size") and hasattr(value, "mode")


def _image_bytes_format(value: Any) -> str | None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        head = bytes(value[:8])
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return "png"
        if head.startswith(b"\xff\xd8\xff"):
            return "jpeg"
    return None


#: A 2-D uint8 array is shown as a picture only from this size up (a small one is a table).
MIN_GRAY_SIDE = 16


def _image_array(value: Any) -> bool:
    if not _is_ndarray(value) or str(value.dtype) != "uint8" or min(value.shape or (0,)) < 1:
        return False
    if value.ndim == 2:
        return min(value.shape) >= MIN_GRAY_SIDE
    return value.ndim == 3 and value.shape[2] in (3, 4)


def _is_number(item: Any) -> bool:
    return isinstance(item, (int, float)) and not isinstance(item, bool)


def _kind(value: Any) -> str:
    if _is_pil(value) or _image_array(value) or _image_bytes_format(value):
        return IMAGE
    if _is_frame(value):
        return TABLE
    if _is_ndarray(value):
        if value.ndim == 1 and value.dtype.kind in "iuf":
            return PLOT
        if value.ndim == 2 and value.dtype.kind in "biufcmMOSU" and value.dtype.names is None:
            return TABLE
        return REPR
    if _is_series(value):
        return PLOT if _series_numeric(value) else TABLE
    if isinstance(value, str):
        return TEXT
    if isinstance(value, (list, tuple)) and value and all(_is_number(v) for v in value):
        return PLOT
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return TREE
    return REPR


def _series_numeric(series: Any) -> bool:
    dtype = series.dtype
    kind = getattr(dtype, "kind", None)
    if kind is not None:  # pandas (numpy dtypes and most extension dtypes)
        return kind in "iuf"
    return bool(getattr(dtype, "is_numeric", lambda: False)())  # polars


# -- tables -----------------------------------------------------------------------------------

def _cell(item: Any, limits: PreviewLimits) -> Any:
    """One table cell as JSON: numbers stay numbers (for sorting), the rest clipped text."""
    if hasattr(item, "item") and _module(item) == "numpy":
        try:
            item = item.item()
        except (ValueError, TypeError):
            pass
    if item is None or isinstance(item, bool):
        return item
    if isinstance(item, int):
        return item if abs(item) < 2 ** 63 else str(item)
    if isinstance(item, float):
        return item if math.isfinite(item) else str(item)
    return _clip(_cell_text(item, limits.cell_chars), limits.cell_chars)


def _cell_text(item: Any, limit: int) -> str:
    """A cell as pandas displays it: `str` (a date reads `2024-01-31 00:00:00`, not
    `Timestamp('2024-01-31 00:00:00')`; a Decimal `1.10`), bytes as their clipped repr."""
    if isinstance(item, str):
        return item
    if isinstance(item, (bytes, bytearray)):
        return _safe_repr(item, limit)
    try:
        return str(item)
    except Exception:  # noqa: BLE001 (a user-defined __str__ may raise anything)
        return _safe_repr(item, limit)


def _table_preview(value: Any, limits: PreviewLimits) -> dict[str, Any]:
    if _is_ndarray(value):
        rows, cols = value.shape
        part = value[:limits.rows, :limits.columns]
        columns = [str(i) for i in range(part.shape[1])]
        dtypes = [str(value.dtype)] * part.shape[1]
        index = [str(i) for i in range(part.shape[0])]
        cells = part.tolist()
    elif _module(value) == "polars":
        frame = value.to_frame() if _is_series(value) else value
        rows, cols = frame.shape
        part = frame.head(limits.rows).select(frame.columns[:limits.columns])
        columns = [str(c) for c in part.columns]
        dtypes = [str(d) for d in part.dtypes]
        index = [str(i) for i in range(part.height)]
        cells = [list(r) for r in part.rows()]
    else:  # pandas DataFrame or non-numeric Series
        frame = value.to_frame() if _is_series(value) else value
        rows, cols = frame.shape
        part = frame.iloc[:limits.rows, :limits.columns]
        columns = [_clip(str(c), limits.cell_chars) for c in part.columns]
        dtypes = [str(d) for d in part.dtypes]
        index = [_clip(str(i), limits.cell_chars) for i in part.index]
        cells = part.to_numpy(dtype=object).tolist()
    return {"kind": TABLE, "shape": [int(rows), int(cols)], "columns": columns,
            "dtypes": dtypes, "index": index,
            "rows": [[_cell(c, limits) for c in row] for row in cells]}


# -- plots ------------------------------------------------------------------------------------

def _plot_preview(value: Any, limits: PreviewLimits) -> dict[str, Any]:
    if _is_series(value):
        value = value.to_numpy()
    count = len(value)
    step = max(1, math.ceil(count / limits.points))
    stats: dict[str, Any]
    if _is_ndarray(value):
        sample = value[::step].astype("float64")
        stats = _array_stats(value if limits.whole_stats else sample)
        numbers = [_finite_or_none(v) for v in sample.tolist()]
        dtype = str(value.dtype)
    else:
        numbers = [_finite_or_none(float(v)) for v in value[::step]]
        finite_all = [float(v) for v in value if math.isfinite(v)]
        stats = ({"min": min(finite_all), "max": max(finite_all),
                  "mean": math.fsum(finite_all) / len(finite_all)} if finite_all else {})
        dtype = "int" if all(isinstance(v, int) for v in value) else "float"
        if len(finite_all) < count:
            stats["nonfinite"] = _nonfinite_counts([float(v) for v in value])
    preview = {"kind": PLOT, "count": count, "step": step, "downsampled": step > 1,
               "values": numbers, "dtype": dtype, "stats": stats}
    if step > 1 and not limits.whole_stats and _is_ndarray(value):
        preview["stats_of"] = "the plotted points"
    return preview


def _array_stats(array: Any) -> dict[str, Any]:
    """min, max and mean of a numeric array's finite values, without copying it unless it
    holds NaN or infinity (a mask and a copy of 100 MB cost more than the three passes)."""
    import numpy as np
    if not array.size:
        return {}
    low, high = float(array.min()), float(array.max())
    mean = float(array.mean(dtype="float64"))
    if array.dtype.kind == "f" and not all(map(math.isfinite, (low, high, mean))):
        counts = {"nan": int(np.isnan(array).sum()), "+inf": int(np.isposinf(array).sum()),
                  "-inf": int(np.isneginf(array).sum())}
        nonfinite = {k: n for k, n in counts.items() if n}
        finite = array[np.isfinite(array)]
        if not finite.size:
            return {"nonfinite": nonfinite}
        low, high = float(finite.min()), float(finite.max())
        mean = float(finite.mean(dtype="float64"))
        return {"min": low, "max": high, "mean": mean, "nonfinite": nonfinite}
    return {"min": low, "max": high, "mean": mean}


def _nonfinite_counts(numbers: list[float]) -> dict[str, int]:
    """How many values are NaN, +inf and -inf (only those present): the statistics leave
    them out, and a loss that went to inf is what the reader looks for."""
    counts = {"nan": sum(1 for v in numbers if math.isnan(v)),
              "+inf": sum(1 for v in numbers if v == math.inf),
              "-inf": sum(1 for v in numbers if v == -math.inf)}
    return {k: n for k, n in counts.items() if n}


def _finite_or_none(number: float) -> float | None:
    return number if math.isfinite(number) else None


# -- images -----------------------------------------------------------------------------------

def _image_preview(value: Any, limits: PreviewLimits) -> dict[str, Any]:
    side = limits.image_side
    fmt = _image_bytes_format(value)
    if fmt is not None:
        return _encoded_image_preview(bytes(value), fmt, limits)
    if _is_pil(value):
        width, height = value.size
        image = value.copy()
        image.thumbnail((side, side))
        if image.mode not in ("1", "L", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode else "RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data, shown = buffer.getvalue(), image.size
        mode = value.mode
    else:
        height, width = value.shape[:2]
        stride = max(1, math.ceil(max(height, width) / side))
        part = value[::stride, ::stride]
        data = encode_png(part)
        shown = (part.shape[1], part.shape[0])
        mode = {2: "L", 3: "RGB", 4: "RGBA"}[part.shape[2] if part.ndim == 3 else 2]
    return {"kind": IMAGE, "png": base64.b64encode(data).decode("ascii"),
            "format": "png", "width": shown[0], "height": shown[1],
            "original": [int(width), int(height)], "mode": mode,
            "scaled": (shown[0], shown[1]) != (width, height)}


def _encoded_image_preview(data: bytes, fmt: str, limits: PreviewLimits) -> dict[str, Any]:
    """PNG/JPEG bytes: downscaled with PIL when the interpreter has it, else passed on
    as they are while they fit (Qt decodes both), else described."""
    try:
        from PIL import Image
    except ImportError:
        size = _png_size(data) if fmt == "png" else None
        if len(data) * 4 // 3 + 1000 > limits.max_bytes:
            return _repr_preview(data, limits, f"a {fmt.upper()} image of {len(data)} bytes: "
                                 f"install pillow (`{sys.executable} -m pip install pillow`) "
                                 "to preview it downscaled")
        original = list(size) if size else None
        return {"kind": IMAGE, "png": base64.b64encode(data).decode("ascii"), "format": fmt,
                "width": original[0] if original else None,
                "height": original[1] if original else None, "original": original,
                "mode": "", "scaled": False}
    image = Image.open(io.BytesIO(data))
    preview = _image_preview(image, limits)
    preview["encoded"] = fmt
    return preview


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return None


def encode_png(array: Any) -> bytes:
    """A uint8 HxW, HxWx3 or HxWx4 array as PNG bytes (zlib only: PIL is optional)."""
    import numpy as np
    pixels = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    color = {1: 0, 3: 2, 4: 6}[channels]
    rows = pixels.reshape(height, width * channels)
    raw = np.zeros((height, width * channels + 1), dtype=np.uint8)  # filter byte 0 per row
    raw[:, 1:] = rows

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))


# -- trees ------------------------------------------------------------------------------------

class _Budget:
    def __init__(self, nodes: int):
        self.left = nodes


def _tree_preview(value: Any, limits: PreviewLimits) -> dict[str, Any]:
    budget = _Budget(limits.tree_nodes)
    root = _node("", value, 0, limits, budget, set())
    return {"kind": TREE, "root": root, "truncated": budget.left <= 0}


def _node(key: str, value: Any, depth: int, limits: PreviewLimits, budget: _Budget,
          seen: set[int]) -> dict[str, Any]:
    budget.left -= 1
    node: dict[str, Any] = {"key": key, "type": type_name(value)}
    container = isinstance(value, (dict, list, tuple, set, frozenset))
    if not container:
        node["value"] = _leaf_text(value, limits)
        return node
    node["length"] = len(value)
    if id(value) in seen:
        node["value"] = "(a reference to an enclosing container)"
        return node
    if depth >= limits.tree_depth:
        node["value"] = f"{len(value)} items (deeper than {limits.tree_depth} levels: not shown)"
        node["omitted"] = len(value)
        return node
    items: Any
    if isinstance(value, dict):
        items = ((_clip(_safe_str(k), limits.cell_chars), v) for k, v in value.items())
    elif isinstance(value, (set, frozenset)):
        items = (("", v) for v in value)
    else:
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    children: list[dict[str, Any]] = []
    seen.add(id(value))
    for k, v in items:
        if len(children) >= limits.tree_children or budget.left <= 0:
            break
        children.append(_node(k, v, depth + 1, limits, budget, seen))
    seen.discard(id(value))
    node["children"] = children
    node["omitted"] = len(value) - len(children)
    return node


def _leaf_text(value: Any, limits: PreviewLimits) -> str:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and (_is_ndarray(value) or _is_frame(value) or _is_series(value)):
        return f"shape {tuple(shape)} {getattr(value, 'dtype', '') if _is_ndarray(value) else ''}"
    return _clip(_safe_repr(value, limits.cell_chars), limits.cell_chars)


# -- text and repr ----------------------------------------------------------------------------

def _text_preview(value: str, limits: PreviewLimits) -> dict[str, Any]:
    return {"kind": TEXT, "text": value[:limits.text_chars], "length": len(value),
            "truncated": len(value) > limits.text_chars,
            "lines": value.count("\n", 0, 10_000_000) + 1}


def _repr_preview(value: Any, limits: PreviewLimits, note: str = "") -> dict[str, Any]:
    text = _safe_repr(value, limits.repr_chars)
    preview = {"kind": REPR, "text": _clip(text, limits.repr_chars),
               "truncated": len(text) > limits.repr_chars}
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        preview["shape"] = [int(s) if isinstance(s, int) else str(s) for s in shape]
        preview["dtype"] = str(getattr(value, "dtype", ""))
    if note:
        preview["note"] = note
    return preview


def _safe_repr(value: Any, limit: int) -> str:
    if isinstance(value, (bytes, bytearray)) and len(value) > limit:
        return repr(bytes(value[:limit])) + f"… ({len(value)} bytes)"
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit])
    try:
        return repr(value)
    except Exception as exc:  # a user-defined __repr__ may raise anything
        return f"<repr() failed: {type(exc).__name__}: {exc}>"


def _safe_str(value: Any) -> str:
    try:
        return value if isinstance(value, str) else repr(value)
    except Exception as exc:  # a key's own __repr__
        return f"<{type(exc).__name__}>"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


# -- load failures ----------------------------------------------------------------------------

_MISSING_ATTR = re.compile(r"Can't get attribute '(?P<name>[^']+)' on <module '(?P<module>[^']+)'")


class LoadTimeout(Exception):
    """Loading (unpickling, previewing) a value took longer than it was allowed."""


def load_failure(exc: BaseException, flow_file: str = "") -> str:
    """Why a value could not be unpickled, in words that say what to do (no traceback).

    `flow_file` names the code cloudpickle saved by value (classes of the flow file
    itself), whose frames otherwise say only `<dynamic-code>`.
    """
    where = _where(exc, flow_file)
    if isinstance(exc, LoadTimeout):
        return f"{exc}{where}"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".", 1)[0]
        pip = PIP_NAMES.get(top, top)
        return (f"needs the module '{exc.name}', which {sys.executable} cannot import: "
                f"install it with `{sys.executable} -m pip install {pip}` (or choose the "
                f"flow's interpreter){where}")
    match = _MISSING_ATTR.search(str(exc)) if isinstance(exc, AttributeError) else None
    if match:
        return (f"its class {match['name']} is no longer in module {match['module']} (renamed "
                "or removed since the run): restore it to load the value")
    return f"unpickling raised {type(exc).__name__}: {exc}{where}"


def _where(exc: BaseException, flow_file: str) -> str:
    """The deepest frame of the failure in the user's code (not ours, not the library's)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "flowdeck" not in f.filename and "/lib/python" not in f.filename]
    if not frames:
        return ""
    file, line = frames[-1].filename, frames[-1].lineno
    if file == "<dynamic-code>" and flow_file:
        return f" (at {flow_file}, line {line}, as the file was when the run was made)"
    return f" (at {file}, line {line})"


# -- export -----------------------------------------------------------------------------------

def export_formats(value: Any) -> list[str]:
    """The suffixes `export_value` can write this value as, the best one first."""
    formats: list[str] = []
    if _is_frame(value) or _is_series(value):
        formats.append(".csv")
    if _is_pil(value) or _image_array(value) or _image_bytes_format(value) == "png":
        formats.append(".png")
    if _image_bytes_format(value) == "jpeg":
        formats.append(".jpg")
    if _is_ndarray(value):
        formats.append(".npy")
        if value.ndim in (1, 2) and value.dtype.kind in "biuf":
            formats.append(".csv")
    if isinstance(value, str):
        formats.append(".txt")
    formats.append(".pkl")
    return formats


def export_value(value: Any, path: str) -> str:
    """Write the whole `value` to `path` in the format its suffix names; returns the suffix.

    Raises ValueError naming the formats this value has when the suffix is not one.
    """
    suffix = Path(path).suffix.lower()
    suffix = ".jpg" if suffix == ".jpeg" else suffix
    allowed = export_formats(value)
    if suffix not in allowed:
        raise ValueError(f"{path}: a {type_name(value)} can be exported as "
                         f"{', '.join(allowed)}; choose a file name ending in one of them")
    if suffix == ".csv":
        if _is_ndarray(value):
            import numpy as np
            np.savetxt(path, value, delimiter=",", fmt="%s")
        elif _module(value) == "polars":
            (value.to_frame() if _is_series(value) else value).write_csv(path)
        else:
            value.to_csv(path)
    elif suffix == ".npy":
        import numpy as np
        np.save(path, value, allow_pickle=value.dtype.hasobject)
    elif suffix in (".png", ".jpg"):
        if _image_bytes_format(value):
            Path(path).write_bytes(bytes(value))
        elif _is_pil(value):
            value.save(path, format="PNG")
        else:
            Path(path).write_bytes(encode_png(value))
    elif suffix == ".txt":
        Path(path).write_text(value, encoding="utf-8")
    else:
        with open(path, "wb") as handle:
            try:
                pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
            except (pickle.PicklingError, TypeError, AttributeError):
                import cloudpickle  # local classes and lambdas, as the store writes them
                handle.seek(0)
                handle.truncate()
                cloudpickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return suffix
