"""The window past one machine (issue 12's window part) and the Artifacts pane's "Plot
Across Runs…" (issue 13): the toolbar's Run on and Store, remembered per flow, checked
before a run and passed to it; a real run on a real Dask LocalCluster (two worker
processes) watched live, its timeline naming the workers; a numeric artifact plotted
across runs from its row."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FLOWS, child_env, close_window, flow_key, run_flow
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from scaleout_servers import dask_cluster, s3_server

from flowdeck.engines.launching import build_launch
from flowdeck.store.layout import DATASTORE_ENV, ROOT_ENV, working_root
from flowdeck_desktop.app import build
from flowdeck_desktop.control.controller import FlowdeckController
from flowdeck_desktop.control.run_options import Placement
from flowdeck_desktop.views.runs_plot import RunsPlotWindow
from flowdeck_desktop.views.timeline_view import TimelineTask, TimelineView

WAIT_MS = 120000
METRIC = "MetricRunsFlow"
BRANCH = "BranchFlow"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two flows of their own in a fresh folder: per-flow choices must not leak."""
    flows = tmp_path / "flows"
    flows.mkdir()
    for name in ("metric_runs.py", "branches.py"):
        shutil.copy(FLOWS / name, flows / name)
    return flows


@pytest.fixture
def app(qtbot, settings: QSettings, folder: Path):
    controller, window = build(settings, [str(folder)])
    window.show()
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    yield controller, window
    close_window(controller, window)


def choose_dask(qtbot, window, address: str) -> None:
    """What the user does: "Dask cluster…" in Run on, then the address in its dialog."""
    bar = window.placement_bar
    index = bar.run_on.findData("dask")
    bar.run_on.setCurrentIndex(index)
    bar.run_on.activated.emit(index)
    qtbot.waitUntil(lambda: bar.address_dialog is not None and bar.address_dialog.isVisible(),
                    timeout=WAIT_MS)
    dialog = bar.address_dialog
    dialog.setTextValue(address)
    dialog.accept()


def type_store(window, text: str) -> None:
    window.placement_bar.store.setText(text)
    window.placement_bar.store.editingFinished.emit()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- remembered per flow, on the run's command line -----------------------------------------

def test_run_on_and_store_are_remembered_per_flow_and_reach_the_run(
        qtbot, app, folder: Path, settings: QSettings, tmp_path: Path) -> None:
    controller, window = app
    metric, branch = flow_key(controller, METRIC), flow_key(controller, BRANCH)
    window.select_flow(metric)
    bar = window.placement_bar
    assert bar.run_on.isEnabled() and bar.run_on.currentData() == "local"

    choose_dask(qtbot, window, "127.0.0.1:8786")
    type_store(window, "s3://bucket/runs/")
    assert controller.placement(metric) == Placement("dask", "tcp://127.0.0.1:8786",
                                                     "s3://bucket/runs/")
    assert bar.run_on.currentText() == "Dask 127.0.0.1:8786"
    assert controller.option_args(metric) == ["--executor", "dask", "--scheduler",
                                              "tcp://127.0.0.1:8786", "--datastore",
                                              "s3://bucket/runs"]
    # History follows the object store's working copy, where the run's events are written
    layout = controller.layout_for(metric)
    assert layout is not None
    assert layout.root == working_root(folder / ".flowdeck", "s3://bucket/runs")

    # the other flow keeps its own (default) choice; coming back shows this flow's
    window.select_flow(branch)
    assert bar.run_on.currentData() == "local" and bar.store.text() == ""
    assert controller.option_args(branch) == []
    window.select_flow(metric)
    assert bar.run_on.currentText() == "Dask 127.0.0.1:8786"
    assert bar.store.text() == "s3://bucket/runs/"

    # remembered like the parameters: a new session reads it back
    settings.sync()
    fresh = FlowdeckController(QSettings(settings.fileName(), QSettings.Format.IniFormat))
    try:
        assert fresh.session(metric).placement == controller.placement(metric)
        assert fresh.session(branch).placement == Placement()
    finally:
        fresh.shutdown()

    # a run: the options on its command line, the store in its environment, its events
    # followed where the flow process writes them; an unreachable scheduler is named
    port = free_port()
    store = tmp_path / "elsewhere"
    choose_dask(qtbot, window, f"tcp://127.0.0.1:{port}")
    type_store(window, str(store))
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
        window.run_selected()
        run = controller.sessions[metric].run
        assert run is not None
        args = run.spec.args
        at = args.index("--executor")
        assert args[at:at + 4] == ["--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"]
        assert "--datastore" not in args  # a folder store travels in the environment
        assert run.spec.env[ROOT_ENV] == str(store) and run.spec.env[DATASTORE_ENV] == ""
        assert run.spec.root == str(store)
    assert ended.args[1] == "failed"
    window.logs.flush()
    assert f"127.0.0.1:{port}" in window.logs.text()
    assert "Run on: the Dask cluster at" in window.logs.text()
    assert not any('"succeeded"' in p.read_text()  # nothing written as a successful run
                   for p in store.glob(f"{METRIC}/runs/*/run.json"))


def test_a_store_url_on_the_command_line_is_followed_too(folder: Path, tmp_path: Path) -> None:
    """`--datastore URL` typed in Run Options, or given to `flowdeck run`: the launcher
    follows the run in that store's working copy, where the flow process writes."""
    file = str(folder / "metric_runs.py")
    url = "s3://bucket/typed"
    spec = build_launch(file, METRIC, "flowdeck", ["run", f"--datastore={url}"])
    assert Path(spec.root) == working_root(folder / ".flowdeck", url)
    assert spec.env[DATASTORE_ENV] == url
    assert Path(spec.events_path).is_relative_to(spec.root)
    plain = build_launch(file, METRIC, "flowdeck", ["run"])
    assert Path(plain.root) == folder / ".flowdeck" and DATASTORE_ENV not in plain.env
    chosen = build_launch(file, METRIC, "flowdeck", ["run"], store=str(tmp_path / "s"))
    assert chosen.root == str(tmp_path / "s") and chosen.env[ROOT_ENV] == chosen.root


# -- bad values: a clear message, no run -------------------------------------------------------

def test_bad_addresses_and_stores_are_named_and_nothing_runs(qtbot, app, folder: Path) -> None:
    controller, window = app
    key = flow_key(controller, METRIC)
    window.select_flow(key)

    choose_dask(qtbot, window, "the-cluster")
    level, text = window.last_message
    assert level == "error" and "`the-cluster` is not host:port" in text
    assert controller.placement(key).executor == "local"  # the box went back
    assert window.placement_bar.run_on.currentData() == "local"

    choose_dask(qtbot, window, "http://10.0.0.5:8786")
    assert "starts with http://, which Dask does not use" in window.last_message[1]

    for typed, said in (("ftp://host/store", "is not a store Flowdeck can write"),
                        ("runs/here", "is not an absolute folder"),
                        ("s3://", "names no bucket")):
        type_store(window, typed)
        assert window.last_message[0] == "error"
        assert said in window.last_message[1], window.last_message
        assert "Store" in window.placement_bar.store.toolTip()  # said at the field too
        window.run_selected()
        assert said in window.last_message[1]
        assert controller.sessions[key].run is None  # no run started

    # Run Options that would send the run elsewhere than the toolbar says
    type_store(window, "")
    choose_dask(qtbot, window, "")
    assert controller.placement(key) == Placement("dask", "", "")
    controller.save_run_options(key, "--max-workers 2 --executor local")
    window.run_selected()
    assert "remove --executor" in window.last_message[1]
    assert controller.sessions[key].run is None


def test_the_metaflow_bridge_disables_run_on_and_says_why(qtbot, settings, tmp_path) -> None:
    flows = tmp_path / "mf"
    flows.mkdir()
    (flows / "mf_flow.py").write_text(
        "from metaflow import FlowSpec, step\n\n\nclass MfFlow(FlowSpec):\n    @step\n"
        "    def start(self):\n        self.next(self.end)\n\n    @step\n"
        "    def end(self):\n        pass\n\n\nif __name__ == '__main__':\n    MfFlow()\n")
    controller, window = build(settings, [str(flows)])
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        key = flow_key(controller, "MfFlow")
        window.select_flow(key)
        bar = window.placement_bar
        assert not bar.run_on.isEnabled() and not bar.store.isEnabled()
        assert "Not used by Metaflow (bridge)" in bar.run_on.toolTip()
        controller.set_placement(key, Placement("dask", "", ""))
        assert controller.option_args(key) == []  # the bridge gets none of it
        index = window.engine_box.findData("flowdeck")
        window.engine_box.setCurrentIndex(index)
        window.engine_box.activated.emit(index)
        assert bar.run_on.isEnabled() and bar.run_on.currentData() == "dask"
        assert controller.option_args(key) == ["--executor", "dask"]
    finally:
        close_window(controller, window)


# -- an object store: the run's events followed in its working copy --------------------------------

@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3 endpoint on localhost (moto's server) with a bucket; the window's
    environment (which its runs inherit) names it and a user's keys."""
    with s3_server("window-runs") as endpoint:
        for name, value in (("AWS_ENDPOINT_URL", endpoint), ("AWS_ACCESS_KEY_ID", "testing"),
                            ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1"),
                            ("NO_PROXY", "127.0.0.1,localhost")):
            monkeypatch.setenv(name, value)
        yield endpoint


def test_a_run_into_an_object_store_is_followed_live_and_listed(
        qtbot, app, folder: Path, s3_endpoint: str) -> None:
    import s3fs
    controller, window = app
    key = flow_key(controller, METRIC)
    window.select_flow(key)
    type_store(window, "s3://window-runs/team/flows")
    controller.save_params(key, {"width": "2"})
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
        controller.start_run(key)
    assert ended.args[1] == "succeeded", window.logs.text()
    run = controller.sessions[key].run
    assert run is not None and "--datastore" in run.spec.args
    assert run.spec.env[DATASTORE_ENV] == "s3://window-runs/team/flows"
    for step in ("start", "fit", "join", "end"):  # coloured from the working copy's events
        assert window.scene.step_state(step).status == "succeeded"
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1, timeout=WAIT_MS)
    assert window.history.runs[0].run_id == run.spec.run_id
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True)
    keys = fs.find(f"window-runs/team/flows/{METRIC}/runs/{run.spec.run_id}")
    assert any(k.endswith("/run.json") for k in keys)
    assert not (folder / ".flowdeck" / METRIC).exists()  # nothing in the flow's own store
    with qtbot.waitSignal(window.artifacts.loaded, timeout=WAIT_MS):
        window.scene.step_clicked.emit("end")
    loss = next(r for r in window.artifacts.rows if r["name"] == "loss")
    assert not loss.get("load_error") and "0.9" in str(loss.get("preview")), loss


# -- a real run on a real cluster ----------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A LocalCluster of two single-threaded worker processes on 127.0.0.1."""
    with dask_cluster() as client:
        yield client


def test_a_dask_run_from_the_window_goes_green_and_its_timeline_names_the_workers(
        qtbot, app, cluster) -> None:
    controller, window = app
    key = flow_key(controller, METRIC)
    window.select_flow(key)
    choose_dask(qtbot, window, cluster.scheduler.address)
    controller.save_params(key, {"width": "6"})
    window.params.set_parameters(controller.model.entry(key).flow.parameters,
                                 controller.saved_params(key))
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
        window.run_selected()
    assert ended.args[1] == "succeeded", window.logs.text()
    for step in ("start", "fit", "join", "end"):
        assert window.scene.step_state(step).status == "succeeded"
    state = controller.sessions[key].state
    workers = set(cluster.scheduler_info()["workers"])
    assert state is not None and len(state.tasks) == 9
    assert {t.worker for t in state.tasks.values()} <= workers  # every task names its worker

    timeline = window.timeline
    named = timeline.workers()
    assert named and set(named) <= workers
    assert sorted(named.values()) == [f"W{i + 1}" for i in range(len(named))]
    fit = next(t for t in state.tasks.values() if t.step == "fit")
    tip = timeline.tooltip_text(fit.task_id)
    assert f"worker: {named[fit.worker]} {fit.worker.removeprefix('tcp://')}" in tip


def test_a_local_timeline_names_no_worker(qtbot) -> None:
    view = TimelineView()
    qtbot.addWidget(view)
    view.set_tasks([TimelineTask("1", "start", 100.0, 101.0, "succeeded")])
    assert view.workers() == {}
    assert "worker" not in view.tooltip_text("1")
    view.set_tasks([TimelineTask("1", "start", 100.0, 101.0, "succeeded", worker="tcp://h:1"),
                    TimelineTask("2", "end", 101.0, 102.0, "succeeded", worker="tcp://h:2")])
    assert view.workers() == {"tcp://h:1": "W1", "tcp://h:2": "W2"}
    assert "worker: W2 h:2" in view.tooltip_text("2")


# -- Plot Across Runs… from the Artifacts pane ---------------------------------------------------

def test_artifacts_pane_plots_a_numeric_artifact_across_runs(qtbot, app, folder: Path) -> None:
    controller, window = app
    for k, rate in enumerate((0.2, 0.4)):
        result = run_flow(folder / "metric_runs.py", "run", "--rate", str(rate), "--width", "2",
                          "--run-id", f"before-{k}", env=child_env())
        assert result.returncode == 0, result.stderr
    key = flow_key(controller, METRIC)
    window.select_flow(key)
    controller.save_params(key, {"width": "2"})
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
        controller.start_run(key)
    assert ended.args[1] == "succeeded"
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 3, timeout=WAIT_MS)
    pane = window.artifacts
    with qtbot.waitSignal(pane.loaded, timeout=WAIT_MS):
        window.scene.step_clicked.emit("end")

    def action(name: str):
        menu = pane.row_menu_for(name)
        return next(a for a in menu.actions() if a.text() == "Plot Across Runs…")

    assert not action("summary").isEnabled()  # a text plots nothing
    pane.select("summary")
    assert not pane.plot_button.isEnabled()
    pane.select("loss")
    assert pane.plot_button.isEnabled()
    loss = action("loss")
    assert loss.isEnabled()
    loss.trigger()
    qtbot.waitUntil(lambda: any(isinstance(w, RunsPlotWindow)
                                for w in QApplication.topLevelWidgets()), timeout=WAIT_MS)
    plot = next(w for w in QApplication.topLevelWidgets() if isinstance(w, RunsPlotWindow))
    qtbot.waitUntil(lambda: not plot.view.busy, timeout=WAIT_MS)
    assert plot.view.error is None
    assert len(plot.view.data.points) == 3
    assert "end.loss" in plot.windowTitle()
    plot.close()
