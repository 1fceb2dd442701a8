"""The window's Cards tab on real runs: the selected task's cards, live while it runs,
a failed card's error, and Open in Browser on the card's file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import WAIT_MS, child_env, close_window, flow_key, run_flow
from PySide6.QtCore import QSettings
from test_cards import FAILING_FLOW, REPORT_FLOW, stop_a_live_card

from flowdeck.cards.index import ERROR, FINAL, LIVE, STOPPED
from flowdeck.store.layout import RunLayout
from flowdeck_desktop.app import build
from flowdeck_desktop.views import cards_pane


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    target.mkdir()
    (target / "report.py").write_text(REPORT_FLOW)
    (target / "failing.py").write_text(FAILING_FLOW)
    return target


@pytest.fixture
def app(qtbot, settings: QSettings, folder: Path):
    controller, window = build(settings, [str(folder)])
    window.show()
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    yield controller, window
    close_window(controller, window)


def _progress(pane) -> object:
    return next((e for e in pane.entries if e.id == "progress"), None)


def test_cards_tab_follows_a_live_card_and_shows_the_final_one(
        qtbot, app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    controller, window = app
    gate = tmp_path / "gate"
    monkeypatch.setenv("CARD_GATE", str(gate))
    window.select_flow(flow_key(controller, "ReportFlow"))
    window.run_selected()
    qtbot.waitUntil(Path(str(gate) + ".waiting").exists, timeout=WAIT_MS)
    window.bottom.setCurrentWidget(window.cards)
    window.scene.step_clicked.emit("train")
    pane = window.cards
    qtbot.waitUntil(lambda: _progress(pane) is not None and _progress(pane).state == LIVE,
                    timeout=WAIT_MS)
    pane.picker.setCurrentIndex(pane.entries.index(_progress(pane)))
    qtbot.waitUntil(lambda: "1/3" in pane.shown_html(), timeout=WAIT_MS)
    if not pane.web_view_available:  # this machine has no Qt WebEngine: the tab says so
        assert pane.note.isVisible() and "Open in Browser" in pane.note.text()
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
        gate.touch()
    assert ended.args[1] == "succeeded"
    qtbot.waitUntil(lambda: _progress(pane).state == FINAL and "3/3" in pane.shown_html(),
                    timeout=WAIT_MS)
    assert "epoch 3" in pane.shown_html()
    assert sorted(e.id for e in pane.entries) == ["progress", "summary"]

    opened: list[str] = []
    monkeypatch.setattr(cards_pane.QDesktopServices, "openUrl",
                        lambda url: opened.append(url.toLocalFile()))
    with qtbot.waitSignal(pane.opened, timeout=1000) as clicked:
        pane.open_button.click()
    assert clicked.args[0] == opened[0] and opened[0].endswith("-blank.html")
    assert Path(opened[0]).read_text().count("3/3") >= 1


def test_the_simplified_view_keeps_the_live_badge_apart_from_the_title(
        qtbot, settings: QSettings, folder: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Qt WebEngine (forced here, whatever this machine has), a live card's
    title read "ReportFlow/…/train/2live": Qt's rich text drops the badge's CSS margin."""
    monkeypatch.setenv("FLOWDECK_NO_WEBENGINE", "1")
    gate = tmp_path / "gate"
    monkeypatch.setenv("CARD_GATE", str(gate))
    controller, window = build(settings, [str(folder)])
    window.show()
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        window.select_flow(flow_key(controller, "ReportFlow"))
        window.run_selected()
        qtbot.waitUntil(Path(str(gate) + ".waiting").exists, timeout=WAIT_MS)
        window.bottom.setCurrentWidget(window.cards)
        window.scene.step_clicked.emit("train")
        pane = window.cards
        assert not pane.web_view_available
        qtbot.waitUntil(lambda: _progress(pane) is not None and _progress(pane).state == LIVE,
                        timeout=WAIT_MS)
        pane.picker.setCurrentIndex(pane.entries.index(_progress(pane)))
        qtbot.waitUntil(lambda: "1/3" in pane.shown_html(), timeout=WAIT_MS)
        title = pane.shown_html().splitlines()[0]
        assert re.fullmatch(r"ReportFlow/\S+/train/\d+\s+live\s*", title), title
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
            gate.touch()
    finally:
        close_window(controller, window)


def test_a_card_that_failed_shows_its_error_and_a_task_without_cards_says_so(
        qtbot, app, folder: Path) -> None:
    controller, window = app
    run_flow(folder / "failing.py", "run", env=child_env())  # a past run, from a terminal
    window.select_flow(flow_key(controller, "CardFailFlow"))
    qtbot.waitUntil(lambda: window.history.table.rowCount() == 1, timeout=WAIT_MS)
    window.history.table.selectRow(0)
    qtbot.waitUntil(lambda: window.shown_state is not None and bool(window.shown_state.run_id),
                    timeout=WAIT_MS)
    window.bottom.setCurrentWidget(window.cards)
    window.scene.step_clicked.emit("start")
    pane = window.cards
    qtbot.waitUntil(lambda: len(pane.entries) == 2, timeout=WAIT_MS)
    assert {e.state for e in pane.entries} == {ERROR}
    for index in range(2):
        pane.picker.setCurrentIndex(index)
        assert pane.error.isVisible() and "This card failed" in pane.error.text()
        assert "This card could not be made" in pane.shown_html()
    window.scene.step_clicked.emit("end")  # never ran: the run failed before it
    assert pane.entries == [] and not pane.open_button.isEnabled()
    assert "has not run" in pane.status.text()


def test_the_simplified_view_keeps_apart_what_the_cards_css_sets_apart(qtbot) -> None:
    """Qt's rich text ignores class rules: an artifact's name ran into its type ("a dict
    dict"), a step into its next steps and kind ("start→ endstart"), an image's caption
    stood beside it."""
    from PySide6.QtWidgets import QTextBrowser

    from flowdeck.cards import html as card_html
    body = card_html.components_html([
        {"type": "artifact", "name": "a dict", "data_type": "dict", "repr": "{'k': 1}"},
        {"type": "dag", "current": "start",
         "steps": [{"name": "start", "type": "start", "next": ["end"]},
                   {"name": "end", "type": "end", "next": []}]},
        {"type": "image", "src": "data:image/png;base64,iVBORw0KGgo=", "label": "red PIL"},
    ])
    view = QTextBrowser()
    qtbot.addWidget(view)
    view.setHtml(cards_pane.simplified(body))
    lines = [line.strip() for line in view.toPlainText().splitlines() if line.strip()]
    assert "a dict  dict" in lines and "start → end  (start)" in lines
    assert "end → —  (end)" in lines
    assert lines[-2:] == ["\ufffc", "red PIL"]  # the image, and its caption under it


def test_a_live_card_whose_run_crashed_reads_stopped_in_the_tab(
        qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After kill -9 of the orchestrator the tab said "live" (and drew the badge) under a
    run the window calls crashed: the card list still says live, and nothing will write
    it again. The tab asks the core's rule while a card is live, and says stopped."""
    monkeypatch.setenv("FLOWDECK_NO_WEBENGINE", "1")
    pane = cards_pane.CardsPane()
    qtbot.addWidget(pane)
    pane.show()

    def follow(flow: Path, task) -> None:
        pane.show_task(RunLayout(flow.parent / ".flowdeck", "ReportFlow"), task.run.id,
                       "train", task.id)
        qtbot.waitUntil(lambda: _progress(pane) is not None and _progress(pane).state == LIVE,
                        timeout=WAIT_MS)
        pane.picker.setCurrentIndex(pane.entries.index(_progress(pane)))
        qtbot.waitUntil(lambda: "1/3" in pane.shown_html(), timeout=WAIT_MS)
        assert pane.shown_html().splitlines()[0].rstrip().endswith("live")

    stop_a_live_card(tmp_path, "kill", follow)
    qtbot.waitUntil(lambda: _progress(pane).state == STOPPED, timeout=WAIT_MS)
    assert "stopped" in pane.status.text() and "stopped" in pane.picker.currentText()
    title = pane.shown_html().splitlines()[0]
    assert re.fullmatch(r"ReportFlow/\S+/train/\d+\s*", title), title  # no "live" badge
    assert "1/3" in pane.shown_html()  # the content stays
