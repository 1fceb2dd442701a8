"""Run a real Metaflow flow and speak Flowdeck's event stream (docs/events.md) for it.

The window has one code path for both engines: it starts::

    python -m flowdeck.engines.metaflow_bridge FLOW_FILE run [--param value] [--max-workers N]
    python -m flowdeck.engines.metaflow_bridge FLOW_FILE resume [STEP] [--origin-run-id ID]

and follows `events.jsonl` exactly as for a Flowdeck run. This process starts
Metaflow's own `run`/`resume` in the flow's folder, passes every stdout line
through unchanged (so the log pane shows Metaflow's output), and turns the
lines it recognises into events with `MetaflowLogParser`. Lines it does not
recognise are only passed through: a changed Metaflow log format degrades to
a plain log, never to a crash. Nothing here imports metaflow or the flow.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import Any

from flowdeck.analysis.command_line import (
    option_value,
    parameter_flags,
    split_top_level,
    without_options,
)
from flowdeck.analysis.diagnostics import UsageError, flow_file_problem
from flowdeck.analysis.flowfile import FlowInfo, ParameterInfo, analyze_file, pick_flow
from flowdeck.analysis.parameter_text import (
    KIND_OF_TYPE_NAME,
    convert_text,
    separated,
    value_text,
)
from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.events import (
    ENGINE_RUN_ID,
    RUN_FINISHED,
    RUN_STARTED,
    TASK_FINISHED,
    TASK_STARTED,
    EventWriter,
    read_events,
)
from flowdeck.store.index import RunIndex, read_run
from flowdeck.store.layout import (
    RUN_ID_ENV,
    InvalidId,
    RunLayout,
    check_id,
    default_root,
    new_run_id,
)
from flowdeck.store.liveness import own_process_start
from flowdeck.store.records import (
    ParamRecord,
    RunRecord,
    current_user,
    hostname,
    multiple_text,
)

STOP_GRACE = 3.0  # seconds between SIGINT, SIGTERM and SIGKILL when stopping
DEFAULT_MAX_WORKERS = 16  # Metaflow's own default
FALLBACK_USER = "flowdeck"

# `2026-11-25 18:36:28.235 [RUN/STEP/TASK (pid N)] text`, or without the bracket.
LINE = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) "
                  r"(?:\[(?P<run>[^/\]\s]+)/(?P<step>[^/\]\s]+)/(?P<task>[^/\]\s]+)"
                  r"(?: \(pid (?P<pid>\d+)\))?\] ?)?(?P<text>.*)$")
WORKFLOW_STARTING = re.compile(r"^Workflow starting \(run-id (?P<run>[^)]+)\)")
FOREACH_YIELDS = re.compile(r"^Foreach yields (?P<n>\d+) child steps?\.")
CLONING = re.compile(r"^Cloning previously run task (?P<origin>\S+/\S+/\S+)")
EXCEPTION_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")
METAFLOW_FRAME = re.compile(r'^File "[^"]*[/\\]metaflow[/\\][^"]*"')


# -- parsing Metaflow's stdout ------------------------------------------------------------


@dataclass
class TaskTrack:
    """What the parser knows of one Metaflow task while it runs."""

    step: str
    task_id: str
    attempt: int = 0
    started: float = 0.0
    pid: int | None = None
    lines: list[str] = field(default_factory=list)
    splits: int | None = None
    killed: bool = False
    running: bool = True


@dataclass
class ParsedLine:
    """One stdout line: its events (maybe none) and whether it is log text."""

    events: list[dict[str, Any]]
    text: str | None = None
    task_id: str | None = None  # the Metaflow task that printed the line, if any


class MetaflowLogParser:
    """Turns Metaflow's `run`/`resume` stdout, line by line, into Flowdeck events.

    Pure: no I/O, no clock (times come from the lines), so it is tested by
    feeding it text. Each event is a dict with `type` plus its fields; the
    writer adds `v`, `t` and `run_id`. A failed attempt is held back until we
    know whether Metaflow retries it, so `will_retry` is exact.
    """

    def __init__(self, origin_splits: dict[str, int] | None = None,
                 origin_ids: dict[str, str] | None = None):
        self.metaflow_run_id: str | None = None
        self.origin_ids = origin_ids or {}  # Metaflow run id -> our run id of the same run
        #: Metaflow's ids of the runs a resume cloned tasks from (the origin it picked).
        self.origin_runs: list[str] = []
        self.tasks: dict[str, TaskTrack] = {}
        self.pending_failures: dict[str, dict[str, Any]] = {}
        self.first_error: dict[str, Any] | None = None
        self.origin_splits = origin_splits or {}

    def feed(self, line: str) -> ParsedLine:
        """Events for one line (without its newline); unknown lines give none."""
        match = LINE.match(line)
        if match is None:
            return ParsedLine([], line)
        when = _timestamp(match.group("ts"))
        text = match.group("text")
        if match.group("task") is None:
            return ParsedLine(self._orchestrator(text), text)
        return ParsedLine(self._task_line(match, text, when), text, match.group("task"))

    def finish(self, cancelled: bool) -> list[dict[str, Any]]:
        """Close every open attempt when Metaflow has exited (failed, cancelled or killed)."""
        events = self._flush_failures()
        for track in self.tasks.values():
            if track.running:
                track.running = False
                events.append(self._finished(track, "cancelled" if cancelled else "failed",
                                             track.started, None))
        return events

    # -- orchestrator lines ---------------------------------------------------------------

    def _orchestrator(self, text: str) -> list[dict[str, Any]]:
        started = WORKFLOW_STARTING.match(text)
        if started:
            self.metaflow_run_id = started.group("run")
            return [{"type": "metaflow_run", "metaflow_run_id": self.metaflow_run_id}]
        if text.startswith(("Workflow failed", "Done!", "This failed task will not be retried")):
            return self._flush_failures()
        return []

    # -- task lines -----------------------------------------------------------------------

    def _task_line(self, match: re.Match[str], text: str, when: float) -> list[dict[str, Any]]:
        step, task_id = match.group("step"), match.group("task")
        pid = int(match.group("pid")) if match.group("pid") else None
        if text.startswith("Task is starting"):
            return self._started(step, task_id, pid, when, retry="(retry)" in text)
        cloned = CLONING.match(text)
        if cloned:
            return self._cloned(step, task_id, cloned.group("origin"), when)
        track = self.tasks.get(task_id)
        if track is None:
            return []
        if text.startswith("Task finished successfully"):
            track.running = False
            return [self._finished(track, "succeeded", when, None, caught_error(track.lines))]
        if text.startswith("Task failed"):
            return self._failed(track, when)
        yields = FOREACH_YIELDS.match(text)
        if yields:
            track.splits = int(yields.group("n"))
        elif "[KILLED BY ORCHESTRATOR]" in text:
            track.killed = True
        else:
            track.lines.append(text)
        return []

    def _started(self, step: str, task_id: str, pid: int | None, when: float,
                 retry: bool) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        previous = self.tasks.get(task_id)
        pending = self.pending_failures.pop(task_id, None)
        if pending is not None:
            events.append({**pending, "will_retry": True})
        attempt = previous.attempt + 1 if previous is not None and retry else 0
        self.tasks[task_id] = TaskTrack(step, task_id, attempt, when, pid)
        events.append({"type": TASK_STARTED, "step": step, "task_id": task_id,
                       "attempt": attempt, "pid": pid, "reused": False, "foreach": None,
                       "input_paths": [], "logs": task_logs(step, task_id, attempt)})
        return events

    def _cloned(self, step: str, task_id: str, origin: str, when: float
                ) -> list[dict[str, Any]]:
        self.tasks[task_id] = TaskTrack(step, task_id, running=False)
        started = {"type": TASK_STARTED, "step": step, "task_id": task_id, "attempt": 0,
                   "pid": None, "reused": True, "foreach": None, "input_paths": [],
                   "logs": None}
        origin_run, _, rest = origin.partition("/")
        self.origin_runs.append(origin_run)
        finished = {"type": TASK_FINISHED, "step": step, "task_id": task_id, "attempt": 0,
                    "status": "reused", "duration": 0.0, "error": None, "will_retry": False,
                    "artifacts": [],
                    "origin": f"{self.origin_ids.get(origin_run, origin_run)}/{rest}"}
        splits = self.origin_splits.get(origin.split("/", 1)[-1])
        if splits:
            finished["foreach_splits"] = splits
        return [started, finished]

    def _failed(self, track: TaskTrack, when: float) -> list[dict[str, Any]]:
        """Hold the failure back: a following `(retry)` start means Metaflow retries it."""
        track.running = False
        events = self._flush_failures()  # an older failure without retry is final now
        status = "cancelled" if track.killed else "failed"
        error = None if track.killed else error_from_lines(track.lines)
        finished = self._finished(track, status, when, error)
        if status == "cancelled":
            return events + [finished]
        self.pending_failures[track.task_id] = finished
        return events

    def _flush_failures(self) -> list[dict[str, Any]]:
        """Pending failures are final: no retry followed them."""
        events = [{**e, "will_retry": False} for e in self.pending_failures.values()]
        self.pending_failures.clear()
        for event in events:
            if self.first_error is None and event.get("error"):
                self.first_error = {**event["error"], "step": event["step"],
                                    "task_id": event["task_id"]}
        return events

    def _finished(self, track: TaskTrack, status: str, when: float,
                  error: dict[str, Any] | None, caught: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
        """`caught`: the exception @catch turned into data, as Flowdeck's engine writes it."""
        event = {"type": TASK_FINISHED, "step": track.step, "task_id": track.task_id,
                 "attempt": track.attempt, "status": status,
                 "duration": round(max(0.0, when - track.started), 3), "error": error,
                 "will_retry": False, "artifacts": []}
        if track.splits is not None:
            event["foreach_splits"] = track.splits
        if caught is not None:
            event["caught_error"] = caught
        return event


_RECORD_START = re.compile(r"(?<=\S)(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[)")


def split_records(line: str) -> list[str]:
    """One read line as the log records it holds: concurrent tasks' writes can share a line
    (`...task 2026-12-02 04:01:38.627 [run/step/3] Cloning...`)."""
    return [part for part in _RECORD_START.split(line) if part] or [line]


def metaflow_run_dir(cwd: str, flow: str, run_id: str) -> Path | None:
    """Metaflow's local metadata folder of a run: `.metaflow/` upward from where it ran."""
    folder = Path(cwd).resolve()
    for candidate in (folder, *folder.parents):
        run_dir = candidate / ".metaflow" / flow / run_id
        if run_dir.is_dir():
            return run_dir
    return None


def metaflow_tasks(run_dir: Path) -> list[tuple[str, str]]:
    """(step, task id) of every task Metaflow recorded for a run."""
    found = []
    for step_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        if step_dir.name.startswith("_"):
            continue
        for task_dir in step_dir.iterdir():
            if task_dir.is_dir() and task_dir.name.isdigit():
                found.append((step_dir.name, task_dir.name))
    return found


def task_logs(step: str, task_id: str, attempt: int) -> dict[str, str]:
    """Where the bridge keeps an attempt's lines, relative to the run dir (as our engine does).

    Metaflow sends a task's stdout and stderr down one stream, so both land in `.out`.
    """
    base = f"{step}/{task_id}/attempt-{attempt}"
    return {"stdout": f"{base}.out", "stderr": f"{base}.err"}


def _timestamp(text: str) -> float:
    """Unix time of Metaflow's local-time stamp (`YYYY-MM-DD HH:MM:SS.mmm`)."""
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    except ValueError:
        return time.time()


def error_from_lines(lines: list[str]) -> dict[str, Any]:
    """The error of a failed attempt from its own log lines, in each shape Metaflow prints.

    An ordinary exception comes as a Python traceback; a `MetaflowException` (`@timeout`'s
    among them) as its headline, its message and, for a timeout, the stack marked with
    `>`; a KeyboardInterrupt as click's bare "Aborted!". The banner, the error pane and
    the run's summary all read this dict, so each shape gets its own type and message
    rather than whatever line happened to come last.
    """
    body = [line for line in lines if line.strip()]
    start = _last_index(body, lambda line: line.startswith("Traceback"))
    if start is not None:
        return traceback_error(body[start:])
    headed = metaflow_exception_error(body)
    if headed is not None:
        return headed
    if body and body[-1].strip() == "Aborted!":
        return {"type": "Aborted", "message": ABORTED, "traceback": "\n".join(body)}
    message = body[-1] if body else "The task failed without a traceback (see its log)."
    return {"type": "TaskFailed", "message": message, "traceback": "\n".join(body)}


CAUGHT = "@catch caught an exception from "


def caught_error(lines: list[str]) -> dict[str, Any] | None:
    """The exception @catch kept a successful attempt going after, or None.

    Metaflow ends such a task "successfully" (its client says `successful` False), so
    without this the task read as a plain success. @catch prints the traceback behind
    `>  ` after its own line; with `print_exception=False` it prints nothing to read.
    """
    at = _last_index(lines, lambda line: line.startswith(CAUGHT))
    if at is None:
        return None
    marked = [unmark(line) for line in lines[at + 1:] if line.startswith(">")]
    start = _last_index(marked, lambda line: line.startswith("Traceback"))
    if start is None:
        return {"type": "Exception", "message": lines[at], "traceback": "\n".join(marked)}
    trace = marked[start:]
    end = next((i for i, line in enumerate(trace[1:], 1) if line and not line[0].isspace()),
               len(trace) - 1)  # the exception's own line (a timeout's stack follows it)
    return traceback_error(trace[:end + 1])


#: Metaflow prints no traceback when click aborts a task (its own words are "Aborted!").
ABORTED = ("The step was interrupted (\"Aborted!\": Metaflow ends a task so on a "
           "KeyboardInterrupt, or an EOFError such as input() without a terminal) and "
           "Metaflow printed no traceback for it.")

#: `<flow Name step name[...]> failed:`, the line before a MetaflowException's headline.
FLOW_FAILED = re.compile(r"^<flow \S+ step .*> failed:$")
#: A MetaflowException's headline: `@timeout:`, `Flow failed in file f on line 3:`.
HEADLINE = re.compile(r"^(?P<headline>.+?)(?: in file (?P<file>.+?))?"
                      r"(?: on line (?P<line>\d+))?:$")
#: Headlines of the MetaflowException classes whose name the client gives (`.type`).
HEADLINE_TYPES = {"@timeout": "TimeoutException", "Flow failed": "MetaflowException"}
STACK_HEAD = "Stack when the timeout was raised:"


def traceback_error(trace: list[str]) -> dict[str, Any]:
    """A Python traceback's error: type and message from its last line, the user's frames."""
    last = trace[-1] if len(trace) > 1 else "Error"
    exc = EXCEPTION_LINE.match(last)
    kind = exc.group("type") if exc else "Error"
    message = (exc.group("message") or "") if exc else last
    return {"type": kind, "message": message,
            "traceback": "\n".join(user_frames(trace[1:-1], trace[0], last))}


#: A line Metaflow time-stamped itself (`2026-12-05 09:12:12.035 text`): a log line, not
#: part of an exception it prints.
STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? ")


def metaflow_exception_error(body: list[str]) -> dict[str, Any] | None:
    """A MetaflowException as Metaflow's task prints it, or None if `body` holds none.

    Its class is not printed, only its headline; the known headlines name the class the
    client reports. The `>` lines after a timeout's message are the stack where the
    alarm struck, read as a traceback so the failing line of the step opens.
    """
    at = _last_index(body, lambda line: FLOW_FAILED.match(line.strip()) is not None)
    # A line of the task's other stream, time-stamped by Metaflow (@timeout's own logger
    # says "Step start timed out" there), may land anywhere after "failed:": left out,
    # or the headline was missed in one run of three and it read "TaskFailed: > ...".
    following = [line for line in body[at + 1:] if not STAMPED.match(line)] \
        if at is not None else []
    if not following or following[0].strip() == "Internal error":
        return None
    head = HEADLINE.match(following[0].strip())
    if head is None:
        return None
    headline = head.group("headline")
    rest = following[1:]
    stack_at = next((i for i, line in enumerate(rest)
                     if line.strip() == STACK_HEAD or line.startswith(">")), len(rest))
    message = "\n".join(line.strip() for line in rest[:stack_at])
    kind = HEADLINE_TYPES.get(headline, "MetaflowException")
    if headline not in HEADLINE_TYPES:
        message = f"{headline}: {message}"
    frames = [unmark(line) for line in rest[stack_at:] if line.startswith(">")]
    last = f"{kind}: {message.splitlines()[0] if message else headline}"
    where = _located(head)
    return {"type": kind, "message": message,
            "traceback": "\n".join(user_frames(frames, "Traceback (most recent call last):",
                                               last) if frames else [*where, last])}


def _located(head: re.Match[str]) -> list[str]:
    """The frame line a MetaflowException names (`in file F on line N`), if it names one."""
    if head.group("file") and head.group("line"):
        return [f'  File "{head.group("file")}", line {head.group("line")}']
    return []


def unmark(line: str) -> str:
    """A stack line Metaflow printed behind `>  ` (@timeout, @catch), as it was written."""
    return line[1:].removeprefix("  ") if line.startswith(">") else line


def _last_index(lines: list[str], wanted: Callable[[str], bool]) -> int | None:
    return next((i for i in range(len(lines) - 1, -1, -1) if wanted(lines[i])), None)


def user_frames(frame_lines: list[str], head: str, last: str) -> list[str]:
    """Traceback text keeping the user's frames, indented as Python does.

    Metaflow's own frames go, and so do the frames before its first one when the user's
    code runs after it: they are the script's entry (`Flow()` at the end of the file),
    which a @timeout's stack starts with, not where the step failed.
    """
    frames = _frames([line.strip() for line in frame_lines])
    ours = [METAFLOW_FRAME.match(frame[0]) is not None for frame in frames]
    first = ours.index(True) if True in ours else len(frames)
    if not any(not mine for mine in ours[first:]):
        first = 0  # nothing of the user's after Metaflow's frames: keep what came before
    out = [head]
    for frame, mine in list(zip(frames, ours))[first:]:
        if not mine:
            out += ["  " + frame[0], *("    " + line for line in frame[1:])]
    out.append(last)
    return out


def _frames(lines: list[str]) -> list[list[str]]:
    """Lines grouped by frame: each `File "..."` line with the lines that follow it."""
    frames: list[list[str]] = []
    for line in lines:
        if line.startswith('File "'):
            frames.append([line])
        elif frames and line:
            frames[-1].append(line)
    return frames


# -- the run -----------------------------------------------------------------------------


@dataclass
class BridgeArgs:
    """The bridge's command line, split into what it needs and what Metaflow gets."""

    file: str
    command: str
    metaflow_args: list[str]
    run_id: str
    origin_run_id: str | None = None


def parse_args(argv: list[str]) -> BridgeArgs:
    """`FILE [run|resume] ARGS`; `--run-id` is ours, everything else goes to Metaflow."""
    if not argv or argv[0].startswith("-"):
        raise UsageError("usage: python -m flowdeck.engines.metaflow_bridge FLOW_FILE run|resume "
                         "[options]  (give the flow file first)")
    file, rest = os.path.abspath(argv[0]), list(argv[1:])
    run_id = os.environ.get(RUN_ID_ENV) or new_run_id()
    if "--run-id" in rest:
        at = rest.index("--run-id")
        if at + 1 >= len(rest):
            raise UsageError("--run-id needs a value, e.g. --run-id 42.")
        run_id = rest[at + 1]
        del rest[at:at + 2]
    try:
        check_id("run id", run_id)
    except InvalidId as exc:
        raise UsageError(str(exc)) from None
    command = rest.pop(0) if rest and rest[0] in ("run", "resume") else "run"
    origin = option_value(rest, "--origin-run-id") or None
    return BridgeArgs(file, command, rest, run_id, origin)


def given_tags(args: list[str]) -> list[str]:
    """Every `--tag X` (or `--tag=X`) of Metaflow's command line, in order: the run's tags,
    which Flowdeck's client and History show too."""
    tags = []
    for i, arg in enumerate(args):
        if arg == "--tag" and i + 1 < len(args):
            tags.append(args[i + 1])
        elif arg.startswith("--tag="):
            tags.append(arg.split("=", 1)[1])
    return tags


def metaflow_user(env: dict[str, str]) -> str:
    """The user Metaflow names the run's (its `user:` tag) in environment `env`: Metaflow's
    order of variables, root never counting but from METAFLOW_USER."""
    for name in ("METAFLOW_USER", "SUDO_USER", "USERNAME", "USER"):
        value = env.get(name)
        if value and (value != "root" or name == "METAFLOW_USER"):
            return value
    return FALLBACK_USER


def metaflow_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: Metaflow refuses to run without a usable user name."""
    env = dict(os.environ if environ is None else environ)
    names = [env.get(k) for k in ("METAFLOW_USER", "USERNAME", "USER")]
    if not any(n and n != "root" for n in names):
        env["METAFLOW_USER"] = FALLBACK_USER
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


def given_params(flow: FlowInfo, args: list[str]) -> dict[str, list[str]]:
    """The texts given to each parameter (`--name value`, `--name=value`), by attribute."""
    by_option = {p.name.replace("_", "-"): p.attribute for p in flow.parameters}
    by_option.update({p.name: p.attribute for p in flow.parameters})
    given: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name in by_option:
                if not eq and i + 1 < len(args):
                    value = args[i + 1]
                    i += 1
                given.setdefault(by_option[name], []).append(value)
        i += 1
    return given


def param_records_of(flow: FlowInfo, args: list[str]) -> list[ParamRecord]:
    """A run's parameters as Flowdeck's engine records them: each value typed as the
    parameter converts it (`--alpha 2` of a float parameter is 2.0, not the text '2',
    beside a default recorded as a number), with the text that gives it back; a
    parameter not given has its literal default."""
    given = given_params(flow, args)
    records = []
    for param in flow.parameters:
        texts = given.get(param.attribute)
        if texts and param.multiple:  # every value, its texts as the record's line
            records.append(ParamRecord(param.name, param.attribute,
                                       [typed_value(param, t) for t in texts],
                                       multiple_text(texts), True))
        elif texts:
            records.append(ParamRecord(param.name, param.attribute, separated(
                typed_value(param, texts[-1]), param.separator), texts[-1]))
        elif param.has_default:
            record = default_record(param)
            records.append(dataclasses.replace(
                record, value=separated(record.value, param.separator)))
    return records


def typed_value(param: ParameterInfo, text: str) -> Any:
    """`text` as the parameter's built-in type converts it; the text itself for a string,
    the flow's own type, or a text the type refuses (Metaflow says why at its start)."""
    kind = KIND_OF_TYPE_NAME.get(param.type)
    if kind is None or kind == "str":
        return text
    try:
        return convert_text(kind, text)
    except ValueError:
        return text


def default_record(param: ParameterInfo) -> ParamRecord:
    """A parameter not given: its literal default, and the text that gives it (the
    engine's rule, `parameter_text.value_text`)."""
    value = param.default
    kind = KIND_OF_TYPE_NAME.get(param.type)
    if param.multiple:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        return ParamRecord(param.name, param.attribute, items, multiple_text(
            i if isinstance(i, str) else value_text(kind, None, i) for i in items), True)
    if isinstance(value, str):  # a JSONType's default is its text: typed as when given
        return ParamRecord(param.name, param.attribute, typed_value(param, value), value)
    return ParamRecord(param.name, param.attribute, value,
                       value_text(kind, param.separator, value))


@dataclass
class ResumeOrigin:
    """The run a resume continues, in both engines' terms."""

    run_id: str | None = None  # ours: what run.json's `origin_run_id` holds
    metaflow_run_id: str | None = None  # Metaflow's: what its `--origin-run-id` takes
    record: RunRecord | None = None  # the origin's run.json, when Flowdeck made the run
    named: bool = False  # given on the command line (else Metaflow picks it: not named to it)


def resume_origin(args: BridgeArgs, flow: FlowInfo, root: Path, cwd: str) -> ResumeOrigin:
    """Which run this resume continues: the one named, by our id (as the window names it)
    or by Metaflow's; unnamed, Metaflow picks it itself, in whichever datastore its
    config says. The run its local `latest_run` file names is then only a guess, kept
    when Flowdeck has a record of it (to record the origin and its parameters from the
    start), never named to Metaflow (naming it resumed another datastore's run, or none:
    "could not find run id"), and checked against the run Metaflow's "Cloning previously
    run task" lines name (`Bridge._origin_run_id`). `run_id` is ours only: a Metaflow id
    Flowdeck has no record of leaves it None (it was stored there, and the client could
    not open the origin it named)."""
    layout = RunLayout(root, flow.name)
    given = args.origin_run_id
    if given:
        record = read_run(layout, given).record
        if record is not None and record.metaflow_run_id:
            return ResumeOrigin(given, record.metaflow_run_id, record, named=True)
    guess = given or metaflow_latest_run(cwd, flow.name)
    ours = record_of_metaflow_run(layout, guess) if guess else None
    if given:
        return ResumeOrigin(ours.run_id if ours else None, given, ours, named=True)
    if ours is None:  # nothing of Flowdeck's to record: Metaflow's clone lines will say
        return ResumeOrigin()
    return ResumeOrigin(ours.run_id, guess, ours)


def metaflow_latest_run(cwd: str, flow: str) -> str | None:
    """The run Metaflow's `resume` picks when given none, as its local datastore says
    (`$METAFLOW_DATASTORE_SYSROOT_LOCAL/.metaflow`, else the first `.metaflow/` upward
    from `cwd`): a guess (its config may name another datastore; see `resume_origin`)."""
    sysroot = os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL")
    folder = Path(cwd).resolve()
    roots = [Path(sysroot) / ".metaflow"] if sysroot else \
        [c / ".metaflow" for c in (folder, *folder.parents) if (c / ".metaflow").is_dir()][:1]
    for datastore in roots:
        try:
            return (datastore / flow / "latest_run").read_text().strip() or None
        except OSError:
            return None
    return None


def record_of_metaflow_run(layout: RunLayout, metaflow_run_id: str) -> RunRecord | None:
    """Flowdeck's record of the bridge run that Metaflow knows as `metaflow_run_id`."""
    for entry in RunIndex(layout).runs():
        if entry.record is not None and entry.record.metaflow_run_id == metaflow_run_id:
            return entry.record
    return None


def translate_resume(args: BridgeArgs, flow: FlowInfo, root: Path, origin: ResumeOrigin
                     ) -> tuple[list[str], dict[str, int], dict[str, str]]:
    """Metaflow's resume arguments, and the foreach splits of the origin's tasks.

    The window names origins by Flowdeck run id; Metaflow needs its own id, which our
    run.json records; an unnamed origin is Metaflow's to pick (`resume_origin`). Metaflow
    resumes from one step, so of several changed steps the first in the graph's order is
    kept.
    """
    out, splits, ids = without_options(args.metaflow_args, ["--origin-run-id"]), {}, {}
    if origin.named and origin.metaflow_run_id:
        out += ["--origin-run-id", origin.metaflow_run_id]
    if origin.run_id and origin.record is not None and origin.metaflow_run_id:
        splits = origin_splits(RunLayout(root, flow.name).events(origin.run_id))
        ids = {origin.metaflow_run_id: origin.run_id}
    steps = [a for a in _positionals(out)]
    if len(steps) > 1:
        print(f"flowdeck: Metaflow resumes from one step; resuming from {steps[0]} "
              f"(also changed: {', '.join(steps[1:])}).", file=sys.stderr)
        for extra in steps[1:]:
            out.remove(extra)
    return out, splits, ids


def _positionals(args: list[str]) -> Iterable[str]:
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = "=" not in arg and arg not in ("--clone-only", "--reentrant")
            continue
        yield arg


def origin_splits(events_path: Path) -> dict[str, int]:
    """`step/task` -> foreach splits in an earlier bridge run, for tasks resume clones."""
    found: dict[str, int] = {}
    try:
        events = read_events(events_path)
    except OSError:
        return found
    for event in events:
        if event.get("type") == TASK_FINISHED and event.get("foreach_splits"):
            found[f"{event['step']}/{event['task_id']}"] = int(event["foreach_splits"])
    return found


class Bridge:
    """One Metaflow run: the child process, its output, the events and run.json."""

    def __init__(self, args: BridgeArgs, flow: FlowInfo, root: Path):
        self.args = args
        self.flow = flow
        self.root = root
        self.layout = RunLayout(root, flow.name)
        self.run_dir = self.layout.run_dir(args.run_id)
        self.started = time.time()
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None
        self.metaflow_run_id: str | None = None
        self.origin = (resume_origin(args, flow, root, os.getcwd())
                       if args.command == "resume" else ResumeOrigin())
        self.param_records = self._initial_params()
        self.params = {p.attr: p.value for p in self.param_records}
        max_workers = option_value(args.metaflow_args, "--max-workers")
        self.max_workers = int(max_workers) if max_workers and max_workers.isdigit() \
            else DEFAULT_MAX_WORKERS
        self.own_group = os.name == "posix" and os.getpgrp() == os.getpid()
        self.events: EventWriter | None = None
        self.parser = MetaflowLogParser()

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        mf_args, splits, ids = (translate_resume(self.args, self.flow, self.root, self.origin)
                                if self.args.command == "resume"
                                else (self.args.metaflow_args, {}, {}))
        self.parser = MetaflowLogParser(splits, ids)
        try:
            self.run_dir.mkdir(parents=True)
        except FileExistsError:
            raise UsageError(f"{self.flow.name} already has a run {self.args.run_id} in "
                             f"{self.run_dir.parent}; choose another run id.") from None
        self.events = EventWriter(self.run_dir / "events.jsonl", self.args.run_id)
        self._write_run_json("running")
        self._emit(RUN_STARTED, flow=self.flow.name, file=self.flow.file, params=self.params,
                   graph=self.flow.graph.as_dict(), step_hashes=self.flow.graph.step_hashes(),
                   origin_run_id=self.origin.run_id, pid=os.getpid(),
                   max_workers=self.max_workers, engine="metaflow", run_dir=str(self.run_dir))
        restore = self._install_signals()
        try:
            code = self._follow(self._start_child(mf_args))
        finally:
            restore()
        return self._finish(code)

    def _start_child(self, mf_args: list[str]) -> subprocess.Popen[bytes]:
        top, command_args = split_top_level(
            mf_args, parameter_flags(p.name for p in self.flow.parameters))
        command = [sys.executable, self.flow.file, *top, self.args.command, *command_args,
                   "--run-id-file", str(self.run_dir / "metaflow-run-id")]
        extra: dict[str, Any] = {} if self.own_group or os.name != "posix" \
            else {"process_group": 0}
        # In our cwd (the launcher chose it). Metaflow prints its ordinary progress
        # ("Validating your flow...") on stderr: one stream keeps it from reading as an
        # error; failures are reported by the events and the bridge's own summary.
        self.child = subprocess.Popen(command, env=metaflow_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      **extra)
        return self.child

    def _follow(self, child: subprocess.Popen[bytes]) -> int:
        """Pass every stdout line through unchanged and emit the events it carries."""
        assert child.stdout is not None
        out = sys.stdout.buffer
        for raw in child.stdout:
            out.write(raw)
            out.flush()
            for line in split_records(raw.decode("utf-8", "replace").rstrip("\r\n")):
                parsed = self.parser.feed(line)
                for event in parsed.events:
                    self._dispatch(event)
                if parsed.task_id is not None and parsed.text is not None:
                    self._task_log(parsed.task_id, parsed.text)
        return child.wait()

    def _task_log(self, task_id: str, text: str) -> None:
        """Append a task's line to its attempt's log, so a step's own output can be shown."""
        track = self.parser.tasks.get(task_id)
        if track is None:
            return
        path = self.run_dir / task_logs(track.step, task_id, track.attempt)["stdout"]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8", errors="surrogateescape") as handle:
                handle.write(text + "\n")
        except OSError as exc:  # a full disk must not stop the run; the stdout log has it all
            print(f"flowdeck: cannot write {path}: {exc}", file=sys.stderr)

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.pop("type")
        if kind == "metaflow_run":
            self.metaflow_run_id = event["metaflow_run_id"]
            self._write_run_json("running")
            self._emit(ENGINE_RUN_ID, engine_run_id=self.metaflow_run_id)
            return
        self._emit(kind, **event)

    def _finish(self, child_code: int) -> int:
        for event in self.parser.finish(cancelled=self.stopping):
            self._dispatch(event)
        self._reap_group()
        self.metaflow_run_id = self.metaflow_run_id or self._run_id_file()
        if self.stopping:
            status, code = "cancelled", 128 + signal.SIGINT
        elif child_code == 0 and self.metaflow_run_id:
            status, code = "succeeded", 0
            self._account_for_unseen_tasks()
        else:
            status, code = "failed", 1
            if child_code == 0:
                self._never_started()
        self._write_run_json(status, exit_code=code)
        error = self.parser.first_error if status == "failed" else None
        self._emit(RUN_FINISHED, status=status, duration=round(time.time() - self.started, 6),
                   error=error, exit_code=code)
        assert self.events is not None
        self.events.close()
        return code

    def _account_for_unseen_tasks(self) -> None:
        """Tasks Metaflow recorded whose lines we never read as such get their events.

        Parallel clones on resume write their "Cloning previously run task" lines at
        the same moment, and a line can be lost in the interleaving; Metaflow's own
        local metadata (`.metaflow/<Flow>/<run>/<step>/<task>/`) lists every task of
        the finished run, so a succeeded run never leaves a step looking pending.
        """
        assert self.metaflow_run_id is not None
        run_dir = metaflow_run_dir(os.getcwd(), self.flow.name, self.metaflow_run_id)
        if run_dir is None:
            return
        status = "reused" if self.args.command == "resume" else "succeeded"
        for step, task_id in metaflow_tasks(run_dir):
            if step in self.flow.graph.nodes and task_id not in self.parser.tasks:
                self.parser.tasks[task_id] = TaskTrack(step, task_id, running=False)
                self._emit(TASK_STARTED, step=step, task_id=task_id, attempt=0, pid=None,
                           reused=status == "reused", foreach=None, input_paths=[], logs=None)
                self._emit(TASK_FINISHED, step=step, task_id=task_id, attempt=0, status=status,
                           duration=0.0, error=None, will_retry=False, artifacts=[])

    def _never_started(self) -> None:
        """Metaflow exited 0 without a run: the file does not start its flow when run."""
        name = self.flow.name
        print(f"flowdeck: {os.path.basename(self.flow.file)} ended without running {name}. "
              f"Make the file start the flow: end it with "
              f"`if __name__ == \"__main__\": {name}()`.", file=sys.stderr)

    def _run_id_file(self) -> str | None:
        try:
            return (self.run_dir / "metaflow-run-id").read_text().strip() or None
        except OSError:
            return None

    # -- stopping -------------------------------------------------------------------------

    def _install_signals(self) -> Any:
        if os.name != "posix":
            return lambda: None
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return restore

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """First stop request: escalate SIGINT -> SIGTERM -> SIGKILL on Metaflow's processes."""
        if self.stopping:
            return
        self.stopping = True
        # A SIGINT to our group (the window's stop, a terminal's Ctrl+C) already reached
        # Metaflow; a second one would cut its clean-up short.
        already = signum == signal.SIGINT and self.own_group
        threading.Thread(target=self._escalate, args=(already,), name="flowdeck-stop",
                         daemon=True).start()

    def _escalate(self, interrupted: bool) -> None:
        deadline = time.monotonic() + STOP_GRACE
        while self.child is None and time.monotonic() < deadline:  # stop while starting
            time.sleep(0.01)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if not (interrupted and sig == signal.SIGINT):
                self._signal_metaflow(sig)
            child = self.child
            if child is None:
                return
            try:
                child.wait(STOP_GRACE)
                return
            except subprocess.TimeoutExpired:
                continue

    def _signal_metaflow(self, sig: int) -> None:
        """Signal Metaflow and its tasks, but never this process (it must write the end)."""
        if self.child is None:
            return
        if not self.own_group:
            _killpg(self.child.pid, sig)
            return
        for pid in group_members(os.getpgrp()):
            _kill(pid, sig)

    def _reap_group(self) -> None:
        """Nothing of the run may outlive it: kill any task Metaflow left behind."""
        if self.child is None or os.name != "posix":
            return
        if not self.own_group:
            _killpg(self.child.pid, signal.SIGKILL)
            return
        for pid in group_members(os.getpgrp()):
            _kill(pid, signal.SIGKILL)

    # -- records --------------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> None:
        assert self.events is not None
        self.events.emit(kind, **fields)

    def _write_run_json(self, status: str, exit_code: int | None = None) -> None:
        """The same run record as our engine's, so history lists Metaflow runs; plus Metaflow's id."""
        graph = self.flow.graph
        origin_run_id = self._origin_run_id()  # first: learning it may bring its parameters
        RunRecord(
            flow=self.flow.name, run_id=self.args.run_id, file=self.flow.file, status=status,
            start=self.started, end=time.time() if status != "running" else None,
            pid=os.getpid(), process_start=own_process_start(), host=hostname(),
            user=current_user(),
            engine="metaflow", params=self.param_records,
            step_hashes=graph.step_hashes(), outside_hash=graph.outside_hash,
            origin_run_id=origin_run_id, max_workers=self.max_workers,
            exit_code=exit_code, metaflow_run_id=self.metaflow_run_id,
            tags=given_tags(self.args.metaflow_args) or None,
            system_tags=[f"user:{metaflow_user(metaflow_env())}"],
        ).write(self.layout.run_json(self.args.run_id))

    def _origin_run_id(self) -> str | None:
        """Our id of the run this resume continues: the one named; else the one Metaflow
        picked, once its clone lines name it (the guess of `resume_origin` corrected, and
        forgotten when Flowdeck has no record of the run Metaflow took). Its parameters
        come with it (Metaflow reuses the origin's values)."""
        picked = self.parser.origin_runs[0] if self.parser.origin_runs else None
        if self.origin.named or picked is None or picked == self.origin.metaflow_run_id:
            return self.origin.run_id
        record = record_of_metaflow_run(RunLayout(self.root, self.flow.name), picked)
        self.origin = ResumeOrigin(record.run_id if record else None, picked, record)
        self.param_records = list(record.params) if record is not None else []
        self.params = {p.attr: p.value for p in self.param_records}
        return self.origin.run_id

    def _initial_params(self) -> list[ParamRecord]:
        """The parameters the run will have. A resume takes no parameters: Metaflow reuses
        the origin's values, so they come from the origin's record (its command line would
        give the defaults: a resume of `--alpha 2` was recorded with alpha 0.5); none when
        Flowdeck has no record of the origin."""
        if self.args.command != "resume":
            return param_records_of(self.flow, self.args.metaflow_args)
        return list(self.origin.record.params) if self.origin.record is not None else []


def group_members(pgid: int) -> list[int]:
    """Our descendants in process group `pgid` (from `ps`, POSIX; no /proc needed).

    Only descendants: when the bridge leads a shell pipeline's group
    (`bridge ... | tee log`), the other commands of the pipeline are not ours to kill.
    """
    try:
        out = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,pgid="], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    children: dict[int, list[int]] = {}
    in_group: set[int] = set()
    for row in out.splitlines():
        parts = row.split()
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            pid, ppid = int(parts[0]), int(parts[1])
            children.setdefault(ppid, []).append(pid)
            if int(parts[2]) == pgid:
                in_group.add(pid)
    found, stack = [], list(children.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        if pid in in_group:
            found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def load_flow(file: str) -> FlowInfo:
    """The flow `python FILE run` starts, which Metaflow runs, from static analysis (the
    file is not imported here). `pick_flow` decides it, as for every other command: the
    last class in the file was taken before, so a file starting its first flow had that
    run recorded under its second, and the second's lint errors refused the run."""
    problem = flow_file_problem(file, "a Metaflow flow file")
    if problem:
        raise UsageError(problem)
    analysis = analyze_file(file)
    if not analysis.flows:
        raise UsageError(f"{file} defines no flow: add a class deriving from metaflow's "
                         "FlowSpec.")
    flow, problem = pick_flow(analysis.flows, None, file)
    if flow is None:
        raise UsageError(problem)
    if not flow.ok:
        first = flow.diagnostics[0]
        raise UsageError(f"{file}:{first.line}: {first.message}")
    return flow


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
        flow = load_flow(args.file)
        return Bridge(args, flow, default_root(args.file)).run()
    except UsageError as exc:
        print(f"flowdeck: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
