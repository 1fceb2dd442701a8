"""Small desktop pieces with real files: interpreter discovery, editor commands, tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import EXAMPLES, child_env

from flowdeck.engines.interpreter import check_interpreter, detect_interpreter, warm_check
from flowdeck.store.layout import RunLayout
from flowdeck_desktop.system.editor import editor_command
from flowdeck_desktop.views.panes import failing_line, list_runs


def make_venv(folder: Path) -> Path:
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    (folder / "pyvenv.cfg").write_text("home = /usr\n")
    return python


def test_venv_in_the_folder_or_above_wins(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    project = tmp_path / "project"
    flows = project / "pipelines" / "daily"
    flows.mkdir(parents=True)
    assert detect_interpreter(flows, stop_at=project).source == "app"
    python = make_venv(project / ".venv")
    found = detect_interpreter(flows, stop_at=project)  # the watched root: the walk stops there
    assert (found.path, found.source) == (str(python), "venv")
    assert detect_interpreter(flows, configured="/opt/py/bin/python").source == "configured"


def test_virtual_env_variable_is_used_when_no_folder_venv(tmp_path: Path, monkeypatch) -> None:
    python = make_venv(tmp_path / "env")
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path / "env"))
    found = detect_interpreter(tmp_path / "elsewhere")
    assert (found.path, found.source) == (str(python), "VIRTUAL_ENV")


def test_interpreter_check_reports_what_it_can_import(tmp_path: Path) -> None:
    check = check_interpreter(sys.executable)
    assert check.works and check.version.startswith("3.")
    missing = check_interpreter(str(tmp_path / "nope" / "python"))
    assert not missing.works and "does not exist" in missing.error
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'I am not python' >&2\nexit 3\n")
    broken.chmod(0o755)
    result = check_interpreter(str(broken))
    assert not result.works and "I am not python" in result.error


def test_an_interpreter_older_than_flowdeck_needs_is_refused_by_name(tmp_path: Path) -> None:
    """A folder `.venv` of Python 3.9 ran the flow until Flowdeck's core failed with a
    TypeError, which the window blamed on the user's file. (A script answers the probe as
    that Python would: no old Python need be installed.)"""
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\nprintf '3.9.18\\nTrue\\nFalse\\n'\n")
    old.chmod(0o755)
    check = check_interpreter(str(old))
    assert not check.works and check.version == "3.9.18"
    assert check.error.startswith(f"{old} is Python 3.9.18; flows run with Python 3.10 or newer")
    fine = tmp_path / "python3.10"
    fine.write_text("#!/bin/sh\nprintf '3.10.13\\nTrue\\nFalse\\n'\n")
    fine.chmod(0o755)
    assert check_interpreter(str(fine)).works


def counted_python(folder: Path, gate: Path | None = None) -> tuple[Path, Path]:
    """A python that logs each start to a file (and, given `gate`, waits for that file
    to exist before it runs), then runs the real one."""
    log = folder / "starts.log"
    wait = f"while [ ! -e {gate} ]; do sleep 0.01; done\n" if gate else ""
    python = folder / "python"
    python.write_text(f"#!/bin/sh\necho started >> {log}\n{wait}exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    return python, log


def test_a_warmed_interpreter_check_is_made_once_and_run_waits_for_it(tmp_path: Path) -> None:
    """Selecting a flow starts the check in the background; Run (here: two threads at once)
    waits for that one and starts no second process."""
    gate = tmp_path / "go"
    python, log = counted_python(tmp_path, gate)
    warm_check(str(python))
    results = []
    waiters = [threading.Thread(target=lambda: results.append(check_interpreter(str(python))))
               for _ in range(2)]
    for waiter in waiters:
        waiter.start()
    gate.touch()
    for waiter in waiters:
        waiter.join()
    assert [r.works for r in results] == [True, True] and results[0] is results[1]
    assert log.read_text().count("started") == 1
    warm_check(str(python))  # made: nothing starts
    assert check_interpreter(str(python)) is results[0]
    assert log.read_text().count("started") == 1


def test_a_changed_interpreter_file_is_checked_again(tmp_path: Path) -> None:
    python, log = counted_python(tmp_path)
    assert check_interpreter(str(python)).works
    stat = python.stat()
    os.utime(python, (stat.st_atime, stat.st_mtime + 10))  # a venv rebuilt in place
    assert check_interpreter(str(python)).works
    assert log.read_text().count("started") == 2
    warm_check(str(tmp_path / "gone" / "python"))  # nothing to warm: no error, no thread


@pytest.mark.parametrize("editor, expected", [
    ("vim", ["vim", "+12", "/f.py"]),
    ("code --wait", ["code", "--wait", "-g", "/f.py:12"]),
    ("subl", ["subl", "/f.py:12"]),
    ("kate", ["kate", "-l", "12", "/f.py"]),
])
def test_editor_command_puts_the_line_where_each_editor_wants_it(editor, expected) -> None:
    assert editor_command("/f.py", 12, {"EDITOR": editor}) == expected
    assert editor_command("/f.py", 12, {"VISUAL": editor, "EDITOR": "nano"}) == expected
    assert editor_command("/f.py", 12, {}) is None


def test_failing_line_prefers_the_flow_file() -> None:
    trace = ('Traceback (most recent call last):\n'
             '  File "/work/flow.py", line 16, in divide\n'
             '    helper()\n'
             '  File "/usr/lib/python3/lib.py", line 3, in helper\n'
             'ZeroDivisionError: division by zero')
    assert failing_line(trace, "/work/flow.py") == ("/work/flow.py", 16)
    assert failing_line(trace, "/other.py") == ("/usr/lib/python3/lib.py", 3)
    assert failing_line("no frames", "/x.py") is None


def test_history_lists_runs_newest_first_and_marks_dead_ones(tmp_path: Path) -> None:
    flow = tmp_path / "train.py"
    flow.write_text((EXAMPLES / "train.py").read_text())
    for rates in ("0.1", "0.2"):
        subprocess.run([sys.executable, str(flow), "--rates", rates], env=child_env(),
                       capture_output=True, check=True, timeout=60)
    layout = RunLayout(tmp_path / ".flowdeck", "TrainFlow")
    runs = list_runs(layout)
    assert [r.params["rates"] for r in runs] == ["0.2", "0.1"]
    assert all(r.status == "succeeded" and r.duration is not None for r in runs)
    run_json = Path(runs[0].events_path).parent / "run.json"
    run_json.write_text(run_json.read_text().replace('"succeeded"', '"running"'))
    assert list_runs(layout)[0].status == "crashed"


def test_headless_run_prints_progress_and_exit_code(tmp_path: Path) -> None:
    flow = tmp_path / "train.py"
    flow.write_text((EXAMPLES / "train.py").read_text())
    ok = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "run", str(flow),
                         "--rates", "0.3,0.2,0.04"], env=child_env(), capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "fit/" in ok.stdout and "run succeeded" in ok.stdout
    bad = tmp_path / "failing.py"
    bad.write_text((Path(__file__).parent / "flows" / "failing.py").read_text())
    failed = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "run", str(bad)],
                            env=child_env(), capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "ZeroDivisionError" in failed.stdout and "run failed" in failed.stdout
    missing = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "run",
                              str(tmp_path / "nope.py")], env=child_env(),
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.parametrize("before, says", [
    (["--tag", "x"], "--tag comes before the flow file. The flow's own options go after it"),
    (["--max-workers", "2", "--engine", "flowdeck"], "--max-workers comes before the flow"),
    (["--engin", "flowdeck"], "no option --engin (did you mean --engine?)"),
])
def test_headless_run_names_an_option_given_before_the_file(tmp_path: Path, before: list[str],
                                                            says: str) -> None:
    """The option's value was taken for the file ("x: no such file"): the message names
    the option and where it goes, and nothing runs."""
    flow = tmp_path / "train.py"
    flow.write_text((EXAMPLES / "train.py").read_text())
    done = subprocess.run([sys.executable, "-m", "flowdeck_desktop", "run", *before, str(flow)],
                          env=child_env(), capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert not (tmp_path / ".flowdeck").exists()


def test_artifact_previews_give_shape_dtype_and_heads() -> None:
    import numpy as np

    from flowdeck.engines.describe import describe_value

    class FakeFrame:  # the two things describe_value asks of a data frame
        columns = ["a", "b"]

        def head(self, n):
            class Head:
                def to_string(self):
                    return f"first {n} rows"
            return Head()

    class BadRepr:
        def __repr__(self):
            raise RuntimeError("nope")

    array = describe_value(np.zeros((3, 4), dtype=np.float32))
    assert array["shape"] == [3, 4] and array["dtype"] == "float32"
    assert describe_value(FakeFrame())["preview"] == "first 5 rows"
    assert describe_value(list(range(1000)))["preview"].endswith(" …")
    assert "repr() failed" in describe_value(BadRepr())["preview"]


def test_recent_output_counts_what_it_lets_go() -> None:
    """A flow's remembered output is bounded; what it lets go is counted, so coming back
    to the flow says earlier output is missing instead of starting mid-run."""
    from flowdeck_desktop.views.main_window import RecentOutput
    kept = RecentOutput(limit=10)
    kept.append("stdout", "abcdef")
    kept.append("stderr", "ghijkl")
    assert kept.dropped == 6 and list(kept.chunks) == [("stderr", "ghijkl")]


def test_history_sorts_numeric_run_ids_as_numbers_and_unknown_durations_last(qtbot) -> None:
    """Metaflow's run ids are numbers of any length (9 before 10), and a run still going
    has no duration: it stays last whichever way durations are sorted."""
    from flowdeck_desktop.views.panes import HistoryPane, RunSummary
    pane = HistoryPane()
    qtbot.addWidget(pane)
    pane.set_runs([RunSummary(run_id, "succeeded", 100.0 + i, duration, {}, None, "")
                   for i, (run_id, duration) in enumerate(
                       [("100", 3.0), ("9", None), ("10", 1.0)])])
    header = pane.table.horizontalHeader()
    header.sectionClicked.emit(1)
    assert [pane.table.item(r, 1).text() for r in range(3)] == ["9", "10", "100"]
    for _ in range(2):  # durations ascending, then descending
        header.sectionClicked.emit(3)
        assert pane.table.item(2, 1).text() == "9"
    assert [pane.table.item(r, 1).text() for r in range(2)] == ["100", "10"]


def test_history_lists_first_the_parameters_that_tell_its_runs_apart(qtbot) -> None:
    """At a laptop's width the Parameters column shows its first one or two: the one that
    differs between the runs (`epochs`) comes first, not the same `learning_rate` of every
    run; the tooltip keeps the flow's own order, whole."""
    from flowdeck_desktop.views.panes import HistoryPane, RunSummary
    pane = HistoryPane()
    qtbot.addWidget(pane)
    pane.set_runs([RunSummary(f"17964{i}", "succeeded", 100.0 + i, 1.0,
                              {"learning_rate": 0.001, "epochs": epochs, "seed": 7}, None, "")
                   for i, epochs in enumerate([5, 10, 20])])
    cells = [pane.table.item(r, 4).text() for r in range(3)]
    assert all(c.startswith("epochs=") for c in cells), cells
    assert cells[0].endswith("learning_rate=0.001, seed=7")
    assert pane.table.item(0, 4).toolTip().splitlines()[0] == "learning_rate = 0.001"
