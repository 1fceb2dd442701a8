"""When a run that ended without a `run_finished` (killed) was last known alive: its
latest event, its stream's last write, or its running tasks' log writes; never later
than now. The files are real; their times are set as a run long ago would have left them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from flowdeck.observe.fold import RunFold
from flowdeck.store.status import CRASHED, FAILED, RUNNING

GRAPH = {"start": {"type": "start", "next": ["train"]}, "train": {"type": "linear", "next":
         ["end"]}, "end": {"type": "end", "next": []}}


def _write(path: Path, text: str, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def _killed_run(run_dir: Path) -> tuple[RunFold, Path]:
    """A run whose `start` finished at t=1,000 and whose `train` started at 1,010 and
    printed until it was killed; its stream was last written at 1,020."""
    events = [
        {"type": "run_started", "t": 1000.0, "run_id": "r", "flow": "F", "graph": GRAPH},
        {"type": "task_started", "t": 1000.5, "run_id": "r", "step": "start",
         "task_id": "1", "logs": {"stdout": "start/1/attempt-0.out"}},
        {"type": "task_finished", "t": 1001.0, "run_id": "r", "step": "start",
         "task_id": "1", "status": "succeeded"},
        {"type": "task_started", "t": 1010.0, "run_id": "r", "step": "train",
         "task_id": "2", "logs": {"stdout": "train/2/attempt-0.out",
                                  "stderr": "train/2/attempt-0.err"}},
    ]
    stream = run_dir / "events.jsonl"
    _write(stream, "".join(json.dumps(e) + "\n" for e in events), 1020.0)
    _write(run_dir / "start/1/attempt-0.out", "done\n", 9000.0)  # a finished task's: not it
    _write(run_dir / "train/2/attempt-0.err", "epoch 1\n", 4000.0)
    fold = RunFold()
    for event in events:
        fold.apply(event)
    return fold, stream


def test_a_running_tasks_last_output_is_the_last_sign_of_life(tmp_path: Path) -> None:
    fold, stream = _killed_run(tmp_path)
    assert fold.last_seen == 1010.0
    assert fold.last_sign_of_life(stream) == 4000.0  # train's stderr; start's log is over
    fold.mark_ended(CRASHED, 4000.0)
    train = fold.tasks["2"]
    assert (train.status, train.start, train.end) == (FAILED, 1010.0, 4000.0)


def test_without_logs_the_stream_tells(tmp_path: Path) -> None:
    fold, stream = _killed_run(tmp_path)
    (tmp_path / "train/2/attempt-0.err").unlink()
    assert fold.last_sign_of_life(stream) == 1020.0  # the stream's last write


def test_a_file_dated_by_another_clock_never_ends_the_run_after_now(tmp_path: Path) -> None:
    fold, stream = _killed_run(tmp_path)
    future = time.time() + 3600
    os.utime(tmp_path / "train/2/attempt-0.err", (future, future))
    before = time.time()
    assert before <= fold.last_sign_of_life(stream) <= time.time()


def test_nothing_to_tell() -> None:
    fold = RunFold()
    assert fold.status != RUNNING and fold.last_sign_of_life("/nonexistent/events.jsonl") is None
