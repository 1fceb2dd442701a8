"""The bundle's entry point: undo the bootloader's library path, then start Flowdeck.

PyInstaller's Linux bootloader points LD_LIBRARY_PATH at the bundle's own
libraries (keeping the user's value in LD_LIBRARY_PATH_ORIG). Flows run in
a real Python started by this process; inheriting that path would make the
user's interpreter load our copies of libssl, libffi or Qt. This process
already loaded what it needs, so restoring the variable only affects children.
"""

from __future__ import annotations

import os
import sys


def restore_library_path() -> None:
    """Give child processes the library path the user had before the bundle started."""
    for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH"):
        original = os.environ.pop(f"{name}_ORIG", None)
        if original is not None:
            os.environ[name] = original
        elif getattr(sys, "frozen", False):
            os.environ.pop(name, None)


if __name__ == "__main__":
    restore_library_path()
    from flowdeck_desktop.__main__ import main
    sys.exit(main())
