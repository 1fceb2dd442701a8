"""`flowdeck run FILE [--param value]`: run a flow headless with a live progress display.

For machines without a screen. The flow runs as `python FILE run ...` in a
child process, exactly as the window runs it; we choose its run id, follow
its `events.jsonl` and redraw one line per step (status, foreach k/N,
duration) plus the elapsed time. The flow's own output goes to a log file
and its last lines are shown; on failure the error is printed in full.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from flowdeck.store.blobs import default_root
from flowdeck.store.events import EventReader
from flowdeck.analysis.flowfile import analyze_file

REFRESH_S = 0.1
SYMBOLS = {"pending": "·", "running": "▶", "succeeded": "✔", "failed": "✖",
           "cancelled": "■", "reused": "↺"}


@dataclass
class StepProgress:
    """What the display knows of one step."""

    name: str
    total: int = 0
    started: int = 0
    done: int = 0
    failed: int = 0
    reused: int = 0
    first_start: float | None = None
    last_end: float | None = None

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if self.total and self.done >= self.total:
            return "reused" if self.reused >= self.total else "succeeded"
        if self.started > self.done:
            return "running"
        return "pending"


@dataclass
class RunProgress:
    """Step progress folded from the event stream."""

    steps: dict[str, StepProgress] = field(default_factory=dict)
    status: str = "starting"
    error: dict[str, Any] | None = None
    run_id: str = ""

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "run_started":
            graph = (event.get("graph") or {}).get("graph") or {}
            for name in graph:
                self.steps.setdefault(name, StepProgress(name))
            self.status = "running"
        elif kind == "task_started":
            step = self.steps.setdefault(event["step"], StepProgress(event["step"]))
            if event.get("attempt", 0) == 0:
                step.started += 1
                foreach = event.get("foreach") or {}
                step.total = max(step.total, foreach.get("num_splits") or 1, step.started)
            step.first_start = step.first_start or event.get("t")
        elif kind == "task_finished":
            self._finished(event)
        elif kind == "run_finished":
            self.status = event.get("status", "finished")
            self.error = event.get("error")

    def _finished(self, event: dict[str, Any]) -> None:
        step = self.steps.setdefault(event["step"], StepProgress(event["step"]))
        status = event.get("status")
        step.last_end = event.get("t")
        if status in ("succeeded", "reused"):
            step.done += 1
            step.reused += status == "reused"
        elif status == "failed" and not event.get("will_retry"):
            step.failed += 1

    def lines(self, now: float, started: float) -> list[str]:
        out = [f"run {self.run_id or '…'}  {self.status}  {now - started:6.1f} s"]
        for step in self.steps.values():
            count = f"{step.done}/{step.total}" if step.total > 1 else ""
            span = ""
            if step.first_start:
                end = step.last_end if step.status != "running" else now
                span = f"{(end or now) - step.first_start:6.1f} s"
            out.append(f"  {SYMBOLS.get(step.status, '?')} {step.name:<24} {step.status:<10} "
                       f"{count:>11} {span}")
        return out


def run_headless(file: str, args: list[str], out: TextIO = sys.stdout) -> int:
    """Run FILE with ARGS in a child process and draw its progress until it ends."""
    path = Path(file).resolve()
    if not path.is_file():
        print(f"error: {file}: no such file. Give the path of a flow's .py file.", file=sys.stderr)
        return 2
    analysis = analyze_file(path)
    if not analysis.flows:
        print(f"error: {file} defines no flow (a class deriving from FlowSpec).", file=sys.stderr)
        return 2
    run_id = f"cli-{int(time.time() * 1000)}"
    log_path = path.parent / ".flowdeck" / "logs" / f"{run_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8",
               FLOWDECK_RUN_ID=run_id)
    core = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [core, env.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        child = subprocess.Popen([sys.executable, str(path), "run", *args], cwd=path.parent,
                                 env=env, stdout=log, stderr=subprocess.STDOUT)
        return _follow(child, default_root(path), run_id, log_path, out)


def _follow(child: subprocess.Popen[bytes], root: Path, run_id: str, log_path: Path,
            out: TextIO) -> int:
    progress = RunProgress(run_id=run_id)
    reader: EventReader | None = None
    started = time.time()
    tty = out.isatty()
    drawn = 0
    try:
        while True:
            if reader is None:
                found = glob.glob(str(root / "*" / "runs" / run_id / "events.jsonl"))
                reader = EventReader(found[0]) if found else None
            for event in reader.read() if reader else []:
                progress.apply(event)
                if not tty:
                    _print_event(event, out)
            code = child.poll()
            if tty:
                drawn = _redraw(progress.lines(time.time(), started), drawn, out)
            if code is not None:
                for event in reader.read() if reader else []:
                    progress.apply(event)
                break
            time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        code = child.wait()
    if tty:
        _redraw(progress.lines(time.time(), started), drawn, out)
    _summary(progress, code, log_path, out)
    return code


def _redraw(lines: list[str], drawn: int, out: TextIO) -> int:
    if drawn:
        out.write(f"\x1b[{drawn}F")
    for line in lines:
        out.write("\x1b[2K" + line + "\n")
    out.flush()
    return len(lines)


def _print_event(event: dict[str, Any], out: TextIO) -> None:
    kind = event.get("type")
    if kind in ("task_started", "task_finished"):
        what = "started" if kind == "task_started" else event.get("status")
        out.write(f"{event['step']}/{event['task_id']} {what}\n")
    elif kind == "run_finished":
        out.write(f"run {event.get('status')} in {event.get('duration', 0):.2f} s\n")
    out.flush()


def _summary(progress: RunProgress, code: int, log_path: Path, out: TextIO) -> None:
    if code == 0:
        return
    tail = log_path.read_bytes().decode("utf-8", "replace").splitlines()[-20:]
    out.write("\n".join(["", f"The flow exited with code {code}. Last output "
                         f"(full log: {log_path}):", *tail]) + "\n")
    out.flush()
