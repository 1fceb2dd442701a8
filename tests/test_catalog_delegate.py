"""The flow list's diagnostic rows: coloured by severity, cut at their end (not in the
middle, as the list cuts paths), so a long message keeps its line and what is wrong."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QStyleOptionViewItem

from flowdeck_desktop.models.catalog_model import KIND_ROLE, SEVERITY_ROLE
from flowdeck_desktop.views.catalog_delegate import CatalogDelegate
from flowdeck_desktop.views.theme import palette_is_dark, status_color


def style_of(delegate: CatalogDelegate, item: QStandardItem) -> QStyleOptionViewItem:
    option = QStyleOptionViewItem()
    option.textElideMode = Qt.TextElideMode.ElideMiddle  # the list's own mode (paths)
    delegate.initStyleOption(option, item.index())
    return option


def test_diagnostics_are_cut_at_their_end_and_coloured_by_severity(qtbot) -> None:
    model = QStandardItemModel()
    error = QStandardItem("line 12: `self.next` names a step `trian` that does not exist; "
                          "did you mean `train`? Rename one of them.")
    error.setData("diagnostic", KIND_ROLE)
    error.setData("error", SEVERITY_ROLE)
    path = QStandardItem("/home/someone/projects/pipelines/nightly/churn_features.py")
    path.setData("file", KIND_ROLE)
    model.appendRow(error)
    model.appendRow(path)
    delegate = CatalogDelegate()
    diagnostic = style_of(delegate, error)
    assert diagnostic.textElideMode == Qt.TextElideMode.ElideRight
    dark = palette_is_dark(diagnostic.palette)
    assert diagnostic.palette.color(QPalette.ColorRole.Text) == status_color("failed", dark)
    assert style_of(delegate, path).textElideMode == Qt.TextElideMode.ElideMiddle
