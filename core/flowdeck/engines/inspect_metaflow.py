"""Describe a Metaflow task's artifacts through Metaflow's own client.

Used by `flowdeck.engines.inspect_task` (same command line, same JSON answer) when
the run directory's `run.json` says the run was made by the Metaflow bridge:
the artifacts live in Metaflow's datastore, not ours. It runs in a helper
process of the flow's interpreter, never in the window, and with the flow's
folder as working directory, because Metaflow finds `.metaflow/` upward from
the current directory.
"""

from __future__ import annotations

import os
from typing import Any

from flowdeck.engines.describe import describe_value
from flowdeck.engines.metaflow import MetaflowEngine


def inspect_metaflow_task(info: dict[str, Any], step: str, task_id: str) -> dict[str, Any]:
    """Artifacts of `FLOW/METAFLOW_RUN/STEP/TASK`, described like `inspect_task` does ours."""
    mf_run = info.get("metaflow_run_id")
    if not mf_run:
        return {"artifacts": [], "error": "This Metaflow run never started (no Metaflow run "
                "id was recorded); see its log for why."}
    try:
        from metaflow import Task, namespace
    except ImportError:
        return {"artifacts": [], "error": "This interpreter cannot import metaflow; install "
                "it with `python -m pip install metaflow` to see the artifacts."}
    file = info.get("file") or ""
    if file and os.path.isdir(os.path.dirname(file)):
        os.chdir(MetaflowEngine().working_dir(file))  # where the run found its .metaflow/
    pathspec = f"{info.get('flow')}/{mf_run}/{step}/{task_id}"
    try:
        namespace(None)
        artifacts = list(Task(pathspec))
    except Exception as exc:  # Metaflow raises its own exception types for missing objects
        return {"artifacts": [], "error": f"Metaflow cannot read {pathspec}: {exc}"}
    return {"artifacts": [_describe(a) for a in artifacts], "error": None}


def _describe(artifact: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": artifact.id, "type": "", "size": artifact.size or 0}
    try:
        value = artifact.data
    except Exception as exc:  # unpickling runs the artifact's own code
        entry["preview"] = f"<cannot load: {type(exc).__name__}: {exc}>"
        return entry
    entry["type"] = type(value).__name__
    entry.update(describe_value(value))
    return entry
