"""A reference to a small scalar artifact keeps its text (`BlobRef.short`), so that a view
which must not load values (run comparison) shows 0.0033 against 1.30; anything else keeps
only its type, size and hash, as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowdeck.store.blobs import SHORT_TEXT_MAX, BlobRef, BlobStore, short_text


class Score(float):
    """A subclass: its repr is the user's code, which a reference never runs."""

    def __repr__(self) -> str:
        raise RuntimeError("never called")


def test_small_scalars_have_their_text_and_nothing_else_has() -> None:
    assert short_text(0.0033) == "0.0033" and short_text(3) == "3"
    assert short_text(True) == "True" and short_text(1 + 2j) == "(1+2j)"
    assert short_text("adam") == "'adam'"
    assert short_text(np.float64(0.5)) == "0.5" and short_text(np.int64(7)) == "7"
    assert short_text(np.bool_(False)) == "False"
    assert short_text(10**400) is None and short_text("x" * 81) is None
    assert short_text("x" * 78) == repr("x" * 78)  # 80 with its quotes: the readers' limit
    assert short_text("\x00" * 60) is None and short_text("a\n" * 30) is None  # reprs > 80
    assert short_text([1, 2]) is None and short_text(None) is None
    assert short_text(np.zeros(3)) is None and short_text(Score(0.5)) is None


def test_the_text_goes_through_the_store_and_its_records(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = store.put("loss", 0.919091)
    assert ref.short == "0.919091"
    assert BlobRef.from_dict(ref.as_dict()) == ref
    assert store.put("loss", 0.919091) == ref  # the dedup path keeps it too
    listed = store.put("grid", [0.1, 0.2])
    assert listed.short is None and "short" not in listed.as_dict()
    # A record of an older Flowdeck has none; a foreign or oversized one is dropped.
    older = {k: v for k, v in ref.as_dict().items() if k != "short"}
    assert BlobRef.from_dict(older).short is None
    assert BlobRef.from_dict({**older, "short": "9" * (SHORT_TEXT_MAX + 1)}).short is None
    assert BlobRef.from_dict({**older, "short": 5}).short is None
