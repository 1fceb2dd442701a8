"""How `python flow.py` ends (`engine/script_exit.py`): without the interpreter's teardown
when nothing needs it, and never losing what the teardown would have done.

Each case runs a real flow script in its own interpreter. An `atexit` handler in the
script says which way the script ended: the fast way runs it from inside the engine's
`exit_script` (its frames are on the stack), the interpreter's teardown runs it with no
Python frame below it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HEADER = '''
import atexit, sys, traceback
from flowdeck import FlowSpec, step

def _said():
    names = [f.name for f in traceback.extract_stack()]
    with open("ended.txt", "w") as out:
        out.write("fast" if "exit_script" in names else "teardown")

atexit.register(_said)
'''

FLOW = '''
class EndFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        print("the end step ran")
{fail}
'''


def _script(tmp_path: Path, body: str, main: str = "EndFlow()", fail: bool = False) -> Path:
    flow = FLOW.format(fail='        raise ValueError("the end step failed")' if fail else "")
    source = HEADER + textwrap.dedent(body) + flow + '\nif __name__ == "__main__":\n' + \
        textwrap.indent(textwrap.dedent(main), "    ") + "\n"
    path = tmp_path / "end_flow.py"
    path.write_text(source)
    return path


def _run(path: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWDECK_HOME": str(path.parent / "home")}
    return subprocess.run([sys.executable, *prefix, path.name], cwd=path.parent, env=env,
                          capture_output=True, text=True, timeout=120)


def _ended(path: Path) -> str:
    return (path.parent / "ended.txt").read_text()


def test_a_plain_script_ends_fast_and_flushes_the_files_its_module_left_open(tmp_path):
    path = _script(tmp_path, '''
        log = open("module-log.txt", "w")  # never flushed nor closed by the script
        log.write("written at import, left in the buffer\\n")
        ''')
    done = _run(path)
    assert done.returncode == 0, done.stderr
    assert "the end step ran" in done.stdout
    assert "succeeded" in done.stdout + done.stderr
    assert _ended(path) == "fast"
    assert (tmp_path / "module-log.txt").read_text() == "written at import, left in the buffer\n"


def test_a_failed_run_keeps_its_exit_code_on_the_fast_way(tmp_path):
    path = _script(tmp_path, "", fail=True)
    done = _run(path)
    assert done.returncode == 1
    assert "the end step failed" in done.stderr
    assert _ended(path) == "fast"


def test_an_object_with_a_finalizer_gets_the_teardown(tmp_path):
    path = _script(tmp_path, '''
        class Goodbye:
            def __del__(self, _open=open):  # builtins may be gone by then
                with _open("finalized.txt", "w") as out:
                    out.write("ran")

        keeper = Goodbye()
        ''')
    done = _run(path)
    assert done.returncode == 0, done.stderr
    assert _ended(path) == "fast"  # atexit ran first, on the fast way, and once
    assert (tmp_path / "finalized.txt").read_text() == "ran"


def test_a_gzip_file_left_open_is_closed_whole(tmp_path):
    path = _script(tmp_path, '''
        import gzip
        archive = gzip.open("data.gz", "wt")
        archive.write("compressed text\\n")
        ''')
    done = _run(path)
    assert done.returncode == 0, done.stderr
    import gzip
    assert gzip.open(tmp_path / "data.gz", "rt").read() == "compressed text\n"


def test_a_thread_that_is_not_a_daemon_finishes_first(tmp_path):
    path = _script(tmp_path, '''
        import threading, time

        def late():
            time.sleep(0.5)
            with open("thread.txt", "w") as out:
                out.write("finished")

        threading.Thread(target=late).start()
        ''')
    done = _run(path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "thread.txt").read_text() == "finished"


def test_a_try_around_the_call_sees_the_script_end(tmp_path):
    path = _script(tmp_path, "", main='''
        try:
            EndFlow()
        finally:
            with open("finally.txt", "w") as out:
                out.write("ran")
        ''')
    done = _run(path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "finally.txt").read_text() == "ran"
    assert _ended(path) == "teardown"


def test_a_profiler_running_the_script_gets_its_output(tmp_path):
    path = _script(tmp_path, "")
    done = _run(path, "-m", "cProfile", "-o", "profile.out")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "profile.out").stat().st_size > 0
    assert _ended(path) == "teardown"


SCAN = """
import atexit, os, sys
from flowdeck.engine import script_exit

atexit._run_exitfuncs()  # as exit_script does first (site's certifi holds a generator until)

def counting():
    try:
        yield 1
    finally:
        pass

started = counting()
next(started)
print("suspended generator:", script_exit._left_to_teardown())
started.close()
sink = open(os.devnull, "w")
print("open file listed:", sink in script_exit._left_to_teardown())
sink.close()
print("closed file listed:", sink in script_exit._left_to_teardown())
"""


def test_the_scan_of_what_is_left_to_teardown():
    """A suspended generator needs the teardown (its `finally`); an open file is only
    flushed; a closed one is left alone. In a fresh interpreter, whose objects are known."""
    done = subprocess.run([sys.executable, "-c", SCAN], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["suspended generator: None", "open file listed: True",
                                        "closed file listed: False"]
