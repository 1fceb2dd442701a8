"""Cards of unchanged Metaflow flows run through the bridge: Metaflow's client reads them in
a helper process, and the window's Cards tab shows them like Flowdeck's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FLOWS, WAIT_MS, child_env

from flowdeck.cards.index import read_index
from flowdeck.store.layout import RunLayout

RUN_ID = "mfcards1"


@pytest.fixture(scope="module")
def carded_run(tmp_path_factory) -> Path:
    pytest.importorskip("metaflow")
    folder = tmp_path_factory.mktemp("mfcards")
    path = folder / "carded.py"
    path.write_text((FLOWS / "metaflow" / "carded.py").read_text())
    env = child_env(FLOWDECK_RUN_ID=RUN_ID, METAFLOW_USER="tester")
    result = subprocess.run([sys.executable, "-m", "flowdeck.engines.metaflow_bridge", str(path),
                             "run"], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return path


def export(path: Path, step: str, task_id: str, run_id: str = RUN_ID) -> dict:
    root = path.parent / ".flowdeck"
    result = subprocess.run([sys.executable, "-m", "flowdeck.engines.metaflow_cards", str(root),
                             "CardedFlow", run_id, step, task_id], env=child_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answer: dict = json.loads(result.stdout)
    return answer


def start_task(path: Path) -> str:
    events = (path.parent / ".flowdeck" / "CardedFlow" / "runs" / RUN_ID / "events.jsonl")
    started = [json.loads(line) for line in events.read_text().splitlines()]
    return next(e["task_id"] for e in started
                if e["type"] == "task_started" and e["step"] == "start")


def test_helper_copies_metaflows_cards_into_the_task_card_folder(carded_run: Path) -> None:
    task_id = start_task(carded_run)
    answer = export(carded_run, "start", task_id)
    assert answer == {"cards": 2, "error": None}
    layout = RunLayout(carded_run.parent / ".flowdeck", "CardedFlow")
    entries = read_index(layout.card_index(RUN_ID, "start", task_id))
    assert sorted(e.type for e in entries) == ["blank", "default"]
    report = next(e for e in entries if e.id == "report")
    folder = layout.cards_dir(RUN_ID, "start", task_id)
    html = (folder / str(report.file)).read_text()
    assert "window.__MF_DATA__" in html  # Metaflow's own card, as its browser view needs it
    static = (folder / str(report.static_file)).read_text()  # drawn without a script
    assert "Model report</h1>" in static and ">0.93</td>" in static
    assert "<script" not in static


def test_helper_says_what_is_wrong(carded_run: Path) -> None:
    answer = export(carded_run, "start", "999")
    assert answer["cards"] == 0 and "CardedFlow/" in answer["error"]
    not_metaflow = export(carded_run, "start", "1", run_id="nosuchrun")
    assert not_metaflow["cards"] == 0 and "not made by the Metaflow bridge" in not_metaflow["error"]


def test_cards_tab_shows_a_bridge_runs_cards(carded_run: Path, qtbot) -> None:
    from flowdeck_desktop.views.cards_pane import CardsPane
    task_id = start_task(carded_run)
    layout = RunLayout(carded_run.parent / ".flowdeck", "CardedFlow")
    # a fresh card folder: what the window sees before the helper ran
    for old in layout.cards_dir(RUN_ID, "start", task_id).glob("*"):
        old.unlink()
    pane = CardsPane()
    qtbot.addWidget(pane)
    pane.show()  # the tab follows its files only while shown
    pane.show_task(layout, RUN_ID, "start", task_id)
    pane.fetch_metaflow_cards(sys.executable, layout, "CardedFlow", RUN_ID, "start", task_id)
    qtbot.waitUntil(lambda: len(pane.entries) == 2, timeout=120000)
    pane.picker.setCurrentIndex([e.id for e in pane.entries].index("report"))
    qtbot.waitUntil(lambda: "Model report" in pane.shown_html(), timeout=WAIT_MS)
