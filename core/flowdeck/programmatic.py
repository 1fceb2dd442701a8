"""Metaflow's programmatic API, `Runner`: run or resume a flow file from Python (a
notebook, a script, a test) and get its `Run` back.

    with Runner("train.py").run(alpha=3, tags=["nightly"]) as running:
        print(running.status, running.run.data.score)

Each run is its own process, `python -m flowdeck.engines.as_metaflow FILE run ...`, on
Flowdeck's engine, whether the file imports `flowdeck` or `metaflow` (the entry aliases
the latter). Keyword arguments become options as Metaflow's Runner turns them: `alpha=3`
is `--alpha 3`, `max_workers=4` is `--max-workers 4`, `tags=["a", "b"]` is `--tag a --tag
b`, `True` a bare flag; `Runner(file, **options)` gives the options that go before the
command (`quiet=True`, `decospecs=["retry"]`, `with_=["retry"]`).

`run` and `resume` return when the run has ended; `async_run` and `async_resume` as soon
as it has started (its run id known), with `await running.wait()` to follow it, or
`async for position, line in running.stream_log("stdout")` to read its lines as they come.
Metaflow's deployers (`Deployer`) and notebook runners (`NBRunner`) are not offered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from flowdeck.analysis.diagnostics import Diagnostic, UsageError, flow_file_problem

#: How long an async run may take to write its run id before it counts as failed to start.
START_TIMEOUT_S = 60.0


class FlowFileNotFound(UsageError, FileNotFoundError):
    """The Runner's flow file does not exist. A FileNotFoundError, as Metaflow's Runner
    raises, so `except FileNotFoundError` written for it still catches it."""


class FlowFileSyntaxError(UsageError, SyntaxError):
    """The Runner's flow file is not valid Python. A SyntaxError, as Metaflow's Runner
    raises (it imports the file), with its file, line and offset, so a traceback shows the
    line; its message is the diagnostics, `file:line:column: error: ...`."""

    def __str__(self) -> str:
        return str(self.msg)  # SyntaxError's would add "(file, line N)" a second time


class ExecutingRun:
    """One run started by a `Runner`: its process, its output and, once it has an id, its
    client `Run`. A context manager: leaving it stops a run still going."""

    def __init__(self, runner: Runner, process: subprocess.Popen[bytes], run_id_file: Path,
                 own_id_file: bool, show_output: bool):
        self.runner = runner
        self.process = process
        self._run_id_file = run_id_file
        self._own_id_file = own_id_file  # False: the user's `run_id_file=`, theirs to keep
        self._out = _Captured(process.stdout, sys.stdout if show_output else None)
        self._err = _Captured(process.stderr, sys.stderr if show_output else None)
        self._run: Any = None
        self._run_id: str | None = None
        self._timed_out = False

    def __enter__(self) -> ExecutingRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def status(self) -> str:
        """"running", "successful", "failed", or "timeout" once `wait(timeout)` stopped it
        (Metaflow's words)."""
        if self._timed_out:
            return "timeout"
        code = self.returncode
        return "running" if code is None else ("successful" if code == 0 else "failed")

    @property
    def run_id(self) -> str | None:
        """The run's id, once its process has written it (before its run can be read)."""
        self._run_id = self._run_id or self._learn_run_id()
        return self._run_id

    @property
    def run(self) -> Any:
        """The client `Run` of this run (None until the run has an id)."""
        if self._run is None:
            self._run_id = self._run_id or self._learn_run_id()
            run_id = self._run_id
            if run_id is not None:
                from flowdeck.client import ClientError, Run
                try:
                    self._run = Run(f"{self.runner.flow_name}/{run_id}",
                                    root=str(self.runner.store_root), _namespace_check=False)
                except ClientError:  # its id is chosen before its folder is made
                    return None
        return self._run

    @property
    def stdout(self) -> str:
        """What the run's process printed on stdout so far."""
        return self._out.text()

    @property
    def stderr(self) -> str:
        return self._err.text()

    async def stream_log(self, stream: str, position: int | None = None,
                         ) -> AsyncIterator[tuple[int, str]]:
        """Metaflow's `async for position, line in running.stream_log("stdout")`: the lines
        of the run's "stdout" or "stderr" as it writes them, without their line ending,
        from the start or from `position`, each with the position after it (a byte offset
        in that output: give it back to go on from there, now or later). It ends once the
        process has ended and every line was given; after the end, at once. While the run
        goes, a line is given when its newline is written, never in pieces."""
        captured = self._captured(stream)
        position = position or 0
        while True:
            ended = captured.ended  # read first: a line written before it is then found
            found = captured.line_at(position)
            if found is not None:
                position, line = found
                yield position, line.rstrip()
            elif ended:
                return
            else:
                await _asyncio().sleep(0.02)

    def _captured(self, stream: str) -> _Captured:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"No log file found for {stream!r}, valid values are: "
                             "stdout, stderr")
        return self._out if stream == "stdout" else self._err

    def wait_blocking(self, timeout: float | None = None) -> ExecutingRun:
        """Wait for the run's end (TimeoutError past `timeout` seconds)."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.runner.flow_file}: the run still goes after "
                               f"{timeout} s") from None
        self._out.join()
        self._err.join()
        self._settle()
        return self

    def _learn_run_id(self) -> str | None:
        """The run's id once the run has written it. The Runner's own file is removed as
        soon as it is read, so a run never waited for leaves nothing behind (Metaflow's
        `Runner.cleanup()` removes such files; here there are none)."""
        run_id = _read_run_id(self._run_id_file)
        if run_id is not None and self._own_id_file:
            self._run_id_file.unlink(missing_ok=True)
        return run_id

    def _settle(self) -> None:
        """The run has ended: keep its id, remove the file that carried it (unless it is the
        user's `run_id_file=`)."""
        self._run_id = self._run_id or self._learn_run_id()
        if self._own_id_file:
            self._run_id_file.unlink(missing_ok=True)

    async def wait(self, timeout: float | None = None, stream: str | None = None,
                   ) -> ExecutingRun:
        """Await the run's end, as Metaflow's `await running.wait()`. `stream` ("stdout" or
        "stderr") prints that output as it comes. Past `timeout` seconds the run is
        stopped (cancelled, as on Ctrl+C) and `status` says "timeout", as in Metaflow."""
        if stream is not None:
            (self._out if stream == "stdout" else self._err).echo_to(
                sys.stdout if stream == "stdout" else sys.stderr)
        began = time.monotonic()
        while self.process.poll() is None:
            if timeout is not None and time.monotonic() - began > timeout:
                self._timed_out = True
                self.cleanup()
                return self
            await _asyncio().sleep(0.05)
        return self.wait_blocking()

    def cleanup(self) -> None:
        """Stop the run if it still goes (SIGINT: it cancels as on Ctrl+C), then forget
        its run-id file."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.join()
        self._err.join()
        self._settle()

    def __repr__(self) -> str:
        return f"ExecutingRun({self.status}, {self.run!r})"


class Runner:
    """Runs a flow file from Python (Metaflow's `Runner`). `show_output` echoes the run's
    output here as it comes; `env` is added to the process's environment, `cwd` is where it
    runs (default: here); other keyword arguments are options before the command."""

    def __init__(self, flow_file: str | os.PathLike[str], show_output: bool = True,
                 profile: str | None = None, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, file_read_timeout: int = 3600,
                 **kwargs: Any):
        self.flow_file = os.path.abspath(flow_file)  # the run may start in another `cwd`
        _check_flow_file(str(flow_file))
        flow = _flow_info(str(flow_file), self.flow_file)
        self.flow_name = flow.name
        #: The flow's parameters by every spelling a keyword may use (name, attribute, with
        #: `_` for `-`): a keyword that names one is that parameter.
        self.parameters = {spelling: p for p in flow.parameters
                           for spelling in (p.name, p.attribute, p.name.replace("-", "_"))}
        self.show_output = show_output
        self.env = dict(env or {})
        self.cwd = str(cwd) if cwd is not None else None
        self.top_options = _options(kwargs, {})
        self.store_root = _store_root(self.flow_file, self.env, self.cwd, self.top_options)

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    async def __aenter__(self) -> Runner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Metaflow's `Runner.cleanup()` deletes the temporary files of its runs' output.
        Flowdeck's Runner keeps the output in memory and removes each run-id file once read,
        so there is nothing to delete; offered so code written for Metaflow runs unchanged.
        A run still going is left going, as in Metaflow (`ExecutingRun.cleanup()` stops
        one)."""

    def run(self, **kwargs: Any) -> ExecutingRun:
        """Run the flow to its end; `kwargs` are its parameters and run options."""
        self._check_keywords(kwargs, "run")
        return _started_or_raise(self._start("run", kwargs).wait_blocking())

    def resume(self, **kwargs: Any) -> ExecutingRun:
        """Resume a run to its end (`origin_run_id=`, `step_to_rerun=`, run options)."""
        self._check_keywords(kwargs, "resume")
        return _started_or_raise(self._start("resume", kwargs).wait_blocking())

    async def async_run(self, **kwargs: Any) -> ExecutingRun:
        """Start a run; returns once its run can be read (`await running.wait()` for its end)."""
        self._check_keywords(kwargs, "run")
        return await self._started(self._start("run", kwargs))

    async def async_resume(self, **kwargs: Any) -> ExecutingRun:
        self._check_keywords(kwargs, "resume")
        return await self._started(self._start("resume", kwargs))

    def _check_keywords(self, kwargs: dict[str, Any], command: str) -> None:
        """As Metaflow's Runner: an unknown keyword is a ValueError naming the ones it takes,
        and a value its parameter's type refuses a TypeError, before any process starts
        (a run that failed to start said it only in its stderr). `resume` takes no flow
        parameter (the origin run's values are used), as in Metaflow."""
        from flowdeck.analysis.parameter_text import parameter_problem
        from flowdeck.engine.script_cli import run_option_names
        options = run_option_names(command) | set(KEYWORD_OPTIONS) | (
            {"step_to_rerun"} if command == "resume" else set())
        parameters = self.parameters if command == "run" else {}
        for key, value in kwargs.items():
            param = parameters.get(key)
            if param is None and key not in options:
                known = sorted({p.attribute for p in parameters.values()} | options)
                raise ValueError(f"Unknown argument: {key!r}, possible args are: {known}")
            why = parameter_problem(param.type, value) if param is not None and \
                isinstance(value, str) else None
            if why is not None:
                raise TypeError(f"Invalid type for {key!r}: {why}.")

    def _start(self, command: str, kwargs: dict[str, Any]) -> ExecutingRun:
        """Start `python -m flowdeck.engines.as_metaflow FILE run|resume ...` with the
        keywords as options, and `--run-id-file` last: the file whose appearance says the
        run has an id."""
        kwargs = dict(kwargs)
        id_file, own_id_file = self._run_id_file(kwargs.pop("run_id_file", None))
        args = (["run", *_options(kwargs, self.parameters)] if command == "run"
                else _resume_args(kwargs, self.parameters))
        argv = [sys.executable, "-m", "flowdeck.engines.as_metaflow", self.flow_file,
                *self.top_options, *args, "--run-id-file", str(id_file)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", **self.env}
        process = subprocess.Popen(argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        from flowdeck.store.layout import note_runs_started_in
        note_runs_started_in(self.flow_name, self.store_root)  # Flow(name) reads there
        return ExecutingRun(self, process, id_file, own_id_file, self.show_output)

    def _run_id_file(self, given: str | os.PathLike[str] | None) -> tuple[Path, bool]:
        """The file the run writes its id to, and whether it is the Runner's own (removed
        once read). The user's `run_id_file=` is that file, as Metaflow writes it: a second
        `--run-id-file` of ours would replace theirs (the last one counts). A relative path
        is the run's, in `cwd`. An id left in it by an earlier run is removed first, or it
        would be taken for this run's."""
        if given is not None:
            path = Path(self.cwd or os.getcwd(), given)
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass  # a folder, or not ours to remove: the run says why it cannot write it
            return path, False
        handle, name = tempfile.mkstemp(prefix="flowdeck-run-id-", suffix=".txt")
        os.close(handle)
        os.unlink(name)  # the run writes it: its appearance says the run has an id
        return Path(name), True

    async def _started(self, running: ExecutingRun) -> ExecutingRun:
        """`running` once its run can be read; the RuntimeError of `_started_or_raise` if its
        process ended first."""
        began = time.monotonic()
        while running.run is None and running.returncode is None:  # until it is readable
            if time.monotonic() - began > START_TIMEOUT_S:
                running.cleanup()
                raise TimeoutError(f"{self.flow_file}: the run did not start within "
                                   f"{START_TIMEOUT_S:g} s")
            await _asyncio().sleep(0.02)
        if running.run is None:
            running.wait_blocking()  # all of its output, for the message
        return _started_or_raise(running)


def _started_or_raise(running: ExecutingRun) -> ExecutingRun:
    """`running`, unless its process ended without a run to read (a missing origin run, a
    file parameter that cannot be read, a bad option): then, as Metaflow's Runner, a
    RuntimeError with the command and its output, which say why. A run that started and
    failed is returned, its `status` "failed"."""
    if running.run is not None or running.run_id is not None:  # an id written: it started
        return running
    argv: list[str] = running.process.args  # type: ignore[assignment]  # _start gives a list
    message = "Error executing: '%s':\n" % " ".join(argv)
    if running.stdout.strip():
        message += "\nStdout:\n%s\n" % running.stdout
    if running.stderr.strip():
        message += "\nStderr:\n%s\n" % running.stderr
    raise RuntimeError(message)


class _Captured:
    """A stream of the run's process, read on a thread: kept (its bytes, which positions
    in `line_at` count), and echoed when asked."""

    def __init__(self, stream: Any, echo: Any):
        self._data = bytearray()
        self._lock = threading.Lock()  # the reader appends while a stream_log reads
        self._echo = echo
        self.ended = False  # the process closed the stream: no more bytes will come
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def echo_to(self, echo: Any) -> None:
        self._echo = echo

    def _read(self, stream: Any) -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            with self._lock:
                self._data += chunk
            echo = self._echo
            if echo is not None:
                try:
                    echo.write(chunk.decode("utf-8", errors="replace"))
                    echo.flush()
                except (OSError, ValueError):
                    pass
        stream.close()
        self.ended = True

    def join(self) -> None:
        self._thread.join()

    def text(self) -> str:
        with self._lock:
            return self._data.decode("utf-8", errors="replace")

    def line_at(self, position: int) -> tuple[int, str] | None:
        """The line that starts at byte `position` and the position after it; None until it
        is complete (its newline written), or once there is nothing after `position`. The
        last line without a newline is given once the stream has ended."""
        ended = self.ended  # read first: bytes that came before it are all in `_data`
        with self._lock:
            newline = self._data.find(b"\n", position)
            end = newline + 1 if newline >= 0 else (len(self._data) if ended else position)
            line = bytes(self._data[position:end])
        return (end, line.decode("utf-8", errors="replace")) if line else None


def _asyncio() -> Any:
    import asyncio  # only async runs pay for its import
    return asyncio


def _read_run_id(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def _store_root(flow_file: str, env: dict[str, str], cwd: str | None,
                top_options: list[str]) -> Path:
    """Where the run's process stores the run: with the `env` it is given (a relative
    $FLOWDECK_HOME is its working directory's, `cwd`), or the `datastore_root=` option
    (`--datastore-root`, which the run's script turns into $FLOWDECK_HOME or the object
    store's URL). Both were missed: the run went elsewhere, and the Runner, reading it
    here, said a run that succeeded could not start."""
    from flowdeck.store.layout import DATASTORE_ENV, ROOT_ENV, default_root, is_store_url
    environ = {**os.environ, **env}
    if "--datastore-root" in top_options[:-1]:
        given = top_options[top_options.index("--datastore-root") + 1]
        environ[DATASTORE_ENV if is_store_url(given) else ROOT_ENV] = given
    home = environ.get(ROOT_ENV)
    if home and not os.path.isabs(os.path.expanduser(home)):
        environ[ROOT_ENV] = str(Path(cwd or os.getcwd(), os.path.expanduser(home)))
    return default_root(flow_file, environ)


def _check_flow_file(given: str) -> None:
    """A missing file is a FlowFileNotFound (a FileNotFoundError, as in Metaflow); a folder
    or another file that is there but no regular file (a named pipe) a UsageError saying
    what to give instead."""
    problem = flow_file_problem(given)
    if problem is None:
        return
    if os.path.exists(given):
        raise UsageError(f"Runner({given!r}): {problem}")
    raise FlowFileNotFound(f"Runner({given!r}): {problem}")


def _flow_info(given: str, flow_file: str) -> Any:
    """The flow the file runs, from its source (never imported here). A file that cannot be
    read as one raises with its diagnostics in the message: there is no "above" where a
    command line would have printed them."""
    from flowdeck.analysis.flowfile import analyze_file, no_flow_problem, pick_flow
    analysis = analyze_file(flow_file)
    if not analysis.flows and analysis.diagnostics:
        raise _unreadable(given, flow_file, analysis.diagnostics)
    flow, problem = pick_flow(analysis.flows, None, flow_file)  # what `python FILE` runs
    if flow is None:
        raise UsageError(f"Runner({given!r}): "
                         f"{no_flow_problem(analysis, flow_file) if not analysis.flows else problem}")
    return flow


def _unreadable(given: str, flow_file: str, diagnostics: list[Diagnostic]) -> UsageError:
    """Why the file cannot be read as a flow file: its diagnostics, each `file:line: ...`;
    a FlowFileSyntaxError where one of them is a syntax error."""
    message = "\n".join([f"Runner({given!r}): {flow_file} cannot be read as a flow file:",
                         *(d.format() for d in diagnostics)])
    syntax = next((d for d in diagnostics if d.code == "syntax-error"), None)
    if syntax is None:
        return UsageError(message, diagnostics)
    import linecache
    error = FlowFileSyntaxError(message, diagnostics)
    error.filename, error.lineno, error.offset = syntax.file, syntax.line, syntax.column or None
    linecache.checkcache(syntax.file)  # the file as it is now: a notebook retries after edits
    error.text = linecache.getline(syntax.file, syntax.line) or None
    return error


def _resume_args(kwargs: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    step = kwargs.pop("step_to_rerun", None)
    return ["resume", *([str(step)] if step else []), *_options(kwargs, parameters)]


#: Keywords Metaflow's Runner spells otherwise than their option: keyword -> option name.
KEYWORD_OPTIONS = {"tags": "tag", "decospecs": "with", "with_": "with"}


def _options(kwargs: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """Keyword arguments as command-line options, as Metaflow's Runner writes them: a
    parameter by its declared name with its value as text (False too, a list as JSON, one
    `--name value` per value where it is `multiple`); an option `--dashed-name`, True a
    bare flag, False and None left out, a list one flag per item (`tags`, `decospecs`)."""
    args: list[str] = []
    for key, value in kwargs.items():
        param = parameters.get(key)
        if param is not None:
            args += _parameter_args(param, value)
            continue
        if value is None or value is False:
            continue
        name = KEYWORD_OPTIONS.get(key, key)
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args


def _parameter_args(param: Any, value: Any) -> list[str]:
    flag = f"--{param.name}"
    if value is None:
        return []
    if param.multiple and isinstance(value, (list, tuple)):
        return [arg for item in value for arg in (flag, _text(item))]
    return [flag, _text(value)]


def _text(value: Any) -> str:
    """A parameter's value as the command line gives it back (`Parameter.convert`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        import json
        return json.dumps(value)
    return str(value)
