"""The flow list's diagnostic rows: coloured by severity, cut at their end (not in the
middle, as the list cuts paths), so a long message keeps its line and what is wrong."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics, QPalette, QStandardItem, QStandardItemModel
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


def test_a_narrow_flow_row_drops_its_details_before_cutting_the_name_in_its_middle(
        qtbot) -> None:
    """Two pipelines ending V1 and V2 both read "CustomerChurnModelTrai…" when the row was
    cut at its end, while "Flowdeck · 10 steps" stayed whole. Widths come from the row's
    own font, whatever fonts the machine has."""
    from flowdeck_desktop.models.catalog_model import FLOW_ROW_SEPARATOR
    from flowdeck_desktop.views.catalog_delegate import fitted_flow_text

    model = QStandardItemModel()
    delegate = CatalogDelegate()
    texts = []
    for version in ("V1", "V2"):
        item = QStandardItem(FLOW_ROW_SEPARATOR.join(
            (f"✔ CustomerChurnModelTrainingPipeline{version}", "Flowdeck", "10 steps")))
        item.setData("flow", KIND_ROLE)
        model.appendRow(item)
        option = QStyleOptionViewItem()
        metrics = QFontMetrics(option.font)
        option.rect.setWidth(metrics.horizontalAdvance("✔ CustomerChurnModelTrainingPipelineV1")
                             + 40)
        delegate.initStyleOption(option, item.index())
        texts.append(option.text)
    assert texts == ["✔ CustomerChurnModelTrainingPipelineV1",
                     "✔ CustomerChurnModelTrainingPipelineV2"]  # details went first
    probe = QStyleOptionViewItem()
    metrics = QFontMetrics(probe.font)
    width_of = metrics.horizontalAdvance
    room = width_of("✔ CustomerChurnModelTr")
    cut = [fitted_flow_text(f"✔ CustomerChurnModelTrainingPipeline{v}", width_of, room)
           for v in ("V1", "V2")]
    assert cut[0] != cut[1] and all("…" in c and width_of(c) <= room for c in cut)
    assert cut[0].endswith("V1") and cut[1].endswith("V2")
