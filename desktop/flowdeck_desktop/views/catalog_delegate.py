"""How the flow list paints a diagnostic row: in the status colour of its severity, taken
from the palette in use at paint time, so dark and light themes (and a live switch
between them) both read, and cut at its end when too long (the list cuts paths in the
middle, keeping both ends; a message's start, its line and what is wrong, matters most;
the tooltip has it whole). The model only says what a row is; looks belong to views."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem

from flowdeck_desktop.models.catalog_model import KIND_ROLE, SEVERITY_ROLE
from flowdeck_desktop.views.theme import palette_is_dark, status_color

#: A diagnostic's severity to the status whose colour it borrows.
SEVERITY_STATUS = {"error": "failed", "warning": "cancelled"}


class CatalogDelegate(QStyledItemDelegate):
    """Colours diagnostic rows by severity and cuts them at the end; every other row
    paints as usual."""

    def initStyleOption(self, option: QStyleOptionViewItem,  # noqa: N802 (Qt override)
                        index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        if index.data(KIND_ROLE) != "diagnostic":
            return
        status = SEVERITY_STATUS.get(str(index.data(SEVERITY_ROLE)), "cancelled")
        color = status_color(status, palette_is_dark(option.palette))
        option.palette.setColor(QPalette.ColorRole.Text, color)
        option.palette.setColor(QPalette.ColorRole.WindowText, color)
        option.textElideMode = Qt.TextElideMode.ElideRight
