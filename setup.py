"""Only the wheel's package data; everything else is in pyproject.toml.

The window and `flowdeck --install-desktop` read `resources/` (the desktop file,
the icons) and open `examples/`, which live at the repository's top beside the
packages (the README's `flowdeck examples/`). package-data can only ship files
inside a package, so a non-editable build copies them into the wheel as
`flowdeck_desktop/resources/` and `flowdeck_desktop/examples/`, where
`flowdeck_desktop/system/resources.py` looks for them. An editable install
reads the checkout's own folders instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _layouts() -> ModuleType:
    """flowdeck_desktop/system/resources.py (standard library only) without importing the
    package, whose dependencies a build environment lacks: it says which files ship."""
    path = ROOT / "desktop" / "flowdeck_desktop" / "system" / "resources.py"
    spec = importlib.util.spec_from_file_location("_flowdeck_layouts", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithShippedFolders(build_py):
    """build_py, then the shipped folders into the built `flowdeck_desktop/`."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install finds them in the checkout
        layouts = _layouts()
        for name in layouts.SHIPPED_FOLDERS:
            source_folder = ROOT / name
            for source in layouts.shipped_files(source_folder):
                target = Path(self.build_lib, "flowdeck_desktop", name,
                              source.relative_to(source_folder))
                self.mkpath(str(target.parent))
                self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildWithShippedFolders})
