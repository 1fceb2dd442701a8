"""The banner's Copy button copies the command a message gives, and only a command:
backticks also quote code (`self.next`), which is no command to paste in a terminal."""

from __future__ import annotations

import pytest

from flowdeck_desktop.views.banner import command_in


@pytest.mark.parametrize(("text", "command"), [
    ("Step `start` calls `self.next` to `trian`, which is not a step.", None),
    ("Declare it as `Parameter(\"rate\", default=0.1)`.", None),
    ("Install it with `/usr/bin/python3.11 -m pip install pandas`.", "/usr/bin/python3.11 -m pip install pandas"),
    ("Add `--environment=conda` to Run options.", "--environment=conda"),
    ("Run `python flow.py run` and read `self.best`.", "python flow.py run"),
    ("Then `METAFLOW_USER=me python flow.py run`.", "METAFLOW_USER=me python flow.py run"),
    ("Use `flowdeck gc --dry-run` first.", "flowdeck gc --dry-run"),
])
def test_only_commands_are_offered_to_copy(text: str, command: str | None) -> None:
    assert command_in(text) == command
