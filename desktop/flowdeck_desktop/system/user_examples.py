"""The bundled examples open from a copy of the user's own, so their runs land there.

A run writes its `.flowdeck/` beside the flow file. Examples shipped inside the
app (a bundle's `_internal/examples/`, a wheel's `flowdeck_desktop/examples/`)
sit where the user may not write: in a root-owned install Run failed with
"Permission denied ... or set FLOWDECK_HOME", which a menu-started app cannot
set; run as root, the bundle wrote runs into itself. So the window opens a
per-user copy, `examples/` in Flowdeck's data folder (`user_dirs.app_data_dir`:
`$XDG_DATA_HOME/flowdeck/examples` on Linux). A checkout's `examples/` are the
user's own working tree and open in place.

Keeping the copy current without losing edits: `.shipped.json` in the copy
records each file's digest as shipped when it was copied. At each start a file
the shipment changed since is refreshed if the user left the copy as it was;
an edited copy is kept and the new version is written beside it as
`NAME.new` (not a `.py`, so no second flow of the same name is listed), and the
window says so once. A file the user deleted comes back only when its shipped
version changes; files the user added are theirs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from flowdeck.compiled_dataclasses import dataclass
from flowdeck_desktop.system.resources import checkout_top, examples_dir, shipped_files
from flowdeck_desktop.system.user_dirs import app_data_dir

MANIFEST = ".shipped.json"


@dataclass
class ExamplesFolder:
    """The examples folder the window offers (None: none shipped) and what to tell about it."""

    folder: str | None
    notes: list[str]


def user_copy_dir() -> Path:
    return app_data_dir() / "examples"


def examples_for_window() -> ExamplesFolder:
    """The folder "Open the bundled examples" opens: the user's copy (refreshed) when the
    examples ship inside the app, the checkout's own `examples/` otherwise."""
    shipped = examples_dir()
    top = checkout_top()
    if shipped is None or (top is not None and Path(shipped) == top / "examples"):
        return ExamplesFolder(shipped, [])
    target = user_copy_dir()
    try:
        return ExamplesFolder(str(target), sync_copy(Path(shipped), target))
    except OSError as exc:
        return ExamplesFolder(shipped, [
            f"Cannot copy the bundled examples to {target} ({exc.strerror or exc}), so they "
            f"open where Flowdeck is installed and their runs may fail there. Check that "
            f"{target.parent} is writable."])


def sync_copy(shipped: Path, target: Path) -> list[str]:
    """Bring `target` up to the examples in `shipped` without overwriting the user's edits
    (the rules are in this module's docstring); returns what the user should know."""
    current = {f.relative_to(shipped).as_posix(): _digest(f) for f in shipped_files(shipped)}
    recorded = _read_manifest(target)
    if recorded == current:
        return []
    notes = []
    for name, digest in current.items():
        if recorded.get(name) == digest:
            continue  # unchanged in the shipment: whatever the copy holds is the user's
        source, dest = shipped / name, target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists() and _digest(dest) not in (recorded.get(name), digest):
            newer = dest.with_name(dest.name + ".new")
            shutil.copyfile(source, newer)  # content only: a read-only install's mode stays
            notes.append(f"Your edited {dest} was kept; this Flowdeck's version of that "
                         f"example is beside it as {newer.name}.")
        else:
            shutil.copyfile(source, dest)
    (target / MANIFEST).write_text(json.dumps(current, indent=1, sort_keys=True) + "\n",
                                   encoding="utf-8")
    return notes


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_manifest(target: Path) -> dict[str, str]:
    """What was copied last time; nothing (copy everything) if absent or unreadable."""
    try:
        data = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
