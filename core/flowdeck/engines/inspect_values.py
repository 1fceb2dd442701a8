"""One numeric artifact across runs, as JSON, in a process of its own.

The window's "Plot across runs" needs the values of one artifact (a score, a loss) in
every run in History, and the window never unpickles. So this helper runs in the
flow's own interpreter (it has the flow's libraries) and prints one JSON object::

    python -m flowdeck.engines.inspect_values ROOT FLOW STEP NAME RUN_ID [RUN_ID ...]

    {"flow", "step", "name", "truncated": bool, "blobs_loaded": int,
     "runs": [{"run_id", "error": str | null,
               "points": [{"task_id", "index": int | null, "input": float | null,
                           "input_label": str | null, "value": float | null,
                           "error": str | null}]}]}

One point per task of STEP (a foreach step gives one per item, in item order, with the
item's index and, when it is a number, its value as `input`; `input_label` is the
item's short repr). A value that is not a number, or fails to load, has `value` null and
says why in its `error`; a run without the step or the artifact says so in the run's
`error`. Equal content hashes are equal values: each distinct blob is loaded once. The
answer is bounded (MAX_POINTS points, short strings), so a huge History cannot flood
the window; `truncated` says when points were left out.
"""

from __future__ import annotations

import decimal
import json
import math
import numbers
import sys
from dataclasses import asdict, field
from typing import Any

from flowdeck.compiled_dataclasses import dataclass

MAX_POINTS = 50_000  # across all runs: far more than a plot shows readably
MAX_TEXT = 300  # characters of an error message or a label
#: A foreach's list is loaded (to give each point its item as x) only up to this size;
#: beyond it the items' indices are the x values, which costs nothing.
MAX_FOREACH_LIST = 50 * 1024 * 1024
USAGE = ("usage: python -m flowdeck.engines.inspect_values ROOT FLOW STEP NAME "
         "RUN_ID [RUN_ID ...]")


@dataclass
class ValuePoint:
    """One task's value of the artifact (None with `error` saying why it has none)."""

    task_id: str
    index: int | None = None
    input: float | None = None
    input_label: str | None = None
    value: float | None = None
    error: str | None = None


@dataclass
class RunValues:
    """One run's points; `error` when the run has none to give (no such step or artifact)."""

    run_id: str
    error: str | None = None
    points: list[ValuePoint] = field(default_factory=list)
    truncated: bool = False  # more tasks than the answer had room for


def argv(interpreter: str, root: str, flow: str, step: str, name: str,
         run_ids: list[str]) -> list[str]:
    """The helper's command line (the window starts it with the flow's interpreter)."""
    return [interpreter, "-m", "flowdeck.engines.inspect_values", root, flow, step, name,
            *run_ids]


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def as_number(value: Any) -> float | str:
    """The value as a finite float, or why it is not one (a short sentence).

    Numbers (int, float, numpy scalars, Decimal, Fraction) and one-element arrays or
    tensors count; bool does not (a flag is not a metric).
    """
    if isinstance(value, bool):
        return "a bool, not a number"
    number: float | None = None
    try:
        if isinstance(value, (numbers.Real, decimal.Decimal)):  # Decimal is no numbers.Real
            number = float(value)
        elif _one_element(value):
            try:  # a 0-d or one-element numpy array, a one-element tensor
                item = value.item()
            except (TypeError, ValueError, RuntimeError):
                item = None
            if isinstance(item, numbers.Real) and not isinstance(item, bool):
                number = float(item)
    except OverflowError:  # an int past a float's range (10**400): one point, not the plot
        return "too large for a float"
    if number is None:
        kind = type(value)
        name = kind.__qualname__ if kind.__module__ == "builtins" else \
            f"{kind.__module__}.{kind.__qualname__}"
        return _short(f"a {name}, not a number")
    if not math.isfinite(number):
        return f"not a finite number ({number})"
    return number


def _one_element(value: Any) -> bool:
    size = getattr(value, "size", None)
    size = size() if callable(size) else size  # torch: a method returning a shape
    count = 1
    if isinstance(size, tuple):
        for n in size:
            count *= n if isinstance(n, int) else 0
    elif isinstance(size, int):
        count = size
    else:
        return False
    return count == 1 and callable(getattr(value, "item", None))


class _Loader:
    """Loads each distinct blob once (equal hashes are equal values)."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[bool, Any]] = {}  # sha -> (loaded, value or error)

    def load(self, artifact: Any) -> tuple[bool, Any]:
        sha = artifact.sha
        if sha not in self.values:
            try:
                self.values[sha] = (True, artifact.data)
            except Exception as exc:  # unpickling runs the artifact's own code
                self.values[sha] = (False, _short(f"cannot load: {type(exc).__name__}: {exc}"))
        return self.values[sha]


def _foreach_item(task: Any, loader: _Loader) -> tuple[int | None, float | None, str | None]:
    """(index, numeric item or None, short label) of a foreach task's own item."""
    frames = [f for f in task.info.get("frames", []) if f.get("kind") == "foreach"]
    if not frames:
        return None, None, None
    index = int(frames[-1].get("index") or 0)
    var = frames[-1].get("var")
    if not var or var not in task or task[var].size > MAX_FOREACH_LIST:
        return index, None, None
    ok, items = loader.load(task[var])
    try:
        item = items[index] if ok else None
    except (TypeError, LookupError):
        return index, None, None
    number = as_number(item)
    return index, number if isinstance(number, float) else None, _short(repr(item))[:60]


def run_values(run: Any, step: str, name: str, loader: _Loader, budget: int) -> RunValues:
    """The artifact `name` of every task of `step` in `run` (at most `budget` points)."""
    from flowdeck.client import ClientError
    out = RunValues(run.id)
    if run.entry.record is not None and run.entry.record.engine == "metaflow":
        out.error = ("made by Metaflow's engine: its artifacts are in Metaflow's datastore, "
                     "which this plot does not read")
        return out
    try:
        tasks = run[step].tasks()
    except (ClientError, OSError, ValueError) as exc:
        out.error = _short(str(exc))
        return out
    if not tasks:
        out.error = f"no task of step {step}"
        return out
    out.truncated = len(tasks) > budget
    for task in tasks[:budget]:
        if task.is_control_task:
            continue
        point = ValuePoint(task.id)
        point.index, point.input, point.input_label = _foreach_item(task, loader)
        if name not in task:
            point.error = f"task {task.id} has no artifact {name} ({task.status})"
        else:
            ok, value = loader.load(task[name])
            number = as_number(value) if ok else value
            if isinstance(number, float):
                point.value = number
            else:
                point.error = number
        out.points.append(point)
    if out.points and all(p.error and "has no artifact" in p.error for p in out.points):
        out.error = f"no task of step {step} has an artifact {name}"
        out.points = []
    return out


def inspect_values(root: str, flow: str, step: str, name: str,
                   run_ids: list[str]) -> dict[str, Any]:
    """The answer the window reads (see the module's docstring)."""
    from flowdeck.client import ClientError, Run
    loader = _Loader()
    runs: list[RunValues] = []
    left = MAX_POINTS
    truncated = False
    for run_id in run_ids:
        if left <= 0:
            truncated = True
            break
        try:
            # Whoever made the run, the window's helper reads it: no namespace filter here.
            run = Run(f"{flow}/{run_id}", root=root, _namespace_check=False)
        except (ClientError, OSError, ValueError) as exc:
            runs.append(RunValues(run_id, _short(str(exc))))
            continue
        values = run_values(run, step, name, loader, left)
        left -= len(values.points)
        truncated = truncated or values.truncated
        runs.append(values)
    return {"flow": flow, "step": step, "name": name, "truncated": truncated,
            "blobs_loaded": len(loader.values), "runs": [asdict(r) for r in runs]}


def main(args: list[str]) -> int:
    if len(args) < 5:
        print(USAGE, file=sys.stderr)
        return 2
    root, flow, step, name, *run_ids = args
    json.dump(inspect_values(root, flow, step, name, run_ids), sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
