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
import sys
from pathlib import Path
from typing import Any

from flowdeck.engines.describe import describe_value
from flowdeck.store.index import read_run
from flowdeck.store.layout import InvalidId, RunLayout


def inspect_task(root: str, flow: str, run_id: str, step: str, task_id: str) -> dict[str, Any]:
    from flowdeck.client import ClientError, Run
    info = _run_info(root, flow, run_id)
    if info.get("engine") == "metaflow":  # artifacts live in Metaflow's datastore
        from flowdeck.engines.inspect_metaflow import inspect_metaflow_task
        return inspect_metaflow_task(info, step, task_id)
    try:
        # Whoever made the run, the window's helper reads it: no namespace filter here.
        task = Run(f"{flow}/{run_id}", root=root, _namespace_check=False)[step][task_id]
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
    """The run's record as JSON, or {} when there is none (the client then says what is wrong)."""
    try:
        record = read_run(RunLayout(Path(root), flow), run_id).record
    except InvalidId:
        return {}
    return record.as_json() if record else {}


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
