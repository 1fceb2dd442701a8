"""What a new user's flows, compared with Metaflow 2.19 (2026-12-05), found; each fixed.

- A Parameter whose default is `config_expr(...)` takes the type of the config's value,
  as Metaflow's `_get_type` does once configs are read: it was always a str, so
  `--flag false` read as a true string and a float compared unequal in a switch.
- @catch answers a step that calls `sys.exit()` or raises KeyboardInterrupt itself: Metaflow's
  catches Exception only, its task process dies of the rest, and @catch's last attempt
  records FailureHandledByCatch; the run failed here (a crash with os._exit was caught).

Real `python flow.py` processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import child_env

from flowdeck import Flow, namespace


def _run(tmp_path: Path, source: str, *args: str,
         name: str = "flow.py") -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, str(path), *args], cwd=tmp_path,
                          env=child_env(METAFLOW_USER="tester"), capture_output=True,
                          text=True, timeout=120)


CONFIG_TYPED = '''
from flowdeck import Config, FlowSpec, Parameter, config_expr, step


class Typed(FlowSpec):
    cfg = Config("cfg", default_value={"thr": 0.7, "n": 3, "flag": True})
    thr = Parameter("thr", default=config_expr("cfg.thr"))
    n = Parameter("n", default=config_expr("cfg.n"))
    flag = Parameter("flag", default=config_expr("cfg.flag"))

    @step
    def start(self):
        print("VALUES", repr(self.thr), repr(self.n), repr(self.flag))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Typed()
'''


def _values(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return next(line for line in proc.stdout.splitlines() if "VALUES" in line).split(
        "VALUES ", 1)[1]


def test_a_config_expr_default_gives_its_value_s_type(tmp_path: Path) -> None:
    assert _values(_run(tmp_path, CONFIG_TYPED, "run")) == "0.7 3 True"
    given = _run(tmp_path, CONFIG_TYPED, "run", "--thr", "0.9", "--n", "4", "--flag", "false")
    assert _values(given) == "0.9 4 False"


def test_a_config_expr_default_follows_the_config_given(tmp_path: Path) -> None:
    proc = _run(tmp_path, CONFIG_TYPED, "--config-value", "cfg",
                '{"thr": 2, "n": 5, "flag": false}', "run", "--thr", "7")
    assert _values(proc) == "7 5 False"  # the config's int makes --thr an int


def test_help_names_a_config_expr_default_without_a_type_it_cannot_know(
        tmp_path: Path) -> None:
    proc = _run(tmp_path, CONFIG_TYPED, "run", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--thr VALUE" in proc.stdout
    assert "config_expr('cfg.thr')" in proc.stdout
    assert "computed by a function" not in proc.stdout


CAUGHT_EXIT = '''
import sys
from flowdeck import FlowSpec, Parameter, catch, retry, step


class Caught(FlowSpec):
    mode = Parameter("mode", default="exit")

    @step
    def start(self):
        self.next(self.crash)

    @catch(var="err")
    @retry(times=1)
    @step
    def crash(self):
        if self.mode == "exit":
            sys.exit(2)
        raise KeyboardInterrupt()
        self.next(self.end)

    @step
    def end(self):
        print("CAUGHT", self.err.type)


if __name__ == "__main__":
    Caught()
'''


@pytest.mark.parametrize("mode", ["exit", "interrupt"])
def test_catch_answers_a_step_that_exits_or_interrupts_itself(tmp_path: Path,
                                                              mode: str) -> None:
    proc = _run(tmp_path, CAUGHT_EXIT, "run", "--mode", mode)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FailureHandledByCatch" in proc.stdout.split("CAUGHT ", 1)[1].splitlines()[0]
    namespace(None)
    run = Flow("Caught", root=str(tmp_path / ".flowdeck")).latest_run
    assert run is not None and run.successful
    attempts = sorted(m.value for m in run["crash"].task.metadata if m.type == "attempt")
    assert attempts == ["0", "1", "2"]  # the step's own, @retry's, then @catch's last
