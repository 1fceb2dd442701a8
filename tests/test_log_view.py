"""LogView: batched and bounded appends, streams and ANSI colours, following, search, copy."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QFontMetricsF,
    QGuiApplication,
    QPalette,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import QToolButton

from flowdeck_desktop.views.ansi import to_rgb
from flowdeck_desktop.views.log_view import LogView, error_color, is_dark_palette

FLUSH_TIMEOUT_MS = 10_000


@pytest.fixture
def view(qtbot) -> LogView:
    widget = LogView()
    widget.resize(600, 240)
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def shown(qtbot, view: LogView) -> LogView:
    view.show()
    qtbot.waitExposed(view)
    return view


def wait_flushed(qtbot, view: LogView) -> None:
    qtbot.waitUntil(lambda: not view.has_pending(), timeout=FLUSH_TIMEOUT_MS)


def lines(view: LogView) -> list[str]:
    return view.text().split("\n") if view.line_count() else []


def fragments(view: LogView, line: int) -> list[tuple[str, QColor | None]]:
    """(text, foreground or None when the palette's text colour applies) of one line."""
    block = view.text_edit.document().findBlockByNumber(line)
    out = []
    for item in block:
        fragment = item.fragment()
        fmt = fragment.charFormat()
        color = (fmt.foreground().color()
                 if fmt.hasProperty(QTextFormat.Property.ForegroundBrush) else None)
        out.append((fragment.text(), color))
    return out


def top_visible_line(view: LogView) -> str:
    return view.text_edit.cursorForPosition(QPoint(2, 2)).block().text()


# -- batching, lines and streams --------------------------------------------------------


def test_appends_are_batched_into_one_flush(qtbot, view: LogView) -> None:
    for index in range(3):
        view.append(f"line {index}\n")
    assert view.line_count() == 0  # queued, not shown yet
    assert view.has_pending()
    wait_flushed(qtbot, view)
    assert lines(view) == ["line 0", "line 1", "line 2"]
    assert view.flush_count == 1


def test_partial_lines_are_completed_by_the_next_append(qtbot, view: LogView) -> None:
    view.append("abc")
    view.append("def\nghi")
    view.append("\n")
    wait_flushed(qtbot, view)
    assert lines(view) == ["abcdef", "ghi"]


def test_each_stream_keeps_its_own_partial_line(qtbot, view: LogView) -> None:
    view.append("out-", "stdout")
    view.append("err line\n", "stderr")
    view.append("continued\n", "stdout")
    wait_flushed(qtbot, view)
    assert lines(view) == ["err line", "out-continued"]


def test_unfinished_line_is_shown_and_completed_in_place(qtbot, view: LogView) -> None:
    view.append("abc")
    wait_flushed(qtbot, view)
    assert lines(view) == ["abc"]  # shown at once, as a terminal would
    view.append("def")
    wait_flushed(qtbot, view)
    assert lines(view) == ["abcdef"]
    view.append("ghi\njkl\n")
    wait_flushed(qtbot, view)
    assert lines(view) == ["abcdefghi", "jkl"]


def test_unfinished_line_of_one_stream_is_completed_above_later_lines(qtbot, view: LogView) -> None:
    view.append("out-", "stdout")
    wait_flushed(qtbot, view)
    view.append("err line\n", "stderr")
    wait_flushed(qtbot, view)
    assert lines(view) == ["out-", "err line"]
    view.append("\x1b[32mcontinued\x1b[0m\n", "stdout")
    wait_flushed(qtbot, view)
    assert lines(view) == ["out-continued", "err line"]
    dark = is_dark_palette(view.text_edit.palette())
    assert fragments(view, 0) == [("out-", None), ("continued", QColor(*to_rgb(2, dark)))]
    assert fragments(view, 1) == [("err line", error_color(view.text_edit.palette()))]
    view.append("next\n", "stdout")
    wait_flushed(qtbot, view)
    assert lines(view) == ["out-continued", "err line", "next"]


def test_progress_bar_redraws_in_place(qtbot, view: LogView) -> None:
    view.append("done\n")
    for percent in (10, 50, 90):
        view.append(f"progress {percent}%\r", "stderr")
        wait_flushed(qtbot, view)
        assert lines(view) == ["done", f"progress {percent}%"]
    view.append("progress 100%\n", "stderr")
    view.append("after\n", "stderr")
    wait_flushed(qtbot, view)
    assert lines(view) == ["done", "progress 100%", "after"]


def test_finish_ends_the_unfinished_line(qtbot, view: LogView) -> None:
    view.append("done\nno newline")
    view.finish()
    view.append("more\n")
    wait_flushed(qtbot, view)
    assert lines(view) == ["done", "no newline", "more"]


def test_unfinished_line_trimmed_away_is_completed_at_the_end(qtbot) -> None:
    view = LogView(max_lines=5)
    qtbot.addWidget(view)
    view.append("start-")
    wait_flushed(qtbot, view)
    for index in range(8):
        view.append(f"err {index}\n", "stderr")
        wait_flushed(qtbot, view)
    assert "start-" not in lines(view)
    view.append("end\n")
    wait_flushed(qtbot, view)
    assert lines(view)[-1] == "start-end"
    assert view.line_count() == 5


def test_carriage_return_restarts_the_line(qtbot, view: LogView) -> None:
    view.append("progress 10%\rprogress 50%\r")
    view.append("progress 100%\n")
    view.append("windows\r")
    view.append("\nline\r\n")
    wait_flushed(qtbot, view)
    assert lines(view) == ["progress 100%", "windows", "line"]


def test_a_line_without_end_is_shown_in_bounded_pieces(qtbot, view: LogView) -> None:
    for _ in range(200):
        view.append("x" * 1000)
    wait_flushed(qtbot, view)
    shown = lines(view)
    assert len(shown) >= 2
    assert all(len(line) <= LogView.MAX_PARTIAL_CHARS + 1000 for line in shown)


def test_stderr_is_drawn_in_the_error_colour(qtbot, view: LogView) -> None:
    view.append("to stdout\n", "stdout")
    view.append("to stderr\n", "stderr")
    wait_flushed(qtbot, view)
    palette = view.text_edit.palette()
    assert fragments(view, 0) == [("to stdout", None)]  # the palette's text colour
    [(text, color)] = fragments(view, 1)
    assert text == "to stderr"
    assert color == error_color(palette)
    assert color != palette.color(QPalette.ColorRole.Text)


def test_ansi_colours_become_char_formats(qtbot, view: LogView) -> None:
    view.append("plain \x1b[31mred\x1b[0m \x1b[1;38;2;10;20;30mrgb\x1b[0m\n")
    view.append("\x1b[32mgreen across ")
    view.append("chunks\x1b[0m\n")
    view.append("\x1b[3")  # an escape cut in two
    view.append("4mblue\x1b[0m\n")
    wait_flushed(qtbot, view)
    assert lines(view) == ["plain red rgb", "green across chunks", "blue"]
    dark = is_dark_palette(view.text_edit.palette())
    first = fragments(view, 0)
    assert ("red", QColor(*to_rgb(1, dark))) in first
    assert ("rgb", QColor(10, 20, 30)) in first
    assert first[0] == ("plain ", None)
    assert fragments(view, 1) == [("green across chunks", QColor(*to_rgb(2, dark)))]
    assert fragments(view, 2) == [("blue", QColor(*to_rgb(4, dark)))]


def test_monospace_font(view: LogView) -> None:
    """The log asks for the system's fixed-pitch font, hinted monospace. What the font
    database resolves that to depends on the fonts the machine has (on one, Qt's
    offscreen platform answered a proportional font), so that is not asserted here."""
    font = view.text_edit.font()
    assert font.family() == QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()
    assert font.styleHint() == QFont.StyleHint.Monospace
    assert view.text_edit.isReadOnly()


def test_clear_forgets_lines_queue_and_partials(qtbot, view: LogView) -> None:
    view.append("old\nhalf", "stdout")
    wait_flushed(qtbot, view)
    view.append("queued\n")
    view.clear()
    assert view.line_count() == 0 and not view.has_pending()
    view.append("new\n")
    wait_flushed(qtbot, view)
    assert lines(view) == ["new"]


# -- bounded memory and responsiveness ------------------------------------------------


def test_flood_of_200000_lines_stays_bounded_and_responsive(qtbot, view: LogView) -> None:
    maximum = view.maximum_line_count()
    assert maximum == LogView.DEFAULT_MAX_LINES
    served: list[tuple[int, int]] = []  # (flushes so far, lines still queued) per probe tick
    probe = QTimer()
    probe.setInterval(1)
    probe.timeout.connect(lambda: served.append((view.flush_count, view.pending_line_count)))

    total = 200_000
    for index in range(total):
        view.append(f"line {index}\n")
    assert view.pending_line_count < maximum  # the queue is bounded too
    probe.start()
    wait_flushed(qtbot, view)
    probe.stop()

    shown = lines(view)
    assert view.line_count() <= maximum
    assert shown[-1] == f"line {total - 1}"
    tail = shown[1:]
    first = total - len(tail)
    assert tail == [f"line {index}" for index in range(first, total)]  # an unbroken tail
    assert shown[0] == f"… {first:,} lines dropped …"
    assert view.dropped_line_count == first
    # Flushed in bounded slices, with the event loop serving other timers in between.
    assert view.flush_count >= 2
    assert any(flushes >= 1 and pending > 0 for flushes, pending in served)
    assert view.longest_flush_seconds > 0  # measured (its size is a benchmark's question)


def test_lines_within_the_limit_are_all_kept(qtbot) -> None:
    view = LogView(max_lines=1_000)
    qtbot.addWidget(view)
    for index in range(999):
        view.append(f"{index}\n")
    wait_flushed(qtbot, view)
    assert lines(view) == [str(index) for index in range(999)]
    assert view.dropped_line_count == 0


def test_document_is_trimmed_to_the_maximum_over_many_flushes(qtbot) -> None:
    view = LogView(max_lines=100)
    qtbot.addWidget(view)
    for batch in range(5):
        for index in range(60):
            view.append(f"{batch}-{index}\n")
        wait_flushed(qtbot, view)
    assert view.line_count() == 100
    assert lines(view)[-1] == "4-59"
    # The top is gone: the view says so (it said nothing; a 50,000-line run lost its start).
    assert view.trimmed_line_count == 200
    assert view.trimmed_note().startswith("The first 200 lines shown are gone")
    view.trim_hint = "Click a step."
    view.append("one more\n")
    wait_flushed(qtbot, view)
    assert "first 201 lines" in view.trimmed_note() and view.trimmed_note().endswith("Click a step.")
    view.clear()
    assert view.trimmed_line_count == 0 and view.trimmed_note() == ""


def test_dropped_lines_keep_the_colour_state(qtbot) -> None:
    view = LogView(max_pending_lines=10)
    qtbot.addWidget(view)
    view.append("\x1b[31mred from here\n", "stderr")
    for index in range(100):
        view.append(f"filler {index}\n", "stderr")
    view.append("still red\n", "stderr")
    wait_flushed(qtbot, view)
    shown = lines(view)
    assert shown[0].startswith("… ") and shown[0].endswith(" lines dropped …")
    assert shown[-1] == "still red"
    dark = is_dark_palette(view.text_edit.palette())
    assert fragments(view, len(shown) - 1) == [("still red", QColor(*to_rgb(1, dark)))]


# -- following the tail -------------------------------------------------------------


def test_follows_the_tail_until_scrolled_up_and_again_at_the_bottom(qtbot, shown: LogView) -> None:
    bar = shown.text_edit.verticalScrollBar()
    changes: list[bool] = []
    shown.following_changed.connect(changes.append)
    for index in range(500):
        shown.append(f"line {index}\n")
    wait_flushed(qtbot, shown)
    assert bar.maximum() > 0
    assert bar.value() == bar.maximum() and shown.is_following()
    assert changes == []  # no signal while nothing changes

    bar.setValue(10)  # the user scrolls up
    assert not shown.is_following()
    for index in range(500, 600):
        shown.append(f"line {index}\n")
    wait_flushed(qtbot, shown)
    assert bar.value() == 10 < bar.maximum()
    assert top_visible_line(shown) == "line 10"

    bar.setValue(bar.maximum())  # back at the bottom: follow again
    assert shown.is_following()
    for index in range(600, 700):
        shown.append(f"line {index}\n")
    wait_flushed(qtbot, shown)
    assert bar.value() == bar.maximum()
    assert changes == [False, True]


def test_scrolled_up_view_keeps_its_line_while_old_lines_are_trimmed(qtbot) -> None:
    view = LogView(max_lines=300)
    view.resize(600, 240)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    for index in range(250):
        view.append(f"row {index}\n")
    wait_flushed(qtbot, view)
    view.text_edit.verticalScrollBar().setValue(100)
    assert top_visible_line(view) == "row 100"
    for index in range(250, 350):
        view.append(f"row {index}\n")
    wait_flushed(qtbot, view)
    assert lines(view)[0] == "row 50"
    assert view.text_edit.verticalScrollBar().value() == 50
    assert top_visible_line(view) == "row 100"
    assert not view.is_following()


# -- search ----------------------------------------------------------------------------


def fill_for_search(qtbot, view: LogView) -> None:
    for text in ("alpha one", "beta", "ALPHA two", "gamma", "alpha three"):
        view.append(text + "\n")
    wait_flushed(qtbot, view)


def selected_line(view: LogView) -> str:
    return view.text_edit.textCursor().block().text()


def test_find_next_and_previous_wrap_around(qtbot, shown: LogView) -> None:
    fill_for_search(qtbot, shown)
    shown.search_field.setText("alpha")
    assert shown.find_next() and selected_line(shown) == "alpha one"
    assert shown.search_status == "1 / 3"
    assert shown.find_next() and selected_line(shown) == "ALPHA two"  # case-insensitive
    assert shown.find_next() and selected_line(shown) == "alpha three"
    assert shown.find_next() and selected_line(shown) == "alpha one"
    assert "wrapped" in shown.search_status
    assert shown.find_previous() and selected_line(shown) == "alpha three"
    assert shown.find_previous() and selected_line(shown) == "ALPHA two"
    assert shown.text_edit.textCursor().selectedText() == "ALPHA"
    assert [s.cursor.selectedText() for s in shown.text_edit.extraSelections()] == ["ALPHA"]


def test_no_match_is_reported(qtbot, shown: LogView) -> None:
    fill_for_search(qtbot, shown)
    shown.search_field.setText("delta")
    assert not shown.find_next()
    assert shown.search_status == "No match"
    assert shown.text_edit.extraSelections() == []


def test_search_keys(qtbot, shown: LogView) -> None:
    fill_for_search(qtbot, shown)
    shown.activateWindow()
    qtbot.waitUntil(shown.isActiveWindow)
    shown.text_edit.setFocus()
    qtbot.keyClick(shown.text_edit, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(shown.search_field.hasFocus)
    qtbot.keyClicks(shown.search_field, "alpha")  # typing finds the first match
    assert selected_line(shown) == "alpha one"
    qtbot.keyClick(shown.search_field, Qt.Key.Key_Return)
    assert selected_line(shown) == "ALPHA two"
    qtbot.keyClick(shown.search_field, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert selected_line(shown) == "alpha one"
    qtbot.keyClick(shown.search_field, Qt.Key.Key_F3)
    assert selected_line(shown) == "ALPHA two"
    qtbot.keyClick(shown.search_field, Qt.Key.Key_F3, Qt.KeyboardModifier.ShiftModifier)
    assert selected_line(shown) == "alpha one"
    qtbot.mouseClick(shown.findChild(QToolButton, "logFindNext"), Qt.MouseButton.LeftButton)
    assert selected_line(shown) == "ALPHA two"
    qtbot.mouseClick(shown.findChild(QToolButton, "logFindPrevious"), Qt.MouseButton.LeftButton)
    assert selected_line(shown) == "alpha one"


def test_a_match_does_not_grow_when_lines_are_appended(qtbot, shown: LogView) -> None:
    fill_for_search(qtbot, shown)
    shown.search_field.setText("three")
    assert shown.find_next()
    shown.append("after\n")
    wait_flushed(qtbot, shown)
    assert shown.text_edit.textCursor().selectedText() == "three"


def test_no_match_says_when_the_search_did_not_see_every_line(qtbot) -> None:
    """A search looks at the lines the view holds: "No match" for a line it dropped read
    as if the step never printed it."""
    view = LogView(max_lines=5)
    qtbot.addWidget(view)
    for index in range(8):
        view.append(f"line {index}\n")
        wait_flushed(qtbot, view)
    view.search_field.setText("line 7")
    assert view.find_next()
    view.search_field.setText("line 1")
    assert not view.find_next()
    assert view.search_status == "No match in the lines kept (the earliest were dropped)"
    fresh = LogView()
    qtbot.addWidget(fresh)
    fresh.append("only line\n")
    wait_flushed(qtbot, fresh)
    fresh.search_field.setText("absent")
    assert not fresh.find_next() and fresh.search_status == "No match"


def test_a_log_shown_after_a_search_is_not_selected(qtbot, shown: LogView) -> None:
    """The match's cursor keeps its place on insert: after `clear()` it stayed at 0 while
    the next log grew behind it, and that whole log showed selected (and Ctrl+C copied
    all of it). A search without a match left it so too."""
    for needle in ("three", "delta"):
        fill_for_search(qtbot, shown)
        shown.search_field.setText(needle)
        shown.find_next()
        shown.clear()
        for index in range(40):
            shown.append(f"next log line {index}\n")
        wait_flushed(qtbot, shown)
        assert not shown.text_edit.textCursor().hasSelection(), needle
        assert shown.text_edit.extraSelections() == []
        shown.clear()


# -- copy -------------------------------------------------------------------------------


def test_copy_everything_when_nothing_is_selected(qtbot, view: LogView) -> None:
    view.append("first\nsecond\n")
    view.append("third\n", "stderr")
    wait_flushed(qtbot, view)
    view.copy()
    assert QGuiApplication.clipboard().text() == "first\nsecond\nthird"


def test_copy_the_selection_with_ctrl_c(qtbot, shown: LogView) -> None:
    shown.append("first\nsecond\nthird\n")
    wait_flushed(qtbot, shown)
    cursor = shown.text_edit.textCursor()
    cursor.setPosition(2)
    cursor.setPosition(len("first\nsec"), QTextCursor.MoveMode.KeepAnchor)
    shown.text_edit.setTextCursor(cursor)
    qtbot.keyClick(shown.text_edit, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == "rst\nsec"


def test_context_menu_copy(qtbot, view: LogView) -> None:
    view.append("menu line\n")
    wait_flushed(qtbot, view)
    menu = view.create_context_menu()
    actions = {action.text(): action for action in menu.actions() if action.text()}
    assert {"Copy All", "Select All", "Find…", "Clear"} <= set(actions)
    QGuiApplication.clipboard().clear()
    actions["Copy All"].trigger()
    assert QGuiApplication.clipboard().text() == "menu line"
    actions["Clear"].trigger()
    assert view.line_count() == 0
    menu.deleteLater()


def test_long_run_prefixes_are_shown_as_short_columns(qtbot) -> None:
    from flowdeck_desktop.views.log_view import compact_prefix

    view = LogView()
    qtbot.addWidget(view)
    view.line_transform = compact_prefix
    view.append("2026-12-02 04:01:38.627 [1796184092378798/end/7 (pid 16524)] hello there\n")
    view.append("04:01:38.627 [1796184092378-a1b2c3/train/12] loss 0.5\nplain line\n")
    view.flush()
    assert view.text().splitlines() == ["04:01:38 end/7 │ hello there",
                                        "04:01:38 train/12 │ loss 0.5", "plain line"]
    view.append("04:01:39.100 [1796184092378-a1b2c3/end/13] \x1b[31mred text\x1b[0m done\n")
    view.flush()  # a coloured line is shortened the same way, its colour kept
    assert view.text().splitlines()[-1] == "04:01:39 end/13 │ red text done"


def test_tabs_stop_every_eight_characters_of_the_printed_text(qtbot) -> None:
    """`print("tab\\tseparated\\tcols")` read "tabseparated  cols": the tab stops were 80
    pixels from the margin, so the prefix before the text moved them."""
    from flowdeck_desktop.views.log_view import compact_prefix

    view = LogView()
    qtbot.addWidget(view)
    view.line_transform = compact_prefix
    view.append("04:01:38.627 [1796184092378-a1b2c3/train/12] tab\tseparated\tcols\n")
    view.flush()
    assert view.text().endswith("│ tab     separated       cols")
    space = QFontMetricsF(view._edit.font()).horizontalAdvance(" ")
    assert view._edit.tabStopDistance() == pytest.approx(8 * space)  # a plain line's tabs too
