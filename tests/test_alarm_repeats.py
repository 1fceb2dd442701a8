"""`engine.alarm`: a due timer fires again until its handler has run, then stops.

Python's C handler only notes a SIGALRM; one noted just before a blocking call began
was taken when the call returned, so a step past its @timeout ran on until the run's
deadline killed it. The repeats break such a call. Here the first SIGALRM is held
(blocked) while the timer comes due: the timer must still be set to repeat, and once
the handler runs it calls back once and the timer is stopped. Real signals, in a fresh single-threaded process (a thread that does
not block SIGALRM would take it, as pytest's may).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from conftest import child_env

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timer")

HELD_THEN_TAKEN = """
import json, signal, time
from flowdeck.engine import alarm

calls, report = [], {}
mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
armed = alarm.arm(0.01, lambda: calls.append(1))
time.sleep(0.1)  # due, its SIGALRM held: not taken yet
report["calls_while_held"] = len(calls)
report["while_held"] = signal.getitimer(signal.ITIMER_REAL)
signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # taken now
for _ in range(5):  # handlers run between bytecodes
    time.sleep(0.01)
report["calls"] = len(calls)
report["after"] = signal.getitimer(signal.ITIMER_REAL)
time.sleep(alarm.REPEAT_S * 2)
report["calls_later"] = len(calls)
alarm.disarm(armed)
print(json.dumps(report))
"""

RAISED_ONCE = """
import json, signal, time
from flowdeck.engine import alarm

raised = 0
mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
with alarm.alarm(0.01, lambda: TimeoutError("past its limit")):
    time.sleep(alarm.REPEAT_S * 3)  # due, and repeated while held
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for _ in range(5):
            time.sleep(0.01)
    except TimeoutError:
        raised += 1
    time.sleep(alarm.REPEAT_S * 2)  # the clean-up: no second one
print(json.dumps({"raised": raised}))
"""


def _report(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_due_timer_repeats_until_taken_then_stops() -> None:
    from flowdeck.engine.alarm import REPEAT_S
    report = _report(HELD_THEN_TAKEN)
    assert report["calls_while_held"] == 0
    # Still repeating: Linux sets the next expiry when the held signal is delivered.
    assert report["while_held"][1] == pytest.approx(REPEAT_S)
    assert report["calls"] == 1
    assert report["after"] == [0.0, 0.0]  # no more repeats once taken
    assert report["calls_later"] == 1


def test_a_timeout_raises_once_however_many_repeats_were_noted() -> None:
    """SIGALRMs noted before the handler runs call it once: the step's clean-up never
    meets a second timeout."""
    assert _report(RAISED_ONCE) == {"raised": 1}
