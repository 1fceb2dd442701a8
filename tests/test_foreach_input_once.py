"""A foreach's list is loaded once per fan-out, not once per task: `self.input` costs the
same for the 1st and the 10,000th item (issue: per-task cost, linear to 10,000 tasks)."""

from __future__ import annotations

from pathlib import Path

from conftest import run_flow

FLOW = '''
import os
from flowdeck import FlowSpec, step

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "unpickled.log")


def rebuild(value):
    """Each unpickling of an Item leaves a line: the test counts how often the list is loaded."""
    with open(LOG, "a") as handle:
        handle.write(f"{os.getpid()} {value}\\n")
    return Item(value)


class Item:
    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return rebuild, (self.value,)


class CountedFlow(FlowSpec):
    @step
    def start(self):
        self.items = [Item(i) for i in range(ITEMS)]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.double = 2 * self.input.value
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.double for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    CountedFlow()
'''

ITEMS = 40


def test_each_foreach_task_reads_its_item_without_loading_the_list_again(tmp_path: Path) -> None:
    flow = tmp_path / "counted.py"
    flow.write_text(FLOW.replace("ITEMS", str(ITEMS)))
    result = run_flow(flow, "run", "--max-workers", "2")
    assert result.returncode == 0, result.stderr
    assert f"total {sum(2 * i for i in range(ITEMS))}" in result.stdout
    lines = (tmp_path / "unpickled.log").read_text().splitlines()
    # One load of the list, in the orchestrator, before the tasks fork. Loading it in each
    # task instead would unpickle ITEMS x ITEMS items (1,600 lines here).
    assert len(lines) == ITEMS
    assert sorted(int(line.split()[1]) for line in lines) == list(range(ITEMS))
