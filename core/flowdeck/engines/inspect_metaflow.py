"""Read a Metaflow task's artifacts through Metaflow's own client.

Used by `flowdeck.engines.inspect_task` (same command lines, same JSON answers for
the list, a preview and an export) when the run directory's `run.json` says the run was made by the Metaflow bridge:
the artifacts live in Metaflow's datastore, not ours. It runs in a helper
process of the flow's interpreter, never in the window, and with the flow's
folder as working directory, because Metaflow finds `.metaflow/` upward from
the current directory.
"""

from __future__ import annotations

import os
from typing import Any

from flowdeck.engines.describe import Listed, TaskArtifacts
from flowdeck.engines.metaflow import MetaflowEngine


def open_metaflow_task(info: dict[str, Any], step: str, task_id: str
                       ) -> TaskArtifacts | str:
    """Artifacts of `FLOW/METAFLOW_RUN/STEP/TASK` (listed, loadable one by one), or what
    is wrong, for `inspect_task`'s list, preview and export alike."""
    mf_run = info.get("metaflow_run_id")
    if not mf_run:
        return ("This Metaflow run never started (no Metaflow run id was recorded); see its "
                "log for why.")
    try:
        from metaflow import Task, namespace
    except ImportError:
        return ("This interpreter cannot import metaflow; install it with "
                "`python -m pip install metaflow` to see the artifacts.")
    file = info.get("file") or ""
    if file and os.path.isdir(os.path.dirname(file)):
        os.chdir(MetaflowEngine().working_dir(file))  # where the run found its .metaflow/
    pathspec = f"{info.get('flow')}/{mf_run}/{step}/{task_id}"
    try:
        namespace(None)
        task = Task(pathspec)
        artifacts = {a.id: a for a in task}
    except Exception as exc:  # Metaflow raises its own exception types for missing objects
        return f"Metaflow cannot read {pathspec}: {exc}"
    # Metaflow's client knows no type without loading the value: the list fills it in.
    listed = [Listed(name, "", int(a.size or 0)) for name, a in artifacts.items()]
    return TaskArtifacts(listed, lambda name: artifacts[name].data, file)
