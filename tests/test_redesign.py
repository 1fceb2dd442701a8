"""The redesign's seams, each checked on real runs: one fold, one store, one engine seam.

Each test pins a bug that the copies of the same knowledge used to disagree on.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
from conftest import FLOWS, WAIT_MS, child_env, run_flow

from flowdeck.observe.fold import RunFold
from flowdeck.store.events import read_events
from flowdeck.store.index import RunIndex
from flowdeck.store.layout import InvalidId, RunLayout

NESTED = '''
from flowdeck import FlowSpec, step


class NestedFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3, 4]
        self.next(self.a, foreach="items")

    @step
    def a(self):
        self.x = self.input
        self.next(self.b, self.c)

    @step
    def b(self):
        self.next(self.join_bc)

    @step
    def c(self):
        self.next(self.join_bc)

    @step
    def join_bc(self, inputs):
        self.x = inputs[0].x
        self.next(self.d)

    @step
    def d(self):
        self.next(self.join_items)

    @step
    def join_items(self, inputs):
        self.xs = [i.x for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print(self.xs)


if __name__ == "__main__":
    NestedFlow().run()
'''

PARAMS = '''
from flowdeck import FlowSpec, JSONType, Parameter, step


class ParamFlow(FlowSpec):
    lr = Parameter("learning_rate", default=0.1)
    config = Parameter("config", type=JSONType, default={"a": 1})
    verbose = Parameter("verbose", default=False)

    @step
    def start(self):
        self.seen = (self.lr, self.config, self.verbose)
        self.next(self.end)

    @step
    def end(self):
        print(self.seen)


if __name__ == "__main__":
    ParamFlow().run()
'''


def test_fold_counts_every_task_of_a_step_after_a_join_inside_a_foreach(tmp_path: Path) -> None:
    """start -> a (foreach of 4) -> b, c -> join_bc -> d -> join_items -> end, replayed event
    by event from a real run: `d` expects 4 tasks and is never complete before the 4th."""
    flow = tmp_path / "nested.py"
    flow.write_text(NESTED)
    result = run_flow(flow, "run", "--max-workers", "1")
    assert result.returncode == 0, result.stderr
    run_id = RunIndex(RunLayout(tmp_path / ".flowdeck", "NestedFlow")).latest().run_id
    events = read_events(RunLayout(tmp_path / ".flowdeck", "NestedFlow").events(run_id))
    fold = RunFold()
    finished_d = 0
    for event in events:
        fold.apply(event)
        if event["type"] == "task_finished" and event["step"] == "d":
            finished_d += 1
        summary = fold.steps["d"]
        if finished_d and fold.status == "running":
            assert summary.total == 4, summary
            assert (summary.status == "succeeded") == (finished_d == 4), (finished_d, summary)
    assert finished_d == 4
    for step in ("a", "b", "c", "join_bc", "d"):
        assert (fold.steps[step].done, fold.steps[step].total) == (4, 4), step
    assert fold.steps["join_items"].total == 1 and fold.status == "succeeded"


def test_run_record_keeps_parameters_so_a_rerun_gets_exactly_the_same(tmp_path: Path) -> None:
    """A renamed parameter (attribute `lr`, option `--learning_rate`), a JSON one and a
    boolean: the record's command-line form reruns with the same values."""
    flow = tmp_path / "params.py"
    flow.write_text(PARAMS)
    first = run_flow(flow, "run", "--learning_rate", "0.2", "--config", '{"b": [1, 2]}',
                     "--verbose", "true")
    assert first.returncode == 0, first.stderr
    index = RunIndex(RunLayout(tmp_path / ".flowdeck", "ParamFlow"))
    record = index.latest().record
    assert record.param_values == {"lr": 0.2, "config": {"b": [1, 2]}, "verbose": True}
    assert record.cli_args() == ["--learning_rate", "0.2", "--config", '{"b": [1, 2]}',
                                 "--verbose", "true"]
    again = run_flow(flow, "run", *record.cli_args())
    assert again.returncode == 0, again.stderr
    assert index.latest().record.param_values == record.param_values
    assert "(0.2, {'b': [1, 2]}, True)" in again.stdout


def test_a_damaged_run_record_is_listed_as_damaged_and_hides_no_other_run(tmp_path: Path) -> None:
    flow = tmp_path / "params.py"
    flow.write_text(PARAMS)
    for _ in range(2):
        assert run_flow(flow).returncode == 0
    layout = RunLayout(tmp_path / ".flowdeck", "ParamFlow")
    older = RunIndex(layout).runs()[1]
    layout.run_json(older.run_id).write_text('{"flow": "ParamFlow", "run_id": 7')
    runs = RunIndex(layout).runs()
    assert [r.status for r in runs] == ["succeeded", "damaged"]
    assert str(layout.run_json(older.run_id)) in (runs[1].damage or "")
    from flowdeck import Flow
    client_runs = Flow("ParamFlow", root=layout.root).runs()
    assert [r.status for r in client_runs] == ["succeeded", "damaged"]
    assert Flow("ParamFlow", root=layout.root).latest_successful_run.id == runs[0].run_id


def test_ids_that_would_leave_the_store_are_refused(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path, "Flow")
    for bad in ("../../outside", "..", "a/b", "", ".hidden"):
        with pytest.raises(InvalidId):
            layout.run_dir(bad)
    flow = tmp_path / "params.py"
    flow.write_text(PARAMS)
    assert run_flow(flow).returncode == 0
    resumed = run_flow(flow, "resume", "--origin-run-id", "../../../../outside")
    assert resumed.returncode != 0 and "Traceback" not in resumed.stderr
    assert "run id" in resumed.stderr


def _flowdeck_run(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", str(path), *args],
                          env=child_env(USER="tester"), capture_output=True, text=True,
                          timeout=120, cwd=path.parent)


def test_flowdeck_run_sends_a_metaflow_flow_through_the_bridge(tmp_path: Path) -> None:
    """`flowdeck run` on a Metaflow file: live progress from the bridge's events, the run
    recorded as Metaflow's, and a failing flow exits non-zero with its error shown."""
    pytest.importorskip("metaflow")
    linear = tmp_path / "linear.py"
    linear.write_text((FLOWS / "metaflow" / "linear.py").read_text())
    ok = _flowdeck_run(linear, "--greeting", "hi")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "shout/" in ok.stdout and "run succeeded" in ok.stdout
    record = RunIndex(RunLayout(tmp_path / ".flowdeck", "MfLinearFlow")).latest().record
    assert record.engine == "metaflow" and record.metaflow_run_id
    assert record.param_values == {"greeting": "hi"}
    failing = tmp_path / "failing.py"
    failing.write_text((FLOWS / "metaflow" / "failing.py").read_text())
    bad = _flowdeck_run(failing)
    assert bad.returncode != 0
    assert "divide" in bad.stdout and "ZeroDivisionError" in bad.stdout


def test_run_fold_reads_an_unknown_status_as_failed_once_for_every_consumer() -> None:
    fold = RunFold({"graph": {"start": {"type": "start", "next": ["end"]},
                              "end": {"type": "end", "next": []}}})
    fold.apply({"type": "run_started", "t": 1, "run_id": "r", "flow": "F"})
    fold.apply({"type": "task_started", "t": 1, "run_id": "r", "step": "start", "task_id": "1"})
    fold.apply({"type": "task_finished", "t": 2, "run_id": "r", "step": "start",
                "task_id": "1", "status": "exploded"})
    fold.apply({"type": "something_new", "t": 3})
    assert fold.tasks["1"].status == "failed" and fold.steps["start"].status == "failed"


def test_steps_a_failed_run_never_reached_are_not_run_not_pending() -> None:
    """Once a run has ended without succeeding, a step no task reached is `not run`; left
    `pending` it looked like a step about to start. A run that goes on keeps `pending`."""
    graph = {"graph": {"start": {"type": "start", "next": ["train"]},
                       "train": {"type": "linear", "next": ["end"]},
                       "end": {"type": "end", "next": []}}}
    for how in ("finished", "killed"):
        fold = RunFold(graph)
        fold.apply({"type": "run_started", "t": 1, "run_id": "r", "flow": "F"})
        fold.apply({"type": "task_started", "t": 1, "run_id": "r", "step": "start",
                    "task_id": "1"})
        fold.apply({"type": "task_finished", "t": 2, "run_id": "r", "step": "start",
                    "task_id": "1", "status": "failed"})
        assert fold.steps["train"].status == "pending"  # the run is still going
        if how == "finished":
            fold.apply({"type": "run_finished", "t": 3, "run_id": "r", "status": "failed"})
        else:
            fold.mark_ended("cancelled", 3)
        assert fold.steps["start"].status == "failed"
        assert fold.steps["train"].status == fold.steps["end"].status == "not run", how


def test_sessions_keep_one_run_state_per_flow(qtbot, settings, tmp_path: Path) -> None:
    """Three runs of one flow leave one RunState and one RunProcess alive, not three."""
    from conftest import flow_key
    from PySide6.QtCore import QCoreApplication, QEvent

    from flowdeck_desktop.control.controller import FlowdeckController

    flow = tmp_path / "params.py"
    flow.write_text(PARAMS)
    controller = FlowdeckController(settings)
    controller.add_paths([str(tmp_path)])
    qtbot.waitUntil(lambda: any(e.name == "ParamFlow" for e in controller.model.entries()),
                    timeout=WAIT_MS)
    key = flow_key(controller, "ParamFlow")
    controller.save_params(key, {"learning_rate": "0.3"})
    states, runs = [], []
    for _ in range(3):
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
            controller.start_run(key)
        states.append(weakref.ref(controller.session(key).state))
        runs.append(weakref.ref(controller.session(key).run))
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    gc.collect()
    assert [s() is not None for s in states] == [False, False, True]
    assert [r() is not None for r in runs] == [False, False, True]
    record = RunIndex(RunLayout(tmp_path / ".flowdeck", "ParamFlow")).latest().record
    assert record.param_values["lr"] == 0.3  # the session's parameters, not the defaults
    controller.shutdown()


def test_rerun_on_save_uses_the_remembered_parameters_after_a_restart(
        qtbot, settings, tmp_path: Path) -> None:
    from conftest import flow_key

    from flowdeck_desktop.control.controller import FlowdeckController

    flow = tmp_path / "params.py"
    flow.write_text(PARAMS)
    first = FlowdeckController(settings)
    first.add_paths([str(tmp_path)])
    qtbot.waitUntil(lambda: bool(list(first.model.entries())), timeout=WAIT_MS)
    first.save_params(flow_key(first, "ParamFlow"), {"learning_rate": "0.7"})
    first.shutdown()
    second = FlowdeckController(settings)  # a restart: same settings, fresh objects
    second.add_paths([str(tmp_path)])
    qtbot.waitUntil(lambda: bool(list(second.model.entries())), timeout=WAIT_MS)
    entry = second.model.entry(flow_key(second, "ParamFlow"))
    plan = second.rerun_plan(entry)
    assert plan.args == ["run", "--learning_rate", "0.7"]
    second.shutdown()


def test_history_rerun_passes_renamed_and_json_parameters(qtbot, settings, tmp_path: Path) -> None:
    from conftest import flow_key

    from flowdeck_desktop.control.controller import FlowdeckController

    flow = tmp_path / "params.py"
    flow.write_text(PARAMS)
    assert run_flow(flow, "run", "--learning_rate", "0.25", "--config", '{"k": "v"}').returncode == 0
    layout = RunLayout(tmp_path / ".flowdeck", "ParamFlow")
    past = RunIndex(layout).latest().record
    controller = FlowdeckController(settings)
    controller.add_paths([str(tmp_path)])
    qtbot.waitUntil(lambda: bool(list(controller.model.entries())), timeout=WAIT_MS)
    key = flow_key(controller, "ParamFlow")
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
        controller.rerun_with(key, past)
    assert ended.args[1] == "succeeded"
    again = RunIndex(layout).latest().record
    assert again.run_id != past.run_id and again.param_values == past.param_values
    assert json.loads(controller.saved_params(key)["config"]) == {"k": "v"}
    controller.shutdown()


def test_viewing_past_runs_keeps_one_view_state_alive(qtbot, settings, tmp_path: Path) -> None:
    """History clicks and never-run flows used to leave a RunState behind per click."""
    import shiboken6
    from conftest import close_window, flow_key
    from PySide6.QtCore import QCoreApplication, QEvent

    from flowdeck_desktop.app import build
    from flowdeck_desktop.models.run_state import RunState

    flow = tmp_path / "params.py"
    flow.write_text(PARAMS)
    for value in ("0.1", "0.2"):
        assert run_flow(flow, "run", "--learning_rate", value).returncode == 0
    controller, window = build(settings, [str(tmp_path)], restore=False)
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        window.select_flow(flow_key(controller, "ParamFlow"))
        qtbot.waitUntil(lambda: window.history.table.rowCount() == 2)
        for _ in range(10):
            for row in (0, 1):
                window.history.table.selectRow(row)
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
        gc.collect()
        mine = [o for o in gc.get_objects() if isinstance(o, RunState)
                and shiboken6.isValid(o) and o.parent() is window]
        assert len(mine) == 1  # the one shown
    finally:
        close_window(controller, window)
