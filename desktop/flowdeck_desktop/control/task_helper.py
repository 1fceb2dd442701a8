"""One call of a task helper process (artifacts, Metaflow's cards), asynchronous and
time-limited.

The helper (`python -m flowdeck.engines.inspect_task`, in the flow's interpreter)
unpickles; the window only reads its JSON answer. A call never blocks the GUI
thread: `HelperCall` starts a QProcess, answers through `answered` when it ends,
and kills it past its time limit (an artifact whose `__setstate__` hangs must not
leave the pane waiting forever). A call cancelled (a newer selection) is killed
and never answers.
"""

from __future__ import annotations

import json
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engines.launching import ARTIFACT_HELPER, child_env, inspect_argv
from flowdeck_desktop.control.run_process import core_path


@dataclass(frozen=True)
class HelperRequest:
    """What the artifact helper is started with (kept while a foreign run awaits consent)."""

    interpreter: str
    root: str
    flow: str
    run_id: str
    step: str
    task_id: str
    add_core: bool
    module: str = ARTIFACT_HELPER
    #: The run's id in its engine's client (Metaflow's, for a bridge run), for the title
    #: only: the helper itself is given our id and reads Metaflow's from the run's record.
    engine_run_id: str | None = None

    @property
    def title(self) -> str:
        """The task's pathspec as its engine's client opens it (Metaflow's task ids with our
        run id named a task neither client has)."""
        return f"{self.flow}/{self.engine_run_id or self.run_id}/{self.step}/{self.task_id}"

    def argv(self, *extra: str) -> list[str]:
        """The helper's command line: the list, or `--preview NAME`, `--export NAME PATH`."""
        return inspect_argv(self.interpreter, self.root, self.flow, self.run_id, self.step,
                            self.task_id, self.module) + list(extra)


@dataclass(frozen=True)
class HelperAnswer:
    """What a call came back with: the helper's JSON, or why there is none."""

    data: dict[str, Any] | None
    error: str | None = None
    timed_out: bool = False


class HelperCall(QObject):
    """One helper process for one request; `answered` fires once unless cancelled."""

    answered = Signal(object)  # HelperAnswer

    def __init__(self, request: HelperRequest, extra: list[str], limit_s: float,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.request = request
        self.extra = extra
        self.limit_s = limit_s
        self.done = False
        self.proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        for key, value in child_env(core_path() if request.add_core else None).items():
            env.insert(key, value)
        self.proc.setProcessEnvironment(env)
        self.proc.finished.connect(self._on_finished)
        self.proc.errorOccurred.connect(self._on_error)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self._on_time_limit)

    def start(self) -> None:
        program, *args = self.request.argv(*self.extra)
        self.timer.start(int(self.limit_s * 1000))
        self.proc.start(program, args)

    def cancel(self) -> None:
        """Kill the helper and drop its answer (a newer request replaces it)."""
        self._finish(None)
        self.deleteLater()

    def _kill(self) -> None:
        if shiboken6.isValid(self.proc) and self.proc.state() != QProcess.ProcessState.NotRunning:
            self.proc.kill()
            self.proc.waitForFinished(1000)  # reaped: no zombie, no late signal

    def _finish(self, answer: HelperAnswer | None) -> None:
        if self.done:
            return
        self.done = True
        self.timer.stop()
        self.proc.finished.disconnect(self._on_finished)
        self.proc.errorOccurred.disconnect(self._on_error)
        self._kill()
        if answer is not None:
            self.answered.emit(answer)

    def _on_time_limit(self) -> None:
        self._finish(HelperAnswer(None, f"stopped after {self.limit_s:g} s: loading took too "
                                        "long, so the helper process was killed (select it "
                                        "again to retry)", True))

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._finish(HelperAnswer(None, f"the flow's interpreter "
                                            f"{self.request.interpreter} could not be started "
                                            "(choose another one in the interpreter menu)"))

    def _on_finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        # A helper killed as its pane is destroyed still reports from Qt's destructor.
        if not shiboken6.isValid(self) or not shiboken6.isValid(self.proc):
            return
        out = bytes(self.proc.readAllStandardOutput().data()).decode("utf-8", "replace")
        err = bytes(self.proc.readAllStandardError().data()).decode("utf-8", "replace")
        if code != 0:
            lines = err.strip().splitlines()
            self._finish(HelperAnswer(None, f"the helper process ended with code {code}: "
                                            f"{lines[-1] if lines else 'no message'}"))
            return
        try:
            data = json.loads(out)
        except ValueError:
            self._finish(HelperAnswer(None, f"unreadable answer from the helper: {out[:200]}"))
            return
        self._finish(HelperAnswer(data if isinstance(data, dict) else None))
