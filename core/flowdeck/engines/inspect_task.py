"""Describe, preview or export a task's artifacts as JSON, in a process of its own.

The desktop window never unpickles an artifact: unpickling runs arbitrary
code and needs the flow's own libraries. It runs, with the flow's
interpreter, one of::

    python -m flowdeck.engines.inspect_task ROOT FLOW RUN_ID STEP TASK_ID
    python -m flowdeck.engines.inspect_task ROOT FLOW RUN_ID STEP TASK_ID --preview NAME
    python -m flowdeck.engines.inspect_task ROOT FLOW RUN_ID STEP TASK_ID --export NAME PATH

and reads one JSON object from stdout:

- the list: `{"artifacts": [{name, type, size, preview?, shape?, dtype?, deferred?,
  load_error?}], "error"}`. Names, types and sizes come from the task's record
  (nothing unpickled); artifacts up to `SUMMARY_BYTES` also get a one-line summary
  (`describe_value`), each within the limits' `summary_seconds`, all within their
  `summary_budget`;
  the others are `deferred` until previewed. One that fails to load gets its
  reason (`load_error`, also its `preview`); the others are still described.
- a preview: `{"name", "preview": {kind, ...} | null, "error"}`, bounded in size
  by `flowdeck.engines.preview` (about 1 MB, never the whole value).
- an export: `{"name", "path", "format", "error"}`: the whole value written to PATH
  here, never sent to the window.

Loading a value is stopped after the limits' `load_seconds` (the window kills the
helper a little later anyway); `flowdeck.engines.load_limits` owns every limit, and
`$FLOWDECK_LOAD_PATIENCE` scales them. The flow's folder is put first on `sys.path`, as running
`python flow.py` does, so classes from the flow's own modules unpickle. For a run
made by the Metaflow bridge (`run.json` says `"engine": "metaflow"`) the values
come from Metaflow's client instead (`flowdeck.engines.inspect_metaflow`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from flowdeck.engine.alarm import alarm
from flowdeck.engines.describe import Listed, TaskArtifacts, describe_value
from flowdeck.engines.load_limits import LoadLimits, PatienceError, load_limits
from flowdeck.engines.preview import (
    LoadTimeout,
    export_value,
    load_failure,
    preview_value,
    type_name,
)
from flowdeck.store.index import read_run
from flowdeck.store.layout import InvalidId, RunLayout

SUMMARY_BYTES = 256 * 1024  # artifacts this small are unpickled for the list's one-liner

USAGE = ("usage: python -m flowdeck.engines.inspect_task ROOT FLOW RUN_ID STEP TASK_ID "
         "[--preview NAME | --export NAME PATH]")


def time_limit(seconds: float) -> AbstractContextManager[None]:
    """Raise LoadTimeout in the code inside after `seconds` (the task's own SIGALRM
    deadline, engine/alarm.py; POSIX, elsewhere no limit)."""
    return alarm(seconds, lambda: LoadTimeout(f"took more than {seconds:g} s to load and "
                                              "was stopped"))


def open_task(root: str, flow: str, run_id: str, step: str, task_id: str
              ) -> TaskArtifacts | str:
    """The task's artifacts, or what is wrong (a message for the window) when there are none."""
    info = run_info(root, flow, run_id)
    folder = os.path.dirname(str(info.get("file") or ""))
    if folder and os.path.isdir(folder) and folder not in sys.path:
        sys.path.insert(0, folder)  # as `python flow.py` had it: the flow's own modules
    if info.get("engine") == "metaflow":  # artifacts live in Metaflow's datastore
        from flowdeck.engines.inspect_metaflow import open_metaflow_task
        return open_metaflow_task(info, step, task_id)
    from flowdeck.client import ClientError, Run
    try:
        # Whoever made the run, the window's helper reads it: no namespace filter here.
        task = Run(f"{flow}/{run_id}", root=root, _namespace_check=False)[step][task_id]
        artifacts = task.artifacts
    except (ClientError, OSError, ValueError) as exc:
        return str(exc)
    return TaskArtifacts([Listed(a.id, a.type, a.size) for a in artifacts],
                         lambda name: task[name].data, str(info.get("file") or ""))


def inspect_task(root: str, flow: str, run_id: str, step: str, task_id: str,
                 limits: LoadLimits) -> dict[str, Any]:
    """The list: every artifact's name, type and size, and a summary of the small ones."""
    opened = open_task(root, flow, run_id, step, task_id)
    if isinstance(opened, str):
        return {"artifacts": [], "error": opened}
    described = []
    budget_end = time.monotonic() + limits.summary_budget
    for item in opened.listed:
        entry: dict[str, Any] = {"name": item.name, "type": item.type, "size": item.size}
        left = budget_end - time.monotonic()
        if item.size > SUMMARY_BYTES or left <= 0:
            entry["deferred"] = True  # previewed when the user selects it
        else:
            try:
                with time_limit(min(limits.summary_seconds, left)):
                    value = opened.load(item.name)
                    entry["type"] = entry["type"] or type_name(value)
                    entry.update(describe_value(value))
            except Exception as exc:  # unpickling runs the artifact's own code
                entry["load_error"] = load_failure(exc, opened.source)
                entry["preview"] = f"<cannot load: {entry['load_error']}>"
        described.append(entry)
    return {"artifacts": described, "error": None}


def preview_artifact(root: str, flow: str, run_id: str, step: str, task_id: str,
                     name: str, limits: LoadLimits) -> dict[str, Any]:
    """One artifact's bounded preview (`flowdeck.engines.preview`), or why there is none."""
    opened = open_task(root, flow, run_id, step, task_id)
    if isinstance(opened, str):
        return {"name": name, "preview": None, "error": opened}
    try:
        with time_limit(limits.load_seconds):
            value = opened.load(name)
            return {"name": name, "preview": preview_value(value), "error": None}
    except Exception as exc:  # unpickling runs the artifact's own code
        return {"name": name, "preview": None, "error": load_failure(exc, opened.source)}


def export_artifact(root: str, flow: str, run_id: str, step: str, task_id: str, name: str,
                    path: str, limits: LoadLimits) -> dict[str, Any]:
    """Write one artifact's whole value to `path` (its format from the suffix)."""
    answer: dict[str, Any] = {"name": name, "path": path, "format": None, "error": None}
    opened = open_task(root, flow, run_id, step, task_id)
    if isinstance(opened, str):
        return {**answer, "error": opened}
    try:
        with time_limit(limits.load_seconds):
            value = opened.load(name)
    except Exception as exc:  # unpickling runs the artifact's own code
        return {**answer, "error": load_failure(exc, opened.source)}
    try:
        answer["format"] = export_value(value, path)
    except (OSError, ValueError) as exc:
        answer["error"] = str(exc)
    except Exception as exc:  # the value's own writer (to_csv, save) may raise anything
        answer["error"] = f"writing {path} failed: {type(exc).__name__}: {exc}"
    return answer


def run_info(root: str, flow: str, run_id: str) -> dict[str, Any]:
    """The run's record as JSON, or {} when there is none (the client then says what is wrong)."""
    try:
        record = read_run(RunLayout(Path(root), flow), run_id).record
    except InvalidId:
        return {}
    return record.as_json() if record else {}


def refusal(rest: list[str], error: str) -> dict[str, Any]:
    """The answer, in the shape the request expects, of a helper that loads nothing."""
    if not rest:
        return {"artifacts": [], "error": error}
    if rest[0] == "--preview":
        return {"name": rest[1], "preview": None, "error": error}
    return {"name": rest[1], "path": rest[2], "format": None, "error": error}


def main(argv: list[str]) -> int:
    if len(argv) < 5:
        print(USAGE, file=sys.stderr)
        return 2
    root, flow, run_id, step, task_id, *rest = argv
    task = (root, flow, run_id, step, task_id)
    if rest and not (rest[0] == "--preview" and len(rest) == 2
                     or rest[0] == "--export" and len(rest) == 3):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        limits = load_limits()
    except PatienceError as exc:  # the window shows it where the answer would be
        answer = refusal(rest, str(exc))
    else:
        if not rest:
            answer = inspect_task(*task, limits=limits)
        elif rest[0] == "--preview":
            answer = preview_artifact(*task, rest[1], limits=limits)
        else:
            answer = export_artifact(*task, rest[1], rest[2], limits=limits)
    json.dump(answer, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
