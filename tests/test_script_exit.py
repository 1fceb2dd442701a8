"""`python flow.py` ends as a Python program ends (engine/process_exit.py).

Once a bare `MyFlow()` has run the flow, the script's process leaves without tearing
down its heap (issue 15: a tenth of a small run's wall time). What a normal exit does
for the script must still happen: its threads run to their end, its exit handlers run,
what it wrote to a file it never closed reaches the file, and what only its globals hold
is closed by its owner (a NamedTemporaryFile is removed). Where the script's own code
would see the `SystemExit` (a `with`, a `try`) or another program runs the script (a
profiler, `runpy`), the exit is the ordinary `sys.exit`. Real processes throughout.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import child_env, run_flow

FLOW = """
import atexit, os, tempfile, threading, time
from flowdeck import FlowSpec, step

HERE = os.path.dirname(os.path.abspath(__file__))
LOG = open(os.path.join(HERE, "unclosed.txt"), "w")  # buffered, never closed
LOG.write("written by the script\\n")
SCRATCH = tempfile.NamedTemporaryFile(dir=HERE, prefix="scratch-", delete=True)
SCRIPT_PID = os.getpid()  # the tasks inherit the handler and run it too: not counted
atexit.register(lambda: os.getpid() == SCRIPT_PID
                and open(os.path.join(HERE, "atexit.txt"), "w").write("ran"))
import keeper  # a module of the script's folder holding a file of its own, never closed
keeper.LOG.write("written by a module\\n")


def late():
    time.sleep(0.3)  # still running when the flow's run is over
    open(os.path.join(HERE, "thread.txt"), "w").write("ended")
    keeper.LOG.write("written after the run\\n")  # only the exit's flush writes it


class ExitFlow(FlowSpec):
    @step
    def start(self):
        if os.environ.get("FAIL_START"):
            raise ValueError("asked to fail")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    threading.Thread(target=late).start()
__CALL__
"""


def write_flow(folder: Path, call: str = "    ExitFlow()") -> Path:
    path = folder / "exitflow.py"
    (folder / "keeper.py").write_text(
        "import os\nLOG = open(os.path.join(os.path.dirname(__file__), 'kept.txt'), 'w')\n")
    path.write_text(textwrap.dedent(FLOW).replace("__CALL__", call))
    return path


def check_ended_as_python(folder: Path) -> None:
    assert (folder / "unclosed.txt").read_text() == "written by the script\n"
    assert (folder / "kept.txt").read_text() == "written by a module\nwritten after the run\n"
    assert (folder / "atexit.txt").read_text() == "ran"
    assert (folder / "thread.txt").read_text() == "ended"
    assert not list(folder.glob("scratch-*")), "the script's NamedTemporaryFile was left"


def test_the_script_ends_as_a_python_program_ends(tmp_path: Path) -> None:
    result = run_flow(write_flow(tmp_path))
    assert result.returncode == 0, result.stderr
    check_ended_as_python(tmp_path)


def test_a_failed_run_still_ends_the_script_with_its_code(tmp_path: Path) -> None:
    result = run_flow(write_flow(tmp_path), env=child_env(FAIL_START="1"))
    assert result.returncode == 1, result.stderr
    assert "asked to fail" in result.stderr
    check_ended_as_python(tmp_path)


def test_the_scripts_own_with_and_try_see_the_exit(tmp_path: Path) -> None:
    call = textwrap.indent(textwrap.dedent("""\
        import contextlib
        @contextlib.contextmanager
        def noted():
            try:
                yield
            finally:
                open(os.path.join(HERE, "with.txt"), "w").write("left")
        try:
            with noted():
                ExitFlow()
        except SystemExit as exc:
            open(os.path.join(HERE, "caught.txt"), "w").write(f"code {exc.code}")
            raise
        """), "    ")
    result = run_flow(write_flow(tmp_path, call))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "with.txt").read_text() == "left"
    assert (tmp_path / "caught.txt").read_text() == "code 0"
    check_ended_as_python(tmp_path)


def test_a_program_running_the_script_goes_on_after_it(tmp_path: Path) -> None:
    """A profiler or a runner (`runpy`, `python -m cProfile`) gets the script's
    `SystemExit` back and carries on: the process is not ended under it."""
    path = write_flow(tmp_path)
    runner = (f"import runpy, sys\nsys.argv = [{str(path)!r}]\n"
              f"try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
              f"except SystemExit as exc:\n    print('runner got', exc.code)\n"
              f"print('runner goes on')\n")
    result = subprocess.run([sys.executable, "-c", runner], cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "runner got 0\nrunner goes on" in result.stdout
    profiled = subprocess.run([sys.executable, "-m", "cProfile", str(path)], cwd=tmp_path,
                              env=child_env(), capture_output=True, text=True, timeout=60)
    assert profiled.returncode == 0, profiled.stderr
    assert "function calls" in profiled.stdout  # the profiler printed its report
