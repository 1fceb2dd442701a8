"""A deadline inside a task process: SIGALRM raises the caller's exception in the main thread.

One owner for the timer that `@timeout` (engine/task.py) and a card's render time limit
(cards/runtime.py) both use, so both restore the previous handler and cancel the timer
the same way however the block ends.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def alarm(seconds: float, error: Callable[[], BaseException]) -> Iterator[None]:
    """Raise `error()` in the block once `seconds` have passed (no limit when <= 0, or
    where there is no interval timer: Windows)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise error()

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
