"""A run's stdout and stderr lines reach the log in the order the run wrote them
(control/output_order.py), not all of a tick's stdout before all of its stderr."""

from __future__ import annotations

from pathlib import Path

from conftest import WAIT_MS, flow_key, opened_window
from PySide6.QtCore import QSettings

from flowdeck_desktop.control.output_order import OutputOrder


def test_lines_go_on_in_the_order_of_the_times_they_were_written() -> None:
    order = OutputOrder()
    # The run's first words carry no time; they pass, and the streams' merge starts after.
    assert order.interleave({"stdout": "TrainFlow run r: starting\n"}, now=9.9) == [
        ("stdout", "TrainFlow run r: starting\n")]
    err = "21:35:09.200 [r/start/1] warning 2\n21:35:09.250 [r/start/1] warnin"
    # Both streams writing: what the other stream has not passed yet is held (stderr's).
    assert order.interleave({"stdout": "21:35:09.100 [r/start/1] line 1\n", "stderr": err},
                            now=10.0) == [("stdout", "21:35:09.100 [r/start/1] line 1\n")]
    # stdout's reader was a tick behind: its lines up to the warnings' times come first.
    out = ("21:35:09.150 [r/start/1] line 1.5\n21:35:09.260 [r/start/1] line 2.5\n"
           "21:35:09.300 [r/start/1] line 3\nRun r succeeded in 0.05 s.\n")
    assert order.interleave({"stdout": out}, now=10.05) == [
        ("stdout", "21:35:09.150 [r/start/1] line 1.5\n"), ("stderr", err)]
    # The rest of stderr's cut line has no time of its own: it keeps its place.
    assert order.interleave({"stderr": "g 4\n"}, now=10.1) == [("stderr", "g 4\n")]
    # Both streams silent for HOLD_S: what is held goes on, in its order.
    assert order.interleave({}, now=10.3) == [
        ("stdout", "21:35:09.260 [r/start/1] line 2.5\n21:35:09.300 [r/start/1] line 3\n"
                   "Run r succeeded in 0.05 s.\n")]
    # One stream alone passes as it is, unparsed; the run's end lets everything go.
    assert order.interleave({"stderr": "x\n"}, now=11.0) == [("stderr", "x\n")]
    metaflow = OutputOrder()
    assert metaflow.interleave({"stdout": "2026-12-03 21:35:10.500 [1/end/2 (pid 7)] b\n",
                                "stderr": "2026-12-03 21:35:10.400 [1/start/1 (pid 6)] a\n"},
                               now=1.0, final=True) == [
        ("stderr", "2026-12-03 21:35:10.400 [1/start/1 (pid 6)] a\n"),
        ("stdout", "2026-12-03 21:35:10.500 [1/end/2 (pid 7)] b\n")]


def test_past_midnight_both_streams_go_on() -> None:
    """The stamps are times of day: after midnight (or the clock set back) a stream goes on
    from where it was, and neither holds the other back for good."""
    order = OutputOrder()
    order.interleave({"stdout": "23:59:59.900 [r/a/1] out 1\n",
                      "stderr": "23:59:59.800 [r/a/1] err 1\n"}, now=1.0)
    shown: list[str] = []
    for tick in range(20):  # both streams keep writing, every 15 ms, past midnight
        stamp = f"00:00:00.{tick * 15:03d}"
        pieces = order.interleave({"stdout": f"{stamp} [r/a/1] out {tick + 2}\n",
                                   "stderr": f"{stamp} [r/a/1] err {tick + 2}\n"},
                                  now=1.015 * (tick + 1))
        shown += [line for _, text in pieces for line in text.splitlines()]
    assert sum("out" in line for line in shown) >= 19  # not held until the run's end


def test_midnight_whichever_stream_crosses_it_first_and_however_long_silent() -> None:
    order = OutputOrder()
    order.interleave({"stdout": "23:52:00.000 [r/a/1] b\n",
                      "stderr": "23:59:59.000 [r/a/1] e0\n"}, now=1.0)
    pieces = order.interleave({"stdout": "00:00:02.000 [r/a/1] c\n",  # silent 8 minutes
                               "stderr": "00:00:01.500 [r/a/1] e1\n"}, now=1.01)
    pieces += order.interleave({"stderr": "00:00:03.500 [r/a/1] e2\n"}, now=1.02)
    pieces += order.interleave({}, now=2.0, final=True)
    lines = [line.split("] ")[1] for _, text in pieces for line in text.splitlines()]
    assert lines == ["e0", "e1", "c", "e2"]


def test_a_stream_with_unread_text_holds_the_other_back_from_the_start() -> None:
    order = OutputOrder()
    assert order.interleave({"stdout": "21:00:00.200 [r/a/1] out\n"}, now=1.0,
                            unread=frozenset({"stderr"})) == []
    assert order.interleave({"stderr": "21:00:00.100 [r/a/1] err\n"}, now=1.01) == [
        ("stderr", "21:00:00.100 [r/a/1] err\n")]
    assert order.interleave({}, now=1.5) == [("stdout", "21:00:00.200 [r/a/1] out\n")]


CHATTY = """import sys, time
from flowdeck import FlowSpec, step


class ChattyFlow(FlowSpec):
    @step
    def start(self):
        for i in range(20000):
            print(f"line {i}: " + "x" * 80)
            if i % 1000 == 999:
                time.sleep(0.002)  # the order within one millisecond is not known (below)
                print(f"warning after line {i}", file=sys.stderr)
                time.sleep(0.002)
        self.next(self.end)

    @step
    def end(self):
        print("the end step ran")


if __name__ == "__main__":
    ChattyFlow()
"""


def test_a_warning_among_a_flood_of_lines_shows_where_it_was_written(
        qtbot, settings: QSettings, tmp_path: Path) -> None:
    """In the real window: no warning comes before the line printed before it, and every one
    comes before the end step's output and the run's last line (they came after both). The
    order within one millisecond is not known: the run's lines carry millisecond times,
    and the run relays a burst of both streams within one."""
    folder = tmp_path / "flows"  # not the settings' folder: only the flow is watched
    folder.mkdir()
    (folder / "chatty.py").write_text(CHATTY)
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        window.select_flow(flow_key(controller, "ChattyFlow"))
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
            window.run_selected()
        assert ended.args[1] == "succeeded"
        qtbot.waitUntil(lambda: not window.logs.has_pending(), timeout=WAIT_MS)
        lines = [line.split("│ ", 1)[-1] for line in window.logs.text().splitlines()]
        starts = {line.split(":", 1)[0]: at for at, line in enumerate(lines)
                  if line.startswith("line ")}
        for i in range(999, 20000, 1000):
            at = lines.index(f"warning after line {i}")
            assert at > starts[f"line {i}"]  # never before what was written before it
        assert lines.index("warning after line 19999") < lines.index("the end step ran")
        assert lines.index("the end step ran") < next(
            at for at, line in enumerate(lines) if line.startswith("Run ") and "succeeded" in line)

