"""A step's output cannot drive the terminal: every escape sequence but a colour is shown,
not obeyed (found in review: a window title, a terminal reset, the alternate screen, a
screen erase and a clipboard write all reached the terminal; an OSC whose BEL had been
replaced never ended and swallowed the lines after it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import child_env, stored_runs

from flowdeck.engine.terminal import SHOWN_ESC, clean_line
from flowdeck_desktop.views.ansi import strip_ansi

FLOW = r'''
import sys
from flowdeck import FlowSpec, step


class EscFlow(FlowSpec):
    @step
    def start(self):
        sys.stdout.buffer.write(b"before\x1b]0;HIJACKED-TITLE\x07\n")
        sys.stdout.flush()
        print("second line of the step")
        sys.stdout.buffer.write(b"\x1bc\x1b[?1049h\x1b[2J\x1b]52;c;aGVsbG8=\x1b\\ after\n")
        print("\x1b[1;31mred\x1b[0m and \x1b[38;2;10;20;30mtrue colour\x1b[m")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    EscFlow()
'''

#: What a terminal may receive: colour sequences only.
SGR = re.compile(r"\x1b\[[0-9;:]*m")


def test_only_colour_escapes_reach_the_terminal(tmp_path: Path) -> None:
    flow = tmp_path / "escflow.py"
    flow.write_text(FLOW)
    done = subprocess.run([sys.executable, str(flow), "run"], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, errors="replace", timeout=120)
    assert done.returncode == 0, done.stderr
    shown = done.stdout
    assert "\x1b" not in SGR.sub("", shown)  # no title, reset, screen or clipboard
    lines = {line.split("] ", 1)[-1] for line in shown.splitlines()}
    assert f"before{SHOWN_ESC}]0;HIJACKED-TITLE\ufffd" in lines
    assert "second line of the step" in lines  # not swallowed by the unended title
    assert (f"{SHOWN_ESC}c{SHOWN_ESC}[?1049h{SHOWN_ESC}[2J{SHOWN_ESC}]52;c;aGVsbG8="
            f"{SHOWN_ESC}\\ after") in lines
    assert "\x1b[1;31mred\x1b[0m and \x1b[38;2;10;20;30mtrue colour\x1b[m" in lines
    # The task's own log keeps what the step printed: the window's log view parses it
    # (colours applied, other sequences dropped), untouched by the terminal's cleaning.
    stored = stored_runs("EscFlow", tmp_path / ".flowdeck")[0]["start"].task.stdout
    assert "\x1b]0;HIJACKED-TITLE\x07" in stored
    assert SHOWN_ESC not in stored
    assert strip_ansi(stored).splitlines()[:2] == ["before", "second line of the step"]


def test_clean_line_keeps_colours_and_shows_other_escapes() -> None:
    assert clean_line(b"\x1b[32mok\x1b[0m \x1b[38;5;200mx\x1b[m") == \
        "\x1b[32mok\x1b[0m \x1b[38;5;200mx\x1b[m"
    assert clean_line(b"\x1b[1A\x1b[2Kup") == f"{SHOWN_ESC}[1A{SHOWN_ESC}[2Kup"
    assert clean_line(b"\x1bP1$qm\x1b\\") == f"{SHOWN_ESC}P1$qm{SHOWN_ESC}\\"  # DCS
    assert clean_line(b"end\x1b") == f"end{SHOWN_ESC}"  # cut short
    assert clean_line("8-bit CSI \u009b2J".encode()) == "8-bit CSI \ufffd2J"
    assert clean_line(b"tab\tkept, bell\x07 not") == "tab\tkept, bell\ufffd not"


RAISING = r'''
from flowdeck import FlowSpec, step


class RaisingEscFlow(FlowSpec):
    @step
    def start(self):
        raise ValueError("bad \x1b]0;pwned-title\x07 \x1b[2J here \x1b[31mred\x1b[0m")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RaisingEscFlow()
'''


def test_an_exception_s_message_cannot_drive_the_terminal_either(tmp_path: Path) -> None:
    """The step's output was cleaned, but its exception's message reached the terminal
    raw in the "Task failed" line, the traceback, the run's last line and `flowdeck run`'s
    summary (second review): a window title and a screen erase, obeyed."""
    flow = tmp_path / "raising.py"
    flow.write_text(RAISING)
    for argv in ([sys.executable, str(flow), "run"],
                 [sys.executable, "-m", "flowdeck_desktop", "run", str(flow)]):
        done = subprocess.run(argv, cwd=tmp_path, env=child_env(QT_QPA_PLATFORM="offscreen"),
                              capture_output=True, text=True, errors="replace", timeout=120,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 1
        shown = done.stdout + done.stderr
        assert "\x1b" not in SGR.sub("", shown), argv
        assert f"bad {SHOWN_ESC}]0;pwned-title\ufffd {SHOWN_ESC}[2J here" in shown
        assert "\x1b[31mred\x1b[0m" in shown  # a colour is a colour
