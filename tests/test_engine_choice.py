"""A file written for Metaflow, unchanged, on Flowdeck's engine: the alias entry, the
command line (`flowdeck run --engine flowdeck`, resume) and the window's per-flow choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORE, ROOT, WAIT_MS, child_env, close_window, flow_key
from PySide6.QtCore import QSettings

from flowdeck.engines.as_metaflow import ENTRY_MODULE
from flowdeck.engines.launching import build_launch
from flowdeck_desktop.app import build

BLOCKED = ROOT / "tests" / "compat" / "sandbox" / "blocked"  # a `metaflow` that refuses

FLOW = '''from metaflow import FlowSpec, Parameter, current, step
from metaflow.exception import MetaflowException
import os


class MfBranchFlow(FlowSpec):
    """Branches, a parameter and Metaflow's names, all imported from metaflow."""

    word = Parameter("word", default="hi")

    @step
    def start(self):
        import flowdeck
        import flowdeck.exception
        import metaflow
        assert metaflow is flowdeck and MetaflowException is flowdeck.exception.MetaflowException
        self.run_was = current.run_id
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "left " + self.word
        self.next(self.join)

    @step
    def right(self):
        if os.environ.get("MF_FAIL_RIGHT") and not os.path.exists("fixed"):
            raise ValueError("right is broken until `fixed` exists")
        self.side = "right " + self.word
        self.next(self.join)

    @step
    def join(self, inputs):
        self.sides = sorted(i.side for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("sides", self.sides)


if __name__ == "__main__":
    MfBranchFlow()
'''


def _env(**extra: str) -> dict[str, str]:
    """The blocked `metaflow` first on the path: the real Metaflow cannot run here."""
    env = child_env(METAFLOW_USER="tester", USER="tester", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(BLOCKED), str(CORE)])
    return env


def _records(folder: Path, flow: str) -> list[dict]:
    runs = sorted((folder / ".flowdeck" / flow / "runs").glob("*/run.json"))
    return sorted((json.loads(p.read_text()) for p in runs), key=lambda r: r["start"])


@pytest.fixture
def mf_file(tmp_path: Path) -> Path:
    folder = tmp_path / "mf"
    folder.mkdir()
    path = folder / "branch.py"
    path.write_text(FLOW)
    return path


def test_alias_entry_runs_the_unchanged_file_with_flowdecks_own_modules(mf_file: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", ENTRY_MODULE, mf_file.name, "run",
                           "--word", "yo"], cwd=mf_file.parent, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "sides ['left yo', 'right yo']" in proc.stdout
    (record,) = _records(mf_file.parent, "MfBranchFlow")
    assert record["engine"] == "flowdeck" and record["status"] == "succeeded"


def test_a_metaflow_module_flowdeck_lacks_is_named_with_its_line(mf_file: Path) -> None:
    wanted = "from metaflow.metaflow_config import DATASTORE_SYSROOT_LOCAL"
    source = FLOW.replace("import os\n", f"import os\n{wanted}\n", 1)
    mf_file.write_text(source)
    proc = subprocess.run([sys.executable, "-m", ENTRY_MODULE, str(mf_file), "run"],
                          cwd=mf_file.parent, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    line = source.splitlines().index(wanted) + 1
    assert f"{mf_file}:{line}: error: `metaflow.metaflow_config` is not available on " \
           "Flowdeck's engine" in proc.stderr
    assert "--engine metaflow" in proc.stderr and "Traceback" not in proc.stderr


def test_below_a_module_that_is_no_package_the_import_is_named_too(mf_file: Path) -> None:
    source = FLOW.replace("import os\n", "import os\nimport metaflow.plugins.aws\n", 1)
    mf_file.write_text(source)
    proc = subprocess.run([sys.executable, "-m", ENTRY_MODULE, str(mf_file), "run"],
                          cwd=mf_file.parent, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    line = source.splitlines().index("import metaflow.plugins.aws") + 1
    assert f"{mf_file}:{line}: error: `metaflow.plugins.aws` is not available" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_metaflow_name_flowdeck_lacks_is_named_with_its_line(mf_file: Path) -> None:
    mf_file.write_text(FLOW.replace("import FlowSpec,", "import S3, FlowSpec,", 1))
    proc = subprocess.run([sys.executable, "-m", ENTRY_MODULE, str(mf_file), "run"],
                          cwd=mf_file.parent, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert f"{mf_file}:1: error: `S3` is imported from metaflow, and Flowdeck's engine has " \
           "no `S3`" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_launches_choose_the_entry_from_what_the_file_imports(mf_file: Path) -> None:
    on_flowdeck = build_launch(str(mf_file), "MfBranchFlow", "flowdeck", ["run"])
    assert on_flowdeck.args[:3] == ["-m", ENTRY_MODULE, str(mf_file)]
    assert on_flowdeck.engine == "flowdeck"
    plain = mf_file.parent / "plain.py"
    plain.write_text(FLOW.replace("from metaflow import", "from flowdeck import")
                     .replace("from metaflow.exception", "from flowdeck.exception"))
    assert build_launch(str(plain), "MfBranchFlow", "flowdeck", ["run"]).args[0] == str(plain)


def test_flowdeck_run_and_resume_a_metaflow_file_on_flowdecks_engine(mf_file: Path) -> None:
    env = _env(MF_FAIL_RIGHT="1")
    command = [sys.executable, "-m", "flowdeck.cli.main"]
    # run from the flow's folder, where the flow looks for `fixed` (`flowdeck run` starts a
    # flow in the terminal's current folder, as `python FILE run` does)
    failed = subprocess.run([*command, "run", "--engine", "flowdeck", str(mf_file)],
                            env=env, capture_output=True, text=True, timeout=120,
                            cwd=mf_file.parent)
    assert failed.returncode != 0, failed.stdout[-3000:]
    assert "right is broken" in failed.stdout
    (mf_file.parent / "fixed").write_text("")
    # no --engine: a resume continues on the engine that made the run it resumes
    resumed = subprocess.run([*command, "resume", str(mf_file)], env=env,
                             capture_output=True, text=True, timeout=120, cwd=mf_file.parent)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    first, second = _records(mf_file.parent, "MfBranchFlow")
    assert (first["engine"], first["status"]) == ("flowdeck", "failed")
    assert (second["engine"], second["status"]) == ("flowdeck", "succeeded")
    assert second["origin_run_id"] == first["run_id"]


@pytest.fixture
def app(qtbot, settings: QSettings, mf_file: Path, monkeypatch):
    monkeypatch.setenv("METAFLOW_USER", "tester")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(BLOCKED), str(CORE)]))
    controller, window = build(settings, [str(mf_file.parent)])
    window.show()
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)  # listed off-thread
    yield controller, window
    close_window(controller, window)


def _choose(window, engine: str) -> None:
    """What the user does: pick the engine in the run toolbar's box."""
    index = window.engine_box.findData(engine)
    window.engine_box.setCurrentIndex(index)
    window.engine_box.activated.emit(index)


def test_window_runs_a_metaflow_flow_on_flowdecks_engine_and_resumes_it(
        qtbot, app, mf_file: Path, settings: QSettings, monkeypatch) -> None:
    controller, window = app
    key = flow_key(controller, "MfBranchFlow")
    window.select_flow(key)
    assert window.engine_box.isEnabled()
    assert window.engine_box.currentData() == "metaflow"  # as before: the bridge by default
    _choose(window, "flowdeck")
    assert controller.run_engine(key) == "flowdeck"

    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.run_selected()
    assert blocker.args[1] == "succeeded"
    run = controller.sessions[key].run
    assert run is not None and run.spec.engine == "flowdeck" and ENTRY_MODULE in run.spec.args
    for step in ("start", "left", "right", "join", "end"):
        assert window.scene.step_state(step).status == "succeeded"
    window.logs.flush()
    assert "Engine: Flowdeck (fast)" in window.logs.text()
    assert "sides ['left hi', 'right hi']" in window.logs.text()
    (record,) = _records(mf_file.parent, "MfBranchFlow")
    assert record["engine"] == "flowdeck"
    with qtbot.waitSignal(window.artifacts.loaded, timeout=WAIT_MS):
        window.scene.step_clicked.emit("join")
    sides = [row["preview"] for row in window.artifacts.rows if row["name"] == "sides"]
    assert sides and "left hi" in sides[0]

    # Resume from Failure resumes on the engine that made the failed run
    monkeypatch.setenv("MF_FAIL_RIGHT", "1")
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.run_selected()
    assert blocker.args[1] == "failed"
    (mf_file.parent / "fixed").write_text("")
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as blocker:
        window.resume_selected()
    assert blocker.args[1] == "succeeded"
    assert window.scene.step_state("left").status == "reused"
    records = _records(mf_file.parent, "MfBranchFlow")
    assert [r["engine"] for r in records] == ["flowdeck"] * 3

    # rerun on save reuses tasks only from a run of the engine chosen now
    entry = controller.model.entry(key)
    assert controller.rerun_plan(entry).reason == "no step changed"
    _choose(window, "metaflow")
    plan = controller.rerun_plan(entry)
    assert plan.args[0] == "run" and "flowdeck engine" in plan.reason
    _choose(window, "flowdeck")

    # the choice is the flow's, remembered like its parameters
    settings.sync()
    again = QSettings(settings.fileName(), QSettings.Format.IniFormat)
    from flowdeck_desktop.control.controller import FlowdeckController
    fresh = FlowdeckController(again)
    try:
        assert fresh.session(key).engine == "flowdeck"
    finally:
        fresh.shutdown()
