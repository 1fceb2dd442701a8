"""Messages a user cannot miss: a banner over the DAG and the list of recent notifications.

The status bar shows a message for a few seconds, cut off by its permanent widgets,
which is fine for "TrainFlow succeeded" but not for "cannot import metaflow:
install it with `...`". Messages that need action (warnings and errors) stay:

- `MessageBanner`: a closable strip over the DAG with the selected flow's latest
  such message, word-wrapped (long paths break anywhere rather than vanish),
  selectable, and a Copy button that copies the command the message gives in
  backticks (else the whole text). At most `BANNER_LINES` lines (`COMMAND_LINES`
  for a message that gives a command: an instruction is read whole): a longer
  message (an exception listing 300 column names) keeps its start and its end
  (where a message says where it happened) or its command, the whole text in the
  tooltip, so the banner never squeezes the graph.
- `NotificationsView`: every recent message with its flow and time, newest first,
  never truncated; a click on a flow's name selects it.

Colours come from the live palette at paint time, so a dark/light switch needs no
bookkeeping.
"""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Callable
from dataclasses import field

from PySide6.QtCore import QEvent, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QFontMetricsF,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
    QTextDocument,
    QTextOption,
)
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from flowdeck.compiled_dataclasses import dataclass
from flowdeck_desktop.views.theme import status_color

_COMMAND = re.compile(r"`([^`]+)`")

#: A level's glyph and the status whose colour it borrows (DAG and timeline agree on them).
LEVELS = {"error": ("✖", "failed"), "warning": ("⚠", "cancelled"), "info": ("ℹ", "running")}

NOTICE_LIMIT = 200  # the notifications list keeps this many, newest first
BANNER_LINES = 3  # the banner's message takes at most this many lines...
COMMAND_LINES = 6  # ...or this many when it gives a command to run (what to do, in full)
#: A tooltip holding a clamped text is cut here (the Error tab's traceback has it whole):
#: a 12,000-character exception message would cover the screen.
TOOLTIP_CHARS = 2000
#: The end kept of a clamped text takes at most this share of a line.
TAIL_SHARE = 0.8


#: The first words of a command a user types in a terminal. Backticks also quote code
#: (`self.next`, `Parameter("rate")`), which is no command to copy.
COMMAND_WORDS = frozenset(("python", "python3", "py", "pip", "pip3", "uv", "conda", "mamba",
                           "flowdeck", "flowdeck-desktop", "metaflow", "export", "set", "cd",
                           "sudo", "apt", "apt-get", "brew", "git", "chmod", "mkdir", "rm"))


def command_in(text: str) -> str | None:
    """The command a message gives in backticks (the last one: it is the "what to do");
    None when what it quotes is code, not a command."""
    found = [quoted for quoted in _COMMAND.findall(text) if _is_command(quoted)]
    return found[-1] if found else None


#: An interpreter or installer by its versioned name: python3.11, pip3, python.exe.
_VERSIONED = re.compile(r"(python|pip|py)(\d+(\.\d+)?)?(\.exe)?", re.IGNORECASE)


def _is_command(quoted: str) -> bool:
    """Whether backticked text is something to type: a command (by its first word, an
    interpreter by any path), a `VAR=value command`, or an option to add (`--with retry`)."""
    words = quoted.split()
    first = words[0] if words else ""
    name = os.path.basename(first)
    return (name in COMMAND_WORDS or bool(_VERSIONED.fullmatch(name)) or first.startswith("./")
            or first.startswith("-") or ("=" in first and len(words) > 1))


def rich_message(text: str) -> str:
    """The message as HTML: escaped, with `commands` in a monospace font."""
    parts = _COMMAND.split(text)
    out = []
    for i, part in enumerate(parts):
        escaped = html.escape(part).replace("\n", "<br>")
        out.append(f"<code>{escaped}</code>" if i % 2 else escaped)
    return "".join(out)


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightnessF() < 0.5


def tint(palette: QPalette, level: str) -> tuple[QColor, QColor]:
    """(fill, border) for a level: the window colour moved toward the level's hue."""
    window = palette.color(QPalette.ColorRole.Window)
    hue = status_color(LEVELS.get(level, LEVELS["info"])[1], is_dark(palette))
    amount = 0.22 if is_dark(palette) else 0.14
    fill = QColor.fromRgbF(window.redF() + (hue.redF() - window.redF()) * amount,
                           window.greenF() + (hue.greenF() - window.greenF()) * amount,
                           window.blueF() + (hue.blueF() - window.blueF()) * amount)
    return fill, hue


def document_lines(document: QTextDocument) -> int:
    """How many lines `document` takes at its text width (every block laid out)."""
    document.size()  # lays it out
    lines, block = 0, document.begin()
    while block.isValid():
        layout = block.layout()
        lines += layout.lineCount() if layout is not None else 0
        block = block.next()
    return lines


def text_ending(text: str, metrics: QFontMetricsF, width: float) -> str:
    """What a clamped message keeps of its end: the end of its last line that fits
    `width`, from a word's start when it has one, and from the opening backtick of a
    command it cuts into (the command is what to do)."""
    last = text.rsplit("\n", 1)[-1]
    shown = metrics.elidedText(last, Qt.TextElideMode.ElideLeft, width)
    if shown == last:
        return last
    cut = shown.lstrip("…")
    space = cut.find(" ")
    tail = cut[space + 1:] if 0 <= space < len(cut) - 1 else cut
    if tail.count("`") % 2:
        opening = last.rfind("`", 0, len(last) - len(tail))
        tail = last[opening:] if opening >= 0 else tail
    return tail


def elide_middle(text: str, fits: Callable[[str], bool], tail: str) -> str:
    """`text` when it `fits`, else its longest start that fits followed by " … " and
    `tail` (its end)."""
    if fits(text):
        return text
    low, high = 0, max(0, len(text) - len(tail))
    while low < high:
        middle = (low + high + 1) // 2
        if fits(_head_and_tail(text[:middle], tail)):
            low = middle
        else:
            high = middle - 1
    return _head_and_tail(text[:low], tail)


#: A clamped text's start ends at a word's end when one is this close to the cut.
WORD_BACKOFF = 40


def _head_and_tail(head: str, tail: str) -> str:
    space = head.rfind(" ")
    if space >= max(1, len(head) - WORD_BACKOFF):
        head = head[:space]
    head = head.rstrip()
    return f"{head} … {tail}" if head else f"… {tail}"


def tooltip_of(text: str) -> str:
    """`text` as a tooltip: rich, so Qt wraps it, and cut at TOOLTIP_CHARS."""
    cut = text if len(text) <= TOOLTIP_CHARS else text[:TOOLTIP_CHARS] + " …"
    return f"<p>{rich_message(cut)}</p>"


class WrappedText(QTextBrowser):
    """Read-only, selectable text that wraps anywhere and is always as tall as its text.

    A QLabel wraps only at spaces, so a long path or command would be cut off;
    this breaks such a word instead and never scrolls. With `max_lines`, a text
    longer than that is shown clamped (`elide_middle`): its start and its end, the
    whole text in the tooltip and in `text()`.
    """

    def __init__(self, parent: QWidget | None = None, max_lines: int = 0,
                 command_lines: int = 0):
        super().__init__(parent)
        self.max_lines = max_lines  # 0: no limit
        self.command_lines = max(command_lines, max_lines)  # the limit for a text with a command
        self._message = ""
        self._shown: str | None = None  # what is shown of it (None: not rendered yet)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                     | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.setOpenLinks(False)
        self.viewport().setAutoFillBackground(False)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(2)
        self.document().contentsChanged.connect(self._fit_height)

    def _fit_height(self) -> None:
        self.document().setTextWidth(self.viewport().width())
        height = int(self.document().size().height() + 0.999) + 2 * self.frameWidth()
        if height != self.height() or self.minimumHeight() != height:
            self.setFixedHeight(max(height, self.fontMetrics().height()))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            if self.max_lines:
                self._render()  # another width: another cut
            self._fit_height()

    def fits(self) -> bool:
        """True when every line of the text is in view (nothing scrolled away or cut)."""
        self.document().setTextWidth(self.viewport().width())
        return self.document().size().height() <= self.viewport().height() + 1

    def set_message(self, text: str) -> None:
        """Show `text` (backticked commands in a monospace font), clamped to `max_lines`."""
        self._message = text
        self._shown = None
        self._render()

    def text(self) -> str:
        """The whole message, however much of it is shown."""
        return self._message

    def is_clamped(self) -> bool:
        """Whether part of the message is left out at the current width."""
        return self._shown is not None and self._shown != self._message

    def _render(self) -> None:
        """Show as much of the message as `max_lines` allows at the current width."""
        shown = self._clamped(self._message) if self.max_lines else self._message
        if shown == self._shown:
            return
        self._shown = shown
        self.setHtml(rich_message(shown))
        self.setToolTip(tooltip_of(self._message) if shown != self._message else "")

    def _clamped(self, text: str) -> str:
        """`text`, or its start and end when it takes more lines than its limit
        (`max_lines`, `command_lines` for a text that gives a command)."""
        probe = QTextDocument()
        probe.setDefaultFont(self.document().defaultFont())
        probe.setDefaultTextOption(self.document().defaultTextOption())
        probe.setDocumentMargin(self.document().documentMargin())
        probe.setTextWidth(self.viewport().width())
        limit = self.command_lines if command_in(text) else self.max_lines

        def fits(candidate: str) -> bool:
            probe.setHtml(rich_message(candidate))
            return document_lines(probe) <= limit

        tail = next((t for t in self._endings(text) if fits(_head_and_tail("", t))), "")
        return elide_middle(text, fits, tail)

    def _endings(self, text: str) -> list[str]:
        """What a clamped text may keep of its end, best first: from its command on (what
        to do), else the end of its last line."""
        width = max(1.0, self.viewport().width() * TAIL_SHARE)
        command = command_in(text)
        from_command = [text[text.rfind(f"`{command}`"):]] if command else []
        return from_command + [text_ending(text, QFontMetricsF(self.font()), width)]


class MessageBanner(QFrame):
    """The selected flow's latest message that needs action, over the DAG, until closed."""

    dismissed = Signal(str, str)  # level, text of the message the user closed

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("message-banner")
        self.level = ""
        self.text = ""
        self.icon = QLabel()
        self.icon.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
        self.view = WrappedText(max_lines=BANNER_LINES, command_lines=COMMAND_LINES)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAutoDefault(False)
        self.copy_button.clicked.connect(self.copy)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss this message (it stays in Notifications)")
        self.close_button.clicked.connect(self.dismiss)
        buttons = QVBoxLayout()
        buttons.setSpacing(2)
        row = QHBoxLayout()
        row.addWidget(self.copy_button)
        row.addWidget(self.close_button)
        buttons.addLayout(row)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.icon)
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.hide()

    def show_message(self, level: str, text: str) -> None:
        """Show `text` (clamped to BANNER_LINES: whole in the tooltip, the Copy button and
        Notifications); the Copy button names what it copies."""
        self.level, self.text = level, text
        self.icon.setText(LEVELS.get(level, LEVELS["info"])[0])
        self.view.set_message(text)
        command = command_in(text)
        self.copy_button.setText("Copy command" if command else "Copy")
        self.copy_button.setToolTip(f"Copy {command}" if command else "Copy the message")
        self.show()
        self.view._fit_height()
        self.update()

    def clear(self) -> None:
        self.level, self.text = "", ""
        self.hide()

    def copy_text(self) -> str:
        return command_in(self.text) or self.text

    def copy(self) -> None:
        QApplication.clipboard().setText(self.copy_text())

    def dismiss(self) -> None:
        level, text = self.level, self.text
        self.clear()
        self.dismissed.emit(level, text)

    def colors(self) -> tuple[QColor, QColor]:
        """(fill, border) from the current palette, as painted."""
        return tint(self.palette(), self.level)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        fill, border = self.colors()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(border)
        painter.setBrush(fill)
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 4, 4)
        painter.end()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.update()
        super().changeEvent(event)


@dataclass(frozen=True)
class Notice:
    """One message as the notifications list keeps it."""

    level: str
    text: str
    flow_key: str | None = None
    flow_name: str = ""
    when: float = field(default_factory=time.time)

    @property
    def needs_action(self) -> bool:
        return self.level in ("error", "warning")


class NotificationsView(QTextBrowser):
    """Recent messages, newest first, each with its flow and time; nothing is cut off.

    Clicking a flow's name emits `flow_clicked(key)`.
    """

    flow_clicked = Signal(str)
    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.notices: list[Notice] = []
        self.setOpenLinks(False)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.anchorClicked.connect(self._on_anchor)
        self.setPlaceholderText("No messages yet.")

    def add(self, notice: Notice) -> bool:
        """Add a message (the same message for the same flow twice in a row counts once)."""
        if self.notices and (self.notices[0].level, self.notices[0].text,
                             self.notices[0].flow_key) == (notice.level, notice.text,
                                                           notice.flow_key):
            return False
        self.notices.insert(0, notice)
        del self.notices[NOTICE_LIMIT:]
        self._render()
        self.changed.emit()
        return True

    def clear_all(self) -> None:
        self.notices.clear()
        self._render()
        self.changed.emit()

    def action_count(self) -> int:
        return sum(1 for n in self.notices if n.needs_action)

    def _render(self) -> None:
        palette = self.palette()
        blocks = []
        for index, notice in enumerate(self.notices):
            glyph = LEVELS.get(notice.level, LEVELS["info"])[0]
            color = tint(palette, notice.level)[1].name()
            stamp = time.strftime("%H:%M:%S", time.localtime(notice.when))
            who = (f'<a href="flow:{index}">{html.escape(notice.flow_name)}</a> · '
                   if notice.flow_key else "")
            blocks.append(f'<p><span style="color:{color}">{glyph}</span> {who}'
                          f'<span style="color:{palette.color(QPalette.ColorRole.PlaceholderText).name()}">'
                          f'{stamp}</span><br>{rich_message(notice.text)}</p>')
        self.setHtml("".join(blocks))

    def _on_anchor(self, url: QUrl) -> None:
        target = url.toString()
        if target.startswith("flow:"):
            index = int(target.split(":", 1)[1])
            if 0 <= index < len(self.notices) and self.notices[index].flow_key:
                self.flow_clicked.emit(self.notices[index].flow_key or "")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._render()
        super().changeEvent(event)
