"""ANSI escape parsing for the log view: SGR styles, stripped sequences, chunk boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck_desktop.views.ansi import (
    DEFAULT_STYLE,
    PALETTE_DARK,
    PALETTE_LIGHT,
    AnsiParser,
    Style,
    is_plain,
    parse,
    strip_ansi,
    to_rgb,
)

RED = Style(fg=1)


def styled_chars(spans: list[tuple[str, Style]]) -> list[tuple[str, Style]]:
    """One (char, style) per character: compares parses whose span boundaries differ."""
    return [(char, style) for text, style in spans for char in text]


def test_plain_text_is_one_default_span() -> None:
    assert parse("hello world\n") == [("hello world\n", DEFAULT_STYLE)]
    assert parse("") == []
    assert is_plain("tabs\tand\r\nnewlines") and not is_plain("a\x1b[0m")


def test_basic_colours_and_reset() -> None:
    assert parse("a\x1b[31mred\x1b[0mb") == [("a", DEFAULT_STYLE), ("red", RED), ("b", DEFAULT_STYLE)]
    assert parse("\x1b[mx")[0][1] is DEFAULT_STYLE  # empty parameters mean reset
    assert parse("\x1b[44mx")[0][1] == Style(bg=4)
    assert parse("\x1b[92mx\x1b[105my") == [("x", Style(fg=10)), ("y", Style(fg=10, bg=13))]
    assert parse("\x1b[31;42mx\x1b[39my\x1b[49mz") == [
        ("x", Style(fg=1, bg=2)), ("y", Style(bg=2)), ("z", DEFAULT_STYLE)]


def test_attributes_turn_on_and_off() -> None:
    spans = parse("\x1b[1;3;4;9mA\x1b[22mB\x1b[23;24;29mC\x1b[2mD\x1b[7mE\x1b[27;22mF")
    assert spans == [
        ("A", Style(bold=True, italic=True, underline=True, strike=True)),
        ("B", Style(italic=True, underline=True, strike=True)),
        ("C", DEFAULT_STYLE),
        ("D", Style(dim=True)),
        ("E", Style(dim=True, inverse=True)),
        ("F", DEFAULT_STYLE),
    ]
    assert parse("\x1b[1;31mbold red")[0][1] == Style(fg=1, bold=True)


def test_256_and_truecolour_in_both_notations() -> None:
    assert parse("\x1b[38;5;196mx")[0][1] == Style(fg=196)
    assert parse("\x1b[48;5;22mx")[0][1] == Style(bg=22)
    assert parse("\x1b[38;2;10;20;30mx")[0][1] == Style(fg=(10, 20, 30))
    assert parse("\x1b[48;2;1;2;3;1mx")[0][1] == Style(bg=(1, 2, 3), bold=True)
    assert parse("\x1b[38:5:208mx")[0][1] == Style(fg=208)
    assert parse("\x1b[38:2::255:128:0mx")[0][1] == Style(fg=(255, 128, 0))  # with colour space
    assert parse("\x1b[38:2:255:128:0mx")[0][1] == Style(fg=(255, 128, 0))
    assert parse("\x1b[38;2;999;0;0mx")[0][1] == Style(fg=(255, 0, 0))  # clamped


@pytest.mark.parametrize("sequence", ["\x1b[38;5m", "\x1b[38;2;1m", "\x1b[38;5;300m", "\x1b[38m",
                                      "\x1b[58;5;3m", "\x1b[99999999999999m", "\x1b[>4;2m"])
def test_malformed_or_foreign_sgr_is_ignored(sequence: str) -> None:
    assert parse(sequence + "x") == [("x", DEFAULT_STYLE)]


@pytest.mark.parametrize("sequence", [
    "\x1b[2K", "\x1b[1A", "\x1b[10;20H", "\x1b[?25l", "\x1b[?2004h",  # CSI that is not SGR
    "\x1b]0;window title\x07", "\x1b]0;title\x1b\\",  # OSC ended by BEL or ST
    "\x1b]8;;https://example.com\x1b\\",  # hyperlink
    "\x1bP1$r0m\x1b\\", "\x1b_app\x1b\\",  # DCS, APC
    "\x1b(B", "\x1b)0", "\x1b7", "\x1b8", "\x1b=", "\x1bc",  # charset and two-char escapes
])
def test_other_sequences_are_stripped(sequence: str) -> None:
    assert parse(f"a{sequence}b") == [("ab", DEFAULT_STYLE)]


def test_stray_control_characters_are_dropped_but_tab_cr_lf_kept() -> None:
    assert strip_ansi("a\x00b\x07c\x08d\x0ce\x7ff\x9bg\th\r\n") == "abcdefg\th\r\n"


def test_style_carries_over_to_the_next_chunk() -> None:
    parser = AnsiParser()
    assert parser.feed("\x1b[31mred") == [("red", RED)]
    assert parser.feed(" still red\n") == [(" still red\n", RED)]
    assert parser.feed("\x1b[0mplain") == [("plain", DEFAULT_STYLE)]


def test_escape_split_across_chunks() -> None:
    parser = AnsiParser()
    assert parser.feed("x\x1b") == [("x", DEFAULT_STYLE)]
    assert parser.holding
    assert parser.feed("[3") == []
    assert parser.feed("1mred") == [("red", RED)]
    assert not parser.holding
    assert parser.feed("\x1b]0;tit") == []
    assert parser.feed("le\x1b") == []
    assert parser.feed("\\done") == [("done", RED)]


SAMPLE = ("start \x1b[1;31mbold red\x1b[0m mid \x1b[38;5;208morange\x1b[39m "
          "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x1b[38:2::1:2:3mrgb\x1b[m\x1b[2K end\r\n")


def test_every_two_chunk_split_parses_like_the_whole() -> None:
    whole = styled_chars(parse(SAMPLE))
    for cut in range(1, len(SAMPLE)):
        parser = AnsiParser()
        spans = parser.feed(SAMPLE[:cut]) + parser.feed(SAMPLE[cut:])
        assert styled_chars(spans) == whole, f"cut at {cut}: {SAMPLE[:cut]!r} | {SAMPLE[cut:]!r}"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SAMPLE)), max_size=12))
def test_any_chunking_parses_like_the_whole(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(SAMPLE)]
    parser = AnsiParser()
    spans = []
    for start, end in zip(bounds, bounds[1:]):
        spans += parser.feed(SAMPLE[start:end])
    assert styled_chars(spans) == styled_chars(parse(SAMPLE))


def test_unfinished_sequences() -> None:
    parser = AnsiParser()
    assert parser.feed("ok\x1b[12") == [("ok", DEFAULT_STYLE)]
    assert parser.flush() == []  # end of stream: the unfinished escape is never shown
    assert parser.feed("next") == [("next", DEFAULT_STYLE)]
    # A byte that cannot be part of a CSI aborts it, and is kept.
    assert parse("a\x1b[12\nb") == [("a\nb", DEFAULT_STYLE)]
    # An unterminated OSC is given up on after max_sequence characters.
    small = AnsiParser(max_sequence=16)
    assert small.feed("\x1b]0;") == []
    assert strip_ansi("".join(t for t, _ in small.feed("x" * 40))) == "]0;" + "x" * 40


def test_to_rgb() -> None:
    assert to_rgb(1) == PALETTE_LIGHT[1]
    assert to_rgb(1, dark=True) == PALETTE_DARK[1]
    assert to_rgb(7) != to_rgb(7, dark=True)  # "white" stays readable on a light background
    assert to_rgb(196) == (255, 0, 0)
    assert to_rgb(16) == (0, 0, 0)
    assert to_rgb(232) == (8, 8, 8)
    assert to_rgb(255) == (238, 238, 238)
    assert to_rgb((1, 2, 3)) == (1, 2, 3)
    with pytest.raises(ValueError):
        to_rgb(256)
