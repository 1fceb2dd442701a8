"""`python3 packaging/build.py`: build the bundle from packaging/flowdeck.spec, report size and time.

One command for people and for the smoke test (which passes its own
--distpath/--workpath so nothing is cached between runs). Needs the
`package` extra: `python3 -m pip install -e '.[package]'`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def folder_size(path: Path) -> int:
    """Bytes of every file under `path` (symlinks not followed, as on disk)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distpath", default=str(ROOT / "dist"))
    parser.add_argument("--workpath", default=str(ROOT / "build" / "pyinstaller"))
    args = parser.parse_args(argv)
    try:
        import PyInstaller.__main__ as pyinstaller
    except ImportError:
        print("error: PyInstaller is not installed. Run: python3 -m pip install -e '.[package]'")
        return 2
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
