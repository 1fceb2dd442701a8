"""ANSI escape sequences in a task's output, turned into styled spans (pure Python, no Qt).

`AnsiParser.feed(text)` returns a list of `(text, Style)` spans. It keeps its
state between calls: the current SGR style, and any escape sequence cut in
two by a chunk boundary, so ``"\\x1b[3"`` followed by ``"1mred"`` parses as red
text. SGR sequences (``ESC [ ... m``) set colours and attributes; every other
CSI, OSC, DCS/SOS/PM/APC string and two-character escape is removed, and so
is every control character except tab, newline and carriage return (the log
view gives ``\\r`` its "back to the start of the line" meaning).

Colours are kept as the program gave them: an `int` 0-255 for the indexed
palette (0-7 normal, 8-15 bright, 16-255 the xterm cube and grey ramp) or an
``(r, g, b)`` tuple for 24-bit colour. `to_rgb` resolves either against a
16-colour palette chosen for a light or a dark background.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from flowdeck.compiled_dataclasses import dataclass

__all__ = [
    "Color",
    "Span",
    "Style",
    "DEFAULT_STYLE",
    "AnsiParser",
    "is_plain",
    "parse",
    "strip_ansi",
    "to_rgb",
    "PALETTE_DARK",
    "PALETTE_LIGHT",
]

Color = int | tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Style:
    """The SGR attributes in force for a span; `Style()` is the terminal's default."""

    fg: Color | None = None
    bg: Color | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False
    inverse: bool = False
    strike: bool = False

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_STYLE


DEFAULT_STYLE = Style()
Span = tuple[str, Style]

# Everything the fast path must look at: C0 controls other than \t \n \r, DEL and C1.
_SPECIAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CSI_BODY = re.compile(r"([\x30-\x3f]*)([\x20-\x2f]*)([\x40-\x7e])?")
_ESC = "\x1b"
_BEL = "\x07"
_STRING_INTRODUCERS = frozenset("]PX^_")  # OSC, DCS, SOS, PM, APC: end with ST or BEL
MAX_SEQUENCE = 4096  # an unterminated sequence longer than this is given up on

# Values of the simple (single-number) SGR codes.
_SIMPLE: dict[int, dict[str, Any]] = {
    1: {"bold": True},
    2: {"dim": True},
    3: {"italic": True},
    4: {"underline": True},
    7: {"inverse": True},
    9: {"strike": True},
    21: {"underline": True},  # double underline, shown as underline
    22: {"bold": False, "dim": False},
    23: {"italic": False},
    24: {"underline": False},
    27: {"inverse": False},
    29: {"strike": False},
    39: {"fg": None},
    49: {"bg": None},
}


def _int(text: str, default: int = 0) -> int:
    if not text or not text.isdigit() or len(text) > 9:
        return default
    return int(text)


def _byte(text: str) -> int:
    return min(255, _int(text))


class AnsiParser:
    """Turns a stream of text chunks into styled spans; one parser per output stream."""

    def __init__(self, max_sequence: int = MAX_SEQUENCE) -> None:
        self.max_sequence = max_sequence
        self.style: Style = DEFAULT_STYLE
        self._held = ""  # the start of an escape sequence cut by the end of a chunk

    @property
    def holding(self) -> bool:
        """True while the start of an unfinished escape sequence waits for the next chunk."""
        return bool(self._held)

    def reset(self) -> None:
        self.style = DEFAULT_STYLE
        self._held = ""

    def feed(self, text: str) -> list[Span]:
        """Parse one chunk; an escape cut at its end is completed by the next call."""
        if self._held:
            text = self._held + text
            self._held = ""
        if not text:
            return []
        match = _SPECIAL.search(text)
        if match is None:  # the common case: plain text in the current style
            return [(text, self.style)]
        out: list[Span] = []
        pos = 0
        n = len(text)
        while match is not None:
            start = match.start()
            if start > pos:
                self._emit(out, text[pos:start])
            if text[start] == _ESC:
                end = self._escape(text, start)
                if end < 0:  # incomplete: keep it for the next chunk
                    self._held = text[start:]
                    return out
                pos = end
            else:  # a stray control character: dropped
                pos = start + 1
            if pos >= n:
                break
            match = _SPECIAL.search(text, pos)
        if pos < n:
            self._emit(out, text[pos:])
        return out

    def flush(self) -> list[Span]:
        """End of the stream: an unfinished escape sequence is dropped, never shown."""
        self._held = ""
        return []

    # -- internals ---------------------------------------------------------------

    def _emit(self, out: list[Span], text: str) -> None:
        if out and out[-1][1] == self.style:
            out[-1] = (out[-1][0] + text, self.style)
        else:
            out.append((text, self.style))

    def _incomplete(self, text: str, start: int) -> int:
        """An unfinished sequence: wait for more, unless it is absurdly long (then drop ESC)."""
        if len(text) - start > self.max_sequence:
            return start + 1
        return -1

    def _escape(self, text: str, start: int) -> int:
        """Consume the escape sequence at `start`; return where text resumes, or -1 to wait."""
        n = len(text)
        if start + 1 >= n:
            return -1
        kind = text[start + 1]
        if kind == "[":
            body = _CSI_BODY.match(text, start + 2)
            assert body is not None  # every part is optional
            if body.group(3) is None:
                if body.end() >= n:
                    return self._incomplete(text, start)
                # A byte that cannot be in a CSI: the sequence is aborted there.
                return body.end()
            if body.group(3) == "m" and not body.group(2):
                self._sgr(body.group(1))
            return body.end()
        if kind in _STRING_INTRODUCERS:
            end = self._string_end(text, start + 2)
            if end < 0:
                return self._incomplete(text, start)
            return end
        code = ord(kind)
        if 0x20 <= code <= 0x2F:  # ESC, intermediates, final: e.g. ESC ( B
            pos = start + 1
            while pos < n and 0x20 <= ord(text[pos]) <= 0x2F:
                pos += 1
            if pos >= n:
                return self._incomplete(text, start)
            if 0x30 <= ord(text[pos]) <= 0x7E:
                return pos + 1
            return pos
        if 0x30 <= code <= 0x7E:  # two-character escape: ESC 7, ESC =, ESC c ...
            return start + 2
        return start + 1  # ESC followed by a control: drop the ESC alone

    @staticmethod
    def _string_end(text: str, pos: int) -> int:
        """End of an OSC/DCS/... string: after BEL, ESC \\ or the 8-bit ST; -1 if not there yet."""
        n = len(text)
        while pos < n:
            ch = text[pos]
            if ch == _BEL or ch == "\x9c":
                return pos + 1
            if ch == _ESC:
                if pos + 1 >= n:
                    return -1
                return pos + 2 if text[pos + 1] == "\\" else pos + 1
            pos += 1
        return -1

    def _sgr(self, params: str) -> None:
        if params[:1] in ("<", "=", ">", "?"):
            return  # private sequences (e.g. xterm's modifyOtherKeys) are not SGR
        style = self.style
        parts = params.split(";") if params else [""]
        i = 0
        count = len(parts)
        while i < count:
            part = parts[i]
            i += 1
            if ":" in part:  # ITU sub-parameters: 38:5:n, 38:2::r:g:b, 4:3 ...
                sub = part.split(":")
                code = _int(sub[0])
                if code in (38, 48):
                    sub_color = _colon_color(sub[1:])
                    if sub_color is not None:
                        style = _with_color(style, code, sub_color)
                elif code == 4:
                    style = replace(style, underline=_int(sub[1]) != 0 if len(sub) > 1 else True)
                continue
            code = _int(part)
            if code == 0:
                style = DEFAULT_STYLE
            elif 30 <= code <= 37:
                style = replace(style, fg=code - 30)
            elif 40 <= code <= 47:
                style = replace(style, bg=code - 40)
            elif 90 <= code <= 97:
                style = replace(style, fg=code - 90 + 8)
            elif 100 <= code <= 107:
                style = replace(style, bg=code - 100 + 8)
            elif code in (38, 48, 58):
                mode = parts[i] if i < count else ""
                color: Color | None = None
                if mode == "5" and i + 1 < count:
                    index = _int(parts[i + 1], -1)
                    color = index if 0 <= index <= 255 else None
                    i += 2
                elif mode == "2" and i + 3 < count:
                    color = (_byte(parts[i + 1]), _byte(parts[i + 2]), _byte(parts[i + 3]))
                    i += 4
                else:
                    i = count  # malformed: ignore the rest, as xterm does
                if color is not None and code != 58:  # 58 is the underline colour
                    style = _with_color(style, code, color)
            else:
                change = _SIMPLE.get(code)
                if change:
                    style = replace(style, **change)
        if style == DEFAULT_STYLE:
            style = DEFAULT_STYLE  # one identity for the default: cheap comparisons downstream
        self.style = style


def _colon_color(sub: list[str]) -> Color | None:
    if not sub:
        return None
    if sub[0] == "5" and len(sub) >= 2:
        index = _int(sub[1], -1)
        return index if 0 <= index <= 255 else None
    if sub[0] == "2":
        rgb = sub[2:5] if len(sub) >= 5 else sub[1:4]  # with or without a colour-space id
        if len(rgb) == 3:
            return (_byte(rgb[0]), _byte(rgb[1]), _byte(rgb[2]))
    return None


def is_plain(text: str) -> bool:
    """True if `text` has no escape sequence and no control character but tab, CR and LF."""
    return _SPECIAL.search(text) is None


def parse(text: str) -> list[Span]:
    """Spans of one complete piece of text (a fresh parser; a trailing cut escape is dropped)."""
    return AnsiParser().feed(text)


def strip_ansi(text: str) -> str:
    """The text without any escape sequence or stray control character."""
    return "".join(chunk for chunk, _ in parse(text))


# 16-colour palettes tuned to stay readable on each kind of background
# (the same choice as VS Code's integrated terminal).
PALETTE_DARK: tuple[tuple[int, int, int], ...] = (
    (0x00, 0x00, 0x00), (0xCD, 0x31, 0x31), (0x0D, 0xBC, 0x79), (0xE5, 0xE5, 0x10),
    (0x24, 0x72, 0xC8), (0xBC, 0x3F, 0xBC), (0x11, 0xA8, 0xCD), (0xE5, 0xE5, 0xE5),
    (0x66, 0x66, 0x66), (0xF1, 0x4C, 0x4C), (0x23, 0xD1, 0x8B), (0xF5, 0xF5, 0x43),
    (0x3B, 0x8E, 0xEA), (0xD6, 0x70, 0xD6), (0x29, 0xB8, 0xDB), (0xFF, 0xFF, 0xFF),
)
PALETTE_LIGHT: tuple[tuple[int, int, int], ...] = (
    (0x00, 0x00, 0x00), (0xCD, 0x31, 0x31), (0x00, 0x8F, 0x00), (0x94, 0x98, 0x00),
    (0x04, 0x51, 0xA5), (0xBC, 0x05, 0xBC), (0x05, 0x98, 0xBC), (0x55, 0x55, 0x55),
    (0x66, 0x66, 0x66), (0xCD, 0x31, 0x31), (0x14, 0xA0, 0x14), (0xB5, 0xBA, 0x00),
    (0x04, 0x51, 0xA5), (0xBC, 0x05, 0xBC), (0x05, 0x98, 0xBC), (0xA5, 0xA5, 0xA5),
)
_CUBE = (0, 95, 135, 175, 215, 255)


def to_rgb(color: Color, dark: bool = False) -> tuple[int, int, int]:
    """An indexed or 24-bit colour as (r, g, b), the 16 basic ones from the theme's palette."""
    if isinstance(color, tuple):
        return color
    if 0 <= color < 16:
        return (PALETTE_DARK if dark else PALETTE_LIGHT)[color]
    if 16 <= color < 232:
        index = color - 16
        return (_CUBE[index // 36], _CUBE[index // 6 % 6], _CUBE[index % 6])
    if 232 <= color < 256:
        level = 8 + 10 * (color - 232)
        return (level, level, level)
    raise ValueError(f"not a colour index: {color!r}")


def _with_color(style: Style, code: int, color: Color) -> Style:
    """SGR 38 sets the foreground colour, 48 the background."""
    return replace(style, fg=color) if code == 38 else replace(style, bg=color)
