"""The user's own folders for what Flowdeck writes outside the flows' folders.

Linux follows the XDG Base Directory specification; macOS and Windows their
usual per-user application data folders. No Qt: `--install-desktop` uses it
before any window exists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def data_home() -> Path:
    """`$XDG_DATA_HOME` when set and absolute (as the XDG spec requires), else ~/.local/share."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "share"


def app_data_dir() -> Path:
    """Flowdeck's own per-user data folder (created by whoever writes into it)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Flowdeck"
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        return Path(appdata) / "Flowdeck" if appdata else Path.home() / "Flowdeck"
    return data_home() / "flowdeck"
