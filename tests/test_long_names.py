"""Names and paths too long for the file system (the reliability issue, item 12).

A step or flow name over the file system's limit for one path component, or a flow
folder so deep that the run's files pass PATH_MAX, used to pass `check` with "no errors"
and then stop the orchestrator with `OSError: [Errno 36] File name too long`, leaving
the run recorded as "running". Lint now names such a name with its line and what to do,
and the orchestrator fails a run whose store refuses a write, naming the path.
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import run_flow

from flowdeck.store.layout import RunLayout
from flowdeck.store.records import RunRecord

LONG_STEP = "step_" + "s" * 295  # 300 bytes: over Linux's 255 per name

STEP_FLOW = f'''from flowdeck import FlowSpec, step


class LongStepFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.{LONG_STEP})

    @step
    def {LONG_STEP}(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LongStepFlow()
'''

LONG_FLOW = "F" * 300

CLASS_FLOW = f'''from flowdeck import FlowSpec, step


class {LONG_FLOW}(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    {LONG_FLOW}()
'''

DEEP_FLOW = '''from flowdeck import FlowSpec, step


class DeepFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a_step_with_a_name_long_enough_to_cross_the_path_limit)

    @step
    def a_step_with_a_name_long_enough_to_cross_the_path_limit(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DeepFlow()
'''


def test_check_reports_a_step_name_too_long_for_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "long_step.py"
    path.write_text(STEP_FLOW)
    for command in ("check", "run"):
        result = run_flow(path, command)
        assert result.returncode == 1, result.stderr
        assert f"{path}:10: error: The step name `step_sss" in result.stderr
        assert "300 bytes" in result.stderr and "Rename the step" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / ".flowdeck").exists()  # refused before anything was made


def test_check_reports_a_flow_name_too_long_for_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "long_flow.py"
    path.write_text(CLASS_FLOW)
    result = run_flow(path, "check")
    assert result.returncode == 1
    assert f"{path}:4: error: The flow name `FFF" in result.stderr
    assert "Rename the flow" in result.stderr and "Traceback" not in result.stderr


def test_a_long_non_ascii_flow_name_is_told_its_limit_in_bytes(tmp_path: Path) -> None:
    """53 letters of 102 bytes were told "Rename the flow to 100 characters or fewer":
    the limit is in bytes, and the message says how many of this name's letters fit."""
    name = "Ä" * 49 + "Flow"
    path = tmp_path / "long_flow.py"
    path.write_text(CLASS_FLOW.replace(LONG_FLOW, name))
    result = run_flow(path, "check")
    assert result.returncode == 1
    assert "102 bytes long" in result.stderr
    assert "100 bytes or fewer in UTF-8" in result.stderr
    assert "the first 51 characters of this name fit" in result.stderr
    assert "100 characters or fewer" not in result.stderr


def deep_folder(base: Path, run_dir_length: int, flow: str, run_id: str) -> Path:
    """A folder under `base` whose run folder for (flow, run_id) is `run_dir_length` bytes."""
    suffix = len(f"/.flowdeck/{flow}/runs/{run_id}")
    target = run_dir_length - suffix
    folder = str(base)
    while target - len(folder) > 201:
        folder = os.path.join(folder, "d" * 200)
    folder = os.path.join(folder, "e" * (target - len(folder) - 1))
    os.makedirs(folder)
    return Path(folder)


def test_a_run_whose_files_pass_path_max_fails_naming_the_path(tmp_path: Path) -> None:
    """run.json fits, the step's task files do not: the run fails, never stays running."""
    path_max = os.pathconf(tmp_path, "PC_PATH_MAX")  # 4096 on Linux, with the final NUL
    # run.json and .space-reserve fit (16 bytes below the run folder); the long step's
    # `<step>/<task>/attempt-0.json` (over 60 bytes below it) does not.
    folder = deep_folder(tmp_path, path_max - 40, "DeepFlow", "deep-1")
    path = folder / "deep.py"
    path.write_text(DEEP_FLOW)
    result = run_flow(path, "run", "--run-id", "deep-1", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "the path is too long for the file system" in result.stderr
    record = RunRecord.read(RunLayout(folder / ".flowdeck", "DeepFlow").run_json("deep-1"))
    assert record.status == "failed"
    assert record.error is not None
    message = record.error["message"]
    assert f"cannot write {folder}/.flowdeck/DeepFlow/runs/deep-1/a_step_with" in message
    assert "Move the flow to a folder with a shorter path" in message
