"""Metaflow's own `python FLOW.py output-raw --json`, with Metaflow imported once.

Importing Metaflow is nearly all of what `output-raw` costs (about 0.5 s of 0.55 s),
and the graph tests ask for it once per flow file. A child process imports Metaflow,
then forks once per file: each fork runs the file as `python FILE output-raw --json`
would (`__main__`, `sys.argv`, the file's folder first on `sys.path`, the working
folder), so every graph still comes from Metaflow's own command line, in a process
of its own, with nothing left over from another file. Only the import came first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

#: The child: import Metaflow, then one fork per request line ({"path", "cwd"}) on
#: stdin; one answer line ({"returncode", "stdout", "stderr"}) on stdout per request.
_SERVER = r'''
import json, os, runpy, sys, tempfile
answers = os.fdopen(os.dup(1), "w", encoding="utf-8")  # fd 1 itself goes to each file's output
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
requests = os.fdopen(os.dup(0), "r", encoding="utf-8")  # and fd 0 reads nothing
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
import metaflow, metaflow.cli  # noqa: E401,F401  (the part every request would repeat)
for line in requests:
    request = json.loads(line)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # the file's own process, as `python FILE output-raw --json`
            code = 0
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                os.chdir(request["cwd"])
                sys.argv = [request["path"], "output-raw", "--json"]
                sys.path[0] = os.path.dirname(os.path.abspath(request["path"]))
                runpy.run_path(request["path"], run_name="__main__")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        answers.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status),
                                  "stdout": out.read().decode("utf-8", "replace"),
                                  "stderr": err.read().decode("utf-8", "replace")}) + "\n")
        answers.flush()
'''


@dataclass(frozen=True)
class OutputRaw:
    """What one `output-raw --json` run gave."""

    returncode: int
    stdout: str
    stderr: str

    def graph(self) -> dict:
        """The JSON graph it printed (after Metaflow's banner lines)."""
        assert self.returncode == 0, self.stderr + self.stdout
        return json.loads(self.stdout[self.stdout.index("{"):])


class MetaflowOutputRaw:
    """A child process with Metaflow imported that runs `output-raw --json` per file."""

    def __init__(self, env: dict[str, str]):
        self._lock = threading.Lock()
        self._proc = subprocess.Popen([sys.executable, "-c", _SERVER], env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, encoding="utf-8")

    def run(self, path: Path, cwd: Path, timeout: float = 120) -> OutputRaw:
        """`python PATH output-raw --json` in `cwd` (`timeout` guards a hung child only)."""
        with self._lock:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(json.dumps({"path": str(path), "cwd": str(cwd)}) + "\n")
            self._proc.stdin.flush()
            timer = threading.Timer(timeout, self._proc.kill)
            timer.start()
            try:
                line = self._proc.stdout.readline()
            finally:
                timer.cancel()
        assert line, (f"the output-raw helper ended (exit {self._proc.poll()}) or took "
                      f"more than {timeout:g} s on {path}")
        return OutputRaw(**json.loads(line))

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
