"""One artifact of each kind the artifact viewers show, plus three that cannot be loaded.

`start` makes them all (tests/test_artifact_preview.py and test_artifact_viewers.py
read them back through the artifact helper):

    frame     pandas DataFrame, 500 rows: a sortable table
    matrix    2-D float array, 300 x 60: a table (more columns than a preview shows)
    picture   PIL image, 1500 x 900: a picture, downscaled
    pixels    uint8 array, 64 x 96 x 3: a picture
    png       PNG bytes: a picture
    nested    dict of dicts and lists, one list of 250: a tree with children left out
    essay     string of about 300,000 characters: text, truncated, searchable
    signal    1-D float array of 50,000: a plot, downsampled
    losses    list of 20 floats: a plot
    gappy     list of floats, every other one NaN, one inf: points, and what is not plotted
    diverged  float array ending in inf and NaN: statistics of the finite values, and counts
    count     int: a repr
    vanished  an object whose module exists only in the run (missing when unpickled)
    ghost     an object whose class is removed from its module after the run
    grudge    an object whose __setstate__ raises

A value whose loading never ends is in hanging_value.py, alone: the tests of the time
limits run it at short limits, which these values must not depend on.
"""
import io
import json
import math
import sys
import types

import numpy as np
import pandas as pd
from PIL import Image

from flowdeck import FlowSpec, step

ESSAY_WORD = "needle-in-the-essay"


class Grudge:
    """Unpickling this raises: its state is refused."""

    def __init__(self):
        self.mood = "sour"

    def __setstate__(self, state):
        raise RuntimeError("Grudge refuses to be unpickled")


def _vanishing_object():
    """An instance of a class from a module that exists only in this process."""
    module = types.ModuleType("flowdeck_vanished_module")
    exec("class Vanished:\n    def __init__(self):\n        self.x = 1\n", module.__dict__)
    sys.modules[module.__name__] = module
    return module.Vanished()


def _ghost_object():
    """An instance of a class put on the json module for this process only."""
    cls = type("Ghost", (), {"__module__": "json", "__init__": lambda self: None})
    json.Ghost = cls
    obj = cls()
    obj.kind = "ghost"
    return obj


def _picture():
    x = np.linspace(0, 255, 1500, dtype=np.float64)
    y = np.linspace(0, 255, 900, dtype=np.float64)
    red = np.tile(x, (900, 1))
    green = np.tile(y[:, None], (1, 1500))
    blue = np.full((900, 1500), 128.0)
    return Image.fromarray(np.dstack([red, green, blue]).astype(np.uint8), "RGB")


class ViewerValuesFlow(FlowSpec):
    @step
    def start(self):
        rows = 500
        self.frame = pd.DataFrame({
            "id": np.arange(rows),
            "score": np.round(np.sin(np.arange(rows) / 7.0) * 100, 3),
            "name": [f"item-{(i * 37) % rows:03d}" for i in range(rows)],
            "ok": [i % 3 == 0 for i in range(rows)],
        })
        self.matrix = np.arange(300 * 60, dtype=np.float64).reshape(300, 60) / 10
        self.picture = _picture()
        pixels = np.zeros((64, 96, 3), dtype=np.uint8)
        pixels[:, :48, 0] = 255
        pixels[:, 48:, 2] = 255
        self.pixels = pixels
        buffer = io.BytesIO()
        Image.fromarray(pixels[::2, ::2].copy()).save(buffer, format="PNG")
        self.png = buffer.getvalue()
        self.nested = {"model": {"name": "ridge", "alpha": 0.5, "layers": [64, 32, 8]},
                       "metrics": {"rmse": 1.25, "r2": 0.91},
                       "history": list(range(250)),
                       "tags": ["a", "b"]}
        line = "The quick brown fox jumps over the lazy dog. "
        self.essay = "\n".join(f"{i:05d} {line * 3}" for i in range(2200)) + ESSAY_WORD
        self.signal = np.sin(np.linspace(0, 20 * math.pi, 50_000)) * np.linspace(1, 2, 50_000)
        self.losses = [round(1 / (i + 1), 4) for i in range(20)]
        self.gappy = [0.9, math.nan, 0.7, math.nan, 0.5, math.nan, math.inf, math.nan]
        self.diverged = np.array([0.5, 0.4, 0.3, np.inf, np.nan, np.nan])
        self.count = 7
        self.vanished = _vanishing_object()
        self.ghost = _ghost_object()
        self.grudge = Grudge()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ViewerValuesFlow().run()
