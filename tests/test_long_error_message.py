"""A long exception message (a KeyError listing 300 columns) keeps to a few lines in the
banner and in the Error tab's header: the graph and the traceback keep their room, and the
whole text stays in the tooltip, the Copy button and the traceback.

Sizes are compared with the widgets' own geometry and line counts, never with pixel sizes
of fonts; waits are `waitSignal` / `waitUntil`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import FLOWS, WAIT_MS, close_window, flow_key
from PySide6.QtCore import QSettings
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QApplication, QWidget

from flowdeck_desktop.app import build
from flowdeck_desktop.views.banner import MessageBanner
from flowdeck_desktop.views.panes import ErrorPane

BANNER_LINES = 3  # the most a message takes in the banner...
COMMAND_LINES = 6  # ...when it gives no command to run (an instruction is read whole)
HEADER_LINES = 2  # the most the Error tab's header takes


def document_lines(document: QTextDocument) -> int:
    """Lines a text view's document takes at its width."""
    document.size()  # laid out
    lines, block = 0, document.begin()
    while block.isValid():
        lines += block.layout().lineCount()
        block = block.next()
    return lines


def settle() -> None:
    for _ in range(3):
        QApplication.sendPostedEvents()
        QApplication.processEvents()


def test_a_long_failure_message_keeps_to_a_few_lines(qtbot, settings: QSettings,
                                                    tmp_path: Path) -> None:
    shutil.copy(FLOWS / "long_message.py", tmp_path)
    controller, window = build(settings, [str(tmp_path)])
    window.resize(1280, 720)
    window.show()
    qtbot.waitExposed(window)
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        window.select_flow(flow_key(controller, "LongMessageFlow"))
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
            window.run_selected()
        assert ended.args[1] == "failed"
        settle()
        banner, pane = window.banner, window.error_pane
        assert banner.isVisible() and window.bottom.currentWidget() is pane
        # The banner: a few lines, all of them in view; the whole text a hover or a click away.
        assert document_lines(banner.view.document()) <= BANNER_LINES and banner.view.fits()
        assert "feature_column_number_5_with_suffix" in banner.view.toolTip()
        assert banner.copy_text() == banner.text and "(long_message.py, line 14)." in banner.text
        assert banner.view.toPlainText().endswith("(long_message.py, line 14).")  # where: kept
        assert banner.height() < window.dag.height()
        # The Error tab: its header is whole in the pane, the traceback keeps most of the room.
        header = pane.summary.geometry()
        assert header.top() >= 0 and header.bottom() < pane.text.geometry().top()
        assert pane.text.height() > pane.height() / 2
        assert "feature_column_number_20_with_suffix" in pane.summary.toolTip()
        assert "feature_column_number_299_with_suffix" in pane.text.toPlainText()
    finally:
        close_window(controller, window)


def shown_banner(qtbot, text: str) -> tuple[QWidget, MessageBanner]:
    """A banner 500 wide in a window of its own (returned too: qtbot keeps no reference),
    showing `text`."""
    host = QWidget()
    qtbot.addWidget(host)
    banner = MessageBanner(host)
    host.resize(500, 400)
    banner.setGeometry(0, 0, 500, banner.sizeHint().height())
    host.show()
    qtbot.waitExposed(host)
    banner.show_message("error", text)
    banner.resize(500, banner.sizeHint().height())
    settle()
    return host, banner


def test_a_long_message_keeps_its_command_and_a_short_one_is_whole(qtbot) -> None:
    """A message's command says what to do: a message too long even for the room a
    message with a command gets keeps its command in view."""
    command = "python -m pip install some_missing_package"
    long = "The flow cannot start: " + "a very long explanation " * 40 + \
        f"Install it: `{command}`, then run it again."
    _host, banner = shown_banner(qtbot, long)
    assert banner.view.is_clamped() and document_lines(banner.view.document()) <= COMMAND_LINES
    assert banner.view.toPlainText().endswith(f"{command}, then run it again.")
    assert " … " in banner.view.toPlainText()
    assert banner.copy_text() == command
    _other, short = shown_banner(qtbot, f"Install it: `{command}`")
    assert not short.view.is_clamped() and short.view.toPlainText() == f"Install it: {command}"
    assert short.view.toolTip() == ""


def test_the_error_header_keeps_to_two_lines_in_a_short_pane(qtbot) -> None:
    pane = ErrorPane()
    qtbot.addWidget(pane)
    pane.resize(600, 240)
    pane.show()
    qtbot.waitExposed(pane)
    message = "None of [" + ", ".join(f"'column_{i}'" for i in range(300)) + "] are in the [columns]"
    pane.show_error("validate", "2", {"type": "KeyError", "message": message,
                                      "traceback": f"Traceback (most recent call last):\nKeyError: {message}"},
                    "/nowhere/flow.py")
    settle()
    assert document_lines(pane.summary.document()) <= HEADER_LINES
    assert pane.summary.fits() and pane.summary.geometry().top() >= 0
    assert pane.summary.text().endswith("are in the [columns]")  # whole, for copying
    assert pane.text.height() > pane.height() / 2
