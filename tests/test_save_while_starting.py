"""A flow file saved after its run started is not run (found by reliability/save_storms.py).

The run's graph, lint and recorded step hashes come from reading the file when the run
begins; the code that runs was read when the process started. A save in between made a
run record the hashes of code it did not run, which rerun-on-save and resume trust to
reuse tasks. Such a run now stops before it begins, saying why.
"""

from __future__ import annotations

from pathlib import Path

from conftest import run_flow

FLOW = '''from flowdeck import FlowSpec, step

with open(__file__, "a") as handle:  # the file is saved again while the run starts
    handle.write("# saved while starting\\n")


class TouchedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TouchedFlow()
'''


def test_a_flow_saved_while_its_run_starts_is_not_run(tmp_path: Path) -> None:
    path = tmp_path / "touched.py"
    path.write_text(FLOW)
    result = run_flow(path)
    assert result.returncode == 2
    assert f"{path} was saved after this run started" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob(".flowdeck/TouchedFlow/runs/*/run.json"))


def test_a_flow_file_dated_in_the_future_runs(tmp_path: Path) -> None:
    import os
    import time
    path = tmp_path / "future.py"
    path.write_text(FLOW.replace("with open(__file__", "if False:\n  with open(__file__"))
    later = time.time() + 86400
    os.utime(path, (later, later))
    assert run_flow(path).returncode == 0
