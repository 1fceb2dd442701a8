"""Linux desktop integration: the shipped .desktop entry, icons, install and uninstall."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from flowdeck_desktop.system import desktop_integration as di

DESKTOP_FILE = ROOT / "resources" / "flowdeck.desktop"
VALIDATE = shutil.which("desktop-file-validate")
needs_validator = pytest.mark.skipif(VALIDATE is None, reason="desktop-file-validate missing: "
                                     "run .ci/system-deps (Debian package desktop-file-utils)")


def entry(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VALIDATE), str(path)], capture_output=True, text=True)


@needs_validator
def test_shipped_entry_is_valid() -> None:
    result = validate(DESKTOP_FILE)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_shipped_entry_opens_python_files_and_has_a_run_action() -> None:
    main = entry(DESKTOP_FILE)["Desktop Entry"]
    assert main["Exec"] == "flowdeck %F" and main["Icon"] == "flowdeck"
    assert {"text/x-python", "text/x-python3"} <= set(main["MimeType"].split(";"))
    assert "Development" in main["Categories"].split(";")
    assert main["Actions"].rstrip(";") == "Run"
    assert "--run" in entry(DESKTOP_FILE)["Desktop Action Run"]["Exec"]


def test_every_icon_size_is_shipped() -> None:
    icons = ROOT / "resources" / "icons"
    for size in di.ICON_SIZES:
        data = (icons / f"flowdeck-{size}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(data[16:20], "big") == size  # IHDR width
    assert (icons / "flowdeck.svg").is_file() and (icons / "flowdeck.ico").is_file()


def test_exec_is_quoted_as_the_spec_says() -> None:
    text = di.desktop_entry_text("Exec=flowdeck %F\nTryExec=flowdeck\n",
                                 ["/opt/my apps/flowdeck", "-m", "x"])
    assert 'Exec="/opt/my apps/flowdeck" -m x %F' in text
    assert "TryExec=/opt/my apps/flowdeck" in text


def test_data_home_follows_xdg(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert di.data_home() == tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    assert di.data_home() == Path.home() / ".local" / "share"


def test_install_then_uninstall_in_a_temporary_xdg_home(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    launcher = tmp_path / "bin dir" / "flowdeck"
    report = di.install(command=[str(launcher)])
    paths = di.installed_paths()
    assert all(p.is_file() for p in paths.values())
    assert str(paths["desktop"]) in report.written
    installed = entry(paths["desktop"])
    assert installed["Desktop Entry"]["Exec"] == f'"{launcher}" %F'
    assert installed["Desktop Action Run"]["Exec"] == f'"{launcher}" --run %F'
    if VALIDATE:
        assert validate(paths["desktop"]).returncode == 0
    if shutil.which("update-desktop-database"):
        cache = (tmp_path / "data" / "applications" / "mimeinfo.cache").read_text()
        assert "text/x-python=flowdeck.desktop;" in cache
    report = di.uninstall()
    assert not any(p.exists() for p in paths.values())
    assert len(report.removed) == len(paths)
    assert di.uninstall().removed == []  # twice is fine


def test_command_line_install_and_uninstall(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    env.pop("DISPLAY", None)  # no screen needed
    install = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "--install-desktop"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert install.returncode == 0, install.stderr
    desktop = tmp_path / "data" / "applications" / "flowdeck.desktop"
    assert desktop.is_file() and "applications menu" in install.stdout
    remove = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "--uninstall-desktop"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert remove.returncode == 0 and not desktop.exists()
