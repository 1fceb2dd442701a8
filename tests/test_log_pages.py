"""A task's logs are read in bounded pages off the GUI thread (the reliability issue, item 16).

A step that printed 100 MB used to freeze the window when its task was clicked: the
whole file was read and decoded on the GUI thread. Now the window reads the last page
(`PAGE_BYTES`, whole lines) on a pool thread, shows it, and pages back on request.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from conftest import WAIT_MS, child_env, close_window, flow_key
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolButton

from flowdeck_desktop.app import build
from flowdeck_desktop.views.log_view import PAGE_BYTES, read_log_page

LINES = 1_000_000  # of 100 bytes each: 100 MB

# Printed 1,000 lines per call: the same 100 MB of lines, in a third less time than a
# million print() calls take.
LOUD = f'''from flowdeck import FlowSpec, step


class LoudFlow(FlowSpec):
    @step
    def start(self):
        pad = "x" * 86
        for first in range(0, {LINES}, 1000):
            print("".join(f"line {{i:07d}} {{pad}}\\n" for i in range(first, first + 1000)),
                  end="")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LoudFlow()
'''


def line_numbers(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.split("\n") if line.startswith("line ")]


def test_paging_back_reads_every_byte_once_in_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "attempt-0.out"
    lines = [f"{i} " + "é" * (i % 37) + "\n" for i in range(5000)]
    log.write_text("".join(lines) + "unfinished", encoding="utf-8")
    pages, end = [], None
    while True:
        page = read_log_page(log, end, page_bytes=4096, max_lines=50)
        assert page is not None
        assert len(page.text.encode()) <= 4096 and page.text.count("\n") <= 50
        pages.append(page.text)
        if not page.earlier:
            break
        end = page.start
    assert "".join(reversed(pages)) == log.read_text(encoding="utf-8")


def test_clicking_a_task_that_printed_100_mb_shows_its_tail_read_off_the_gui_thread(
        qtbot, settings, tmp_path: Path) -> None:
    flow = tmp_path / "loud.py"
    flow.write_text(LOUD)
    subprocess.run([sys.executable, str(flow)], cwd=tmp_path, env=child_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    out_logs = list((tmp_path / ".flowdeck" / "LoudFlow" / "runs").glob("*/start/*/attempt-0.out"))
    assert out_logs and out_logs[0].stat().st_size == LINES * 100

    controller, window = build(settings, [str(tmp_path)], restore=False)
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        window.select_flow(flow_key(controller, "LoudFlow"))
        qtbot.waitUntil(lambda: window.history.table.rowCount() == 1, timeout=WAIT_MS)
        window.history.table.selectRow(0)
        window._on_step_clicked("start")
        logs = window.logs
        last_line = f"line {LINES - 1:07d}"
        qtbot.waitUntil(lambda: not logs.has_pending() and last_line in logs.text(),
                        timeout=WAIT_MS)
        shown = logs.text()
        assert len(shown) <= PAGE_BYTES + 1000  # the page and a marker line, bounded
        page = logs.last_page
        assert page is not None
        assert page.reader_thread != threading.get_ident()  # read on a pool thread
        assert page.bytes_read <= 2 * PAGE_BYTES  # a page per stream, never the whole file
        tail = line_numbers(shown)
        assert tail[-1] == LINES - 1 and tail == list(range(tail[0], LINES))
        assert "of earlier stdout" in shown

        earlier = logs.findChild(QToolButton, "logShowEarlier")
        assert earlier.isVisibleTo(logs)
        qtbot.mouseClick(earlier, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: logs.last_page is not page and not logs.has_pending(),
                        timeout=WAIT_MS)
        before = line_numbers(logs.text())
        assert before[-1] == tail[0] - 1 and before == list(range(before[0], tail[0]))
        assert logs.last_page.reader_thread != threading.get_ident()
        assert len(logs.text()) <= PAGE_BYTES + 1000

        latest = logs.findChild(QToolButton, "logShowLatest")
        assert latest.isVisibleTo(logs)
        previous = logs.last_page
        qtbot.mouseClick(latest, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: logs.last_page is not previous and not logs.has_pending(),
                        timeout=WAIT_MS)
        assert line_numbers(logs.text())[-1] == LINES - 1
    finally:
        close_window(controller, window)


def test_a_growing_log_is_followed_until_its_task_ends(qtbot, tmp_path: Path) -> None:
    """A running task's files are shown as they grow (a character split between two
    writes included), a burst past FOLLOW_READ_MAX reads the tail page anew, paging back
    stops following, and once told the task ended the view stops looking."""
    from flowdeck_desktop.views.log_view import FOLLOW_READ_MAX, LogView
    view = LogView()
    qtbot.addWidget(view)
    out, err = tmp_path / "attempt-0.out", tmp_path / "attempt-0.err"
    out.write_bytes(b"first\n")
    view.show_files({"stdout": out, "stderr": err}, live=True)  # stderr not written yet
    qtbot.waitUntil(lambda: "first" in view.text() and view.following_files, timeout=WAIT_MS)
    with open(out, "ab") as handle:
        handle.write(b"second caf" + "é".encode()[:1])
    qtbot.waitUntil(lambda: "second caf" in view.text(), timeout=WAIT_MS)
    with open(out, "ab") as handle:
        handle.write("é".encode()[1:] + b" done\n")
    err.write_bytes(b"a warning\n")
    qtbot.waitUntil(lambda: "second café done" in view.text() and "a warning" in view.text(),
                    timeout=WAIT_MS)
    assert "\ufffd" not in view.text()
    with open(out, "ab") as handle:  # a burst: the tail page, read off the GUI thread
        handle.write(b"x" * FOLLOW_READ_MAX + b"\nafter the burst\n")
    qtbot.waitUntil(lambda: "after the burst" in view.text() and view.following_files,
                    timeout=WAIT_MS)
    with open(out, "ab") as handle:
        handle.write(b"last words\n")
    view.stop_following()  # reads what came last, then stops
    assert not view.following_files
    qtbot.waitUntil(lambda: "last words" in view.text(), timeout=WAIT_MS)
    with open(out, "ab") as handle:
        handle.write(b"never shown\n")
    qtbot.wait(3 * 250)
    assert "never shown" not in view.text()


def test_a_running_tasks_log_grows_in_the_window(qtbot, settings, tmp_path: Path) -> None:
    """Click a step while its task runs: what the task prints after the click shows up
    (the log was the snapshot of the moment of the click), and the next attempt's log
    replaces a failed one's as it starts."""
    gate = tmp_path / "gate"
    flow = tmp_path / "slow.py"
    flow.write_text(
        "import os, time\nfrom flowdeck import FlowSpec, retry, step\n\n\n"
        "class SlowFlow(FlowSpec):\n    @step\n    def start(self):\n        self.next(self.talk)\n\n"
        "    @retry(times=1, minutes_between_retries=0)\n    @step\n    def talk(self):\n"
        "        from flowdeck import current\n"
        "        print('attempt', current.retry_count, 'begins', flush=True)\n"
        f"        while not os.path.exists({str(gate)!r} + str(current.retry_count)):\n"
        "            time.sleep(0.02)\n"
        "        print('attempt', current.retry_count, 'passed its gate', flush=True)\n"
        "        if current.retry_count == 0:\n            raise ValueError('once')\n"
        "        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    SlowFlow()\n")
    controller, window = build(settings, [str(tmp_path)])
    window.show()
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        window.select_flow(flow_key(controller, "SlowFlow"))
        window.run_selected()
        qtbot.waitUntil(lambda: window.scene.step_state("talk").status == "running",
                        timeout=WAIT_MS)
        window._on_step_clicked("talk")
        qtbot.waitUntil(lambda: "attempt 0 begins" in window.logs.text(), timeout=WAIT_MS)
        (tmp_path / "gate0").touch()
        qtbot.waitUntil(lambda: "attempt 1 begins" in window.logs.text(), timeout=WAIT_MS)
        assert "(attempt 1)" in window.log_scope.text()
        (tmp_path / "gate1").touch()
        qtbot.waitUntil(lambda: "attempt 1 passed its gate" in window.logs.text(),
                        timeout=WAIT_MS)
        qtbot.waitUntil(lambda: not controller.is_running(window.selected_key),
                        timeout=WAIT_MS)
        assert not window.logs.following_files
    finally:
        close_window(controller, window)
