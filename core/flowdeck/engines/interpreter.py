"""Which Python runs a flow: the folder's virtual environment, $VIRTUAL_ENV, or our own.

A user's flow must run with the interpreter that has their libraries, not
with the app's. We look for `.venv/` or `venv/` in the flow's folder and the
folders above it, up to the watched root (`stop_at`; without one, up to the
user's home when the flow is inside it, else the flow's own folder only),
then `$VIRTUAL_ENV`, then fall back to the app's own Python (or, in a frozen
app, `python3` on PATH).

A venv found that way is executed (to probe it, on Run, and to show
artifacts), so it is only taken when nobody else could have put it there:
the venv, its `bin/`, its `python` and every folder from the venv down to the
flow must belong to this user or root and not be writable by others (a
sticky folder such as /tmp is fine: others cannot replace what is ours in
it). A venv that fails this is skipped, and `Interpreter.skipped` says where
and why, so the window can tell the user instead of silently using another.

We also check, once per interpreter, whether it can import `flowdeck` (and
`metaflow`); if it cannot, the run gets our core on its PYTHONPATH. That check starts
a process (75 ms for this repository's Python, seconds for a slow one), so the window
starts it in the background when a flow is selected (`warm_check`) and Run finds it
done, or waits for the one on its way instead of starting another.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

from flowdeck.compiled_dataclasses import dataclass

VENV_NAMES = (".venv", "venv")

#: How each source reads in the window ("Running with /p/.venv/bin/python (folder venv)").
SOURCE_NAMES = {"configured": "configured", "venv": "folder venv",
                "VIRTUAL_ENV": "$VIRTUAL_ENV", "app": "Flowdeck's own Python",
                "PATH": "python3 on PATH"}


@dataclass(frozen=True)
class Interpreter:
    """A Python executable, why it was chosen, and which folder venvs were refused on the way."""

    path: str
    source: str  # "configured", "venv", "VIRTUAL_ENV", "app", "PATH"
    skipped: tuple[str, ...] = ()  # one sentence per refused venv: its path and the reason

    @property
    def label(self) -> str:
        return f"{self.path} ({SOURCE_NAMES.get(self.source, self.source)})"

    @property
    def announcement(self) -> str:
        """What a run says before it starts, so nobody wonders which Python ran their code."""
        return f"Running with {self.label}"


@dataclass(frozen=True)
class InterpreterCheck:
    """What an interpreter can do, learned by running it once."""

    works: bool
    version: str = ""
    has_flowdeck: bool = False
    has_metaflow: bool = False
    error: str = ""


def _venv_python(venv: Path) -> Path | None:
    for candidate in (venv / "bin" / "python", venv / "bin" / "python3",
                      venv / "Scripts" / "python.exe"):
        try:
            if candidate.is_file():
                return candidate
        except OSError:  # an unreadable folder on the way up is not ours to use
            continue
    return None


def detect_interpreter(folder: str | Path, configured: str | None = None,
                       stop_at: str | Path | None = None) -> Interpreter:
    """The interpreter for flows in `folder` (configured one first).

    Folder venvs are looked for from `folder` up to `stop_at` (the watched
    root: a folder, or a file root meaning its folder); see `search_folders`.
    A venv someone else could have planted is skipped and named in `skipped`.
    """
    if configured:
        return Interpreter(configured, "configured")
    here = Path(folder).resolve()
    skipped: list[str] = []
    for base in search_folders(here, stop_at):
        for name in VENV_NAMES:
            venv = base / name
            python = _venv_python(venv)
            if python is None:
                continue
            problem = venv_problem(venv, python, here)
            if problem is None:
                return Interpreter(str(python), "venv", tuple(skipped))
            skipped.append(f"Skipped the venv {venv}: {problem}. Fix its ownership or "
                           "permissions, or choose an interpreter in Run > Interpreter.")
    return _fallback(tuple(skipped))


def _fallback(skipped: tuple[str, ...]) -> Interpreter:
    """No usable folder venv: $VIRTUAL_ENV (the user's own setting), else our Python."""
    env = os.environ.get("VIRTUAL_ENV")
    python = _venv_python(Path(env)) if env else None
    if python is not None:
        return Interpreter(str(python), "VIRTUAL_ENV", skipped)
    if not getattr(sys, "frozen", False):
        return Interpreter(sys.executable, "app", skipped)
    found = shutil.which("python3") or shutil.which("python")
    return Interpreter(found or "python3", "PATH", skipped)


def search_folders(here: Path, stop_at: str | Path | None) -> list[Path]:
    """`here` and its parents up to `stop_at` included; only `here` when it is not below it.

    Without `stop_at`, the user's home is the stop when `here` is inside it:
    a walk to `/` would reach shared folders such as /tmp, where anybody
    can create a `.venv`.
    """
    stop = _stop_folder(stop_at)
    if stop is None or not (here == stop or stop in here.parents):
        return [here]
    return _up_to(here, stop)


def _up_to(here: Path, top: Path) -> list[Path]:
    """`here`, its parent, ... up to `top` included (`top` is `here` or one of its parents)."""
    folders = [here]
    while folders[-1] != top:
        folders.append(folders[-1].parent)
    return folders


def _stop_folder(stop_at: str | Path | None) -> Path | None:
    """The folder where the walk stops: the root itself, a file root's folder, or the home."""
    if stop_at is None:
        try:
            return Path.home().resolve()
        except (RuntimeError, KeyError, OSError):  # no home at all: stay in the flow's folder
            return None
    stop = Path(stop_at).resolve()
    return stop.parent if stop.is_file() else stop


def venv_problem(venv: Path, python: Path, flow_folder: Path) -> str | None:
    """Why `python` of `venv` may have been put there by someone else, or None if it is safe.

    Checked: the python (and what it links to), `bin/`, the venv folder (and
    what it links to), and every folder from the venv's parent down to the
    flow's folder. Each must belong to this user or root; a folder others
    can write to is allowed only with the sticky bit (they cannot replace
    our entries in it), a file never. Windows has no such owners and modes (its
    folders are guarded by ACLs), so nothing is checked there.
    """
    if os.name == "nt":
        return None
    for path in [python, python.parent, venv, *_up_to(flow_folder, venv.parent)]:
        problem = _path_problem(path, follow=False) or _path_problem(path, follow=True)
        if problem:
            return problem
    return None


def _path_problem(path: Path, follow: bool) -> str | None:
    """Why `path` (or, with `follow`, what its symlinks lead to) is not safely ours."""
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except OSError as exc:
        return f"{path} cannot be checked ({exc.strerror or exc})"
    where = os.path.realpath(path) if follow else str(path)
    if info.st_uid not in (_uid(), 0):
        return f"{where} belongs to {_user_name(info.st_uid)}, not to you or root"
    if stat.S_ISLNK(info.st_mode):
        return None  # a link's own mode means nothing; its target is checked with `follow`
    if _others_may_write(info) and not (stat.S_ISDIR(info.st_mode) and
                                        info.st_mode & stat.S_ISVTX):
        return f"{where} is writable by other users (mode {stat.filemode(info.st_mode)})"
    return None


def _others_may_write(info: os.stat_result) -> bool:
    """World-writable, or group-writable by a group other than our own primary group."""
    if info.st_mode & stat.S_IWOTH:
        return True
    return bool(info.st_mode & stat.S_IWGRP) and info.st_gid != _gid()


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def _gid() -> int:
    return os.getgid() if hasattr(os, "getgid") else 0


def _user_name(uid: int) -> str:
    """`name (uid N)` when the account is known, else `uid N`."""
    try:
        import pwd
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


_PROBE = ("import sys, importlib.util as u; print(sys.version.split()[0]); "
          "print(bool(u.find_spec('flowdeck'))); print(bool(u.find_spec('metaflow')))")


def _probe(path: str) -> InterpreterCheck:
    """Run the interpreter once to see its version and what it can import."""
    try:
        result = subprocess.run([path, "-I", "-c", _PROBE], capture_output=True, text=True,
                                timeout=20, cwd=os.path.abspath(os.sep),
                                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return InterpreterCheck(False, error=f"{path} cannot be started: {exc}")
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return InterpreterCheck(False, error=f"{path} does not run Python: {detail}")
    lines = result.stdout.split()
    if len(lines) < 3:
        return InterpreterCheck(False, error=f"{path} did not answer like Python does.")
    too_old = _too_old(path, lines[0])
    if too_old:
        return InterpreterCheck(False, lines[0], error=too_old)
    return InterpreterCheck(True, lines[0], lines[1] == "True", lines[2] == "True")


#: The oldest Python a flow's interpreter may be: Flowdeck's core runs in it (its events,
#: its store), and on 3.9 it failed in the middle of the run with a TypeError that the
#: window put on the user's file ("train.py failed before TrainFlow started").
MIN_INTERPRETER = (3, 10)


def _too_old(path: str, version: str) -> str | None:
    """Why the interpreter at `path` (Python `version`) cannot run flows, or None."""
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return None  # an odd build's version text: let the run say what goes wrong
    if found >= MIN_INTERPRETER:
        return None
    least = ".".join(map(str, MIN_INTERPRETER))
    return (f"{path} is Python {version}; flows run with Python {least} or newer. "
            "Recreate that environment with a newer Python (3.11 or newer, as Flowdeck is "
            "tested with), or choose another interpreter (in the window: Run > Interpreter).")


#: One probe per interpreter file as it is now (path, mtime): done, or on its way; the
#: latest CHECKS_KEPT (a rebuilt venv gets a new mtime: its old entry goes in time).
_CHECKS: dict[tuple[str, float], Future[InterpreterCheck]] = {}
_CHECKS_LOCK = threading.Lock()
CHECKS_KEPT = 32


def _checked(path: str, mtime: float, background: bool) -> Future[InterpreterCheck]:
    """The probe of (path, mtime): the one made or on its way, else a new one, run here
    or (`background`) on a thread of its own."""
    with _CHECKS_LOCK:
        future = _CHECKS.get((path, mtime))
        if future is not None:
            return future
        future = _CHECKS[(path, mtime)] = Future()
        while len(_CHECKS) > CHECKS_KEPT:
            del _CHECKS[next(iter(_CHECKS))]  # the oldest (a dict keeps insertion order)
    if background:
        threading.Thread(target=_fill, args=(future, path), name="interpreter-check",
                         daemon=True).start()
    else:
        _fill(future, path)
    return future


def _fill(future: Future[InterpreterCheck], path: str) -> None:
    try:
        future.set_result(_probe(path))
    except BaseException as exc:  # noqa: BLE001 (whoever waits gets it, not a lost thread)
        with _CHECKS_LOCK:  # not kept: the next check probes again
            for key in [k for k, f in _CHECKS.items() if f is future]:
                del _CHECKS[key]
        future.set_exception(exc)


def _file_now(path: str) -> tuple[str, float] | InterpreterCheck:
    """The interpreter's file (found on PATH for a bare name) and its mtime; or, when there
    is none, the failed check that says what to install."""
    try:
        return path, os.stat(path).st_mtime
    except OSError:
        resolved = shutil.which(path)
        if resolved is None:
            return InterpreterCheck(False, error=_missing_message(path))
        return resolved, os.stat(resolved).st_mtime


def check_interpreter(path: str) -> InterpreterCheck:
    """Run the interpreter once (cached until its file changes) to see what it has; a
    check already on its way (`warm_check`) is waited for, not repeated."""
    found = _file_now(path)
    if isinstance(found, InterpreterCheck):
        return found
    return _checked(*found, background=False).result()


def warm_check(path: str) -> None:
    """Start `check_interpreter(path)` on a thread of its own unless it is made or on its
    way: the window calls this when a flow is selected, so Run does not wait for it."""
    try:
        found = _file_now(path)
    except OSError:  # the file went between two looks: Run's own check says so
        return
    if not isinstance(found, InterpreterCheck):
        _checked(*found, background=True)


def _missing_message(path: str) -> str:
    """Say what to install when no Python was found, not only that a path is wrong."""
    if os.sep in path or (os.altsep and os.altsep in path):
        return (f"The interpreter {path} does not exist. "
                "Choose another one in Run > Interpreter.")
    return (f"No Python interpreter found: `{path}` is not on PATH. Flows run with a real "
            "Python: install Python 3.11 or newer (Debian/Ubuntu: `sudo apt install python3`; "
            "macOS and Windows: python.org), or create a `.venv` in the flow's folder, or "
            "choose an interpreter in Run > Interpreter.")
