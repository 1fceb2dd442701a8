"""A full disk, on a small tmpfs: runs fail cleanly and earlier runs stay readable.

Each round mounts an 8 MB tmpfs (`mount -t tmpfs`, so it needs root; without the
permission the script says so and is skipped), makes one good run on it, then fills
the disk one way:

- a step prints 20 MB;
- a step keeps a 20 MB artifact;
- the disk is full before the run starts;
- runs of 1 MB artifacts, one after another, until one finds the disk full.

The run that finds the disk full must exit non-zero saying `disk full: <path>`, with
no traceback, its record (if it has one) failed with that message; every earlier run
must read back intact (records, events, blobs, artifacts); and once space is freed the
next run must succeed. Runs go through `python flow.py` and `flowdeck run` in turn.

    python3 reliability/disk_full.py [--quick] [--rounds N] [--seed S]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from common import Tally, Workdir, our_frames, parse_args, run, write_flow
from storecheck import check_store

DISK_MB = 8
SCENARIOS = ("print", "artifact", "full-before", "until-full")

FLOW = '''from flowdeck import FlowSpec, Parameter, step


class FullFlow(FlowSpec):
    mode = Parameter("mode", default="small")

    @step
    def start(self):
        self.value = 42
        if self.mode == "print":
            line = "x" * 999
            for _ in range(20_000):
                print(line)
        if self.mode == "artifact":
            self.big = b"y" * (20 * 1024 * 1024)
        if self.mode == "one-mb":
            import os
            self.chunk = os.urandom(1024 * 1024)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FullFlow()
'''


def mount(folder: Path) -> str | None:
    """Mount a small tmpfs at `folder`; why not, if it cannot be mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs",
                               str(folder)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or "mount refused")


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def flow_run(flow: Path, mode: str, via_cli: bool) -> subprocess.CompletedProcess[str]:
    if via_cli:
        cmd = [sys.executable, "-m", "flowdeck.cli.main", "run", str(flow), "--mode", mode]
    else:
        cmd = [sys.executable, str(flow), "run", "--mode", mode]
    return run(cmd, flow.parent, timeout=120)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte with one file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while handle.write(b"\0" * 65536):
                pass
        except OSError:
            pass  # full
    return filler


def full_run_problems(result: subprocess.CompletedProcess[str], disk: Path) -> list[str]:
    said = result.stdout + result.stderr
    problems = []
    if result.returncode == 0:
        problems.append("the run that found the disk full exited 0")
    if "disk full" not in said:
        problems.append(f"no `disk full` in its output: {said.strip()[-300:]}")
    if our_frames(said) or "Traceback" in said:
        problems.append(f"a traceback: {said.strip()[-300:]}")
    from flowdeck.store.index import RunIndex
    from flowdeck.store.layout import RunLayout
    for entry in RunIndex(RunLayout(disk / ".flowdeck", "FullFlow")).runs():
        if entry.record is None:
            problems.append(f"run {entry.run_id} unreadable: {entry.damage}")
        elif entry.status not in ("succeeded", "failed"):
            problems.append(f"run {entry.run_id} reads back {entry.status}")
        elif entry.status == "failed" and "disk full" not in str(entry.record.error):
            problems.append(f"failed run {entry.run_id} does not say disk full")
    return problems


def earlier_runs_intact(disk: Path, good: list[str]) -> list[str]:
    from flowdeck import Flow
    problems = [f"unreadable: {p}" for p in check_store(disk / ".flowdeck").problems]
    for run_id in good:
        try:
            found = Flow("FullFlow", root=disk / ".flowdeck")[run_id]
            if found.status != "succeeded" or found["start"].task.data.value != 42:
                problems.append(f"earlier run {run_id} reads back {found.status}")
        except Exception as exc:  # any error reading an earlier run is the loss
            problems.append(f"earlier run {run_id}: {type(exc).__name__}: {exc}")
    return problems


def one_round(disk: Path, scenario: str, via_cli: bool) -> list[str]:
    flow = write_flow(disk, "fullflow.py", FLOW)
    first = flow_run(flow, "small", via_cli)
    if first.returncode != 0:
        return [f"the first run on the empty disk failed: {first.stderr[-300:]}"]
    from flowdeck.store.index import RunIndex
    from flowdeck.store.layout import RunLayout
    index = RunIndex(RunLayout(disk / ".flowdeck", "FullFlow"))
    good = [e.run_id for e in index.runs()]
    filler: Path | None = None
    if scenario == "print":
        result = flow_run(flow, "print", via_cli)
    elif scenario == "artifact":
        result = flow_run(flow, "artifact", via_cli)
    elif scenario == "full-before":
        filler = fill(disk)
        result = flow_run(flow, "small", via_cli)
    else:
        for _ in range(DISK_MB * 2):
            result = flow_run(flow, "one-mb", via_cli)
            if result.returncode != 0:
                break
            good = [e.run_id for e in index.runs()]
    problems = full_run_problems(result, disk) + earlier_runs_intact(disk, good)
    if filler is not None:
        filler.unlink()
    for entry in index.runs():  # free the space the full runs took, then run again
        if entry.run_id not in good:
            shutil.rmtree(entry.path.parent, ignore_errors=True)
    shutil.rmtree(disk / ".flowdeck" / "logs", ignore_errors=True)
    for blob in (disk / ".flowdeck" / "blobs").rglob("*"):
        if blob.is_file() and blob.stat().st_size > 512 * 1024:
            blob.unlink()
    again = flow_run(flow, "small", via_cli)
    if again.returncode != 0:
        problems.append(f"no run succeeds once space is freed: {again.stderr[-300:]}")
    return problems


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], full=12, quick=4)
    tally = Tally("disk_full: an 8 MB tmpfs filled four ways")
    with Workdir("diskfull", args.keep) as work:
        probe = work / "probe"
        why = mount(probe)
        if why is not None:
            tally.skipped = f"cannot mount a tmpfs here ({why}); run as root to include it"
            return tally.report()
        unmount(probe)
        for number in range(args.rounds):
            scenario = SCENARIOS[number % len(SCENARIOS)]
            via_cli = (number // len(SCENARIOS)) % 2 == 1
            disk = work / f"disk{number}"
            why = mount(disk)
            if why is not None:
                tally.round([f"mount failed: {why}"], f"round {number}")
                continue
            try:
                problems = one_round(disk, scenario, via_cli)
            finally:
                unmount(disk)
            tally.round(problems, f"round {number} ({scenario}, "
                        f"{'flowdeck run' if via_cli else 'python flow.py'})")
        tally.figure("disk", f"{DISK_MB} MB tmpfs per round; scenarios: {', '.join(SCENARIOS)}")
    return tally.report()


if __name__ == "__main__":
    sys.exit(main())
