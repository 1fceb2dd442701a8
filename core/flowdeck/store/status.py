"""The status words of runs and tasks, written once.

Every reader and writer of `run.json`, attempt records and events uses these
names; the desktop's colours and the terminal's symbols are keyed by them.
"""

from __future__ import annotations

from typing import Final

PENDING: Final = "pending"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
REUSED: Final = "reused"
CRASHED: Final = "crashed"  # a run whose process died without writing its end
DAMAGED: Final = "damaged"  # a run whose record cannot be read
#: A step no task will run: the switch before it took another case (a step's state in the
#: run fold, never a task's or a run's status).
SKIPPED: Final = "skipped"
#: A step no task ran because the run ended (failed, cancelled, crashed) before it (a
#: step's state in the run fold, like SKIPPED: it is not "pending" once nothing runs).
NOT_RUN: Final = "not run"

#: What a task's final attempt can say.
TASK_FINAL = (SUCCEEDED, FAILED, CANCELLED, REUSED)
#: What a task can be while a run is followed.
TASK_STATUSES = (PENDING, RUNNING, *TASK_FINAL)
#: What a run can be.
RUN_STATUSES = (RUNNING, SUCCEEDED, FAILED, CANCELLED, CRASHED, DAMAGED)
#: Final run statuses.
RUN_FINAL = (SUCCEEDED, FAILED, CANCELLED, CRASHED)
#: A run that did not finish: what a resume starts from.
RUN_UNFINISHED = (FAILED, CANCELLED, CRASHED)
#: A task that needs no rerun.
TASK_DONE = (SUCCEEDED, REUSED)
#: A task whose artifacts and cards are final (what it made before it failed included).
TASK_RESULTS_FINAL = (SUCCEEDED, REUSED, FAILED)


def task_status(word: object) -> str:
    """A final task status as recorded, with an unknown word read as `failed`.

    A task that finished in a way this version does not know did not succeed;
    reading it as failed keeps every consumer's verdict the same (docs/events.md).
    """
    return word if isinstance(word, str) and word in TASK_FINAL else FAILED


def run_status(word: object) -> str:
    """A run status as recorded; an unknown word is read as `failed` (it did not succeed)."""
    return word if isinstance(word, str) and word in RUN_STATUSES else FAILED
