"""Cancel at random moments: SIGTERM (a launcher's stop) or SIGINT (Ctrl+C) to a run.

Each round starts `python flow.py run` on a foreach of a million short tasks (workers
forked one after another, so a cancel often lands while a worker is still setting up),
waits until some have finished, sends the signal at a random moment after, and checks:

- the run exits as a cancelled program does (128 + the signal) and reads back
  `cancelled`; its terminal (`--quiet`) says nothing but that and which tasks were
  cancelled (no "cannot write", no traceback, no "Exception ignored");
- every task of the run has a record that reads back, succeeded or cancelled, and none
  ran on to the grace's SIGKILL: once the cancel is sent, each task body sleeps as a
  long step would, so a task whose interrupt was lost (swallowed by a handler it
  inherited, dropped by one that ignores it) shows as killed (exit -9);
- no task's log holds an engine traceback or Python's "Exception ignored" reports, but
  those of an exit handler the cancel cut short (as Python reports them on Ctrl+C,
  counted), with no frame of Flowdeck's;
- no process of the run survives it; the whole store reads back.

An interrupt that lands after the worker's last check for signals and before a blocking
call (the step's `time.sleep`) was taken only when the call returned (CPython's own race,
about 1 round in 300 here, the task killed at the grace with its clean-up unrun); the
cancel's nudges (`processes.nudge`) now wake such a step within 0.2 s
(`tests/test_cancel_wakes_the_step.py`). Two full runs after it (a random seed, and seed 7 of
the runs before): 300 / 300 and 300 / 300, none killed at the grace.

Rounds alternate the signal and how workers are forked (directly, or by the fork server
from the start). This script found what `tests/test_output_before_folder.py` now pins:
1 run in 60 failed with "cannot write ...: No such file or directory", 2 in 60 printed
"Exception ignored ... wakeup fd" into a task's log, and a cancel that reached a worker
before its handlers were set was lost.

    python3 reliability/cancel_rounds.py [--quick] [--rounds N] [--seed S]
"""

from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import (
    RUN_ID_ENV,
    Tally,
    Workdir,
    child_env,
    ended_with_this_script,
    kill_quietly,
    our_frames,
    parse_args,
    run_survivors,
    summary,
    write_flow,
)
from storecheck import check_store

from flowdeck.store.events import read_events
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout

#: (signal, FLOWDECK_FORK_SERVER) of each round, in turn.
MODES = ((signal.SIGTERM, "0"), (signal.SIGINT, "0"), (signal.SIGTERM, "always"),
         (signal.SIGINT, "always"))
#: Finished tasks to wait for before the random moment (the run is well under way).
FINISHED_FIRST = 3
#: The random moment: this many seconds at most after FINISHED_FIRST tasks finished.
LATEST_S = 0.3

FLOW = '''import os
import time

from flowdeck import FlowSpec, step

#: Written by the campaign just before it sends the cancel.
SENT = os.environ["CANCEL_SENT_FILE"]


class CancelFlow(FlowSpec):
    """A foreach of a million short tasks; after the cancel is sent, long ones."""

    @step
    def start(self):
        self.items = range(1_000_000)
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if os.path.exists(SENT):  # a long step from now on: only its interrupt ends it
            time.sleep(60)
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CancelFlow()
'''


def finished_tasks(events_path: Path) -> int:
    try:
        events = read_events(events_path)
    except OSError:
        return 0
    return sum(1 for e in events if e.get("type") == "task_finished" and e.get("step") == "work")


def cancel(proc: subprocess.Popen[bytes], events_path: Path, sent: Path,
           sig: signal.Signals) -> str:
    """Send `sig` at a random moment once the run is under way; what happened."""
    while finished_tasks(events_path) < FINISHED_FIRST:
        if proc.poll() is not None:
            return "ended first"
        time.sleep(0.002)
    time.sleep(random.uniform(0.0, LATEST_S))
    if proc.poll() is not None:
        return "ended first"
    sent.touch()
    proc.send_signal(sig)
    return "sent"


#: The prefix of a task's line on the terminal: its time and its pathspec.
TASK_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \[[^\]]+\] ")


def without_cut_short_handlers(text: str) -> tuple[list[str], int]:
    """The lines of `text` (task prefixes taken off) without Python's reports of an exit
    handler the cancel cut short ("Exception ignored in atexit callback: ..." down to its
    KeyboardInterrupt), as a plain `python` process prints them on Ctrl+C; and how many
    reports there were. A report with a frame of Flowdeck's is kept (a loss)."""
    lines = [TASK_LINE.sub("", line) for line in text.splitlines()]
    kept: list[str] = []
    reports = 0
    index = 0
    while index < len(lines):
        if lines[index].startswith("Exception ignored in atexit callback"):
            end = index + 1
            while end < len(lines) and not lines[end].startswith("KeyboardInterrupt"):
                end += 1
            block = "\n".join(lines[index:end + 1])
            if end < len(lines) and not our_frames(block.replace(
                    "Exception ignored in atexit callback", "", 1)):
                reports += 1
                index = end + 1
                continue
        kept.append(lines[index])
        index += 1
    return kept, reports


def run_problems(layout: RunLayout, run_id: str) -> tuple[list[str], Counter[str]]:
    """What is wrong with the cancelled run's store; and its tasks' outcomes, counted."""
    index = RunIndex(layout)
    problems = []
    status = index.read(run_id).status
    if status != "cancelled":
        problems.append(f"reads back {status}, not cancelled")
    records, damaged = index.final_attempts(run_id)
    problems += [f"damaged task record: {d}" for d in damaged]
    outcomes: Counter[str] = Counter()
    for record in records:
        outcomes[record.status] += 1
        if record.status not in ("succeeded", "cancelled"):
            problems.append(f"task {record.step}/{record.task_id} reads back {record.status}")
        if record.exit_code == -signal.SIGKILL:
            outcomes["killed at the grace"] += 1
            problems.append(f"task {record.step}/{record.task_id} ran on to the grace's "
                            "SIGKILL: it never took its interrupt")
    started = {e.get("task_id") for e in read_events(layout.events(run_id))
               if e.get("type") == "task_started"}
    recorded = {r.task_id for r in records}
    if started - recorded:
        problems.append(f"tasks started without a record: {sorted(started - recorded)[:5]}")
    for log in layout.run_dir(run_id).glob("*/*/attempt-*.err"):
        text = log.read_text(encoding="utf-8", errors="replace")
        rest, reports = without_cut_short_handlers(text)
        outcomes["exit handlers cut short (Python's report)"] += reports
        if "Exception ignored" in "\n".join(rest) or our_frames(text):
            problems.append(f"{log.parent.parent.name}/{log.parent.name}'s log: "
                            f"{text.strip()[-300:]}")
    return problems, outcomes


def one_round(work: Path, number: int, tally: Tally, seen: Counter[str],
              outcomes: Counter[str], times: list[float], keep: bool) -> None:
    sig, server = MODES[number % len(MODES)]
    run_id = f"c{number}"
    folder = work / run_id
    flow = write_flow(folder, "cancelflow.py", FLOW)
    sent = folder / "cancel-sent"
    layout = RunLayout(folder / ".flowdeck", "CancelFlow")
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(flow), "run", "--run-id", run_id, "--max-workers", "2",
         "--quiet"], cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True, preexec_fn=ended_with_this_script(),
        env=child_env(CANCEL_SENT_FILE=str(sent), FLOWDECK_FORK_SERVER=server,
                      **{RUN_ID_ENV: run_id}))
    what = cancel(proc, layout.events(run_id), sent, sig)
    try:
        _out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        kill_quietly([proc.pid])
        _out, err = proc.communicate()
    mode = f"{sig.name}, fork server {server}"
    seen[f"{mode}: {what}"] += 1
    problems = []
    if what != "sent":
        problems.append(f"the run ended before the cancel (exit {proc.returncode})")
    elif proc.returncode != 128 + sig:
        problems.append(f"exit {proc.returncode}, not {128 + sig}")
    stderr = err.decode("utf-8", "replace").strip()
    lines, _ = without_cut_short_handlers(stderr)
    if not lines or f"Run {run_id} was cancelled" not in lines[-1] or \
            any(line != "Task cancelled." for line in lines[:-1]) or our_frames(stderr):
        problems.append(f"the terminal said: {stderr[-400:]}")
    if what == "sent":
        found, counted = run_problems(layout, run_id)
        problems += found
        outcomes.update(counted)
    left = run_survivors(run_id)
    if left:
        problems.append(f"processes outlived the run: {sorted(left)}")
    store = check_store(folder / ".flowdeck")
    problems += [f"unreadable: {p}" for p in store.problems]
    times.append(time.monotonic() - began)
    if tally.round(problems, f"round {number} ({mode})") and not keep:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], full=300, quick=60)
    tally = Tally("cancel_rounds: SIGTERM or SIGINT to a run at random moments")
    with Workdir("cancels", args.keep) as work:
        seen: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        times: list[float] = []
        for number in range(args.rounds):
            one_round(work, number, tally, seen, outcomes, times, args.keep)
        for key, count in sorted(seen.items()):
            tally.figure(key, count)
        tally.figure("tasks of the cancelled runs", ", ".join(
            f"{count} {name}" for name, count in sorted(outcomes.items())))
        tally.figure("round time (run, cancel, checks)", summary(times))
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
