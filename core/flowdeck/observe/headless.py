"""`flowdeck run FILE [--param value]`: run a flow headless with a live progress display.

For machines without a screen. The flow runs exactly as the window runs it: the
launch comes from the engine seam (`engines.launching`: the folder's interpreter,
Metaflow flows through the bridge), we choose the run id, follow its
`events.jsonl` through the same run fold as the window, and redraw one line per
step (status, foreach k/N, duration) plus the elapsed time. The flow's own
output goes to a log file; on failure its last lines and the error are printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from flowdeck.analysis.flowfile import analyze_file
from flowdeck.engines.base import LaunchSpec
from flowdeck.engines.launching import LaunchError, build_launch
from flowdeck.observe.fold import RunFold
from flowdeck.store.events import EventReader, RunFinished, TaskFinished, TaskStarted, parse_event
from flowdeck.store.layout import RunLayout
from flowdeck.store.status import RUNNING

REFRESH_S = 0.1
SYMBOLS = {"pending": "·", "running": "▶", "succeeded": "✔", "failed": "✖",
           "cancelled": "■", "reused": "↺"}


def progress_lines(fold: RunFold, now: float, started: float) -> list[str]:
    """The live table: a header, then one line per step."""
    out = [f"run {fold.run_id or '…'}  {fold.status}  {now - started:6.1f} s"]
    for name, step in fold.steps.items():
        count = f"{step.done}/{step.total}" if step.total > 1 else ""
        span = f"{step.duration:6.1f} s" if step.duration is not None else ""
        out.append(f"  {SYMBOLS.get(step.status, '?')} {name:<24} {step.status:<10} "
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
    flow = analysis.flows[0]
    try:
        spec = build_launch(str(path), flow.name, flow.engine, ["run", *args])
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log_path = RunLayout(Path(spec.root), flow.name).headless_log(spec.run_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        child = subprocess.Popen(spec.argv, cwd=spec.cwd, env={**os.environ, **spec.env},
                                 stdout=log, stderr=subprocess.STDOUT)
        return _follow(child, spec, log_path, out, RunFold(flow.graph.as_dict()))


def _follow(child: subprocess.Popen[bytes], spec: LaunchSpec, log_path: Path, out: TextIO,
            fold: RunFold) -> int:
    reader = EventReader(spec.events_path)
    fold.run_id = spec.run_id
    started = time.time()
    tty = out.isatty()
    drawn = 0
    try:
        while True:
            code = child.poll()
            _apply(reader, fold, out, tty)
            if tty:
                drawn = _redraw(progress_lines(fold, time.time(), started), drawn, out)
            if code is not None:
                _apply(reader, fold, out, tty)
                break
            time.sleep(REFRESH_S)
    except KeyboardInterrupt:
        child.send_signal(spec.stop_signal)
        try:
            code = child.wait(spec.stop_grace_s)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            code = child.wait()
    if fold.status == RUNNING:
        fold.mark_ended("cancelled" if code in (130, 143, -2, -15) else "crashed", time.time())
    if tty:
        _redraw(progress_lines(fold, time.time(), started), drawn, out)
    _summary(fold, code, log_path, out)
    return code


def _apply(reader: EventReader, fold: RunFold, out: TextIO, tty: bool) -> None:
    for raw in reader.read():
        event = parse_event(raw)
        if event is None:
            continue
        fold.apply(event)
        if not tty:
            _print_event(event, out)


def _redraw(lines: list[str], drawn: int, out: TextIO) -> int:
    if drawn:
        out.write(f"\x1b[{drawn}F")
    for line in lines:
        out.write("\x1b[2K" + line + "\n")
    out.flush()
    return len(lines)


def _print_event(event: object, out: TextIO) -> None:
    if isinstance(event, TaskStarted):
        out.write(f"{event.step}/{event.task_id} started\n")
    elif isinstance(event, TaskFinished):
        out.write(f"{event.step}/{event.task_id} {event.status}\n")
    elif isinstance(event, RunFinished):
        out.write(f"run {event.status} in {event.duration:.2f} s\n")
    out.flush()


def _summary(fold: RunFold, code: int, log_path: Path, out: TextIO) -> None:
    if code == 0:
        return
    tail = log_path.read_bytes().decode("utf-8", "replace").splitlines()[-20:]
    verdict = f"The run {fold.status}" if fold.status != RUNNING else "The flow"
    out.write("\n".join(["", f"{verdict} (exit code {code}). Last output "
                         f"(full log: {log_path}):", *tail]) + "\n")
    out.flush()
