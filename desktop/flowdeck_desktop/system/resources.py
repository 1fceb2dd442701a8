"""Where the app's shipped files are: a checkout, an installed package, or a frozen bundle.

The one place that knows the three layouts (`sys._MEIPASS` in a PyInstaller
bundle, the repository's top folder in a checkout or editable install), so
icons, the desktop file, the examples and the bundle's plain-file core are
all found the same way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # flowdeck_desktop/


def _bases() -> list[Path]:
    """Folders that may hold `resources/` and `examples/`, most specific first."""
    bases = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        bases.append(Path(bundle))
    bases += [_PACKAGE.parent.parent, _PACKAGE]  # checkout top (desktop/..), then the package
    return bases


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
