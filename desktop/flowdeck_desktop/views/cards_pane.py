"""The Cards tab: the selected task's cards (`@card`), live while the task runs.

Cards are self-contained HTML files the task writes (`flowdeck.cards`); this pane
reads the task's card list (`cards/cards.json`, paths from `RunLayout`) and the chosen
card's file. Nothing is unpickled. It follows a running task by polling the list's
and the card's modification times (two `stat` calls per tick), so a
`current.card.refresh()` shows within a tick. While a card is live it also asks the
store whether the run has ended (`TaskCardIndex.read_effective`, the core's rule): a
card of a run that crashed, which no task will write again, then reads as stopped.

Where Qt WebEngine is installed (`PySide6-Addons`, not part of our `desktop` extra:
it adds about 270 MB), the card is drawn by a web view, as in a browser. Otherwise
the pane says so, draws a simplified view with Qt's rich text (no CSS layout; the
embedded pictures are shown), and "Open in Browser" opens the file in the user's
browser. A card that failed shows its error above the error card.
"""

from __future__ import annotations

import base64
import importlib
import os
import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QImage, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from flowdeck.cards.html import stopped_html
from flowdeck.cards.index import ERROR, LIVE, STOPPED, CardEntry, TaskCardIndex, run_ended
from flowdeck.engines.launching import METAFLOW_CARDS_HELPER
from flowdeck.engines.load_limits import window_load_limits
from flowdeck.store.layout import InvalidId, RunLayout
from flowdeck_desktop.control.task_helper import HelperAnswer, HelperCall, HelperRequest
from flowdeck_desktop.views.theme import status_color

#: How often the pane looks for a new version of the shown task's cards, in ms.
POLL_MS = 500
#: Cards larger than this are not drawn in the window (Open in Browser shows them).
MAX_SHOWN_BYTES = 24 * 1024 * 1024

_STATE_WORDS = {LIVE: "live", "final": "", ERROR: "failed",
                STOPPED: "stopped (the task or run ended first)"}


def web_view_class() -> Any:
    """QWebEngineView if Qt WebEngine can be loaded here, else None.

    Imported by name at run time, so a bundle built where PySide6-Addons happens to be
    installed does not pull Qt WebEngine (about 270 MB) in through this module.
    """
    if os.environ.get("FLOWDECK_NO_WEBENGINE"):
        return None
    try:
        module = importlib.import_module("PySide6.QtWebEngineWidgets")
    except ImportError:
        return None
    return getattr(module, "QWebEngineView", None)


class _CardText(QTextBrowser):
    """Qt's rich-text view of a card: draws its embedded `data:` pictures; opens web links
    in the browser."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._open)

    def loadResource(self, kind: int, url: QUrl | str) -> Any:  # noqa: N802 (Qt's name)
        text = url.toString() if isinstance(url, QUrl) else str(url)
        if kind == QTextDocument.ResourceType.ImageResource.value and text.startswith("data:"):
            header, _, payload = text.partition(",")
            try:
                data = base64.b64decode(payload) if header.endswith(";base64") else \
                    payload.encode()
            except ValueError:
                return QImage()
            image = QImage()
            image.loadFromData(QByteArray(data))
            return image
        return super().loadResource(kind, url)

    @staticmethod
    def _open(url: QUrl) -> None:
        if url.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)


class CardsPane(QWidget):
    """The cards of one task (see the module docstring)."""

    #: The file a user asked to open in the browser (also opened here); for tests.
    opened = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._folder: Path | None = None
        self._index_path: Path | None = None
        self._where: TaskCardIndex | None = None
        self._entries: list[CardEntry] = []
        self._seen: tuple[float, float, bool] = (0.0, 0.0, False)
        self._shown_file: str | None = None
        self._html = ""
        self._fetch: HelperCall | None = None
        self.picker = QComboBox()
        self.picker.currentIndexChanged.connect(self._on_picked)
        self.open_button = QPushButton("Open in Browser")
        self.open_button.clicked.connect(self.open_in_browser)
        self.open_button.setEnabled(False)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        web = web_view_class()
        self.web_view_available = web is not None
        self.note = QLabel("Qt WebEngine is not installed, so this is a simplified view of the "
                           "card. <b>Open in Browser</b> shows it in full "
                           "(or install PySide6-Addons for a web view here).")
        self.note.setWordWrap(True)
        self.note.setVisible(False)
        self.view: QWidget = web() if web is not None else _CardText()
        top = QHBoxLayout()
        top.addWidget(self.picker, 1)
        top.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.error)
        layout.addWidget(self.note)
        layout.addWidget(self.view, 1)
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)
        self.clear()

    # -- what the window calls ------------------------------------------------------------

    def clear(self, message: str = "Select a task to see its cards.") -> None:
        self._timer.stop()
        self._cancel_fetch()
        self._folder = self._index_path = None
        self._where = None
        self._entries = []
        self._seen = (0.0, 0.0, False)
        self._shown_file = None
        self.picker.blockSignals(True)
        self.picker.clear()
        self.picker.blockSignals(False)
        self.picker.setVisible(False)
        self.open_button.setEnabled(False)
        self.error.setVisible(False)
        self.note.setVisible(False)
        self.status.setText(message)
        self._set_html("")

    def show_task(self, layout: RunLayout, run_id: str, step: str, task_id: str,
                  origin: str | None = None) -> None:
        """Show a task's cards (a task reused by resume: its origin task's) and follow them."""
        self.clear()
        try:
            if origin:
                run_id, step, task_id = origin.split("/")
            self._where = TaskCardIndex(layout, run_id, step, task_id)
            self._folder = self._where.folder
            self._index_path = self._where.path
        except (InvalidId, ValueError):
            self.status.setText(f"The cards of {step}/{task_id} cannot be located.")
            return
        self.status.setText(f"No cards for {step}/{task_id} (yet). Add @card to the step to "
                            "get one.")
        self.poll()
        self._timer.start()

    def fetch_metaflow_cards(self, interpreter: str, layout: RunLayout, flow: str, run_id: str,
                             step: str, task_id: str, add_core: bool = False) -> None:
        """A run of the Metaflow bridge: its cards are in Metaflow's datastore. A helper in
        the flow's interpreter copies them into the task's card folder, which this pane
        follows already (`show_task` first); once copied, a click reads them from there."""
        self._cancel_fetch()
        if self._index_path is not None and self._index_path.exists():
            return  # copied already: a finished task's cards do not change
        request = HelperRequest(interpreter, str(layout.root), flow, run_id, step, task_id,
                                add_core, module=METAFLOW_CARDS_HELPER)
        self._fetch = HelperCall(request, [], window_load_limits().cards_wait, self)
        self._fetch.answered.connect(self._on_fetched)
        if not self._entries:
            self.status.setText(f"Reading the cards of {step}/{task_id} through Metaflow…")
        self._fetch.start()

    def _cancel_fetch(self) -> None:
        if self._fetch is not None:
            self._fetch.cancel()
            self._fetch = None

    def _on_fetched(self, answer: HelperAnswer) -> None:
        self._fetch = None
        problem = answer.error or (answer.data or {}).get("error")
        if problem:
            self.status.setText(f"Metaflow's cards could not be read: {problem}")
        elif not (answer.data or {}).get("cards"):
            self.status.setText("This Metaflow task has no cards. Add @card to the step to "
                                "get one.")
        self.poll()

    @property
    def entries(self) -> list[CardEntry]:
        return list(self._entries)

    def current_entry(self) -> CardEntry | None:
        index = self.picker.currentIndex()
        return self._entries[index] if 0 <= index < len(self._entries) else None

    def current_path(self) -> Path | None:
        entry = self.current_entry()
        if entry is None or not entry.file or self._folder is None:
            return None
        return self._folder / entry.file

    def shown_path(self) -> Path | None:
        """The file the tab draws: without a web view, a card's script-free rendering where
        it has one (a Metaflow card draws itself with JavaScript)."""
        entry = self.current_entry()
        if (entry is not None and entry.static_file and not self.web_view_available
                and self._folder is not None):
            return self._folder / entry.static_file
        return self.current_path()

    def open_in_browser(self) -> None:
        path = self.current_path()
        if path is not None and path.exists():
            self.opened.emit(str(path))
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    # -- following the files ----------------------------------------------------------------

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self.poll()

    def poll(self) -> None:
        """Re-read the card list and the shown card when their files changed (only while the
        tab is shown: showing it polls at once)."""
        where = self._where
        if where is None or self._index_path is None or not self.isVisible():
            return
        index_mtime = _mtime(self._index_path)
        card = self.current_path()
        card_mtime = _mtime(card) if card is not None else 0.0
        ended = any(e.state == LIVE for e in self._entries) and run_ended(where.layout,
                                                                          where.run_id)
        if (index_mtime, card_mtime, ended) == self._seen:
            return
        self._seen = (index_mtime, card_mtime, ended)
        entries = where.read_effective()
        if [(_label(e)) for e in entries] != [(_label(e)) for e in self._entries]:
            self._set_entries(entries)
        else:
            self._entries = entries
        self._show_current(force=True)

    def _set_entries(self, entries: list[CardEntry]) -> None:
        chosen = self.current_entry()
        self._entries = entries
        self.picker.blockSignals(True)
        self.picker.clear()
        for entry in entries:
            self.picker.addItem(_label(entry))
        keep = next((i for i, e in enumerate(entries) if chosen is not None
                     and e.index == chosen.index), 0)
        self.picker.setCurrentIndex(keep if entries else -1)
        self.picker.blockSignals(False)
        self.picker.setVisible(bool(entries))

    def _on_picked(self, index: int) -> None:
        self._show_current(force=True)

    def _show_current(self, force: bool = False) -> None:
        entry = self.current_entry()
        self.open_button.setEnabled(self.current_path() is not None)
        path = self.shown_path()
        if entry is None:
            self.error.setVisible(False)
            self.note.setVisible(False)
            self._set_html("")
            return
        self.error.setVisible(bool(entry.error))
        if entry.error:
            dark = self.palette().color(QPalette.ColorRole.Base).lightnessF() < 0.5
            colour = status_color("failed", dark).name()  # the light or dark theme's red
            # pre-wrap: a traceback keeps its indentation and lines (rich text folds them)
            self.error.setText(f"<b style='color:{colour}'>This card failed:</b> "
                               f"<span style='white-space:pre-wrap'>{_escape(entry.error)}"
                               "</span>")
        self.note.setVisible(not self.web_view_available and path is not None)
        words = _STATE_WORDS.get(entry.state, entry.state)
        self.status.setText(f"{len(self._entries)} card(s) · {entry.type}"
                            + (f" (id {entry.id})" if entry.id else "")
                            + (f" · {words}" if words else ""))
        if path is None:
            self._set_html("")
            return
        if str(path) == self._shown_file and not force:
            return
        self._shown_file = str(path)
        try:
            if path.stat().st_size > MAX_SHOWN_BYTES:
                self._set_html(f"<p>This card is {path.stat().st_size / 1e6:.0f} MB, too large "
                               "to show here. Use Open in Browser.</p>")
                return
            html = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            self._set_html(f"<p>The card file {_escape(str(path))} cannot be read: "
                           f"{_escape(str(exc))}</p>")
            return
        shown = stopped_html(html) if entry.state == STOPPED else html
        self._set_html(shown, path, as_read=shown == html)

    def _set_html(self, html: str, path: Path | None = None, as_read: bool = True) -> None:
        """Show `html`, read from `path`; `as_read` False: changed since (a stopped card's
        live badge and reload taken out), so a web view draws the text, not the file."""
        self._html = html
        view: Any = self.view
        if isinstance(view, QTextBrowser):
            view.setHtml(simplified(html))
        elif path is not None and as_read:
            view.load(QUrl.fromLocalFile(str(path)))  # relative links resolve; no size limit
        else:
            view.setHtml(html, QUrl.fromLocalFile(str(path)) if path is not None else QUrl())

    def shown_html(self) -> str:
        """What the tab shows: the simplified view's text, or the HTML the web view loaded."""
        view: Any = self.view
        return view.toPlainText() if isinstance(view, QTextBrowser) else self._html


_DETAILS = re.compile(r"<details\b.*?</details>", re.S | re.I)
_SVG = re.compile(r"<svg\b.*?</svg>", re.S | re.I)
#: A live card's badge after its title. The card's CSS sets it apart with a margin and a
#: coloured pill, which Qt's rich text ignores on an inline span ("start/1live"): the
#: simplified view gives it a space, and the pill its colours as an inline style Qt reads.
_LIVE_BADGE = re.compile(r'<span class="live">(.*?)</span>', re.S | re.I)
_LIVE_PILL = (r'&nbsp; <span style="background-color:#2f6fde; color:#ffffff; '
              r'font-size:small; font-weight:normal">&nbsp;\1&nbsp;</span>')


#: What the card's CSS sets apart, set apart again for Qt's rich text, which ignores
#: class rules (`flowdeck.cards.html` writes these classes): an artifact's name and type,
#: a step's next steps and kind ("start→ endstart"), an image's caption (beside the
#: image), an error's title (plain bold text).
_MUTED = "color:#7a8494"
_SPANS = [
    (re.compile(r'<span class="name">(.*?)</span>\s*', re.S), r"<b>\1</b>&nbsp;&nbsp;"),
    (re.compile(r'<span class="kind">(.*?)</span>', re.S), rf'<span style="{_MUTED}">\1</span>'),
    (re.compile(r'<span class="arrow">(.*?)</span>', re.S), r"&nbsp;\1"),
    (re.compile(r'<span class="sub">(.+?)</span>', re.S),
     rf'&nbsp;&nbsp;<span style="{_MUTED}">(\1)</span>'),
    (re.compile(r"<figcaption>(.*?)</figcaption>", re.S),
     rf'<br><span style="{_MUTED}">\1</span>'),
    (re.compile(r'<div class="error( warning)?"><strong>', re.S),
     r'<div><strong style="color:#c62828">'),
]


def simplified(html: str) -> str:
    """A card for Qt's rich text, which has no CSS layout, no <details> and no SVG: those
    parts are replaced by a pointer to the browser; tables get ruled cells; the live
    badge stays apart from the title, and what the CSS sets apart by style keeps apart."""
    if not html:
        return html
    more = "<p><i>(more in the browser: Open in Browser)</i></p>"
    html = _DETAILS.sub(more, html)
    html = _SVG.sub("<p><i>(a chart: Open in Browser to see it)</i></p>", html)
    html = _LIVE_BADGE.sub(_LIVE_PILL, html)
    for pattern, replacement in _SPANS:
        html = pattern.sub(replacement, html)
    return re.sub(r"<table>", '<table border="1" cellspacing="0" cellpadding="4">', html)


def _label(entry: CardEntry) -> str:
    words = _STATE_WORDS.get(entry.state, entry.state)
    name = entry.id or f"card {entry.index + 1}"
    return f"{name} · {entry.type}" + (f" · {words}" if words else "")


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return 0.0


def _escape(text: str) -> str:
    import html
    return html.escape(text).replace("\n", "<br>")
