"""What a new user's flows, compared with Metaflow 2.19 (2026-12-05), found; each fixed.

- A Parameter whose default is `config_expr(...)` takes the type of the config's value,
  as Metaflow's `_get_type` does once configs are read: it was always a str, so
  `--flag false` read as a true string and a float compared unequal in a switch.

Real `python flow.py` processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import child_env


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
