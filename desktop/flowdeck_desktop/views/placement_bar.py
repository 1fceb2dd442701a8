"""The run toolbar's "Run on" and "Store" controls: where a flow's tasks run and where its
records go, per flow.

"Run on" is a box: *This machine*, or *Dask cluster…*, which asks for the scheduler's
address (blank: a cluster started on this machine for the run) and then names it in
the box. "Store" is a field: blank for the flow's `.flowdeck` folder, a folder (its
button browses for one) or an object-store URL (`s3://bucket/prefix`). Values are
checked as they are given (`run_options.Placement.checked`) so a mistake is named at
once, and again before every run by the controller. The bar only shows and edits a
`Placement`; the window keeps it through the controller.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QStyle,
    QWidget,
)

from flowdeck_desktop.control.run_options import (
    EXECUTOR_LABELS,
    Placement,
    RunOptionsError,
    check_scheduler,
    check_store,
)

STORE_PLACEHOLDER = ".flowdeck beside the flow · a folder · s3://bucket/prefix"
_TIP_RUN_ON = ("Where the flow's tasks run: forked on this machine, or sent to a Dask "
               "cluster (its scheduler's address; blank starts a cluster on this machine for "
               "the run). The orchestrator, the live graph and Stop stay here. Remembered per "
               "flow; used by Run, Resume and Rerun on Save.")
_TIP_STORE = ("Where the run keeps its artifacts and records: blank for the .flowdeck folder "
              "beside the flow, another folder, or an object store (s3://bucket/prefix; gs://, "
              "az:// with their fsspec package) that the Dask workers reach too. Remembered "
              "per flow.")
_TIP_BRIDGE = ("Not used by {engine}: Metaflow runs the tasks on this machine and keeps its "
               "own store. Choose Flowdeck (fast) as the Engine to run on a Dask cluster or "
               "in another store.")


class PlacementBar(QWidget):
    """Run on and Store for the selected flow; `changed(Placement)` when the user sets one,
    `problem(text)` when a value given cannot be used (with what to do)."""

    changed = Signal(object)  # Placement
    problem = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._placement = Placement()
        self.run_on_label = QLabel(" Run on ")
        self.run_on = QComboBox()
        for executor, label in EXECUTOR_LABELS.items():
            self.run_on.addItem(label, executor)
        self.run_on.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.run_on.setMinimumContentsLength(14)
        self.run_on_label.setBuddy(self.run_on)
        self.store_label = QLabel(" Store ")
        self.store = QLineEdit()
        self.store.setPlaceholderText(STORE_PLACEHOLDER)
        self.store.setClearButtonEnabled(True)
        self.store.setMinimumWidth(self.store.fontMetrics().horizontalAdvance("s" * 34))
        self.browse = self.store.addAction(
            self.style().standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon),
            QLineEdit.ActionPosition.TrailingPosition)
        self.browse.setToolTip("Choose a folder for the store")
        self.store_label.setBuddy(self.store)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        for widget in (self.run_on_label, self.run_on, self.store_label, self.store):
            layout.addWidget(widget)
        #: The address dialog while it is open (non-blocking, so tests and the event loop
        #: go on); None otherwise.
        self.address_dialog: QInputDialog | None = None
        self.run_on.activated.connect(self._on_run_on)
        self.store.editingFinished.connect(self._on_store)
        self.browse.triggered.connect(self._browse)
        self.set_placement(Placement(), usable=False)

    # -- shown -----------------------------------------------------------------------------

    def placement(self) -> Placement:
        return self._placement

    def set_placement(self, placement: Placement, usable: bool = True,
                      engine_label: str = "") -> None:
        """Show a flow's placement; `usable` False (the Metaflow bridge, no flow) disables
        the controls and says why in their tooltips."""
        self._placement = placement
        self._show_run_on()
        self.store.blockSignals(True)
        self.store.setText(placement.store)
        self.store.blockSignals(False)
        for widget in (self.run_on_label, self.run_on, self.store_label, self.store):
            widget.setEnabled(usable)
        bridge = not usable and bool(engine_label)
        run_on_tip, store_tip = (_TIP_BRIDGE.format(engine=engine_label),) * 2 if bridge \
            else (_TIP_RUN_ON, _TIP_STORE)
        for widget, tip in ((self.run_on_label, run_on_tip), (self.run_on, run_on_tip),
                            (self.store_label, store_tip), (self.store, store_tip)):
            widget.setToolTip(tip)
        self.store.setStyleSheet("")
        if usable:
            self._mark_store(placement.store)

    def _show_run_on(self) -> None:
        placement = self._placement
        dask = self.run_on.findData("dask")
        self.run_on.setItemText(dask, _dask_label(placement.scheduler)
                                if placement.remote else EXECUTOR_LABELS["dask"])
        self.run_on.setCurrentIndex(max(0, self.run_on.findData(placement.executor)))

    def _mark_store(self, text: str) -> None:
        """Say at the field itself when its value cannot be used (what to do in its tip)."""
        try:
            check_store(text)
        except RunOptionsError as exc:
            self.store.setStyleSheet("QLineEdit { border: 1px solid #d62728; }")
            self.store.setToolTip(str(exc))
            return
        self.store.setStyleSheet("")
        self.store.setToolTip(_TIP_STORE)

    # -- edited ------------------------------------------------------------------------------

    def _on_run_on(self, index: int) -> None:
        if self.run_on.itemData(index) == "local":
            self._set(Placement("local", self._placement.scheduler, self._placement.store))
            return
        self.ask_scheduler()

    def ask_scheduler(self) -> QInputDialog:
        """Ask for the scheduler's address (prefilled with the last one); the box goes back
        to what it was when the dialog is cancelled or the address is not host:port."""
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Run on a Dask cluster")
        dialog.setLabelText("The Dask scheduler's address, as it printed it (e.g. "
                            "tcp://10.0.0.5:8786).\nLeave it blank to start a cluster on "
                            "this machine for each run.")
        dialog.setTextValue(self._placement.scheduler)
        dialog.setOkButtonText("Run There")
        dialog.accepted.connect(lambda: self._scheduler_given(dialog.textValue()))
        dialog.rejected.connect(self._show_run_on)
        dialog.finished.connect(self._dialog_closed)
        self.address_dialog = dialog
        dialog.open()
        return dialog

    def _dialog_closed(self) -> None:
        if self.address_dialog is not None:
            self.address_dialog.deleteLater()
        self.address_dialog = None

    def _scheduler_given(self, text: str) -> None:
        try:
            address = check_scheduler(text)
        except RunOptionsError as exc:
            self._show_run_on()
            self.problem.emit(str(exc))
            return
        self._set(Placement("dask", address, self._placement.store))

    def _on_store(self) -> None:
        text = self.store.text().strip()
        if text == self._placement.store:
            return
        self._mark_store(text)
        try:
            check_store(text)
        except RunOptionsError as exc:
            self.problem.emit(str(exc))  # kept as typed, to fix; a run refuses it meanwhile
        self._set(Placement(self._placement.executor, self._placement.scheduler, text))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Store folder", self.store.text())
        if folder:
            self.store.setText(folder)
            self._on_store()

    def _set(self, placement: Placement) -> None:
        self._placement = placement
        self._show_run_on()
        self.changed.emit(placement)


def _dask_label(scheduler: str) -> str:
    """The Run on box's text for a Dask cluster: the address without `tcp://`."""
    if not scheduler:
        return "Dask (local cluster)"
    return f"Dask {scheduler.removeprefix('tcp://')}"
