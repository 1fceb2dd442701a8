"""The frozen app: interpreter discovery without an interpreter of our own, and a real bundle.

The smoke test builds the PyInstaller bundle from scratch (nothing cached:
its work and dist folders and PyInstaller's cache live in this test's
temporary home), starts it offscreen on a flow file, and checks that the
flow ran to completion in the system Python through the bundle's `pylib/`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT

from flowdeck.engines.interpreter import check_interpreter, detect_interpreter
from flowdeck_desktop.control import run_process

MAX_BUNDLE_MB = 200


def _fake_python(folder: Path, target: str = sys.executable) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    python = folder / "python3"
    python.symlink_to(target)
    return python


def test_frozen_app_uses_python3_on_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    python = _fake_python(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    found = detect_interpreter(tmp_path / "flows")
    assert (found.path, found.source) == (str(python), "PATH")
    assert found.path != sys.executable or not getattr(sys, "_MEIPASS", None)


def test_frozen_app_prefers_the_folders_venv(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    _fake_python(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    venv_python = _fake_python(tmp_path / "project" / "venv" / "bin")
    assert detect_interpreter(tmp_path / "project").path == str(venv_python)
    assert detect_interpreter(tmp_path / "project", "/opt/py/python3").source == "configured"


def test_no_python_anywhere_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    found = detect_interpreter(tmp_path)
    check = check_interpreter(found.path)
    assert not check.works
    assert "install Python 3.11" in check.error and "Run > Interpreter" in check.error


def test_frozen_core_path_is_the_bundles_pylib(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pylib" / "flowdeck").mkdir(parents=True)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert run_process.core_path() == str(tmp_path / "pylib")
    monkeypatch.setattr(sys, "frozen", False)
    assert run_process.core_path() == str(ROOT / "core")


# -- what building needs ----------------------------------------------------------------------

def test_the_package_extra_brings_the_window() -> None:
    """`pip install -e '.[package]'` (the README's command) must install Qt too: PyInstaller
    bundles what the building Python has, and a bundle without Qt opens no window."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert "flowdeck[desktop]" in extras["package"]
    assert any(r.startswith("pyinstaller") for r in extras["package"])


HIDE_QT = ("import runpy, sys; sys.modules['PySide6'] = None; "  # as if not installed
           "sys.argv = [{build!r}, '--distpath', sys.argv[1], '--workpath', sys.argv[2]]; "
           "runpy.run_path(sys.argv[0], run_name='__main__')")


def test_build_refuses_without_qt(tmp_path: Path) -> None:
    """A Python without PySide6 builds nothing, says so on stderr and how to install it."""
    code = HIDE_QT.format(build=str(ROOT / "packaging" / "build.py"))
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dist"),
                             str(tmp_path / "build")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Qt (PySide6)" in result.stderr and "'.[package]'" in result.stderr
    assert sys.executable in result.stderr and not result.stdout
    assert not (tmp_path / "dist").exists() and not (tmp_path / "build").exists()


# -- the wheel ------------------------------------------------------------------------------

#: What a source distribution holds (pyproject.toml, setup.py and MANIFEST.in decide the rest).
SOURCE = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "core", "desktop",
          "resources", "examples")


def _source_copy(target: Path) -> Path:
    """The project's sources in a folder of their own: a build writes build/ and *.egg-info
    beside them, and the checkout (maybe being built by another test) stays untouched. The
    examples hold runs, as a checkout's do after `flowdeck examples/`."""
    skip = shutil.ignore_patterns("__pycache__", ".flowdeck", "*.egg-info", "build")
    target.mkdir(parents=True)
    for name in SOURCE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=skip)
        else:
            shutil.copy2(source, target / name)
    runs = target / "examples" / ".flowdeck" / "TrainFlow"
    runs.mkdir(parents=True)
    (runs / "latest").write_text("1")
    return target


def _build_wheel(source: Path, out: Path) -> Path:
    """`pip wheel . --no-deps`, as a non-editable install builds it (without fetching a
    setuptools when this Python has one)."""
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                             "-q", "-w", str(out), *isolation], capture_output=True, text=True,
                            timeout=600, cwd=source)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return next(out.glob("flowdeck-*.whl"))


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into a folder of its own (its dependencies are this Python's)."""
    work = tmp_path_factory.mktemp("wheel")
    built = _build_wheel(_source_copy(work / "src"), work / "dist")
    site = work / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                             "--target", str(site), str(built)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return site


def _from_wheel(site: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m flowdeck_desktop ARGS` with the wheel's packages, never the checkout's."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), XDG_DATA_HOME=str(tmp_path / "data"),
               HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, "-m", "flowdeck_desktop", *args], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(900)
def test_the_wheel_carries_resources_and_examples(installed_wheel: Path) -> None:
    """What the window and --install-desktop read, as package data; no checkout's runs."""
    package = installed_wheel / "flowdeck_desktop"
    assert (package / "resources" / "flowdeck.desktop").is_file()
    assert (package / "resources" / "icons" / "flowdeck-256.png").is_file()
    assert (package / "examples" / "train.py").is_file()
    assert not list(package.rglob(".flowdeck"))


@pytest.mark.timeout(900)
def test_a_wheel_install_installs_the_desktop_entry(installed_wheel: Path,
                                                     tmp_path: Path) -> None:
    probe = _from_wheel(installed_wheel, tmp_path, "--version")
    assert probe.returncode == 0, probe.stderr
    code = ("import flowdeck_desktop.system.resources as r; "
            "print(r.__file__); print(r.resources_dir()); print(r.examples_dir())")
    env = dict(os.environ, PYTHONPATH=str(installed_wheel))
    where = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert all(line.startswith(str(installed_wheel)) for line in where), where
    result = _from_wheel(installed_wheel, tmp_path, "--install-desktop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "data" / "applications" / "flowdeck.desktop").is_file()
    assert (tmp_path / "data" / "icons" / "hicolor" / "256x256" / "apps" / "flowdeck.png").is_file()


# -- the bundle -----------------------------------------------------------------------------

def _pyinstaller_or_skip() -> None:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        if os.environ.get("FLOWDECK_REQUIRE_BUNDLE"):
            pytest.fail("PyInstaller is missing but FLOWDECK_REQUIRE_BUNDLE is set: "
                        "python3 -m pip install -e '.[package]'")
        pytest.skip("PyInstaller is not installed: python3 -m pip install -e '.[package]'")


def _system_python() -> str:
    """A Python without flowdeck installed, so the run needs the bundle's pylib."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def _app_env(home: Path, bin_dir: Path) -> dict[str, str]:
    """What a double-click gives: no venv, no PYTHONPATH, our python3 first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "LD_LIBRARY_PATH")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), QT_QPA_PLATFORM="offscreen",
               LANG="C.UTF-8", PATH=os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]))
    return env


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _pyinstaller_or_skip()
    work = tmp_path_factory.mktemp("bundle")
    env = dict(os.environ, HOME=str(work / "home"), XDG_CACHE_HOME=str(work / "cache"),
               PYINSTALLER_CONFIG_DIR=str(work / "pyi-config"))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py"),
                             "--distpath", str(work / "dist"), "--workpath", str(work / "build")],
                            env=env, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"\nbundle built in {took:.1f} s")
    return work / "dist" / "flowdeck"


@pytest.mark.timeout(900)
def test_bundle_holds_the_core_examples_and_resources(bundle: Path) -> None:
    internal = bundle / "_internal"
    assert (bundle / "flowdeck").is_file() and os.access(bundle / "flowdeck", os.X_OK)
    assert (internal / "pylib" / "flowdeck" / "__init__.py").is_file()
    assert (internal / "pylib" / "flowdeck" / "engine" / "runtime.py").is_file()
    assert (internal / "examples" / "train.py").is_file()
    assert not (internal / "examples" / ".flowdeck").exists()  # a checkout's runs stay behind
    assert (internal / "resources" / "flowdeck.desktop").is_file()
    assert (internal / "resources" / "icons" / "flowdeck-256.png").is_file()
    assert not list(internal.rglob("libQt6Qml*")) and not list(internal.rglob("libQt6Pdf*"))
    size_mb = sum(p.stat().st_size for p in bundle.rglob("*")  # as on disk: PyInstaller
                  if p.is_file() and not p.is_symlink()) / 1e6  # links libs, not copies
    assert size_mb < MAX_BUNDLE_MB, f"bundle is {size_mb:.0f} MB"


@pytest.mark.timeout(900)
def test_bundle_runs_a_flow_with_the_system_python(bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(EXAMPLES / "train.py", folder)
    python = _system_python()
    bin_dir = tmp_path / "bin"
    _fake_python(bin_dir, python)
    env = _app_env(tmp_path / "home", bin_dir)
    result = subprocess.run([str(bundle / "flowdeck"), str(folder / "train.py"),
                             "--exit-when-done"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    events = [json.loads(line) for f in folder.glob(".flowdeck/TrainFlow/runs/*/events.jsonl")
              for line in f.read_text().splitlines() if line]
    finished = [e for e in events if e["type"] == "run_finished"]
    assert finished and finished[-1]["status"] == "succeeded"


@pytest.mark.timeout(900)
def test_bundle_opens_a_window_and_quits(bundle: Path, tmp_path: Path) -> None:
    """The bundle shows its window on the examples and exits cleanly. How fast is a
    benchmark's question (README, packaging figures), never a test's: a timing bound
    failed here under load on a shared machine."""
    env = _app_env(tmp_path / "home", tmp_path / "bin")
    result = subprocess.run([str(bundle / "flowdeck"), str(EXAMPLES), "--new-instance",
                             "--quit-when-shown"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.timeout(900)
def test_bundle_runs_its_examples_in_the_users_copy(bundle: Path, tmp_path: Path) -> None:
    """`--screenshot` with no path opens the bundled examples and runs the first: the run
    lands in the user's copy under $XDG_DATA_HOME, never in the bundle (which its users
    may not write, and which root would otherwise fill with runs)."""
    _fake_python(tmp_path / "bin", _system_python())
    env = _app_env(tmp_path / "home", tmp_path / "bin")
    result = subprocess.run([str(bundle / "flowdeck"), "--new-instance", "--screenshot",
                             str(tmp_path / "shot.png")], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    copy = tmp_path / "home" / ".local" / "share" / "flowdeck" / "examples"
    assert (copy / "train.py").is_file()
    assert list(copy.glob(".flowdeck/*/runs/*/events.jsonl"))
    assert not (bundle / "_internal" / "examples" / ".flowdeck").exists()


@pytest.mark.timeout(900)
def test_bundle_headless_run_uses_a_real_python(bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(EXAMPLES / "train.py", folder)
    _fake_python(tmp_path / "bin", _system_python())
    env = _app_env(tmp_path / "home", tmp_path / "bin")
    result = subprocess.run([str(bundle / "flowdeck"), "run", str(folder / "train.py")],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout
    env["PATH"] = str(tmp_path / "no-python-here")
    missing = subprocess.run([str(bundle / "flowdeck"), "run", str(folder / "train.py")],
                             env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "install Python 3.11" in missing.stderr
