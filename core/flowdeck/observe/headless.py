"""`flowdeck run FILE` and `flowdeck resume FILE`: a run without a window, drawn live.

For machines without a screen. The flow runs exactly as the window runs it: the
launch comes from the engine seam (`engines.launching`: the folder's interpreter,
Metaflow flows through the bridge), we choose the run id, and follow its
`events.jsonl` through the same run fold as the window. The flow's own output is
shown as it comes (as `python flow.py` would show it); on a terminal a live table
of the steps (status, foreach k/N, duration) stays under it, in colour. The whole
output is also kept in the store's `logs/` folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO

from flowdeck.analysis.diagnostics import flow_file_problem
from flowdeck.analysis.flowfile import analyze_file, no_flow_problem, pick_flow
from flowdeck.engine.terminal import (
    CommandHint,
    clean_line,
    discard_output,
    nothing_to_reuse,
    print_diagnostics,
    said_error,
    shown_name,
    shown_text,
    tool_hint,
)
from flowdeck.engines import processes
from flowdeck.engines.base import LaunchSpec
from flowdeck.engines.launching import ENGINES, LaunchError, build_launch
from flowdeck.observe.fold import RunFold
from flowdeck.store.events import EventReader, RunFinished, parse_event
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RUN_ID_ENV, InvalidId, RunLayout
from flowdeck.store.status import CRASHED, RUNNING, TASK_DONE

REFRESH_S = 0.1
SYMBOLS = {"pending": "·", "running": "▶", "succeeded": "✔", "failed": "✖",
           "cancelled": "■", "reused": "↺", "skipped": "–",  # skipped: a switch's other case
           "not run": "–"}  # the run ended before it
COLOURS = {"running": "33", "succeeded": "32", "failed": "31", "cancelled": "35",
           "reused": "36"}  # ANSI: yellow, green, red, magenta, cyan


def build_parser(command: str) -> argparse.ArgumentParser:
    """`flowdeck run` / `flowdeck resume`: our options; anything else goes to the flow."""
    what = ("Run a flow without a window, with its output and a live table of its steps. "
            "It runs in the current folder, as `python FILE run` would."
            if command == "run" else
            "Resume a flow's latest (or chosen) run from its failed (or named) steps, "
            "reusing every task that finished.")
    parser = argparse.ArgumentParser(
        prog=f"flowdeck {command}", description=what,
        epilog="Other options are passed to the flow: its parameters (`--name value`; "
        "`python FILE --help` lists them) and the flow's own options "
        "(`--max-workers N`, `--run-id ID`, `--quiet`).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)  # `--fl` is the flow's own option, never short for `--flow`
    parser.add_argument("file", metavar="FILE", help="the flow's .py file")
    if command == "resume":
        parser.add_argument("steps", nargs="*", metavar="STEP", default=[],  # (optional:
                            # without a default argparse named it among the required ones)
                            help="steps to rerun with everything after them "
                                 "(default: the steps that failed)")
        parser.add_argument("--origin-run-id", metavar="ID",
                            help="the run to resume (default: the latest)")
    parser.add_argument("--flow", metavar="NAME", help="which flow, when the file has several")
    parser.add_argument("--engine", choices=sorted(ENGINES),
                        help="run with this engine (default: the one the file imports; "
                        "for resume, the one that made the run resumed). `--engine "
                        "flowdeck` runs a file written for Metaflow unchanged on "
                        "Flowdeck's engine")
    return parser


def misplaced_option(command: str, argv: list[str]) -> str | None:
    """What is wrong with an option before FILE that is not `flowdeck run`'s own: a
    mistyped one of ours, or the flow's, which goes after FILE (argparse took its value
    for the file and said "no such file"). None when every option before FILE is ours."""
    import difflib
    ours = {"--flow": 1, "--engine": 1, "-h": 0, "--help": 0}
    if command == "resume":
        ours["--origin-run-id"] = 1
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        name, has_value, _ = argv[i].partition("=")
        if name not in ours:
            close = difflib.get_close_matches(name, list(ours), n=1, cutoff=0.75)
            if close:
                return f"flowdeck {command}: no option {name} (did you mean {close[0]}?)."
            return (f"flowdeck {command}: {name} comes before the flow file. The flow's own "
                    f"options go after it: `flowdeck {command} FILE {name} ...`.")
        i += 1 + (0 if has_value else ours[name])
    return None


def main(command: str, argv: list[str], out: TextIO = sys.stdout) -> int:
    """The `flowdeck run|resume` command line."""
    problem = misplaced_option(command, argv)
    if problem:
        print(shown_name(f"error: {problem}"), file=sys.stderr)
        return 2
    args, rest = build_parser(command).parse_known_args(argv)
    flow_args = [command, *rest]
    if command == "resume":
        flow_args = ["resume", *args.steps, *rest]
        if args.origin_run_id:
            flow_args += ["--origin-run-id", args.origin_run_id]
    engine = args.engine
    if command == "resume" and engine is None:
        engine = resumed_engine(args.file, args.flow, args.origin_run_id)
    return run_headless(args.file, flow_args, out, flow_name=args.flow, engine=engine,
                        tool_options=_given_tool_options(args))


def _given_tool_options(args: argparse.Namespace) -> list[str]:
    """`flowdeck run|resume`'s own options as given (`--flow NAME`, `--engine NAME`):
    the hints repeat them."""
    return [word for flag, value in (("--flow", args.flow), ("--engine", args.engine))
            if value for word in (flag, value)]


def resumed_engine(file: str, flow_name: str | None, origin_run_id: str | None) -> str | None:
    """The engine that made the run a resume continues (the named one, else the latest
    that `run` started): a Metaflow file run with `--engine flowdeck` resumes on
    Flowdeck's engine. None when there is no such run to ask (the resume itself then says
    what is wrong)."""
    path = Path(file).resolve()
    if not path.is_file():
        return None
    flow, _problem = pick_flow(analyze_file(path).flows, flow_name, str(path))
    if flow is None:
        return None
    index = RunIndex(RunLayout.for_file(path, flow.name))
    try:
        entry = index.read(origin_run_id) if origin_run_id else index.resume_origin()
    except (InvalidId, OSError):
        return None
    record = entry.record if entry is not None else None
    return record.engine if record is not None and record.engine in ENGINES else None


def run_headless(file: str, flow_args: list[str], out: TextIO = sys.stdout,
                 flow_name: str | None = None, engine: str | None = None,
                 tool_options: list[str] | None = None) -> int:
    """Run FILE with the flow command line FLOW_ARGS (`run ...`, `resume ...`), drawn live.
    `tool_options`: this command's own options as given, which its hints repeat."""
    path = Path(file).resolve()
    problem = flow_file_problem(file)
    if problem:
        print(shown_name(f"error: {problem}"), file=sys.stderr)
        return 2
    analysis = analyze_file(path)
    flow, problem = pick_flow(analysis.flows, flow_name, str(path))
    if flow is None and not analysis.flows and analysis.diagnostics:
        print_diagnostics(analysis.diagnostics)
        print(shown_name(f"error: {no_flow_problem(analysis, str(path))}"), file=sys.stderr)
        return 1
    if flow is None:
        print(shown_name(f"error: {problem}"), file=sys.stderr)
        return 2
    try:
        spec = build_launch(str(path), flow.name, engine or flow.engine, flow_args,
                            imports=flow.engine, info=flow,
                            cwd=os.getcwd())  # as `python FILE` here
    except LaunchError as exc:
        print(shown_text(f"error: {exc}"), file=sys.stderr)  # may span lines
        return 2
    log_path = RunLayout(Path(spec.root), flow.name).headless_log(spec.run_id)
    try:
        log = _open_log(log_path)
    except OSError as exc:  # a read-only store, a full disk or no inode left
        from flowdeck.engine.runtime import start_refused  # the engine's words, as `python FILE`
        refused = start_refused(spec.run_id, flow.name, exc, log_path.parent)
        print(shown_text(f"error: {refused}"), file=sys.stderr)  # may span lines
        return refused.exit_code
    with log:
        child = subprocess.Popen(spec.argv, cwd=spec.cwd, env={**os.environ, **spec.env},
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                 preexec_fn=_stop_with(os.getpid(), spec.stop_signal))
        hint = tool_hint(str(path), flow_args, tool_options or [],
                         own_engine=spec.engine == "flowdeck")
        return Follower(child, spec, log_path, out, RunFold(flow.graph.as_dict()),
                        hint).follow()


def _open_log(path: Path) -> BinaryIO:
    """The run's log, where its output is kept; an OSError when the store refuses it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "wb")  # noqa: SIM115 (closed by run_headless)


def _stop_with(parent: int, stop_signal: int) -> Callable[[], None]:
    """In the run's process, before it starts: get the engine's stop signal when this
    `flowdeck run` dies, however it dies (SIGKILL, a closed terminal's SIGHUP).

    Before, a killed `flowdeck run` left its run going unseen, to its end (found by
    reliability/bad_inputs.py, whose timeout killed one); now the run cancels itself
    as on Ctrl+C, tasks' cleanup included. (This process starts no threads, so a
    preexec function is safe here.)
    """
    return lambda: processes.die_with_parent(parent, stop_signal)


#: How long the run gets to record its end after a second stop request forced its tasks
#: (its first request's grace, `LaunchSpec.stop_grace_s`, may be all but spent by then):
#: the 2 s the launchers' grace leaves beyond the tasks' own (engines.base).
FORCED_RECORD_S = 2.0
#: How often a stop waiting out the engine's grace looks for a second Ctrl+C.
STOP_POLL_S = 0.05


class StopRequests:
    """Ctrl+C and SIGTERM while a run is followed: their handlers count them, and `follow`
    acts on them where it looks. They used to raise, wherever the signal landed: a second
    Ctrl+C arriving between two statements of the stop itself escaped it, and the run's
    processes outlived `flowdeck run` (seen once in CI, under load).

    Signals of one burst are one request (`processes.StopBurst`, the rule the orchestrator
    applies too): the first stops the run, a second forces its tasks, a third kills it."""

    def __init__(self) -> None:
        self.burst = processes.StopBurst()
        self.first = 0  # the signal of the first (its exit status is 128 + it)

    @property
    def count(self) -> int:
        """Stop requests so far (a burst of signals counts once)."""
        return self.burst.count

    def on_sigint(self, signum: int, frame: object) -> None:
        self._request(signal.SIGINT)

    def on_sigterm(self, signum: int, frame: object) -> None:
        self._request(signal.SIGTERM)

    def _request(self, signum: int) -> None:
        if self.burst.request():
            self.first = self.first or signum

    def install(self) -> Callable[[], None]:
        """Take SIGINT and SIGTERM; returns what puts the previous handlers back. Only the
        main thread may (elsewhere Python's own handling stays)."""
        try:
            before = [(sig, signal.signal(sig, handler)) for sig, handler in
                      ((signal.SIGINT, self.on_sigint), (signal.SIGTERM, self.on_sigterm))]
        except ValueError:
            return lambda: None

        def restore() -> None:
            for sig, handler in before:
                signal.signal(sig, handler)
        return restore


class Follower:
    """Shows one run as it happens: the flow's output, and on a terminal the live table."""

    def __init__(self, child: subprocess.Popen[bytes], spec: LaunchSpec, log_path: Path,
                 out: TextIO, fold: RunFold, hint: CommandHint | None = None):
        self.child, self.spec, self.log_path, self.out, self.fold = (
            child, spec, log_path, out, fold)
        #: How the summary says to resume or rerun the run (its file alone by default).
        self.hint = hint or CommandHint(spec.file, tool=())
        self.events = EventReader(spec.events_path)
        self.tty = out.isatty()
        self.out_lost = False  # its output failed (a full disk, a reader gone): shown no more
        self.drawn = 0
        self.shown_bytes = 0
        self.started = time.time()
        self.forced = False  # a second stop request went to the run (`_stop`)
        self.killed = False  # the run's processes were KILLed before they ended (`_stop`)
        fold.run_id = spec.run_id

    def follow(self) -> int:
        """Show the run to its end; its exit code, or 130 (Ctrl+C) / 143 (SIGTERM) when this
        command was stopped and the run cancelled, as a shell expects of a stopped command.

        SIGTERM stops the run as Ctrl+C does, and the run's last lines are still shown
        (before, the default handler ended this process at once and the run cancelled
        itself unseen). A stop request never interrupts what this command does: a further
        one during the clean-up is counted and changes nothing."""
        stops = StopRequests()
        restore = stops.install()
        try:
            code = self._loop(stops)
            if code is None:
                code = self._stop(stops)
            stopped_by = stops.first  # one during the clean-up below changes nothing
            self._end_leftovers()  # nothing of the run may outlive it, however it ended
            self._tick(final=True)
            if self.fold.status == RUNNING:  # it never recorded its end: say so, not
                self.fold.mark_ended(CRASHED, time.time())  # "cancelled" (the record says
                self._draw()  # running; the index reads that as crashed on this host)
            if stopped_by and code != 0:
                code = 128 + stopped_by
            self._summary(code)
        finally:
            restore()
        return code

    def _loop(self, stops: StopRequests) -> int | None:
        """Follow until the run ends (its exit code) or a stop is asked for (None)."""
        while True:
            code = self.child.poll()
            self._tick(final=code is not None)
            if code is not None:
                return code
            if stops.count:
                return None
            time.sleep(REFRESH_S)

    def _stop(self, stops: StopRequests) -> int:
        """The engine's own stop to the run's process group (the run is in a session of its
        own, so the terminal's Ctrl+C reaches it only through here, once). A second request
        goes to the run the same way: the engine then stops waiting for its tasks and still
        records the run's end (KILLing it there left its record "running" while this said
        "cancelled"). After the engine's grace, or at a third request, KILL as the window
        does (`_kill`); `follow` then says that the run did not record its end."""
        processes.signal_group_quietly(self.child.pid, self.spec.stop_signal)
        deadline = time.monotonic() + self.spec.stop_grace_s
        while stops.count < 3:
            if stops.count == 2 and not self.forced:
                self.forced = True
                processes.signal_group_quietly(self.child.pid, self.spec.stop_signal)
                deadline = max(deadline, time.monotonic() + FORCED_RECORD_S)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                return self.child.wait(min(STOP_POLL_S, left))
            except subprocess.TimeoutExpired:
                continue
        self.killed = True
        return self._kill()

    def _kill(self) -> int:
        """KILL the run's process group, reap it, then every process of the run still there.

        Before, only the run's process was killed: its workers died with it, and what they
        had started (a child in a new session, a step that ignores SIGTERM) ran on.
        """
        processes.signal_group_quietly(self.child.pid, signal.SIGKILL)
        code = self.child.wait()
        self._end_leftovers()
        return code

    def _end_leftovers(self) -> None:
        """KILL what is left of the run: its session, and every process carrying its id."""
        leftovers = processes.run_leftovers(self.child.pid, (RUN_ID_ENV, self.spec.run_id))
        stuck = processes.kill_all(leftovers, spare=set())  # waits until they are gone
        if stuck:
            print(f"Processes {', '.join(map(str, stuck))} of the run did not end after "
                  "SIGKILL (stuck in the kernel); end them by hand.", file=sys.stderr)

    def _tick(self, final: bool = False) -> None:
        text = self._new_output()
        lines: list[str] = []
        for raw in self.events.read():
            event = parse_event(raw)
            if event is not None:
                self.fold.apply(event)
                if not self.tty:
                    lines.append(_event_line(event))
        if self.tty:
            self._clear_table()
            self._show(text)
            self._draw()
        else:
            self._show(text + "".join(lines))

    def _show(self, text: str) -> None:
        """`text` to the output, at once. Once the output fails (`> /dev/full`, `| head`
        whose reader has what it wanted), the run goes on unseen to its end, kept in its
        log, as under `python FILE run` (its output errors are ignored too). Before, the
        error escaped here: a traceback, and the run cancelled or never started."""
        if self.out_lost:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):
            self.out_lost = True
            self.tty = False  # no table to redraw either
            discard_output(self.out)

    def _new_output(self) -> str:
        """What the flow printed since the last tick (whole lines only while it runs)."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self.shown_bytes)
                data = handle.read()
        except OSError:
            return ""
        if self.child.poll() is None:
            data = data[:data.rfind(b"\n") + 1]
        self.shown_bytes += len(data)
        # Metaflow's engine passes a step's output through raw (Flowdeck's cleaned it
        # already, and cleaning is idempotent): its escapes are shown, never obeyed.
        return "\n".join(clean_line(line) for line in data.split(b"\n"))

    def _clear_table(self) -> None:
        if self.drawn:
            self._show(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _draw(self) -> None:
        if not self.tty:
            return
        self._clear_table()
        lines = progress_lines(self.fold, time.time(), self.started, colour=True)
        self._show("".join(line + "\n" for line in lines))
        self.drawn = len(lines)

    def _summary(self, code: int) -> None:
        if code == 0:
            return
        error = self.fold.error or {}
        failed = self.fold.failed_task()
        verdict = {"pending": "did not start", "cancelled": "was cancelled"}.get(
            self.fold.status, self.fold.status)
        lines = ["", f"The run {verdict} (exit code {code})."]
        if self.fold.status == CRASHED:
            lines[-1] = unrecorded_end(code, self.killed)
        if failed is not None and failed.error:  # the step's words: never obeyed by the terminal
            lines.append(shown_text(f"{failed.step}/{failed.task_id}: "
                                    f"{said_error(failed.error, '')}".rstrip(": ")))
        elif error.get("message"):
            lines.append(shown_text(str(error["message"])))
        elif self.fold.status == "pending" and _no_room(self.log_path.parent):
            # The flow's own "disk full" went to the log, on the disk that is full; say it
            # here (found by reliability/disk_full.py: only "The run pending" was shown).
            lines.append(f"disk full: {self.log_path.parent}. The run could not start, and "
                         "its output could not be kept. Free space on that disk, or set "
                         "FLOWDECK_HOME to a folder on another disk, then run the flow again.")
        elif self.fold.status == "pending":  # the file failed before its flow began: why,
            said = self._start_failure(code)  # as the window says it, for a terminal
            if said:
                lines.append(shown_text(said))
        finished = any(t.status in TASK_DONE for t in self.fold.tasks.values())
        ended_badly = self.fold.status in ("failed", "crashed")
        if (failed is not None and nothing_to_reuse(failed.step)) or \
                (not finished and ended_badly):
            # (no task finished: a resume has nothing of this run to reuse; Metaflow's would
            # take its latest run, another one, and say it succeeded)
            lines.append("Run it again once fixed (with other parameter values if they were "
                         "the cause; nothing finished to reuse): "
                         + shown_name(self.hint.command("run", rerun=True)))
        elif not finished:  # a run that did not start said why; one cancelled before any
            pass  # task finished has nothing to resume either
        elif self.fold.run_id and self.fold.status in ("failed", "cancelled", "crashed"):
            lines.append("Resume it, reusing what finished: "
                         + shown_name(self.hint.command("resume")))
        lines.append(shown_name(f"Full output: {self.log_path}"))
        self._show("\n".join(lines) + "\n")


    def _start_failure(self, code: int) -> str:
        """The window's diagnosis of a flow process that ended before its run began (a
        missing package: the pip command for the flow's interpreter), from the log's end;
        without a traceback only its hint on the options (the output above says the rest:
        the diagnosis repeated it), named for a terminal."""
        from flowdeck.engines.startup import IN_COMMAND, diagnose_start, option_hint
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(max(0, self.log_path.stat().st_size - START_TAIL_BYTES))
                tail = handle.read().decode("utf-8", "replace")
        except OSError:
            tail = ""
        failure = diagnose_start(tail, code, str(self.spec.file), self.spec.flow,
                                 self.spec.program, where=IN_COMMAND)
        return failure.summary if failure.error_type else option_hint(tail, IN_COMMAND).strip()


def unrecorded_end(code: int, killed: bool) -> str:
    """The verdict on a run whose process ended without recording its end: its record still
    says "running", which readers on this machine take for "crashed" (never "cancelled":
    nothing recorded a cancel)."""
    how = ("was killed (it did not end within its stop's grace, or Ctrl+C came a third "
           "time)" if killed else "ended")
    return (f"The run {how} before it recorded its end (exit code {code}): its record still "
            "says running, which this machine reads as crashed; its last tasks may have no "
            "record.")


#: How much of a run's log end is read to say why it did not start.
START_TAIL_BYTES = 20_000


def _no_room(folder: Path) -> bool:
    """True when the disk holding `folder` has (next to) no space left for a run's records."""
    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


def progress_lines(fold: RunFold, now: float, started: float, colour: bool = False) -> list[str]:
    """The live table: a header, then one line per step."""
    out = [f"run {fold.run_id or '…'}  {fold.status}  {now - started:6.1f} s"]
    for name, step in fold.steps.items():
        count = f"{step.done}/{step.total}" if step.total > 1 else ""
        span = f"{step.duration:6.1f} s" if step.duration is not None else ""
        symbol = SYMBOLS.get(step.status, "?")
        if colour and step.status in COLOURS:
            symbol = f"\x1b[{COLOURS[step.status]}m{symbol}\x1b[0m"
        out.append(f"  {symbol} {shown_name(name):<24} {step.status:<10} {count:>11} {span}")
    return out


def _event_line(event: object) -> str:
    """Without a terminal the flow's own output says what each task does; add the verdict."""
    if isinstance(event, RunFinished):
        return f"run {event.status} in {event.duration:.2f} s\n"
    return ""
