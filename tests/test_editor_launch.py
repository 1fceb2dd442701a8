"""A terminal editor ($EDITOR=vim, the common case) opened from the window: in a terminal
emulator at the line, never attached to the app's stdin/stdout; with no emulator, the
system's handler and a note saying why the line could not be given. The emulators and
editors are scripts on a PATH of the test's own, started for real, each writing down
the command it received."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FLOWS, WAIT_MS, flow_key, opened_window

from flowdeck_desktop.system.editor import open_in_editor

#: A fake program (shell builtins only: PATH holds nothing else): writes its arguments,
#: one a line and then END, to NAME.args beside itself, says something on stdout (a
#: terminal editor draws its screen there), then, for an emulator, runs what follows its
#: run flag, as a real emulator does.
END = "END-OF-ARGUMENTS"
FAKE = """#!/bin/sh
printf '%s\\n' "$@" {end} > "$0.args"
echo "{name} drew its screen here"
{run}
"""


def fake(bin_dir: Path, name: str, run_flag: str | None = None) -> Path:
    """A fake editor (`run_flag` None) or terminal emulator that runs the command after
    `run_flag` ("" when the command comes first, as kitty's)."""
    if run_flag is None:
        run = ""
    else:
        skip = f'while [ $# -gt 0 ] && [ "$1" != "{run_flag}" ]; do shift; done; shift\n' \
            if run_flag else ""
        run = f'{skip}exec "$@"'
    program = bin_dir / name
    program.write_text(FAKE.format(name=name, run=run, end=END))
    program.chmod(0o755)
    return program


def received(program: Path, qtbot) -> list[str]:
    """The arguments `program` was started with, once it has written them all."""
    record = Path(f"{program}.args")
    qtbot.waitUntil(lambda: record.exists() and record.read_text().endswith(f"{END}\n"),
                    timeout=WAIT_MS)
    return record.read_text().splitlines()[:-1]


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only the test's programs: no real emulator or editor is found."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    for name in ("VISUAL", "EDITOR", "TERMINAL"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.mark.parametrize("emulator, run_flag, expected_flag", [
    ("x-terminal-emulator", "-e", ["-e"]),
    ("gnome-terminal", "--", ["--"]),
    ("konsole", "-e", ["-e"]),
    ("xfce4-terminal", "-x", ["-x"]),
    ("xterm", "-e", ["-e"]),
])
def test_a_terminal_editor_runs_in_the_terminal_emulator_at_the_line(
        qtbot, bin_dir: Path, monkeypatch, capfd, tmp_path: Path,
        emulator: str, run_flag: str, expected_flag: list[str]) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text("")
    vim = fake(bin_dir, "vim")
    terminal = fake(bin_dir, emulator, run_flag)
    monkeypatch.setenv("EDITOR", "vim")
    note = open_in_editor(str(flow), 7)
    assert received(terminal, qtbot) == [*expected_flag, "vim", "+7", str(flow)]
    assert received(vim, qtbot) == ["+7", str(flow)]
    out, err = capfd.readouterr()
    assert "drew its screen" not in out + err  # neither is on the app's stdout or stderr
    assert note == ""  # nothing to tell the user


def test_terminal_variable_wins_and_visual_wins_over_editor(qtbot, bin_dir: Path,
                                                            monkeypatch, tmp_path: Path) -> None:
    """$TERMINAL (kitty: the command comes first) over the emulators found on PATH; then
    $VISUAL, a graphical editor, over $EDITOR, with no terminal around it."""
    flow = tmp_path / "flow.py"
    flow.write_text("")
    fake(bin_dir, "xterm", "-e")
    kitty = fake(bin_dir, "kitty", "")
    hx = fake(bin_dir, "hx")
    monkeypatch.setenv("EDITOR", "hx")
    monkeypatch.setenv("TERMINAL", "kitty")
    assert not open_in_editor(str(flow), 12)
    assert received(kitty, qtbot) == ["hx", f"{flow}:12"]
    assert received(hx, qtbot) == [f"{flow}:12"]
    subl = fake(bin_dir, "subl")
    monkeypatch.setenv("VISUAL", "subl")
    Path(f"{kitty}.args").unlink()
    assert not open_in_editor(str(flow), 3)
    assert received(subl, qtbot) == [f"{flow}:3"]
    assert not Path(f"{kitty}.args").exists()  # started directly: no emulator was asked


def test_emacs_runs_in_a_terminal_only_when_told_to(qtbot, bin_dir: Path, monkeypatch,
                                                    tmp_path: Path) -> None:
    """`emacs -nw` draws in the terminal; plain `emacs` opens a window of its own."""
    flow = tmp_path / "flow.py"
    flow.write_text("")
    xterm = fake(bin_dir, "xterm", "-e")
    emacs = fake(bin_dir, "emacs")
    monkeypatch.setenv("EDITOR", "emacs -nw")
    assert not open_in_editor(str(flow), 5)
    assert received(xterm, qtbot) == ["-e", "emacs", "-nw", "+5", str(flow)]
    assert received(emacs, qtbot) == ["-nw", "+5", str(flow)]
    Path(f"{xterm}.args").unlink()
    Path(f"{emacs}.args").unlink()
    monkeypatch.setenv("EDITOR", "emacs")
    assert not open_in_editor(str(flow), 6)
    assert received(emacs, qtbot) == ["+6", str(flow)]
    assert not Path(f"{xterm}.args").exists()


def test_without_a_terminal_emulator_the_system_handler_opens_it_and_notifications_say_why(
        qtbot, settings, bin_dir: Path, monkeypatch, tmp_path: Path,
        opened_urls: list[str]) -> None:
    """Double-clicking a step with EDITOR=vim and no emulator: the file opens with the
    system's handler (no vim is started, to sit on the app's stdin), and Notifications
    say why the line could not be given and what to set."""
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "failing.py").write_text((FLOWS / "failing.py").read_text())
    vim = fake(bin_dir, "vim")
    monkeypatch.setenv("EDITOR", "vim")
    with opened_window(qtbot, settings, [folder]) as (controller, window):
        window.select_flow(flow_key(controller, "FailingFlow"))
        window.scene.step_double_clicked.emit("start")
        assert opened_urls == [str(folder / "failing.py")]
        level, text = window.last_message
        assert level == "warning"
        assert text.startswith("EDITOR=vim needs a terminal; none found: set VISUAL to a "
                               "graphical editor")
        assert any(n.text == text for n in window.notifications.notices)
    assert not Path(f"{vim}.args").exists()
