"""Shared test set-up: Qt offscreen, isolated homes, and helpers to run real flow processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
DESKTOP = ROOT / "desktop"
FLOWS = Path(__file__).resolve().parent / "flows"
EXAMPLES = ROOT / "examples"

#: Qt's offscreen screen is 800x800 unless told otherwise; the tests get a common desktop's
#: 1920x1080, where the window's first-start size (at most 90% of the screen) is its full
#: 1300x820. tests/test_window_fits_screen.py tries smaller screens in processes of its own.
OFFSCREEN_SCREEN = Path(__file__).resolve().parent / "offscreen_screen.json"
if os.environ.get("QT_QPA_PLATFORM", "offscreen") == "offscreen":
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={OFFSCREEN_SCREEN}"
for _path in (CORE, DESKTOP):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


#: Most processes `pytest -n auto` starts: each test starts real flows, clusters and
#: servers of its own, so a many-core machine gains little past this and loads a lot.
MAX_TEST_PROCESSES = 8

#: The longest a test waits for something real (a process, a thread, a file watcher) before
#: it calls the wait a hang. It is a guard, never a speed claim: the wait ends as soon as
#: the thing happens, and a loaded machine may take many times the usual. Speed is
#: measured in bench/, not asserted here.
WAIT_MS = 60_000
WAIT_S = 120  # the same guard in seconds, for a whole run through a subprocess


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): one test process per usable core, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_TEST_PROCESSES, cores or 1))


def pytest_configure(config: pytest.Config) -> None:
    """Compile Flowdeck's sources to bytecode once, in the controller, before any test.

    The suite starts thousands of Python processes that import the core (each flow run,
    each window, each helper). Where PYTHONDONTWRITEBYTECODE is set (this project's CI
    machine sets it) and the checkout is fresh, none of them may write the bytecode it
    compiles, so each compiled the core again: 0.23 s more for every `python flow.py`
    here. compileall writes it whatever the variable says, and reading it is allowed.
    The same for the methods `dataclasses` writes (`flowdeck precompile` does both; 0.033 s
    more for every start without them)."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller did it
        return
    import compileall
    for folder in (CORE, DESKTOP, Path(__file__).resolve().parent):
        compileall.compile_dir(folder, quiet=2, workers=1)
    subprocess.run([sys.executable, "-c", "from flowdeck.compiled_dataclasses import "
                    "write_cache_for; write_cache_for(['flowdeck'])"], env=child_env(),
                   check=True)


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a flow process: our core importable, unbuffered, UTF-8."""
    env = dict(os.environ)
    env.pop("FLOWDECK_HOME", None)
    env.pop("FLOWDECK_RUN_ID", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CORE), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def stored_runs(flow: str, root: Path) -> list:
    """The runs of `flow` under `root`, newest first; [] before its first run is stored
    (`Flow()` then says the flow does not exist, as Metaflow's does): for tests that
    wait for a run they started."""
    from flowdeck import Flow
    from flowdeck.client import ClientError
    try:
        return Flow(flow, root=root).runs()
    except ClientError:
        return []


def process_alive(pid: int) -> bool:
    """True while a process exists and is not a zombie (a zombie has finished)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return not handle.read().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def run_flow(path: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python path args...` as a user would run it; output captured as text."""
    return subprocess.run([sys.executable, str(path), *args], cwd=cwd or path.parent,
                          env=env or child_env(), capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=timeout)



def wait_for(condition, what: str, still_going=lambda: True, limit: float = 120.0) -> None:
    """Poll until `condition()` holds. A liveness guard, not a timing claim: `limit` only
    keeps a broken build from hanging the suite; `still_going()` False fails at once."""
    import time
    polls = int(limit / 0.05)
    for _ in range(polls):
        if condition():
            return
        if not still_going():
            pytest.fail(f"{what}: the process ended first")
        time.sleep(0.05)
    pytest.fail(f"{what}: not within the {limit:g} s guard")


@pytest.fixture
def flow_file(tmp_path: Path):
    """Copy a named flow from tests/flows (or examples/) into a fresh folder and return its path."""

    def copy(name: str) -> Path:
        for folder in (FLOWS, EXAMPLES):
            source = folder / name
            if source.exists():
                target = tmp_path / source.name
                shutil.copy(source, target)
                return target
        raise FileNotFoundError(name)

    return copy


@pytest.fixture
def settings(tmp_path: Path):
    """A settings file of the test's own, for the window (never the user's)."""
    from PySide6.QtCore import QSettings
    return QSettings(str(tmp_path / "settings" / "flowdeck.ini"), QSettings.Format.IniFormat)


def flow_key(controller, name: str) -> str:
    """The catalog key of the flow class called `name`."""
    return next(e.key for e in controller.model.entries() if e.name == name)


def close_window(controller, window) -> None:
    """Stop the window's runs first (so closing asks nothing), then close everything."""
    for run in controller.runs.values():
        run.stop()
        run.wait_stopped(3000)
    window.close()
    controller.shutdown()
    window.deleteLater()


@contextmanager
def opened_window(qtbot, settings, roots: list[Path]) -> Iterator[tuple[Any, Any]]:
    """The real window on `roots`, shown, its first scan done; closed after."""
    from flowdeck_desktop.app import build
    controller, window = build(settings, [str(root) for root in roots])
    window.show()
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)  # listed off-thread
        yield controller, window
    finally:
        close_window(controller, window)


@pytest.fixture(scope="session")
def metaflow_output_raw(tmp_path_factory: pytest.TempPathFactory):
    """Metaflow's `python FILE output-raw --json` for the graph tests, with Metaflow
    imported once for the session (tests/metaflow_output_raw.py says how)."""
    pytest.importorskip("metaflow")
    from metaflow_output_raw import MetaflowOutputRaw
    home = tmp_path_factory.mktemp("metaflow-home")  # never the user's ~/.metaflowconfig
    server = MetaflowOutputRaw(child_env(USERNAME="tester", HOME=str(home),
                                         XDG_CONFIG_HOME=str(home / ".config")))
    yield server
    server.close()


@pytest.fixture(scope="session")
def metaflow_linear_run(tmp_path_factory: pytest.TempPathFactory):
    """tests/flows/metaflow/linear.py run once through the Metaflow bridge with its defaults
    (run id r1): (path, completed process, events). Tests read it or resume from it."""
    from test_metaflow_bridge import shared_bridge_run
    return shared_bridge_run(tmp_path_factory, "linear.py")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test touches the real home directory or settings."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.delenv("FLOWDECK_HOME", raising=False)
    monkeypatch.delenv("FLOWDECK_RUN_ID", raising=False)
    import flowdeck.client
    monkeypatch.setattr(flowdeck.client, "_metadata_root", None)  # metadata() of another test
    yield home


@pytest.fixture(autouse=True)
def patient_artifact_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every limit on loading an artifact (the helper's and the window's, owned by
    flowdeck.engines.load_limits) twelve times the usual: a person waits 8 s for a
    preview, but a test machine whose host steals a third of its CPU took longer to
    import pandas. At 12 the window's preview limit is the tests' own WAIT_S, so no
    answer depends on how busy the host is. The helpers inherit the variable. Tests
    about the limits set the factor they need (tests/flows/hanging_value.py)."""
    from flowdeck.engines.load_limits import PATIENCE_ENV
    monkeypatch.setenv(PATIENCE_ENV, str(WAIT_S // 10))


def answer_box(button: Any, seen: list[str]) -> None:
    """Click `button` (a QMessageBox.StandardButton) on the next message box once it is
    up, noting its text: for tests of actions that ask first."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    def poll() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(" ".join(filter(None, [box.text(), box.informativeText()])))
            box.button(button).click()
        else:
            QTimer.singleShot(10, poll)
    QTimer.singleShot(0, poll)


def _url_catcher() -> Any:
    """A receiver for Qt's URL-handler hook (a QObject with a slot, made when first
    needed so that importing conftest needs no Qt)."""
    from PySide6.QtCore import QObject, QUrl, Slot

    class UrlCatcher(QObject):
        """Receives the file URLs the window asks the desktop to open."""

        def __init__(self) -> None:
            super().__init__()
            self.paths: list[str] = []

        @Slot(QUrl)
        def handle(self, url: QUrl) -> None:
            self.paths.append(url.toLocalFile())

    return UrlCatcher()


@pytest.fixture
def opened_urls() -> Iterator[list[str]]:
    """The files the window asks the desktop's handler to open (Qt's own URL-handler
    hook, so no file manager or editor of the machine is started)."""
    from PySide6.QtGui import QDesktopServices
    catcher = _url_catcher()
    QDesktopServices.setUrlHandler("file", catcher, "handle")  # type: ignore[arg-type]
    yield catcher.paths
    QDesktopServices.unsetUrlHandler("file")
