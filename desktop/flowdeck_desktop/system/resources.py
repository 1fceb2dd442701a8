"""Where the app's shipped files are: a checkout, an installed package, or a frozen bundle.

The one place that knows the three layouts, so icons, the desktop file, the
examples and the bundle's plain-file core are all found the same way:

- a checkout or an editable install: `resources/` and `examples/` at the
  repository's top, beside `desktop/`;
- a wheel (`pip install '.[desktop]'`): inside the package, as
  `flowdeck_desktop/resources/` and `flowdeck_desktop/examples/` (setup.py copies
  them there);
- a PyInstaller bundle: at `sys._MEIPASS` (packaging/flowdeck.spec).

Standard library only: setup.py loads this file to ship the same files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # flowdeck_desktop/

#: The folders beside the packages that the app reads at run time.
SHIPPED_FOLDERS = ("resources", "examples")


def shipped_files(folder: Path) -> list[Path]:
    """The files of a shipped folder that a wheel or bundle carries: never the runs a
    checkout's examples made (`.flowdeck/`), caches, or other hidden files."""
    def shipped(path: Path) -> bool:
        parts = path.relative_to(folder).parts
        return path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in parts)
    return sorted(p for p in folder.rglob("*") if shipped(p))


def checkout_top() -> Path | None:
    """The repository's top when running from a checkout (or an editable install of one)."""
    top = _PACKAGE.parent.parent
    in_checkout = _PACKAGE.parent.name == "desktop" and (top / "pyproject.toml").is_file()
    return top if in_checkout and not getattr(sys, "_MEIPASS", None) else None


def _bases() -> list[Path]:
    """Folders that may hold `resources/` and `examples/`, most specific first."""
    bundle = getattr(sys, "_MEIPASS", None)
    top = checkout_top()
    return [Path(base) for base in (bundle, top, _PACKAGE) if base]


def searched_for(name: str) -> list[Path]:
    """Where `name` (a shipped folder) is looked for, for messages that say so."""
    return [base / name for base in _bases()]


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def resources_dir() -> Path | None:
    """The `resources/` folder (desktop file, icons), or None when this install lacks it."""
    for base in _bases():
        candidate = base / "resources"
        if (candidate / "flowdeck.desktop").is_file():
            return candidate
    return None


def icon_file() -> Path | None:
    folder = resources_dir()
    icon = folder / "icons" / "flowdeck.svg" if folder else None
    return icon if icon is not None and icon.is_file() else None


def examples_dir() -> str | None:
    """The examples shipped with the app (checkout, package or bundle)."""
    for base in _bases():
        candidate = base / "examples"
        if candidate.is_dir() and any(candidate.glob("*.py")):
            return str(candidate)
    return None


def bundled_core() -> str | None:
    """The bundle's `pylib/` (the core as plain files) when frozen, else None."""
    base = getattr(sys, "_MEIPASS", None)
    pylib = os.path.join(base, "pylib") if base else ""
    return pylib if is_frozen() and os.path.isdir(pylib) else None
