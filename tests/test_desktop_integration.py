"""Linux desktop integration: the shipped .desktop entry, icons, install and uninstall."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from flowdeck_desktop.system import desktop_integration as di

DESKTOP_FILE = ROOT / "resources" / "flowdeck.desktop"
VALIDATE = shutil.which("desktop-file-validate")
GIO = shutil.which("gio")
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


#: Every character the spec's two layers of escaping treat specially, and a space.
ODD_NAME = 'My Apps 100%F $HOME `id` "dq" \'sq\' back\\slash ü'


def _argument_logger(folder: Path) -> Path:
    """An executable at an awkward path that writes its own path and arguments, one a line."""
    folder.mkdir(parents=True)
    script = folder / "flow deck"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$0" "$@" > "$FLOWDECK_ARGS_OUT"\n')
    script.chmod(0o755)
    return script


def test_exec_escapes_percent_dollar_backtick_quote_and_backslash() -> None:
    """The spec's Exec quoting (`%%`; `"`, backtick, `$`, `\\` escaped in quotes), then its
    string escapes (every backslash doubled); `env` first, as the program has a `%`."""
    command = [f"/opt/{ODD_NAME}/flowdeck", "--level=50%"]
    text = di.desktop_entry_text("Exec=flowdeck %F\nTryExec=flowdeck\n", command)
    exec_line = text.splitlines()[0]
    assert exec_line == ('Exec=env "/opt/My Apps 100%%F \\\\$HOME \\\\`id\\\\` \\\\"dq\\\\" \'sq\' '
                         'back\\\\\\\\slash ü/flowdeck" --level=50%% %F')
    assert text.splitlines()[1] == f"TryExec=/opt/{ODD_NAME.replace(chr(92), chr(92) * 2)}/flowdeck"


@needs_validator
def test_an_entry_for_an_odd_path_is_valid(tmp_path: Path) -> None:
    command = [str(tmp_path / ODD_NAME / "flowdeck"), "--level=50%"]
    path = tmp_path / "flowdeck.desktop"
    path.write_text(di.desktop_entry_text(DESKTOP_FILE.read_text(), command))
    result = validate(path)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.skipif(GIO is None, reason="gio missing (Debian package libglib2.0-bin): it "
                    "launches the entry as a desktop would")
def test_the_desktop_starts_the_odd_path_with_its_arguments(tmp_path: Path) -> None:
    """GLib (what GNOME and most file managers use) launches the entry: the program at the
    odd path starts and gets exactly the arguments given, then the opened file."""
    script = _argument_logger(tmp_path / ODD_NAME)
    command = [str(script), "--level=50%", "$HOME"]
    entry_file = tmp_path / "flowdeck.desktop"
    entry_file.write_text(di.desktop_entry_text(DESKTOP_FILE.read_text(), command))
    out = tmp_path / "args.txt"
    opened = tmp_path / "a flow.py"
    opened.write_text("")
    env = dict(os.environ, FLOWDECK_ARGS_OUT=str(out))
    result = subprocess.run([str(GIO), "launch", str(entry_file), str(opened)], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 10  # gio returns once the program is spawned
    while not out.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.read_text().splitlines() == [str(script), "--level=50%", "$HOME", str(opened)]


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


#: `python -m flowdeck_desktop` as on an install without the `desktop` extra (no PySide6).
WITHOUT_QT = ("import sys; sys.modules['PySide6'] = None; "
              "from flowdeck_desktop.__main__ import main; sys.exit(main(sys.argv[1:]))")


def test_a_headless_install_refuses_to_install_a_menu_entry(tmp_path: Path) -> None:
    """Without Qt the entry (and "Open with" for every .py file) would open nothing."""
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    result = subprocess.run([sys.executable, "-c", WITHOUT_QT, "--install-desktop"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and not result.stdout, result.stdout + result.stderr
    assert "pip install 'flowdeck[desktop]'" in result.stderr
    assert "nothing was installed" in result.stderr
    assert not (tmp_path / "data").exists()


def test_a_headless_install_still_uninstalls(tmp_path: Path) -> None:
    """An entry installed while Qt was there can be removed after Qt went."""
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    di.install(tmp_path / "data", command=["/opt/flowdeck/flowdeck"])
    result = subprocess.run([sys.executable, "-c", WITHOUT_QT, "--uninstall-desktop"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not any(p.exists() for p in di.installed_paths(tmp_path / "data").values())


def test_errors_go_to_stderr_and_say_what_to_do(tmp_path: Path) -> None:
    """A data folder that cannot be written: the file it could not write and where to go."""
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    env = dict(os.environ, XDG_DATA_HOME=str(blocker))
    result = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "--install-desktop"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and not result.stdout, result.stdout
    assert f"cannot write {blocker}" in result.stderr and "XDG_DATA_HOME" in result.stderr
    assert ".." not in result.stderr


def test_a_missing_resources_folder_says_reinstall_not_writable(monkeypatch, tmp_path: Path,
                                                                capsys) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(di, "find_resources", lambda: None)
    assert di.main("install") == 1
    out, err = capsys.readouterr()
    assert not out and "no resources folder" in err and "--force-reinstall" in err
    assert "writable" not in err and ".." not in err and err.rstrip().endswith(".")


def test_uninstalling_what_was_never_installed_says_so(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    result = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "--uninstall-desktop"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Nothing to remove" in result.stdout and str(tmp_path / "data") in result.stdout
