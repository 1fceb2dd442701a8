"""Run > Interpreter…: which Python runs this folder's flows, why, and what else there is.

Shows the current choice and the reason it was chosen (a folder venv, `$VIRTUAL_ENV`,
the user's own choice, the app's Python, `python3` on PATH), the folder venvs that were
skipped and why, and offers the interpreters found (folder venvs, `$VIRTUAL_ENV`, the
app's Python, `python3` on PATH) plus Browse… and "Automatic", which goes back to
detection. The dialog only reports the choice (`chosen()`); the window applies it
through `FlowdeckController.set_interpreter`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.engines.interpreter import (
    SOURCE_NAMES,
    VENV_NAMES,
    Interpreter,
    check_interpreter,
    search_folders,
    venv_problem,
)

AUTOMATIC = ""  # the list item's data for "Automatic"


@dataclass(frozen=True)
class Candidate:
    """An interpreter the dialog offers: where it was found, and why it cannot be used."""

    path: str
    found_as: str  # "folder venv", "$VIRTUAL_ENV", "Flowdeck's own Python", ...
    problem: str | None = None


def _venv_python(venv: Path) -> Path | None:
    for candidate in (venv / "bin" / "python", venv / "bin" / "python3",
                      venv / "Scripts" / "python.exe"):
        try:
            if candidate.is_file():
                return candidate
        except OSError:
            continue
    return None


def interpreter_candidates(folder: str, stop_at: str | None,
                           configured: str | None = None) -> list[Candidate]:
    """Every interpreter worth offering for flows in `folder`, nearest first, no duplicates."""
    found: list[Candidate] = []
    here = Path(folder).resolve()
    for base in search_folders(here, stop_at):
        for name in VENV_NAMES:
            python = _venv_python(base / name)
            if python is not None:
                found.append(Candidate(str(python), SOURCE_NAMES["venv"],
                                       venv_problem(base / name, python, here)))
    env = os.environ.get("VIRTUAL_ENV")
    env_python = _venv_python(Path(env)) if env else None
    if env_python is not None:
        found.append(Candidate(str(env_python), SOURCE_NAMES["VIRTUAL_ENV"]))
    if not getattr(sys, "frozen", False):
        found.append(Candidate(sys.executable, SOURCE_NAMES["app"]))
    on_path = shutil.which("python3")
    if on_path:
        found.append(Candidate(on_path, SOURCE_NAMES["PATH"]))
    if configured:
        found.append(Candidate(configured, SOURCE_NAMES["configured"]))
    unique: dict[str, Candidate] = {}
    for candidate in found:
        unique.setdefault(os.path.abspath(candidate.path), candidate)
    return list(unique.values())


def why_chosen(interpreter: Interpreter) -> str:
    """The reason an interpreter runs the flows, in a sentence."""
    path = interpreter.path
    if interpreter.source == "configured":
        return "You chose it for this folder."
    if interpreter.source == "venv":
        venv = Path(path).parent.parent
        return (f"It belongs to the virtual environment {venv}, found in the flow's folder "
                "or a folder above it (up to the watched folder).")
    if interpreter.source == "VIRTUAL_ENV":
        return ("No usable .venv or venv was found beside the flow, and $VIRTUAL_ENV "
                f"({os.environ.get('VIRTUAL_ENV', '')}) names this environment.")
    if interpreter.source == "app":
        return ("No usable .venv or venv was found beside the flow and $VIRTUAL_ENV is not "
                "set, so flows run with the Python Flowdeck runs on.")
    if interpreter.source == "PATH":
        return ("No usable .venv or venv was found beside the flow and $VIRTUAL_ENV is not "
                "set, so flows run with python3 found on PATH.")
    return f"Chosen as {interpreter.source}."


def describe_check(path: str) -> str:
    """What the interpreter can do: its version and whether it has flowdeck and metaflow."""
    check = check_interpreter(path)
    if not check.works:
        return check.error
    core = ("has flowdeck" if check.has_flowdeck
            else "no flowdeck (Flowdeck's core is put on its PYTHONPATH)")
    metaflow = "has metaflow" if check.has_metaflow else "no metaflow"
    return f"Python {check.version}; {core}; {metaflow}."


class InterpreterDialog(QDialog):
    """Choose the Python for one folder's flows; `chosen()` is a path, or None for Automatic."""

    def __init__(self, folder: str, current: Interpreter, automatic: Interpreter,
                 configured: str | None, stop_at: str | None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Python interpreter")
        self.folder = folder
        self.current, self.automatic = current, automatic
        self.setMinimumWidth(560)
        title = QLabel(f"Flows in <b>{folder}</b> run with:")
        title.setWordWrap(True)
        self.current_label = QLabel(f"<b>{current.path}</b> "
                                    f"({SOURCE_NAMES.get(current.source, current.source)})")
        self.current_label.setWordWrap(True)
        self.current_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reason_label = QLabel(why_chosen(current) + " " + describe_check(current.path))
        self.reason_label.setWordWrap(True)
        skipped = current.skipped or automatic.skipped
        self.skipped_label = QLabel("<br>".join(["<b>Skipped:</b>", *skipped]))
        self.skipped_label.setWordWrap(True)
        self.skipped_label.setTextFormat(Qt.TextFormat.RichText)
        self.skipped_label.setVisible(bool(skipped))
        self.choices = QListWidget()
        self.choices.setWordWrap(True)
        self.choices.setTextElideMode(Qt.TextElideMode.ElideNone)
        self._add_item(f"Automatic: {automatic.path} ({SOURCE_NAMES.get(automatic.source, '')})",
                       AUTOMATIC, "Detect the interpreter: a folder venv, $VIRTUAL_ENV, else "
                       "Flowdeck's own Python (or python3 on PATH).")
        for candidate in interpreter_candidates(folder, stop_at, configured):
            item = self._add_item(f"{candidate.path} ({candidate.found_as})", candidate.path,
                                  candidate.problem or candidate.path)
            if candidate.problem:
                item.setText(f"{item.text()}: skipped, {candidate.problem}")
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self.browse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton(self.browse_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.choices.itemDoubleClicked.connect(lambda _item: self.accept())
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.current_label)
        layout.addWidget(self.reason_label)
        layout.addWidget(self.skipped_label)
        layout.addWidget(QLabel("Choose:"))
        layout.addWidget(self.choices, 1)
        layout.addWidget(buttons)
        self.choose(configured)

    def _add_item(self, text: str, path: str, tip: str) -> QListWidgetItem:
        item = QListWidgetItem(text)
        item.setData(Qt.ItemDataRole.UserRole, path)
        item.setToolTip(tip)
        self.choices.addItem(item)
        return item

    def offered(self) -> list[str]:
        """The paths offered, "" standing for Automatic, in list order."""
        return [self.choices.item(i).data(Qt.ItemDataRole.UserRole)
                for i in range(self.choices.count())]

    def choose(self, path: str | None) -> None:
        """Select `path` (added when it is not offered yet), or Automatic for None."""
        wanted = path or AUTOMATIC
        for i in range(self.choices.count()):
            item = self.choices.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == wanted:
                self.choices.setCurrentItem(item)
                return
        item = self._add_item(f"{wanted} (chosen with Browse…)", wanted, wanted)
        self.choices.setCurrentItem(item)

    def chosen(self) -> str | None:
        """The selected interpreter's path; None for Automatic."""
        item = self.choices.currentItem()
        path = item.data(Qt.ItemDataRole.UserRole) if item is not None else AUTOMATIC
        return path or None

    def browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Python interpreter for this folder",
                                              self.folder)
        if path:
            self.choose(path)
