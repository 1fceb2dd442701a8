"""SIGKILL at random moments: the orchestrator, its process group, or one task.

Each round starts `python flow.py run` (a foreach whose tasks write artifacts from
bytes to megabytes, so kills land in blob writes, record writes and event appends),
kills at a random moment within the run's measured length, and then checks:

- no process of the run survives it (its FLOWDECK_RUN_ID in /proc/*/environ);
- in the `+grandchildren` rounds, started as from a plain shell (no run id in the
  environment), every task also starts `sleep 300` plainly and in a new session, and
  the orchestrator (or its group) is killed once some have: none of them may survive;
- every record, event stream and blob of the store reads back (store.records,
  read_events, BlobStore.get): nothing is half-written;
- the run reads back as what happened: a killed run is `crashed` (a killed task
  fails it), never `succeeded` unless it had really finished, never `running`;
- every artifact of every finished task reads back;
- `python flow.py resume` completes the run, with the right result.

    python3 reliability/kill_rounds.py [--quick] [--rounds N] [--seed S]
"""

from __future__ import annotations

import os
import random
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
    descendants,
    ended_with_this_script,
    kill_quietly,
    parent_of,
    parse_args,
    run,
    run_survivors,
    summary,
    write_flow,
)
from storecheck import check_store, missing_artifacts

from flowdeck.store.events import read_events
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout

MODES = ("orchestrator", "group", "task", "orchestrator+grandchildren", "group+grandchildren")
GRANDCHILDREN = "+grandchildren"
ITEMS = 6
EXPECTED_TOTAL = sum(2 * i for i in range(ITEMS))

FLOW = f'''import os
import random
import subprocess
import time

from flowdeck import FlowSpec, Parameter, step


class KillFlow(FlowSpec):
    """A foreach whose tasks write artifacts of every size, with some time in between."""

    spawn = Parameter("spawn", default=False, type=bool)

    @step
    def start(self):
        self.items = list(range({ITEMS}))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.spawn:  # grandchildren: the task's own group, and a new session
            plain = subprocess.Popen(["sleep", "300"])
            detached = subprocess.Popen(["sleep", "300"], start_new_session=True)
            with open(os.environ["KILL_PIDS_FILE"], "a") as pids:
                pids.write(f"{{plain.pid}} {{detached.pid}}\\n")
        time.sleep(random.uniform(0, 0.08))
        size = random.choice([10, 50_000, 2_000_000, 6_000_000])
        self.payload = bytes([self.input % 256]) * size
        self.value = 2 * self.input
        print("work", self.input, size)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.done = True


if __name__ == "__main__":
    KillFlow()
'''


def start(flow: Path, run_id: str, pids_file: Path | None = None) -> subprocess.Popen[bytes]:
    """The flow in a session of its own (so its process group can be killed as one). With
    `pids_file`, as from a plain shell (no run id in its environment), its tasks starting
    grandchildren whose pids they write there."""
    extra = ["--spawn", "true"] if pids_file else []
    env = child_env(KILL_PIDS_FILE=str(pids_file)) if pids_file else \
        child_env(**{RUN_ID_ENV: run_id})
    return subprocess.Popen([sys.executable, str(flow), "run", "--run-id", run_id,
                             "--quiet", *extra], cwd=flow.parent,
                            env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=ended_with_this_script())


def calibrate(flow: Path, rounds: int = 3) -> float:
    """How long an unkilled run takes here (the window in which kills land)."""
    took = []
    for index in range(rounds):
        began = time.monotonic()
        proc = start(flow, f"calibrate-{index}")
        proc.communicate(timeout=120)
        took.append(time.monotonic() - began)
    return max(took)


def kill(proc: subprocess.Popen[bytes], mode: str, delay: float,
         pids_file: Path | None = None) -> str:
    """Kill at `delay` s after the start (after the first grandchild, with `pids_file`);
    what was killed (or why nothing was)."""
    while pids_file is not None and not pids_file.exists() and proc.poll() is None:
        time.sleep(0.002)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    if proc.poll() is not None:
        return "finished first"
    if mode == "orchestrator":
        kill_quietly([proc.pid])
        return "orchestrator"
    if mode == "group":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        return "group"
    for _ in range(500):  # a task: one of the orchestrator's live workers, at random
        workers = sorted(p for p in descendants(proc.pid)  # not the run's guard, own session
                         if parent_of(p) == proc.pid and session_of(p) == proc.pid)
        if workers:
            kill_quietly([random.choice(workers)])
            return "task"
        if proc.poll() is not None:
            return "finished first"
        time.sleep(0.002)
    return "no task seen"


def session_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[-1].split()[3])
    except (OSError, IndexError, ValueError):
        return 0


def grandchild_pids(pids_file: Path | None) -> set[int]:
    try:
        return {int(p) for p in pids_file.read_text().split()} if pids_file else set()
    except (OSError, ValueError):
        return set()


def finished_in_events(layout: RunLayout, run_id: str) -> str | None:
    """The status of the run's run_finished event, if it got that far."""
    try:
        events = read_events(layout.events(run_id))
    except OSError:
        return None
    ends = [e for e in events if e.get("type") == "run_finished"]
    return str(ends[-1].get("status")) if ends else None


def verdict_problems(layout: RunLayout, run_id: str, mode: str, what: str,
                     returncode: int | None) -> tuple[list[str], str]:
    """Whether the run reads back as what happened to it; (problems, status)."""
    index = RunIndex(layout)
    if not layout.run_dir(run_id).exists():
        return [], "not started"
    entry = index.read(run_id)
    status = entry.status
    if status == "damaged" and not layout.run_json(run_id).exists():
        return [], "killed before its record"
    records, damaged = index.final_attempts(run_id)
    problems = [f"damaged task record: {d}" for d in damaged]
    if status == "succeeded":
        if finished_in_events(layout, run_id) != "succeeded" and returncode != 0:
            problems.append("reads back succeeded without a run_finished event")
        if not any(r.step == "end" and r.done for r in records):
            problems.append("reads back succeeded but its end task did not finish")
    elif status == "running":
        problems.append("reads back running after its process was killed")
    elif status == "damaged":
        problems.append(f"run record damaged: {entry.damage}")
    elif what == "finished first":
        problems.append(f"a run that ended on its own reads back {status}")
    elif what in ("orchestrator", "group") and status != "crashed":
        problems.append(f"killed orchestrator reads back {status}, not crashed")
    elif what == "task" and status not in ("failed",):
        problems.append(f"run with a killed task reads back {status}, not failed")
    problems += missing_artifacts(layout.root, records)
    return problems, status


def resume(flow: Path, layout: RunLayout, run_id: str) -> tuple[list[str], int]:
    """`python flow.py resume` from the killed run; (problems, tasks reused)."""
    new_id = f"{run_id}-r"
    result = run([sys.executable, str(flow), "resume", "--origin-run-id", run_id,
                  "--run-id", new_id, "--quiet"], flow.parent,
                 env=child_env(**{RUN_ID_ENV: new_id,
                                  "KILL_PIDS_FILE": str(flow.parent / f"{new_id}.pids")}))
    if result.returncode != 0:
        return [f"resume exited {result.returncode}: {result.stderr.strip()[-400:]}"], 0
    from flowdeck import Flow
    resumed = Flow("KillFlow", root=layout.root)[new_id]
    problems = []
    if resumed.status != "succeeded":
        problems.append(f"resumed run reads back {resumed.status}")
    elif resumed.data is None or resumed.data.done is not True or \
            resumed["join"].task.data.total != EXPECTED_TOTAL:
        problems.append("resumed run's result is wrong")
    records, _ = RunIndex(layout).final_attempts(new_id)
    return problems, sum(1 for r in records if r.status == "reused")


def one_round(flow: Path, layout: RunLayout, number: int, mode: str, window: float,
              tally: Tally, seen: Counter[str], times: list[float],
              resumed: Counter[str]) -> None:
    run_id = f"k{number}-{mode.replace('+', '-')}"
    began = time.monotonic()
    base = mode.removesuffix(GRANDCHILDREN)
    pids_file = flow.parent / f"{run_id}.pids" if mode.endswith(GRANDCHILDREN) else None
    proc = start(flow, run_id, pids_file)
    what = kill(proc, base, random.uniform(0.0, window / 2 if pids_file else window),
                pids_file)
    try:
        _out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        kill_quietly([proc.pid])
        _out, err = proc.communicate()
    problems = []
    grandchildren = grandchild_pids(pids_file)
    survivors = run_survivors(run_id, known=grandchildren)
    if survivors:
        problems.append(f"processes outlived the kill: {sorted(survivors)}")
    resumed["grandchildren started"] += len(grandchildren)
    resumed["grandchildren outlived"] += len(survivors & grandchildren)
    stderr = err.decode("utf-8", "replace")
    if what == "task" and "Traceback" in stderr and "flowdeck" in stderr:
        problems.append(f"engine traceback after a task kill: {stderr[-300:]}")
    found, status = verdict_problems(layout, run_id, base, what, proc.returncode)
    problems += found
    seen[f"{what}{GRANDCHILDREN if pids_file else ''} -> {status}"] += 1
    if status not in ("succeeded", "not started", "killed before its record") and not found:
        more, reused = resume(flow, layout, run_id)
        problems += more
        resumed["tried"] += 1
        resumed["completed"] += 0 if more else 1
        resumed["tasks reused"] += reused
    store = check_store(layout.root)
    problems += [f"unreadable: {p}" for p in store.problems]
    times.append(time.monotonic() - began)
    tally.round(problems, f"round {number} ({mode}, {what}, {status})")


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], full=120, quick=24)
    tally = Tally("kill_rounds: SIGKILL of orchestrator, process group, one task")
    with Workdir("kills", args.keep) as work:
        folders = []
        seen: Counter[str] = Counter()
        resumed: Counter[str] = Counter()
        times: list[float] = []
        window = 0.0
        for number in range(args.rounds):
            if number % 40 == 0:  # a fresh store now and then keeps every round's check short
                folder = work / f"store{number // 40}"
                flow = write_flow(folder, "killflow.py", FLOW)
                folders.append(folder)
                window = window or calibrate(flow)
                layout = RunLayout(folder / ".flowdeck", "KillFlow")
            mode = MODES[number % len(MODES)]
            one_round(flow, layout, number, mode, window * 1.1, tally, seen, times, resumed)
        tally.figure("unkilled run length (kill window)", f"{window:.2f} s")
        for key, count in sorted(seen.items()):
            tally.figure(f"killed {key}", count)
        tally.figure("grandchildren outlived / started (plain-shell rounds)",
                     f"{resumed['grandchildren outlived']} / {resumed['grandchildren started']}")
        tally.figure("resumes completed / tried",
                     f"{resumed['completed']} / {resumed['tried']} "
                     f"({resumed['tasks reused']} finished tasks reused)")
        totals = [check_store(f / ".flowdeck") for f in folders]
        tally.figure("read back at the end", f"{sum(t.records for t in totals)} run records, "
                     f"{sum(t.attempts for t in totals)} attempt records, "
                     f"{sum(t.blobs for t in totals)} blobs, "
                     f"{sum(t.events_files for t in totals)} event streams")
        tally.figure("round time (run, kill, checks, resume)", summary(times))
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
