"""`RunIndex.runs(limit)` returns exactly the newest runs by start time, while reading only
the records it needs (History lists 200 of a flow's runs, however many there are)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from flowdeck.store import index as index_module
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout
from flowdeck.store.records import RunRecord
from flowdeck.store.status import SUCCEEDED

BASE = 1_800_000_000.0


def write_run(layout: RunLayout, run_id: str, start: float, written: float) -> None:
    path = layout.run_json(run_id)
    path.parent.mkdir(parents=True)
    RunRecord(flow=layout.flow, run_id=run_id, file="f.py", status=SUCCEEDED, start=start,
              end=start + 1).write(path)
    os.utime(path, (written, written))


@pytest.fixture
def layout(tmp_path: Path) -> RunLayout:
    return RunLayout(tmp_path / ".flowdeck", "F")


def test_limit_gives_the_newest_starts_and_reads_few_records(layout: RunLayout,
                                                             monkeypatch) -> None:
    rng = random.Random(7)
    for number in range(300):  # one run every 10 min, each written 0 to 20 min after it began
        start = BASE + 600 * number
        write_run(layout, f"run{number:03d}", start, start + rng.uniform(0, 1200))
    write_run(layout, "late", BASE, BASE + 600 * 400)  # old start, rewritten recently
    reads: list[str] = []
    real_read = index_module.read_run
    monkeypatch.setattr(index_module, "read_run",
                        lambda lay, run_id: reads.append(run_id) or real_read(lay, run_id))
    everything = RunIndex(layout).runs()
    reads.clear()
    newest = RunIndex(layout).runs(20)
    assert [e.run_id for e in newest] == [e.run_id for e in everything[:20]]
    assert newest[0].run_id == "run299" and "late" not in {e.run_id for e in newest}
    assert len(reads) < 100  # the other records were never opened


def test_a_start_later_than_its_record_within_the_skew_is_still_found(layout: RunLayout) -> None:
    for number in range(50):
        start = BASE + 600 * number
        write_run(layout, f"run{number:03d}", start, start + 1)
    skewed_start = BASE + 600 * 60  # newest start; its record's time is 40 min older
    write_run(layout, "skewed", skewed_start, skewed_start - 2400)
    assert RunIndex(layout).runs(5)[0].run_id == "skewed"


def test_damaged_records_are_listed_with_a_limit(layout: RunLayout) -> None:
    for number in range(30):
        write_run(layout, f"run{number:03d}", BASE + 600 * number, BASE + 600 * number + 1)
    broken = layout.run_json("1800020000000-abcdef")  # its id says when it started
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    os.utime(broken, (BASE + 20_001, BASE + 20_001))
    listed = RunIndex(layout).runs(10)
    assert listed[0].run_id == "1800020000000-abcdef" and listed[0].status == "damaged"
    assert len(listed) == 10


def test_newest_written_reads_one_record(layout: RunLayout, monkeypatch) -> None:
    """The window's mark of a flow: the run whose record changed last, one record read."""
    assert RunIndex(layout).newest_written() is None
    for number in range(50):  # a run a minute: runs(1) would read every one of them
        write_run(layout, f"run{number:03d}", BASE + 60 * number, BASE + 60 * number + 30)
    write_run(layout, "resumed", BASE - 3600, BASE + 60 * 60)  # began earlier, ended last
    reads: list[str] = []
    real = index_module.read_run
    monkeypatch.setattr(index_module, "read_run",
                        lambda lay, run_id: reads.append(run_id) or real(lay, run_id))
    newest = RunIndex(layout).newest_written()
    assert newest is not None and newest.run_id == "resumed" and reads == ["resumed"]
