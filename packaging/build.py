"""`python3 packaging/build.py`: build the bundle from packaging/flowdeck.spec, report size and time.

One command for people and for the smoke test (which passes its own
--distpath/--workpath so nothing is cached between runs). Needs the
`package` extra: `python3 -m pip install -e '.[package]'` (PyInstaller and
the `desktop` extra). PyInstaller bundles whatever the building Python has:
without PySide6 it builds, without complaint, an app whose double-click only
prints "the Flowdeck window needs Qt" where nobody sees it, so both are
checked before building.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def folder_size(path: Path) -> int:
    """Bytes of every file under `path` (symlinks not followed, as on disk)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


INSTALL = "python3 -m pip install -e '.[package]'"
#: What the bundle cannot do without, as (module, what it is for).
REQUIRED = (("PyInstaller", "PyInstaller, which builds the bundle"),
            ("PySide6", "Qt (PySide6), the window the bundle opens"))


def missing_requirements() -> list[str]:
    """What this Python lacks to build a bundle that opens a window, as readable names."""
    return [what for module, what in REQUIRED if not _importable(module)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken one
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distpath", default=str(ROOT / "dist"))
    parser.add_argument("--workpath", default=str(ROOT / "build" / "pyinstaller"))
    args = parser.parse_args(argv)
    missing = missing_requirements()
    if missing:
        print(f"error: {sys.executable} lacks {' and '.join(missing)}; nothing was built. "
              f"Install what the bundle needs (PyInstaller and the `desktop` extra) with: "
              f"{INSTALL}", file=sys.stderr)
        return 2
    import PyInstaller.__main__ as pyinstaller
    started = time.perf_counter()
    pyinstaller.run(["--noconfirm", "--clean", "--log-level", "WARN",
                     "--distpath", args.distpath, "--workpath", args.workpath,
                     str(ROOT / "packaging" / "flowdeck.spec")])
    bundle = Path(args.distpath) / "flowdeck"
    print(f"built {bundle} in {time.perf_counter() - started:.1f} s, "
          f"{folder_size(bundle) / 1e6:.0f} MB; start it with {bundle / 'flowdeck'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
