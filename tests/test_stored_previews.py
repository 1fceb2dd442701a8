"""A task writes the preview of each large artifact beside its blob (store/previews.py), so
the window shows it without a helper process; small values and costly kinds get none, and
collection keeps a kept blob's preview."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from conftest import run_flow

from flowdeck import Flow, namespace
from flowdeck.store.blobs import BlobStore
from flowdeck.store.gc import GcPolicy, collect
from flowdeck.store.previews import PREVIEW_MIN_BYTES, preview_path, read_preview

FLOW = """
import numpy as np
from flowdeck import FlowSpec, step


class Opaque:
    def __init__(self):
        self.payload = bytes(3_000_000)


class BigFlow(FlowSpec):
    @step
    def start(self):
        self.matrix = np.arange(600_000, dtype=np.float64).reshape(3000, 200)
        self.signal = np.sin(np.linspace(0, 20, 400_000))
        self.small = [1, 2, 3]
        self.opaque = Opaque()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BigFlow()
"""


def test_large_artifacts_get_a_preview_beside_their_blob(tmp_path: Path) -> None:
    path = tmp_path / "big.py"
    path.write_text(textwrap.dedent(FLOW))
    result = run_flow(path, "run")
    assert result.returncode == 0, result.stderr
    root = tmp_path / ".flowdeck"
    namespace(None)
    task = Flow("BigFlow", root=str(root)).latest_run["start"].task
    refs = {a.id: a.sha for a in task.artifacts}
    matrix = read_preview(root, refs["matrix"])
    assert matrix is not None and matrix["kind"] == "table"
    assert matrix["shape"] == [3000, 200] and len(matrix["rows"]) == 200
    signal = read_preview(root, refs["signal"])
    assert signal is not None and signal["kind"] == "plot"
    assert read_preview(root, refs["small"]) is None  # under PREVIEW_MIN_BYTES
    assert read_preview(root, refs["opaque"]) is None  # a repr could cost more than it saves
    blobs = BlobStore(root)
    assert blobs.path(refs["matrix"]).stat().st_size >= PREVIEW_MIN_BYTES
    kept = preview_path(blobs, refs["matrix"])
    assert kept is not None and kept.exists()
    report = collect(root, GcPolicy(keep=10, blob_grace_s=0))
    assert report.blobs_removed == 0 and kept.exists()  # a kept blob keeps its preview


def test_a_damaged_preview_reads_as_none(tmp_path: Path) -> None:
    root = tmp_path / ".flowdeck"
    sha = "ab" * 16  # a digest of the length the store uses for xxh3-128
    path = preview_path(BlobStore(root), sha)
    assert path is not None
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert read_preview(root, sha) is None
    assert read_preview(root, "../../etc/passwd") is None


def test_the_artifacts_pane_shows_a_stored_preview_without_a_helper(qtbot,
                                                                    tmp_path: Path) -> None:
    """Even for someone else's run (no helper before consent): the stored preview is plain
    JSON, so the table shows at once and no process starts."""
    from PySide6.QtCore import QProcess

    from flowdeck_desktop.views.artifacts import ArtifactsPane
    path = tmp_path / "big.py"
    path.write_text(textwrap.dedent(FLOW))
    assert run_flow(path, "run").returncode == 0
    namespace(None)
    run = Flow("BigFlow", root=str(tmp_path / ".flowdeck")).latest_run
    task = run["start"].task
    pane = ArtifactsPane()
    qtbot.addWidget(pane)
    shown: list[tuple[str, str]] = []
    pane.preview_shown.connect(lambda name, kind: shown.append((name, kind)))
    pane.show_task(sys.executable, str(tmp_path / ".flowdeck"), "BigFlow", run.id, "start",
                   task.id, True, made_by="mallory",
                   listed=[{"name": a.id, "type": a.type, "size": a.size}
                           for a in task.artifacts])
    assert pane.select("matrix")
    assert shown == [("matrix", "table")]
    assert pane.findChildren(QProcess) == []
    assert pane.select("opaque")  # no stored preview: waits for consent, as before
    assert shown == [("matrix", "table")] and pane.findChildren(QProcess) == []
