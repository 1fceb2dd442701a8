"""A foreach the engine refuses fails at its split, naming the flow file and the line of the
`self.next(...)` call (found in review: a dict was accepted, then every task failed with
`KeyError: 0` at `self.v = self.input`, as under Metaflow 2.19; the other refusals named
the step only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_flow, stored_runs

FLOW = '''
from flowdeck import FlowSpec, step


class SplitFlow(FlowSpec):
    @step
    def start(self):
        self.items = {items}
        self.next(self.each, foreach="{name}")

    @step
    def each(self):
        self.v = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.vals = [i.v for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("vals", self.vals)


if __name__ == "__main__":
    SplitFlow()
'''
NEXT_LINE = 9  # of `self.next(self.each, foreach=...)` in FLOW


def _write(tmp_path: Path, items: str, name: str = "items") -> Path:
    path = tmp_path / "split.py"
    path.write_text(FLOW.replace("{items}", items).replace("{name}", name))
    assert "self.next(self.each" in path.read_text().splitlines()[NEXT_LINE - 1]
    return path


@pytest.mark.parametrize("items, name, message", [
    ("{'a': 1, 'b': 2}", "items",
     'uses foreach="items", but self.items is a dict, whose items a foreach cannot take by '
     "position. Assign self.items = list(self.items.items()) before self.next() for (key, "
     "value) pairs, or list(self.items) for the keys."),
    ("{1, 2}", "items", "self.items is a set, not a list or other sequence. Wrap it in list"),
    ("[]", "items", "self.items is empty, so there is nothing to run"),
    ("[1, 2]", "itemz", "self.itemz is not set. Did you mean self.items? Assign a list"),
])
def test_a_refused_foreach_names_the_file_and_the_line_of_its_next(
        tmp_path: Path, items: str, name: str, message: str) -> None:
    path = _write(tmp_path, items, name)
    done = run_flow(path, "run")
    assert done.returncode == 1
    assert f"Step `start` (at {path}, line {NEXT_LINE}) uses foreach=\"{name}\"" in done.stderr
    assert message in done.stderr, done.stderr
    assert "KeyError" not in done.stderr
    run = stored_runs("SplitFlow", tmp_path / ".flowdeck")[0]
    assert [s.id for s in run] == ["start"]  # refused at the split: no `each` task ran


def test_a_dict_keyed_by_position_runs_as_under_metaflow(tmp_path: Path) -> None:
    """Metaflow reads an item as `self.items[index]`: a dict keyed 0..n-1 works there."""
    done = run_flow(_write(tmp_path, "{0: 'a', 1: 'b'}"), "run")
    assert done.returncode == 0, done.stderr
    assert "vals ['a', 'b']" in done.stdout
