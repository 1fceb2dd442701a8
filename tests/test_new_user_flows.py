"""What a new user's flows, compared with Metaflow 2.19 (2026-12-05), found; each fixed.

- A Parameter whose default is `config_expr(...)` takes the type of the config's value,
  as Metaflow's `_get_type` does once configs are read: it was always a str, so
  `--flag false` read as a true string and a float compared unequal in a switch.
- @catch answers a step that calls `sys.exit()` or raises KeyboardInterrupt itself: Metaflow's
  catches Exception only, its task process dies of the rest, and @catch's last attempt
  records FailureHandledByCatch; the run failed here (a crash with os._exit was caught).
- `resume` continues the latest run that `run` started, as Metaflow's does: from the latest
  resume, a resume that failed was resumed again and reused its task of a step the user
  had fixed since, so following the hint ("Fix it, then continue with resume") looped.
  A step whose code changed since the origin ran it runs again (reused, its tasks were
  the old code's), said once at the start.
- `separator=` on a parameter that is not a string is refused where it is written, as in
  Metaflow ("only allowed for string parameters"): the default "1,2" of an int parameter
  was said to be no valid int, and `--ids 3,4` failed the same way.
- The end step written as a join gets Metaflow's own advice (it was called "both a join
  and a split").
- Metaflow 2.19's `@step(start=True)` is refused with what to write instead (a TypeError
  traceback), and a mistake in a Metaflow flow's definition run through the
  `as_metaflow` entry is said as `python flow.py` says it: the lint's line, no traceback.

Real `python flow.py` processes.
"""

from __future__ import annotations

import shutil
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


def test_a_config_expr_default_that_is_a_dict_runs_and_resumes(tmp_path: Path) -> None:
    """A dict value made the parameter JSON-typed, and the run crashed storing its
    ConfigValue; a resume of any flow with a config_expr default evaluated it before the
    configs were read, and failed."""
    source = CONFIG_TYPED.replace('"flag": True}', '"flag": True, "opts": {"a": 1}}').replace(
        '    flag = Parameter("flag", default=config_expr("cfg.flag"))\n',
        '    flag = Parameter("flag", default=config_expr("cfg.flag"))\n'
        '    opts = Parameter("opts", default=config_expr("cfg.opts"))\n').replace(
        'repr(self.flag))', 'repr(self.flag), repr(self.opts))')
    assert _values(_run(tmp_path, source, "run")) == "0.7 3 True {'a': 1}"
    resumed = _run(tmp_path, source, "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    layered = source.replace('"opts": {"a": 1}}', '"opts": [{"a": 1}, {"b": 2}]}')
    assert _values(_run(tmp_path, layered, "run")).endswith("[{'a': 1}, {'b': 2}]")
    added = layered.replace(  # a parameter added since the run resumed: read from its config
        '    opts = Parameter("opts", default=config_expr("cfg.opts"))\n',
        '    opts = Parameter("opts", default=config_expr("cfg.opts"))\n'
        '    more = Parameter("more", default=config_expr("cfg.n"))\n')
    again = _run(tmp_path, added, "resume")
    assert again.returncode == 0, again.stdout + again.stderr


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
    assert "@catch caught an exception" in run["crash"].task.stdout  # Metaflow's stream
    assert "@catch caught" not in run["crash"].task.stderr


RESUMED_TWICE = '''
import os
from flowdeck import FlowSpec, step


class Twice(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if os.path.exists("FAIL_WORK") and self.input == 2:
            raise RuntimeError("flaky")
        self.y = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.y for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("AVERAGE", self.total / 3, self.avg)


if __name__ == "__main__":
    Twice()
'''


def test_a_second_resume_continues_the_run_not_the_failed_resume(tmp_path: Path) -> None:
    (tmp_path / "FAIL_WORK").touch()
    first = _run(tmp_path, RESUMED_TWICE, "run")
    assert first.returncode == 1
    (tmp_path / "FAIL_WORK").unlink()
    resumed = _run(tmp_path, RESUMED_TWICE, "resume")  # `join` forgot self.avg: `end` fails
    assert resumed.returncode == 1 and "avg" in resumed.stdout + resumed.stderr
    fixed = RESUMED_TWICE.replace("sum(i.y for i in inputs)\n",
                                  "sum(i.y for i in inputs)\n        self.avg = 20\n")
    again = _run(tmp_path, fixed, "resume")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "AVERAGE 20.0 20" in again.stdout
    first_id = first.stdout.split(" run ", 1)[1].split(":", 1)[0]
    assert f"resuming run {first_id}" in again.stdout


def test_a_resume_reruns_a_step_changed_since_the_run(tmp_path: Path) -> None:
    """Reused, a changed step's tasks were the old code's: following the engine's own hint
    ("Fix it, then continue with resume") then ran the old code to a success. A changed
    step reruns, with what follows, and the resume says so once."""
    source = RESUMED_TWICE.replace("self.avg", "20")
    (tmp_path / "FAIL_WORK").touch()
    assert _run(tmp_path, source, "run").returncode == 1
    changed = source.replace("self.y = self.input * 10", "self.y = self.input * 100")
    resumed = _run(tmp_path, changed, "resume")  # still failing: the change is not the fix
    assert resumed.returncode == 1
    said = [line for line in resumed.stderr.splitlines() if "Changed since run" in line]
    assert len(said) == 1 and "`work`" in said[0] and "`start`" not in said[0]
    assert "Reusing finished task" in resumed.stdout  # start, unchanged, is reused
    (tmp_path / "FAIL_WORK").unlink()
    noted = changed.replace("        self.next(self.join)\n",
                            "\n        # a note, and a blank line: no change of code\n"
                            "        self.next(self.join)\n", 1)
    fixed = _run(tmp_path, noted, "resume")  # from the first run again: work reruns whole
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "AVERAGE 200.0 20" in fixed.stdout  # the new code's values, every item
    first = fixed.stdout.split("resuming run ", 1)[1].split()[0]
    shutil.rmtree(tmp_path / ".flowdeck" / "Twice" / "runs" / first)  # only resumes are left
    again = _run(tmp_path, changed, "resume")  # "no earlier run" while two were there
    assert again.returncode == 0 and "resuming run " in again.stdout, again.stderr
    assert "Changed since run" not in again.stderr  # only a comment and a blank line went


def test_a_resume_after_renaming_the_failed_step_runs_the_renamed_one(tmp_path: Path) -> None:
    """The origin's failed step no longer exists: the resume crashed with a KeyError
    traceback. The renamed step never ran, so it runs, with what follows it."""
    source = RESUMED_TWICE.replace("self.avg", "20")
    (tmp_path / "FAIL_WORK").touch()
    assert _run(tmp_path, source, "run").returncode == 1
    (tmp_path / "FAIL_WORK").unlink()
    renamed = source.replace("self.work", "self.fit").replace("def work", "def fit")
    resumed = _run(tmp_path, renamed, "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Traceback" not in resumed.stderr and "AVERAGE 20.0 20" in resumed.stdout
    assert "/fit/" in resumed.stdout


SEPARATED_INTS = '''
from flowdeck import FlowSpec, Parameter, step


class Separated(FlowSpec):
    ids = Parameter("ids", type=int, separator=",", default="1,2")
    words = Parameter("words", separator=" ", default="a b")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Separated()
'''


def test_a_separator_on_a_parameter_that_is_not_a_string_is_refused_where_written(
        tmp_path: Path) -> None:
    proc = _run(tmp_path, SEPARATED_INTS, "run")
    assert proc.returncode == 1
    assert f"{tmp_path / 'flow.py'}:6: error: Parameter `ids`: separator=" in proc.stderr
    assert "only allowed for string parameters" in proc.stderr
    assert "Traceback" not in proc.stderr
    fine = _run(tmp_path, SEPARATED_INTS.replace("type=int, ", "").replace('"1,2"', '"1,2"'),
                "run", "--ids", "3,4")
    assert fine.returncode == 0, fine.stderr


METAFLOW_MISTAKE = '''
from metaflow import FlowSpec, retry, step


class Misspelt(FlowSpec):
    @retry(tims=2)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Misspelt()
'''


def test_the_metaflow_entry_says_a_definition_mistake_without_a_traceback(
        tmp_path: Path) -> None:
    path = tmp_path / "misspelt.py"
    path.write_text(METAFLOW_MISTAKE)
    proc = subprocess.run([sys.executable, "-m", "flowdeck.engines.as_metaflow", str(path),
                           "run"], cwd=tmp_path, env=child_env(METAFLOW_USER="tester"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"{path}:6: error: @retry has no argument `tims` (it takes minutes_between_retries, "
        "times). Fix the name, or remove the argument."]


def test_parameter_texts_compare_as_values_of_their_type() -> None:
    """What the window asks about before a resume (the form against the run): a string
    `1.10` is not `1.1`, big ints are not floats, JSON spacing is no change."""
    from flowdeck.analysis.parameter_text import same_value
    assert same_value("float", "0.10", "0.1")
    assert not same_value("str", "1.10", "1.1")
    assert not same_value("int", "12345678901234567890", "12345678901234567891")
    assert not same_value("int", "999", "999.0")  # --bad 999.0 is refused: not the same
    assert same_value("JSONType", '{"a":1}', '{"a": 1}')
    assert not same_value("JSONType", '{"e": 10}', '{"e": 10.0}')  # the step sees 10.0
    assert not same_value("JSONType", "true", "1")
    assert same_value("bool", "True", "true") and not same_value("bool", "true", "false")
    assert not same_value("MyType", "a", "b") and same_value("MyType", "a", "a")


def test_a_change_outside_the_steps_is_said_only_when_tasks_are_reused(tmp_path: Path) -> None:
    source = RESUMED_TWICE.replace("self.avg", "20").replace("import os\n", "import os\n\nA = 1\n")
    (tmp_path / "FAIL_WORK").touch()
    assert _run(tmp_path, source, "run").returncode == 1
    (tmp_path / "FAIL_WORK").unlink()
    outside = source.replace("A = 1", "A = 2")
    reused = _run(tmp_path, outside, "resume")
    assert reused.returncode == 0 and "Code outside the steps changed" in reused.stderr
    both = outside.replace("A = 2", "A = 3").replace("self.items = [1, 2, 3]",
                                                     "self.items = [1, 2, 3][:3]")
    rerun = _run(tmp_path, both, "resume")  # start changed: every step runs again
    assert rerun.returncode == 0, rerun.stderr
    assert "Code outside the steps changed" not in rerun.stderr
    assert "Reusing finished task" not in rerun.stdout


KILLED = '''
import os, signal
from flowdeck import FlowSpec, step


class Killed(FlowSpec):
    @step
    def start(self):
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer does
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Killed()
'''


def test_a_task_killed_by_sigkill_names_the_out_of_memory_killer(tmp_path: Path) -> None:
    """Killed by the kernel for lack of memory, a task said only "killed by signal 9"."""
    result = _run(tmp_path, KILLED, "run")
    assert result.returncode == 1
    assert "killed by signal 9 (SIGKILL)" in result.stdout + result.stderr
    assert "ran out of memory" in result.stdout + result.stderr
