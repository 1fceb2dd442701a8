"""The parameters form: one typed editor per `Parameter` of the selected flow.

Built from discovery's static view of the flow (never from importing it):
names, literal defaults, types, help and `required`. Values are strings
handed to `python flow.py run --name value`. A value of a built-in type (int,
float, JSON) is checked as it is typed, by the engine's own conversion
(`flowdeck.analysis.parameter_text`), so a mistyped number is said beside the
form instead of by a run that fails to start; the flow's own types are left to it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from flowdeck.analysis.flowfile import ParameterInfo
from flowdeck.analysis.parameter_text import parameter_problem
from flowdeck.store.records import multiple_text, parameter_arguments
from flowdeck_desktop.control.run_options import RunOptionsError, parse_run_options

OPTIONS_TIP = ("Options put on the flow's command line before the parameters, written as in "
               "a shell: e.g. --max-workers 2, --environment=conda, --with kubernetes. "
               "Remembered per flow.")


class ParamsForm(QWidget):
    """Typed editors for a flow's parameters, and its run options (`--max-workers 2`);
    emits `changed` when the user edits a parameter, `options_changed` for the options."""

    changed = Signal()
    options_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._params: list[ParameterInfo] = []
        self._editors: dict[str, QWidget] = {}
        self._form = QFormLayout()
        self._empty = QLabel("This flow has no parameters.")
        self._reset = QPushButton("Reset to defaults")
        self._reset.clicked.connect(self.reset_defaults)
        self.values_error = QLabel()  # what `problems` finds, as the user types
        self.values_error.setWordWrap(True)
        self.values_error.setVisible(False)
        self.options = QLineEdit()
        self.options.setPlaceholderText("e.g. --max-workers 2")
        self.options.setToolTip(OPTIONS_TIP)
        self.options.setClearButtonEnabled(True)
        self.options.textEdited.connect(self._on_options_edited)
        self.options_label = QLabel("Run options")
        self.options_label.setToolTip(OPTIONS_TIP)
        self.options_label.setBuddy(self.options)
        self.options_error = QLabel()
        self.options_error.setWordWrap(True)
        self.options_error.setVisible(False)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        layout = QVBoxLayout(self)
        layout.addWidget(self._empty)
        layout.addLayout(self._form)
        layout.addWidget(self.values_error)
        layout.addWidget(self._reset)
        layout.addWidget(line)
        layout.addWidget(self.options_label)
        layout.addWidget(self.options)
        layout.addWidget(self.options_error)
        layout.addStretch(1)
        self._reset.setVisible(False)

    def set_parameters(self, params: list[ParameterInfo], values: dict[str, str] | None = None
                       ) -> None:
        """Rebuild the editors; `values` are remembered strings that win over defaults."""
        while self._form.rowCount():
            self._form.removeRow(0)
        self._editors.clear()
        self._params = list(params)
        for param in self._params:
            editor = self._editor_for(param)
            label = QLabel(param.name + (" *" if param.required and not param.has_default else ""))
            tip = param.help or "no help given"
            tip += f"\ntype: {param.type}; default: {param.default_source or 'none'}"
            label.setToolTip(tip)
            editor.setToolTip(tip)
            self._form.addRow(label, editor)
            self._editors[param.name] = editor
        self._empty.setVisible(not self._params)
        self._reset.setVisible(bool(self._params))
        self.reset_defaults()
        for name, value in (values or {}).items():
            if name in self._editors:
                _set_text(self._editors[name], value)
        self._show_problems()

    def shows(self, params: list[ParameterInfo]) -> bool:
        """Whether the form edits exactly `params` (where they are declared aside)."""
        def placeless(ps: list[ParameterInfo]) -> list[ParameterInfo]:
            return [replace(p, line=0) for p in ps]
        return placeless(self._params) == placeless(list(params))

    def _editor_for(self, param: ParameterInfo) -> QWidget:
        kind = param.type
        if param.multiple:  # any number of values: a line of them
            line = QLineEdit()
            line.setPlaceholderText("values separated by spaces (quote one with spaces)")
            line.textEdited.connect(self._on_value_edited)
            editor: QWidget = line
        elif kind == "bool":
            box = QCheckBox()
            box.toggled.connect(self.changed)
            editor = box
        elif kind in ("int", "float"):  # text, not a spin box: the value as written, any size
            number = QLineEdit()  # (a spin box held ints to 32 bits and floats to 6 decimals)
            number.setPlaceholderText(("required: " if param.required else "")
                                      + ("an integer" if kind == "int" else "a number"))
            number.textEdited.connect(self._on_value_edited)
            editor = number
        else:
            editor = QLineEdit()
            editor.setPlaceholderText("required" if param.required else "")
            editor.textEdited.connect(self._on_value_edited)
        return editor

    def reset_defaults(self) -> None:
        for param in self._params:
            editor = self._editors[param.name]
            editor.blockSignals(True)
            _set_text(editor, _default_text(param))
            editor.blockSignals(False)
        self._show_problems()

    def problems(self) -> list[str]:
        """`name: why` for each value the run would refuse (an int that is not one, JSON
        that does not parse); a blank value means the default and is never one."""
        values = self.values()
        found = []
        for param in self._params:
            text = values.get(param.name, "")
            if not text.strip():
                continue  # the default
            given = parameter_arguments(param.name, text, param.multiple)[1::2]
            why = next((p for p in (parameter_problem(param.type, v) for v in given) if p),
                       None)
            if why is not None:
                found.append(f"{param.name}: {why}")
        return found

    def _on_value_edited(self, _text: str) -> None:
        self._show_problems()
        self.changed.emit()

    def _show_problems(self) -> None:
        problems = self.problems()
        self.values_error.setText("\n".join(f"⚠ {p}" for p in problems))
        self.values_error.setVisible(bool(problems))

    def values(self) -> dict[str, str]:
        """Current values as the command line would take them."""
        return {name: _get_text(editor) for name, editor in self._editors.items()}

    def set_run_options(self, text: str) -> None:
        """Show a flow's remembered run options (no `options_changed`)."""
        self.options.setText(text)
        self.check_options()

    def run_options(self) -> str:
        return self.options.text()

    def check_options(self) -> str | None:
        """Validate the options as typed; shows and returns the error, or None."""
        try:
            parse_run_options(self.options.text())
        except RunOptionsError as exc:
            self.options_error.setText(f"⚠ {exc}")
            self.options_error.setVisible(True)
            return str(exc)
        self.options_error.setVisible(False)
        self.options_error.setText("")
        return None

    def _on_options_edited(self, _text: str) -> None:
        self.check_options()
        self.options_changed.emit()

    def missing_required(self) -> list[str]:
        values = self.values()
        return [p.name for p in self._params
                if p.required and not p.has_default and not values.get(p.name)]


def _default_text(param: ParameterInfo) -> str:
    if not param.has_default or param.default is None:
        return ""
    if param.multiple:  # the values as the line takes them (a scalar default is one value)
        items = param.default if isinstance(param.default, (list, tuple)) else [param.default]
        return multiple_text(_value_text(item) for item in items)
    return _value_text(param.default)


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _set_text(editor: QWidget, text: str) -> None:
    if isinstance(editor, QCheckBox):
        editor.setChecked(text.strip().lower() in ("true", "1", "yes", "on"))
    elif isinstance(editor, QLineEdit):
        editor.setText(text)


def _get_text(editor: QWidget) -> str:
    if isinstance(editor, QCheckBox):
        return "true" if editor.isChecked() else "false"
    if isinstance(editor, QLineEdit):
        return editor.text()
    return ""
