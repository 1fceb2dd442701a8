"""Metaflow projects laid out as their users lay them out: sibling folders, one .metaflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WAIT_MS, child_env

from flowdeck.engines.launching import build_launch

pytest.importorskip("metaflow")

PRODUCER = '''from metaflow import FlowSpec, step


class ProducerFlow(FlowSpec):
    @step
    def start(self):
        self.answer = 42
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProducerFlow()
'''

CONSUMER = '''from metaflow import Flow, FlowSpec, namespace, step


class ConsumerFlow(FlowSpec):
    @step
    def start(self):
        namespace(None)
        self.got = Flow("ProducerFlow").latest_successful_run.data.answer
        print("got", self.got)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ConsumerFlow()
'''


def _project(tmp_path: Path) -> tuple[Path, Path]:
    """`project/01-produce/producer.py`, `project/02-consume/consumer.py`; no `.metaflow` yet."""
    (tmp_path / "01-produce").mkdir()
    (tmp_path / "02-consume").mkdir()
    producer = tmp_path / "01-produce" / "producer.py"
    consumer = tmp_path / "02-consume" / "consumer.py"
    producer.write_text(PRODUCER)
    consumer.write_text(CONSUMER)
    return producer, consumer


def _launch(file: Path, flow: str, root: Path) -> subprocess.CompletedProcess[str]:
    spec = build_launch(str(file), flow, "metaflow", ["run"], project_root=str(root))
    return subprocess.run(spec.argv, cwd=spec.cwd, env={**child_env(USER="tester"), **spec.env},
                          capture_output=True, text=True, timeout=240)


def test_sibling_metaflow_flows_share_the_projects_metaflow(tmp_path: Path) -> None:
    """As `cd project; python 01-produce/producer.py run; python 02-consume/consumer.py run`:
    the second flow reads the first one's run through Metaflow's client."""
    producer, consumer = _project(tmp_path)
    first = _launch(producer, "ProducerFlow", tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert (tmp_path / ".metaflow").is_dir()
    assert build_launch(str(consumer), "ConsumerFlow", "metaflow", ["run"]).cwd == str(tmp_path)
    second = _launch(consumer, "ConsumerFlow", tmp_path)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "got 42" in second.stdout
    assert not (tmp_path / "02-consume" / ".metaflow").exists()


def test_without_a_display_the_window_says_so_and_points_to_flowdeck_run(tmp_path) -> None:
    env = {k: v for k, v in child_env().items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "flowdeck_desktop", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "there is no display" in done.stderr
    assert "flowdeck run FILE.py" in done.stderr and "xcb" not in done.stderr
    assert os.path.isdir(tmp_path)


def test_metaflows_ordinary_progress_is_not_reported_as_an_error(tmp_path: Path) -> None:
    producer, _ = _project(tmp_path)
    done = _launch(producer, "ProducerFlow", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Validating your flow" in done.stdout and "Validating your flow" not in done.stderr


def test_the_window_header_names_metaflows_own_run_id(qtbot, settings, tmp_path) -> None:
    from conftest import close_window, flow_key

    from flowdeck.store.index import RunIndex
    from flowdeck.store.layout import RunLayout
    from flowdeck_desktop.app import build

    producer, _ = _project(tmp_path)
    controller, window = build(settings, [str(tmp_path)], restore=False)
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        window.select_flow(flow_key(controller, "ProducerFlow"))
        with qtbot.waitSignal(controller.run_ended, timeout=120000) as ended:
            window.run_selected()
        assert ended.args[1] == "succeeded"
        record = RunIndex(RunLayout.for_file(str(producer), "ProducerFlow")).latest().record
        assert record.metaflow_run_id and record.metaflow_run_id != record.run_id
        assert f"run {record.metaflow_run_id}" in window.flow_title.text()
    finally:
        close_window(controller, window)
