"""How the flow list paints a diagnostic row: in the status colour of its severity, taken
from the palette in use at paint time, so dark and light themes (and a live switch
between them) both read, and cut at its end when too long (the list cuts paths in the
middle, keeping both ends; a message's start, its line and what is wrong, matters most;
the tooltip has it whole). The model only says what a row is; looks belong to views."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QFontMetrics, QPalette
from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem

from flowdeck.store.status import CANCELLED, FAILED
from flowdeck_desktop.models.catalog_model import FLOW_ROW_SEPARATOR, KIND_ROLE, SEVERITY_ROLE
from flowdeck_desktop.views.theme import palette_is_dark, status_color

#: A diagnostic's severity to the status whose colour it borrows.
SEVERITY_STATUS = {"error": FAILED, "warning": CANCELLED}


#: What a row's text cannot use of its rect: the decoration, the margins and the item's
#: own padding (generous: the text is cut by Qt too where this is short).
FLOW_ROW_MARGIN = 12


def fitted_flow_text(text: str, width_of: Callable[[str], int], room: int) -> str:
    """A flow row's text cut to `room`: first its step count, then its engine, then the
    name in its middle, whose both ends tell flows apart (two pipelines ending V1 and V2
    both read "CustomerChurnModelTrai…" when the row was cut at its end)."""
    parts = text.split(FLOW_ROW_SEPARATOR)
    for keep in range(len(parts), 0, -1):
        shorter = FLOW_ROW_SEPARATOR.join(parts[:keep])
        if width_of(shorter) <= room:
            return shorter
    badge, _, name = parts[0].rpartition(" ")
    head = f"{badge} " if badge else ""
    while len(name) > 3 and width_of(head + name) > room:
        middle = len(name) // 2
        name = name[:middle - 1] + "…" + name[middle + 1:] if "…" not in name else \
            name[:name.index("…") - 1] + "…" + name[name.index("…") + 2:]
    return head + name


class CatalogDelegate(QStyledItemDelegate):
    """Colours diagnostic rows by severity and cuts them at the end; every other row
    paints as usual."""

    def initStyleOption(self, option: QStyleOptionViewItem,  # noqa: N802 (Qt override)
                        index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        if index.data(KIND_ROLE) == "flow":
            metrics = QFontMetrics(option.font)  # kept: option.fontMetrics is a temporary
            option.text = fitted_flow_text(option.text, metrics.horizontalAdvance,
                                           option.rect.width() - FLOW_ROW_MARGIN)
            return
        if index.data(KIND_ROLE) != "diagnostic":
            return
        status = SEVERITY_STATUS.get(str(index.data(SEVERITY_ROLE)), CANCELLED)
        color = status_color(status, palette_is_dark(option.palette))
        option.palette.setColor(QPalette.ColorRole.Text, color)
        option.palette.setColor(QPalette.ColorRole.WindowText, color)
        option.textElideMode = Qt.TextElideMode.ElideRight
