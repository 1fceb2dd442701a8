"""A deadline inside a task process: SIGALRM calls back (or raises) in the main thread.

One owner for the timer that `@timeout` (engine/task.py), a card's render time limit
(cards/runtime.py) and a task's bounded wait at exit (engine/task.py) all use, so each
restores the previous handler and cancels the timer the same way however it ends.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flowdeck.engines.processes import switch_handler

try:  # the C function `signal.signal` wraps: that wrapper turns the handlers into enums
    # and back in Python, which in a task forked a moment ago copies about a dozen of the
    # orchestrator's pages (0.1 ms a task; the wait at exit arms a timer in every task)
    from _signal import pthread_sigmask as _set_mask
    from _signal import signal as _set_handler
except ImportError:  # pragma: no cover - an interpreter without the C module
    from signal import pthread_sigmask as _set_mask
    from signal import signal as _set_handler


class Armed:
    """A running timer: what `disarm` puts back."""

    __slots__ = ("previous",)

    def __init__(self, previous: Any) -> None:
        self.previous = previous


#: Once due, the timer fires again every REPEAT_S until its handler has run. Python's C
#: handler only notes a signal: one that lands after the interpreter's last check and
#: before a blocking call begins (the step's `time.sleep`) was taken when the call
#: returned, so a step past its @timeout ran on until the run's deadline killed it. A
#: second SIGALRM breaks the call, and the noted handler runs (as a cancel's nudges do,
#: `processes.nudge`); the handler stops the repeats and calls back once. A step that
#: sets a SIGALRM handler of its own inside its @timeout replaces this one (its timeout
#: then ends at the run's deadline, as before), and its handler is called at each repeat.
REPEAT_S = 0.2


def arm(seconds: float, expired: Callable[[], object], unblock: bool = False) -> Armed | None:
    """Call `expired()` in the main thread once `seconds` have passed; None (nothing armed)
    when `seconds` <= 0 or where there is no interval timer (Windows).

    `unblock`: first let this thread take SIGALRM, for a bound that must hold whatever the
    step did. A step that blocked SIGALRM (`pthread_sigmask`) blocks it in the threads it
    starts after that too; a process-directed signal that every thread blocks stays
    pending, and the task's wait at exit for such a thread never ended (one system call).
    @timeout leaves the step's mask alone: past it the run's deadline kills the task."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        return None
    if unblock:
        _set_mask(signal.SIG_UNBLOCK, (int(signal.SIGALRM),))
    fired: list[bool] = []

    def on_signal(signum: int, frame: Any) -> None:
        if fired:  # a repeat that landed as the first was being taken
            return
        fired.append(True)
        signal.setitimer(signal.ITIMER_REAL, 0)
        expired()

    previous = _set_handler(signal.SIGALRM, on_signal)
    signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_S)
    return Armed(previous)


def disarm(armed: Armed | None) -> None:
    """Cancel the timer `arm` started and put its previous handler back (the default one
    where the previous was not Python's, which `signal` reports as None)."""
    if armed is not None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        previous = armed.previous
        # A repeat already on its way is dropped, not left noted for a handler gone (and
        # never delivered to SIG_DFL, which would end the process).
        switch_handler(int(signal.SIGALRM), int(signal.SIG_DFL) if previous is None
                       else previous)


@contextmanager
def alarm(seconds: float, error: Callable[[], BaseException]) -> Iterator[None]:
    """Raise `error()` in the block once `seconds` have passed (no limit when <= 0, or
    where there is no interval timer: Windows)."""
    def expired() -> None:
        raise error()

    armed = arm(seconds, expired)
    try:
        yield
    finally:
        disarm(armed)
