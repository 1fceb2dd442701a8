"""Artifact previews on the core side: the helper's list, one preview, one export.

Values come from a real run of tests/flows/viewer_values.py and are read back with the
very command the window runs (`python -m flowdeck.engines.inspect_task ...`), in a
process of its own. A few bounds are checked on `preview_value` directly, with values
too large to be worth storing.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import FLOWS, child_env, run_flow
from PIL import Image

from flowdeck.client import Run
from flowdeck.engines.load_limits import PATIENCE_ENV
from flowdeck.engines.preview import PreviewLimits, preview_value
from flowdeck.store.layout import RunLayout

FLOW = "ViewerValuesFlow"
MAX_BYTES = 1_000_000


class ViewerRun:
    """A finished run of a test flow (viewer_values.py unless told) and the helper command
    for its start task."""

    def __init__(self, folder: Path, flow_file: str = "viewer_values.py",
                 flow: str = FLOW):
        self.file = folder / flow_file
        shutil.copy(FLOWS / flow_file, self.file)
        done = run_flow(self.file, "run", env=child_env(), timeout=180)
        assert done.returncode == 0, done.stderr
        layout = RunLayout.for_file(self.file, flow)
        [self.run_id] = layout.run_ids()
        self.root = str(layout.root)
        self.flow = flow
        run = Run(f"{flow}/{self.run_id}", root=self.root, _namespace_check=False)
        [task] = list(run["start"])
        self.task_id = task.id

    def helper(self, *extra: str, patience: str | None = None) -> dict[str, Any]:
        """The helper's JSON answer (at `$FLOWDECK_LOAD_PATIENCE` = `patience` if given);
        its raw size is checked against the bound too."""
        env = child_env(**({PATIENCE_ENV: patience} if patience is not None else {}))
        done = subprocess.run([sys.executable, "-m", "flowdeck.engines.inspect_task", self.root,
                               self.flow, self.run_id, "start", self.task_id, *extra],
                              env=env, cwd="/", capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert len(done.stdout) < MAX_BYTES + 10_000
        return json.loads(done.stdout)

    def preview(self, name: str) -> dict[str, Any]:
        answer = self.helper("--preview", name)
        assert answer["error"] is None, answer["error"]
        return answer["preview"]


@pytest.fixture(scope="module")
def viewer_run(tmp_path_factory: pytest.TempPathFactory) -> ViewerRun:
    return ViewerRun(tmp_path_factory.mktemp("viewer-run"))


@pytest.fixture(scope="module")
def list_answer(viewer_run: ViewerRun) -> dict[str, Any]:
    """The helper's list of the start task, asked once: the two tests below only read it."""
    return viewer_run.helper()


@pytest.fixture(scope="module")
def hanging_run(tmp_path_factory: pytest.TempPathFactory) -> ViewerRun:
    """A run of hanging_value.py: `count`, then `stuck`, whose unpickling never returns."""
    return ViewerRun(tmp_path_factory.mktemp("hanging-run"), "hanging_value.py",
                     "HangingValueFlow")


def test_the_list_has_names_types_and_sizes_and_summarises_only_small_values(
        list_answer: dict[str, Any]) -> None:
    answer = list_answer
    assert answer["error"] is None
    rows = {a["name"]: a for a in answer["artifacts"]}
    assert {"frame", "matrix", "picture", "pixels", "png", "nested", "essay", "signal",
            "losses", "count", "vanished", "ghost", "grudge"} <= set(rows)
    assert rows["frame"]["type"] == "pandas.DataFrame" and rows["frame"]["shape"] == [500, 4]
    assert rows["count"]["preview"] == "7"
    for big in ("picture", "essay", "signal"):  # larger than the list unpickles
        assert rows[big]["deferred"] is True and "preview" not in rows[big]
        assert rows[big]["size"] > 256 * 1024
    assert rows["picture"]["type"] == "PIL.Image.Image"


def test_the_list_says_why_a_value_cannot_load(viewer_run: ViewerRun,
                                              list_answer: dict[str, Any]) -> None:
    rows = {a["name"]: a for a in list_answer["artifacts"]}
    vanished = rows["vanished"]["load_error"]
    assert "needs the module 'flowdeck_vanished_module'" in vanished
    assert f"{sys.executable} -m pip install flowdeck_vanished_module" in vanished
    assert "class Ghost is no longer in module json" in rows["ghost"]["load_error"]
    grudge = rows["grudge"]["load_error"]
    assert "RuntimeError: Grudge refuses to be unpickled" in grudge
    line = next(i for i, text in enumerate(viewer_run.file.read_text().splitlines(), 1)
                if "raise RuntimeError" in text)
    assert f"{viewer_run.file}, line {line}" in grudge  # the flow's own line, not <dynamic-code>


def test_the_list_stops_a_value_that_hangs_and_still_lists_it(hanging_run: ViewerRun) -> None:
    # At the usual limits: `stuck` gets 2 s, or what is left of the list's 6 s after `count`.
    rows = {a["name"]: a for a in hanging_run.helper(patience="1")["artifacts"]}
    assert re.search(r"took more than [\d.]+ s to load and was stopped",
                     rows["stuck"]["load_error"])
    assert rows["stuck"]["type"] == "__main__.Stuck"  # still listed with its type and size
    assert rows["stuck"]["size"] > 0


def test_a_data_frame_previews_as_its_first_rows_with_shape_and_dtypes(
        viewer_run: ViewerRun) -> None:
    preview = viewer_run.preview("frame")
    assert preview["kind"] == "table" and preview["shape"] == [500, 4]
    assert preview["columns"] == ["id", "score", "name", "ok"]
    assert preview["dtypes"] == ["int64", "float64", "object", "bool"] or \
        preview["dtypes"][:2] == ["int64", "float64"]
    assert len(preview["rows"]) == PreviewLimits().rows
    assert preview["rows"][1][:3] == [1, 14.237, "item-037"] and preview["rows"][0][3] is True
    assert preview["export"][0] == ".csv"


def test_a_wide_2d_array_previews_as_a_table_of_its_first_columns(viewer_run: ViewerRun) -> None:
    preview = viewer_run.preview("matrix")
    assert preview["kind"] == "table" and preview["shape"] == [300, 60]
    assert len(preview["columns"]) == PreviewLimits().columns
    assert preview["rows"][2][3] == pytest.approx(12.3)
    assert set(preview["dtypes"]) == {"float64"}


def _decoded(preview: dict[str, Any]) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(preview["png"])))


def test_images_preview_as_pngs_downscaled_to_the_bound(viewer_run: ViewerRun) -> None:
    picture = viewer_run.preview("picture")
    assert picture["kind"] == "image" and picture["original"] == [1500, 900]
    assert picture["scaled"] is True and _decoded(picture).size == (1024, 614)
    pixels = viewer_run.preview("pixels")
    assert pixels["original"] == [96, 64] and pixels["scaled"] is False
    image = _decoded(pixels)
    assert image.size == (96, 64) and image.convert("RGB").getpixel((10, 10)) == (255, 0, 0)
    png = viewer_run.preview("png")
    assert png["kind"] == "image" and _decoded(png).size == (48, 32)


def test_a_nested_dict_previews_as_a_tree_saying_what_it_left_out(viewer_run: ViewerRun) -> None:
    preview = viewer_run.preview("nested")
    assert preview["kind"] == "tree"
    top = {c["key"]: c for c in preview["root"]["children"]}
    assert set(top) == {"model", "metrics", "history", "tags"}
    history = top["history"]
    assert history["length"] == 250 and len(history["children"]) == PreviewLimits().tree_children
    assert history["omitted"] == 250 - PreviewLimits().tree_children
    model = {c["key"]: c for c in top["model"]["children"]}
    assert model["alpha"]["value"] == "0.5" and model["layers"]["length"] == 3


def test_a_long_string_previews_as_bounded_text(viewer_run: ViewerRun) -> None:
    preview = viewer_run.preview("essay")
    assert preview["kind"] == "text" and preview["truncated"] is True
    assert len(preview["text"]) == PreviewLimits().text_chars < preview["length"]
    assert preview["text"].startswith("00000 The quick brown fox")


def test_numbers_preview_as_a_plot_downsampled_past_the_bound(viewer_run: ViewerRun) -> None:
    signal = viewer_run.preview("signal")
    assert signal["kind"] == "plot" and signal["count"] == 50_000
    assert signal["downsampled"] is True and signal["step"] == 5
    assert len(signal["values"]) == 10_000
    whole = np.sin(np.linspace(0, 20 * np.pi, 50_000)) * np.linspace(1, 2, 50_000)  # the flow's
    assert signal["stats"]["max"] == pytest.approx(whole.max())  # of every value, not the sample
    assert signal["values"][1] == pytest.approx(whole[5])
    losses = viewer_run.preview("losses")
    assert losses["kind"] == "plot" and losses["values"][:2] == [1.0, 0.5]
    assert losses["downsampled"] is False


def test_anything_else_previews_as_its_repr(viewer_run: ViewerRun) -> None:
    preview = viewer_run.preview("count")
    assert preview == {"kind": "repr", "text": "7", "truncated": False, "type": "int",
                       "export": [".pkl"]}


def test_a_preview_that_cannot_load_says_why(viewer_run: ViewerRun) -> None:
    vanished = viewer_run.helper("--preview", "vanished")
    assert vanished["preview"] is None and "pip install" in vanished["error"]
    grudge = viewer_run.helper("--preview", "grudge")
    assert "Grudge refuses to be unpickled" in grudge["error"]
    missing = viewer_run.helper("--preview", "no_such_artifact")
    assert "has no artifact 'no_such_artifact'" in missing["error"]


def test_a_preview_that_hangs_is_stopped_at_the_load_limit(hanging_run: ViewerRun) -> None:
    stuck = hanging_run.helper("--preview", "stuck", patience="0.25")
    assert stuck["preview"] is None and "took more than 2 s to load" in stuck["error"]
    exported = hanging_run.helper("--export", "stuck", "/nonexistent/stuck.pkl",
                                  patience="0.25")
    assert exported["format"] is None and "took more than 2 s to load" in exported["error"]


def test_a_bad_patience_is_named_in_every_answer(hanging_run: ViewerRun) -> None:
    patience = "slow"  # the other bad values: tests/test_load_limits.py
    expected = f"${PATIENCE_ENV} is {patience!r}: give a factor"
    listed = hanging_run.helper(patience=patience)
    assert listed["artifacts"] == [] and expected in listed["error"]
    preview = hanging_run.helper("--preview", "count", patience=patience)
    assert preview["preview"] is None and expected in preview["error"]
    exported = hanging_run.helper("--export", "count", "/nonexistent/count.pkl",
                                  patience=patience)
    assert exported == {"name": "count", "path": "/nonexistent/count.pkl", "format": None,
                        "error": exported["error"]} and expected in exported["error"]


def test_export_writes_the_whole_value_in_its_format(viewer_run: ViewerRun,
                                                     tmp_path: Path) -> None:
    frame = tmp_path / "frame.csv"
    answer = viewer_run.helper("--export", "frame", str(frame))
    assert answer["error"] is None and answer["format"] == ".csv"
    back = pd.read_csv(frame, index_col=0)
    assert back.shape == (500, 4) and back["name"].iloc[1] == "item-037"
    matrix = tmp_path / "matrix.npy"
    assert viewer_run.helper("--export", "matrix", str(matrix))["error"] is None
    assert np.load(matrix).shape == (300, 60)
    picture = tmp_path / "picture.png"
    assert viewer_run.helper("--export", "picture", str(picture))["error"] is None
    assert Image.open(picture).size == (1500, 900)  # the whole picture, not the preview
    nested = tmp_path / "nested.pkl"
    assert viewer_run.helper("--export", "nested", str(nested))["error"] is None
    assert pickle.loads(nested.read_bytes())["history"] == list(range(250))
    wrong = viewer_run.helper("--export", "nested", str(tmp_path / "nested.csv"))
    assert "can be exported as .pkl" in wrong["error"] and not (tmp_path / "nested.csv").exists()


# -- bounds, on values built here ------------------------------------------------------------

def _size(preview: dict[str, Any]) -> int:
    return len(json.dumps(preview))


def test_every_preview_stays_under_its_byte_bound() -> None:
    wide_text = pd.DataFrame({f"c{i}": ["x" * 5000] * 300 for i in range(60)})
    assert _size(preview_value(wide_text)) <= MAX_BYTES  # rebuilt with halved limits
    frame = preview_value(wide_text)
    assert frame["kind"] == "table" and frame["shape"] == [300, 60]

    class Loud:
        def __repr__(self) -> str:
            return "loud " * 1_000_000

    loud = preview_value(Loud())
    assert loud["kind"] == "repr" and loud["truncated"] and _size(loud) <= MAX_BYTES
    many = preview_value(list(range(3_000_000)))
    assert many["kind"] == "plot" and len(many["values"]) <= 10_000 and many["count"] == 3_000_000
    deep: Any = {}
    cursor = deep
    for _ in range(50):
        cursor["next"] = {}
        cursor = cursor["next"]
    tree = preview_value(deep)
    assert tree["kind"] == "tree" and _size(tree) <= MAX_BYTES
    small = preview_value({"a": 1}, PreviewLimits(max_bytes=150))
    assert _size(small) <= 150 or small["kind"] == "repr"


def test_a_container_holding_itself_is_shown_once() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    tree = preview_value(loop)
    assert tree["root"]["children"][1]["value"] == "(a reference to an enclosing container)"


def test_table_cells_read_as_pandas_shows_them() -> None:
    """Dates, durations and decimals as pandas prints them, not as their repr
    (`Timestamp('2024-01-31 00:00:00')`); text stays unquoted, bytes show as bytes."""
    import datetime
    import decimal
    frame = pd.DataFrame({"when": pd.date_range("2024-01-31", periods=2),
                          "amount": [decimal.Decimal("1.10"), None],
                          "day": [datetime.date(2024, 1, 1), pd.NaT],
                          "took": pd.to_timedelta([1, 2], unit="h"),
                          "name": ["a", "b"], "raw": [b"ab", b"c"]})
    rows = preview_value(frame)["rows"]
    assert rows[0] == ["2024-01-31 00:00:00", "1.10", "2024-01-01", "0 days 01:00:00", "a", "b'ab'"]
    assert rows[1][1] is None and rows[1][2] == "NaT"


def test_small_uint8_matrices_are_tables_and_image_shaped_ones_pictures() -> None:
    assert preview_value(np.zeros((3, 4), dtype=np.uint8))["kind"] == "table"
    assert preview_value(np.zeros((40, 30), dtype=np.uint8))["kind"] == "image"
    big = preview_value(np.zeros((3000, 2000, 4), dtype=np.uint8))
    assert big["kind"] == "image" and max(big["width"], big["height"]) <= 1024
    assert big["original"] == [2000, 3000] and big["mode"] == "RGBA"


def test_a_metaflow_bridge_run_previews_through_metaflows_client(
        metaflow_linear_run: tuple[Path, Any, Any], tmp_path: Path) -> None:
    path, result, _ = metaflow_linear_run  # linear.py through the bridge, run id r1
    assert result.returncode == 0, result.stderr
    command = [sys.executable, "-m", "flowdeck.engines.inspect_task", str(path.parent / ".flowdeck"),
               "MfLinearFlow", "r1", "shout", "2"]

    def helper(*extra: str) -> dict[str, Any]:
        done = subprocess.run([*command, *extra], env=child_env(), cwd="/",
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    message = helper("--preview", "message")
    assert message["error"] is None
    assert message["preview"]["kind"] == "text" and message["preview"]["text"] == "HELLO WORLD"
    words = helper("--preview", "words")["preview"]
    assert words["kind"] == "tree" and [c["value"] for c in words["root"]["children"]] == \
        ["'hello'", "'world'"]
    target = tmp_path / "words.pkl"
    assert helper("--export", "words", str(target))["error"] is None
    assert pickle.loads(target.read_bytes()) == ["hello", "world"]
