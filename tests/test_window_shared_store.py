"""The window with a flow whose Store is an object store (a real S3 endpoint: moto's server)
it shares with other folders and machines, and with a scheduler it cannot reach.

- Runs that exist only in the object store (made from another folder, or another machine
  sharing the bucket) are listed: the list's mark, History, the title, the run's view and
  Resume from Failure, which then continues that run from this folder.
- A store that cannot be reached is said in a message naming it and what to do; the
  window goes on (the request runs off the GUI thread).
- A run refused because its Dask scheduler cannot be reached says so first in the banner,
  in the window's terms (Run on, Store), not the command line's.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import WAIT_MS, child_env, close_window, flow_key, run_flow
from PySide6.QtCore import QSettings
from scaleout_servers import s3_server

from flowdeck.engines.startup import IN_COMMAND, IN_WINDOW, diagnose_start
from flowdeck.store.layout import RunLayout, working_root
from flowdeck.store.status import FAILED, SUCCEEDED
from flowdeck_desktop.app import build
from flowdeck_desktop.control.controller import LAST_RUN_FAILED
from flowdeck_desktop.control.run_options import Placement

BUCKET = "shared-runs"
URL = f"s3://{BUCKET}/team"
FLOW = "MendFlow"
SOURCE = '''import os
from flowdeck import FlowSpec, step


class MendFlow(FlowSpec):
    """Fails in one foreach task until a marker file exists beside it."""

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        here = os.path.dirname(os.path.abspath(__file__))
        if self.input == 2 and not os.path.exists(os.path.join(here, "mended")):
            raise RuntimeError("not mended yet")
        self.v = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.v for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    MendFlow()
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s3_environment(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """The window's environment (its runs inherit it): the endpoint and a user's keys."""
    for name, value in (("AWS_ENDPOINT_URL", endpoint), ("AWS_ACCESS_KEY_ID", "testing"),
                        ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1"),
                        ("NO_PROXY", "127.0.0.1,localhost")):
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with s3_server(BUCKET) as endpoint:
        s3_environment(monkeypatch, endpoint)
        yield endpoint


def flow_in(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "mend.py").write_text(SOURCE)
    return folder / "mend.py"


def open_with_store(qtbot, settings: QSettings, folder: Path, store: str):
    """The window on `folder`, its flow's Store already chosen (as a earlier session left
    it), the flow selected."""
    key = f"{folder / 'mend.py'}::{FLOW}".replace("/", "|")
    settings.setValue(f"placement/{key}", {"executor": "local", "scheduler": "",
                                           "store": store})
    settings.sync()
    controller, window = build(settings, [str(folder)], restore=False)
    window.show()
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    key = flow_key(controller, FLOW)
    assert controller.placement(key).store == store
    window.select_flow(key)
    return controller, window, key


def test_runs_only_in_the_object_store_are_listed_shown_and_resumed(
        qtbot, settings: QSettings, tmp_path: Path, s3_endpoint: str) -> None:
    first = flow_in(tmp_path / "first")
    made = run_flow(first, "run", "--datastore", URL, env=child_env(), timeout=300)
    assert made.returncode != 0 and "not mended yet" in made.stderr, made.stderr
    second = flow_in(tmp_path / "second")  # a fresh folder (or machine) sharing the bucket
    (second.parent / "mended").write_text("")
    controller, window, key = open_with_store(qtbot, settings, second.parent, URL)
    try:
        qtbot.waitUntil(lambda: window.history.table.rowCount() == 1, timeout=WAIT_MS)
        failed = window.history.runs[0]
        assert failed.status == FAILED
        layout = controller.layout_for(key)
        assert layout is not None and layout.root == working_root(second.parent / ".flowdeck",
                                                                   URL)
        # the run's view: its steps from its events, fetched too; the title names the run
        qtbot.waitUntil(lambda: window.shown_state is not None
                        and window.shown_state.run_id == failed.run_id, timeout=WAIT_MS)
        assert window.scene.step_state("work").status == FAILED
        assert "not run yet" not in window.flow_title.text()
        assert failed.run_id in window.flow_title.text()
        assert controller.model._run_status.get(key) == LAST_RUN_FAILED
        assert window.act_resume.isEnabled()

        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
            window.act_resume.trigger()
        assert ended.args[1] == SUCCEEDED, window.logs.text()
        run = controller.sessions[key].run
        assert run is not None and "--origin-run-id" in run.spec.args
        assert run.spec.args[run.spec.args.index("--origin-run-id") + 1] == failed.run_id
    finally:
        close_window(controller, window)


def test_a_run_the_store_deleted_leaves_history_at_the_next_fetch(
        qtbot, settings: QSettings, tmp_path: Path, s3_endpoint: str) -> None:
    """A run fetched from the store (and shown: its events fetched too) that the store then
    loses (History's Delete or a collection elsewhere) leaves History, the view and the
    working copy at the next fetch, as it left `Flow(root=url)`: fetches only ever added
    runs. A run made here that the store lacks stays (not uploaded yet, or still running)."""
    url = f"s3://{BUCKET}/gone"  # not URL: this process keeps a store per URL (open_store)
    second = flow_in(tmp_path / "second")
    (second.parent / "mended").write_text("")
    here = run_flow(second, "run", "--datastore", url, env=child_env(), timeout=300)
    assert here.returncode == 0, here.stderr
    layout = RunLayout(working_root(second.parent / ".flowdeck", url), FLOW)
    (here_id,) = layout.run_ids()
    first = flow_in(tmp_path / "first")  # another folder (or machine) sharing the bucket
    made = run_flow(first, "run", "--datastore", url, env=child_env(), timeout=300)
    assert made.returncode != 0 and "not mended yet" in made.stderr, made.stderr
    controller, window, key = open_with_store(qtbot, settings, second.parent, url)
    try:
        qtbot.waitUntil(lambda: window.history.table.rowCount() == 2, timeout=WAIT_MS)
        elsewhere = window.history.runs[0]
        assert elsewhere.run_id != here_id and elsewhere.status == FAILED
        qtbot.waitUntil(lambda: not controller.fetching_shared_runs(key), timeout=WAIT_MS)
        window.history.run_selected.emit(elsewhere)  # shown: its events fetched as well
        qtbot.waitUntil(lambda: window.shown_state is not None
                        and window.shown_state.run_id == elsewhere.run_id
                        and os.path.exists(elsewhere.events_path), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: not controller.fetching_shared_runs(key), timeout=WAIT_MS)

        import s3fs
        store = s3fs.S3FileSystem(endpoint_url=s3_endpoint, key="testing", secret="testing",
                                  skip_instance_cache=True)
        store.rm(f"{BUCKET}/gone/{FLOW}/runs", recursive=True)  # both runs: gone there
        assert not store.exists(f"{BUCKET}/gone/{FLOW}/runs/{elsewhere.run_id}/run.json")
        with qtbot.waitSignal(controller.shared_runs_fetched, timeout=WAIT_MS):
            assert controller.fetch_shared_runs(key)
        assert [r.run_id for r in window.history.runs] == [here_id]
        assert layout.run_ids() == [here_id]
        qtbot.waitUntil(lambda: window.shown_state is not None
                        and window.shown_state.run_id == here_id, timeout=WAIT_MS)
        assert elsewhere.run_id not in window.flow_title.text()
        assert controller.model._run_status.get(key) != LAST_RUN_FAILED
    finally:
        close_window(controller, window)


def test_an_unreachable_store_is_said_and_the_window_goes_on(
        qtbot, settings: QSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s3_environment(monkeypatch, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore: one try (s3fs still retries)
    folder = flow_in(tmp_path / "flows").parent
    controller, window, key = open_with_store(qtbot, settings, folder, URL)
    try:
        # the selection returned while the store is being asked: the GUI thread never waits
        assert controller.fetching_shared_runs(key)
        assert "reading its runs from s3://shared-runs/team" in window.flow_title.text()
        qtbot.waitUntil(lambda: not controller.fetching_shared_runs(key), timeout=WAIT_MS)
        level, text = window.last_message
        assert level == "warning", text
        assert URL in text and "cannot be reached" in text and "AWS_ENDPOINT_URL" in text
        assert window.history.table.rowCount() == 0
        assert "not run yet" in window.flow_title.text()
        assert not window.act_resume.isEnabled() and window.act_run.isEnabled()
        window.placement_bar.store.setText("")  # back to the flow's own folder: no fetch
        window.placement_bar.store.editingFinished.emit()
        assert controller.placement(key) == Placement()
        assert not controller.fetching_shared_runs(key)
    finally:
        close_window(controller, window)


# -- a scheduler that cannot be reached -----------------------------------------------------------

SCHEDULER_REFUSAL = (
    "error: Cannot reach the Dask scheduler at tcp://127.0.0.1:9999 (Timed out trying to "
    "connect to tcp://127.0.0.1:9999 after 5 s). Start one there (`dask scheduler`, with "
    "workers: `dask worker ADDRESS`), or give the right address with --scheduler or "
    "$FLOWDECK_DASK_SCHEDULER (tcp://HOST:PORT, the scheduler's port, 8786 by default, not "
    "its dashboard's); without --executor dask the flow runs on this machine.\n")


def test_a_refusal_leads_with_its_cause_and_the_window_names_its_own_boxes() -> None:
    from flowdeck_desktop.control.run_options import window_terms
    failure = diagnose_start("Flowdeck 0.1\n" + SCHEDULER_REFUSAL, 2, "/f/sleepy.py",
                             "SleepyFlow", "python3", IN_WINDOW)
    assert failure.summary.startswith("SleepyFlow did not start: Cannot reach the Dask "
                                      "scheduler at tcp://127.0.0.1:9999"), failure.summary
    assert SCHEDULER_REFUSAL.strip() in failure.traceback  # the Error tab: the output as it was
    told = window_terms(failure.summary)
    assert "--scheduler" not in told and "--executor" not in told and "$FLOWDECK" not in told
    assert "in Run on (Dask cluster…)" in told and "set Run on to This machine" in told
    assert window_terms("Create it, or fix the URL given with --datastore (or "
                        "$FLOWDECK_DATASTORE).") == "Create it, or fix the URL in Store."
    command = diagnose_start(SCHEDULER_REFUSAL, 2, "/f/sleepy.py", "SleepyFlow", "python3",
                             IN_COMMAND)
    assert "--scheduler" in command.summary  # a terminal's user typed the options


def test_the_banner_keeps_the_cause_of_a_refused_dask_run(
        qtbot, settings: QSettings, tmp_path: Path) -> None:
    folder = flow_in(tmp_path / "flows").parent
    key = f"{folder / 'mend.py'}::{FLOW}".replace("/", "|")
    settings.setValue(f"placement/{key}", {"executor": "dask", "store": "",
                                           "scheduler": f"tcp://127.0.0.1:{free_port()}"})
    controller, window = build(settings, [str(folder)], restore=False)
    window.resize(1280, 720)
    window.show()
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        key = flow_key(controller, FLOW)
        window.select_flow(key)
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
            window.run_selected()
        qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=WAIT_MS)
        text = window.banner.text
        assert "Cannot reach the Dask scheduler at tcp://127.0.0.1:" in text, text
        assert "--scheduler" not in text and "Run on" in text
        shown = window.banner.view._shown or ""
        assert "Cannot reach the Dask scheduler at tcp://127.0.0.1:" in shown, shown
        if window.banner.view.is_clamped():  # the rest in the tooltip and on Copy
            assert "Run on" in window.banner.view.toolTip()
        assert window.banner.copy_text() == text
    finally:
        close_window(controller, window)
