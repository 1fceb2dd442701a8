"""Describe a task's artifacts as JSON, in a process of its own.

The desktop window never unpickles an artifact: unpickling runs arbitrary
code and needs the flow's own libraries. It runs, with the flow's
interpreter::

    python -m flowdeck.engines.inspect_task ROOT FLOW RUN_ID STEP TASK_ID

and reads one JSON object from stdout: `{"artifacts": [{name, type, size,
preview, shape?, dtype?}], "error": null}`. An artifact that fails to load
gets its error as its preview; the others are still described. For a run
made by the Metaflow bridge (`run.json` says `"engine": "metaflow"`) the
answer comes from Metaflow's client instead (`flowdeck.engines.inspect_metaflow`).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

PREVIEW_CHARS = 400


def describe_value(value: Any) -> dict[str, Any]:
    """A short, safe description: repr, or shape/dtype for arrays, head for data frames."""
    out: dict[str, Any] = {}
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and isinstance(shape, tuple):
        out["shape"] = list(shape)
    if dtype is not None:
        out["dtype"] = str(dtype)
    head = getattr(value, "head", None)
    if callable(head) and hasattr(value, "columns"):
        try:
            out["preview"] = _clip(head(5).to_string())
            return out
        except Exception as exc:  # a broken __repr__ is the value's problem, not ours
            out["preview"] = f"<head() failed: {type(exc).__name__}: {exc}>"
            return out
    try:
        out["preview"] = _clip(repr(value))
    except Exception as exc:  # user-defined __repr__ may raise anything
        out["preview"] = f"<repr() failed: {type(exc).__name__}: {exc}>"
    return out


def _clip(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + " …"


def inspect_task(root: str, flow: str, run_id: str, step: str, task_id: str) -> dict[str, Any]:
    from flowdeck.client import ClientError, Run
    info = _run_info(root, flow, run_id)
    if info.get("engine") == "metaflow":  # artifacts live in Metaflow's datastore
        from flowdeck.engines.inspect_metaflow import inspect_metaflow_task
        return inspect_metaflow_task(info, step, task_id)
    try:
        task = Run(f"{flow}/{run_id}", root=root)[step][task_id]
        artifacts = task.artifacts
    except (ClientError, OSError, ValueError) as exc:
        return {"artifacts": [], "error": str(exc)}
    described = []
    for artifact in artifacts:
        entry: dict[str, Any] = {"name": artifact.id, "type": artifact.type,
                                 "size": artifact.size}
        try:
            entry.update(describe_value(artifact.data))
        except Exception as exc:  # unpickling runs the artifact's own code
            entry["preview"] = f"<cannot load: {type(exc).__name__}: {exc}>"
        described.append(entry)
    return {"artifacts": described, "error": None}


def _run_info(root: str, flow: str, run_id: str) -> dict[str, Any]:
    """The run's `run.json`, or {} when there is none (the client then says what is wrong)."""
    from flowdeck.store.blobs import read_json
    try:
        info = read_json(os.path.join(root, flow, "runs", run_id, "run.json"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: python -m flowdeck.engines.inspect_task ROOT FLOW RUN_ID STEP TASK_ID",
              file=sys.stderr)
        return 2
    json.dump(inspect_task(*argv), sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
