"""`current`: facts about the task that is running, as Metaflow's `current` object."""

from __future__ import annotations

from typing import Any


class Current:
    """Read-only view of the running task; every attribute is None outside a task."""

    _FIELDS = ("flow_name", "run_id", "step_name", "task_id", "retry_count",
               "origin_run_id", "username", "pathspec", "parameter_names",
               "is_running_flow", "namespace", "tempdir")

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def _set(self, **values: Any) -> None:
        self._values = dict(values)
        flow, run, step, task = (values.get(k) for k in ("flow_name", "run_id", "step_name",
                                                          "task_id"))
        if flow and run and step and task:
            self._values["pathspec"] = f"{flow}/{run}/{step}/{task}"
        self._values["is_running_flow"] = bool(flow)

    def _clear(self) -> None:
        self._values = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._FIELDS:
            return self._values.get(name, False if name == "is_running_flow" else None)
        if name in self._values:
            return self._values[name]
        raise AttributeError(f"current has no attribute {name!r}")

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return f"<current {self._values.get('pathspec') or 'outside a task'}>"


current = Current()
