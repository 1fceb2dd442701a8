"""How many tasks run at once without `--max-workers`: Metaflow's 16 (or the CPU count
where larger), while steps that declare `@resources(cpu=N)` share only the machine's CPUs.

The first test is a rendezvous: four tasks each wait for all four to have started, which
only happens if four run at once (on a 2-core machine, the old default of the CPU count
left two waiting for ever). The wait has a generous cap so that a regression fails with
a message instead of hanging; it is not a timing threshold.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conftest import run_flow
from test_resources import CPU_FLOW

from flowdeck import Flow
from flowdeck.engine.runtime import DEFAULT_MAX_WORKERS, default_max_workers
from flowdeck.store.events import read_events
from flowdeck.store.layout import EVENTS

RENDEZVOUS_FLOW = """
import time
from pathlib import Path
from flowdeck import FlowSpec, step


class MeetFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2, 3]
        self.next(self.meet, foreach="items")

    @step
    def meet(self):
        here = Path(__file__).parent / "arrived"
        here.mkdir(exist_ok=True)
        (here / str(self.input)).touch()
        for _ in range(6000):  # at most a minute: only a regression waits that long
            if len(list(here.iterdir())) == 4:
                break
            time.sleep(0.01)
        else:
            raise RuntimeError("the four tasks never ran at once")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MeetFlow()
"""


def _run_started(tmp_path: Path, flow: str) -> dict[str, Any]:
    (events,) = (tmp_path / ".flowdeck" / flow / "runs").glob(f"*/{EVENTS}")
    started = read_events(events)[0]
    assert started["type"] == "run_started"
    return started


def test_default_is_metaflows_or_the_cpu_count() -> None:
    assert DEFAULT_MAX_WORKERS == 16
    assert default_max_workers() == max(16, os.cpu_count() or 1)


def test_without_max_workers_four_tasks_run_at_once(tmp_path: Path) -> None:
    path = tmp_path / "meet.py"
    path.write_text(RENDEZVOUS_FLOW)
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "arrived").iterdir()) == ["0", "1", "2", "3"]
    started = _run_started(tmp_path, "MeetFlow")
    assert started["max_workers"] == default_max_workers()


def test_explicit_max_workers_still_bounds_the_fan_out(tmp_path: Path) -> None:
    """With --max-workers 2 the rendezvous cannot happen: the step fails as it says."""
    path = tmp_path / "meet.py"
    path.write_text(RENDEZVOUS_FLOW.replace("range(6000)", "range(50)"))
    result = run_flow(path, "--max-workers", "2")
    assert result.returncode != 0
    assert "the four tasks never ran at once" in result.stdout + result.stderr
    assert _run_started(tmp_path, "MeetFlow")["max_workers"] == 2


def test_declared_cpus_share_the_machine_by_default(tmp_path: Path) -> None:
    """Each task declares every CPU of the machine: by default they run one at a time,
    although 16 tasks may be in flight."""
    path = tmp_path / "heavy.py"
    assert "@resources(cpu=2)" in CPU_FLOW
    path.write_text(CPU_FLOW.replace("@resources(cpu=2)", f"@resources(cpu={os.cpu_count() or 1})"))
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    assert Flow("WideFlow", root=tmp_path / ".flowdeck").latest_run.successful
    assert not (tmp_path / "overlap").exists()


def test_max_workers_below_one_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    """Before, -1 was taken and every task of a fan-out ran at once."""
    path = tmp_path / "meet.py"
    path.write_text(RENDEZVOUS_FLOW)
    for value, said in (("-1", "-1 is too few"), ("0", "0 is too few"),
                        ("many", "'many' is not a whole number")):
        result = run_flow(path, "--max-workers", value)
        assert result.returncode == 2
        assert f"argument --max-workers: {said}" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / ".flowdeck").exists() or not list(
        (tmp_path / ".flowdeck").glob("*/runs/*"))
