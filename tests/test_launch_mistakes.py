"""Mistakes in a flow file that show at launch get the file's line and what to do, never
an engine traceback or a "please report it" (found by a Metaflow user's flows)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_flow, stored_runs

HEAD = "import os\nfrom flowdeck import FlowSpec, Parameter, step, timeout, retry\n\n\n"
STEPS = ("    @step\n    def start(self):\n        self.next(self.end)\n\n"
         "    @step\n    def end(self):\n        pass\n\n\n"
         "if __name__ == '__main__':\n    MistakeFlow()\n")


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mistake.py"
    path.write_text(HEAD + body + STEPS)
    return path


def test_a_default_function_that_raises_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "def model_path():\n    return os.environ['MODEL_PATH']\n\n\n"
                           "class MistakeFlow(FlowSpec):\n"
                           "    path = Parameter('path', default=model_path)\n\n")
    failed = run_flow(path)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert (f"Parameter `path`: its default, model_path() ({path}, line 6: return "
            "os.environ['MODEL_PATH']), raised KeyError: 'MODEL_PATH'") in failed.stderr
    assert "give --path on the command line" in failed.stderr
    assert run_flow(path, "run", "--path", "/models/a").returncode == 0  # not called then


def test_a_parameter_name_given_twice_is_a_check_error(tmp_path: Path) -> None:
    path = write(tmp_path, "class MistakeFlow(FlowSpec):\n"
                           "    a = Parameter('alpha', default=1)\n"
                           "    b = Parameter('alpha', default=2)\n\n")
    failed = run_flow(path)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert f"{path}:7: error: Parameter name `alpha` is given twice" in failed.stderr
    assert "(line 6)" in failed.stderr and not stored_runs("MistakeFlow", tmp_path / ".flowdeck")


@pytest.mark.parametrize("decorator, said", [
    ("@timeout(seconds='ten')", "@timeout(seconds='ten') on step `start`"),
    ("@retry(times='two')", "@retry(times='two') on step `start`"),
    ("@retry(times=1.5)", "is not a whole number of retries"),
])
def test_a_decorator_argument_that_is_no_number_is_the_files_mistake(
        tmp_path: Path, decorator: str, said: str) -> None:
    path = tmp_path / "mistake.py"
    path.write_text(HEAD + "class MistakeFlow(FlowSpec):\n" + STEPS.replace(
        "    @step\n    def start", f"    {decorator}\n    @step\n    def start", 1))
    failed = run_flow(path)
    assert failed.returncode == 2, failed.stderr
    assert said in failed.stderr and "please report" not in failed.stderr
    assert "Traceback" not in failed.stderr


def test_the_engines_checks_of_a_step_are_not_retried(tmp_path: Path) -> None:
    """A foreach past --max-num-splits fails the same way on every attempt: @retry (here
    from --with) does not run the step again, as in Metaflow."""
    path = tmp_path / "splits.py"
    path.write_text(
        "from flowdeck import FlowSpec, step\n\n\n"
        "class SplitsFlow(FlowSpec):\n"
        "    @step\n    def start(self):\n        print('start ran')\n"
        "        self.items = list(range(6))\n"
        "        self.next(self.each, foreach='items')\n\n"
        "    @step\n    def each(self):\n        self.next(self.join)\n\n"
        "    @step\n    def join(self, inputs):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    SplitsFlow()\n")
    failed = run_flow(path, "--with", "retry:times=2", "run", "--max-num-splits", "5")
    assert failed.returncode == 1
    assert failed.stdout.count("start ran") == 1, failed.stdout
    assert "more than --max-num-splits 5" in failed.stderr
    assert "raised metaflow.exception.MetaflowException" in failed.stderr
