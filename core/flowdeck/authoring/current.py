"""`current`: facts about the task that is running, as Metaflow's `current` object."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from flowdeck.authoring.values import username

__all__ = ["username"]  # also read from here by older code


class Parallel(NamedTuple):
    """`current.parallel` in a step of a `num_parallel` fan-out (Metaflow's @parallel)."""

    main_ip: str
    num_nodes: int
    node_index: int
    control_task_id: str | None


class Current:
    """Read-only view of the running task; every attribute is None outside a task.

    Run-level facts (project, tags, namespace) are set once by the engine before
    the run's tasks start (`_set_run`), so the orchestrator, where dynamic
    parameter defaults are evaluated, and every task see the same values; each
    task adds its own (`_set`). `current.task` and `current.run` are client
    objects, built only when asked for.
    """

    _FIELDS = ("flow_name", "run_id", "step_name", "task_id", "retry_count",
               "origin_run_id", "username", "pathspec", "parameter_names",
               "is_running_flow", "namespace", "tempdir")

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._run_values: dict[str, Any] = {}

    def _set_run(self, **values: Any) -> None:
        """Facts that hold for the whole run (project, tags, namespace, the store's root)."""
        self._run_values = dict(values)
        self._values = {**self._run_values, **{k: v for k, v in self._values.items()
                                               if k not in self._run_values}}

    def _set(self, **values: Any) -> None:
        self._values = {**self._run_values, **values}
        flow, run, step, task = (values.get(k) for k in ("flow_name", "run_id", "step_name",
                                                          "task_id"))
        if flow and run and step and task:
            self._values["pathspec"] = f"{flow}/{run}/{step}/{task}"
        self._values["is_running_flow"] = bool(flow)
        if "username" not in self._values:  # the run's (`_set_run`): no lookup per task
            self._values["username"] = username()
        self._values.setdefault("namespace", f"user:{self._values['username']}")
        # Metaflow's configured temporary folder ($METAFLOW_TEMPDIR, "." by default)
        self._values.setdefault("tempdir", os.environ.get("METAFLOW_TEMPDIR") or ".")

    def _update(self, **values: Any) -> None:
        self._values.update(values)

    def _clear(self) -> None:
        self._values = {}
        self._run_values = {}

    @property
    def tags(self) -> set[str] | None:
        """The run's user tags (`--tag`), a new set each time (None outside a run)."""
        tags = self._values.get("tags")
        return set(tags) if tags is not None else None

    @property
    def graph(self) -> dict[str, Any]:
        """The running flow's graph as the dict Metaflow stores for a run (its steps, their
        decorators and `next`, the nested `graph_structure`, parameters, constants)."""
        flow_cls = self._values.get("_flow_class")
        if flow_cls is None:  # Metaflow raises the same outside a run
            raise RuntimeError("current.graph is available only in a running step.")
        from flowdeck.authoring.spec import graph_info
        return graph_info(flow_cls)

    @property
    def task(self) -> Any:
        """The running task as a client `Task` (None outside a task)."""
        return self._client_object("Task", self._values.get("pathspec"))

    @property
    def run(self) -> Any:
        """The running run as a client `Run` (None outside a run)."""
        flow, run = self._values.get("flow_name"), self._values.get("run_id")
        return self._client_object("Run", f"{flow}/{run}" if flow and run else None)

    def _client_object(self, kind: str, pathspec: str | None) -> Any:
        if not pathspec:
            return None
        from flowdeck import client  # a step that never asks never loads the client
        return getattr(client, kind)(pathspec, root=self._values.get("store_root"),
                                     _namespace_check=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._FIELDS:
            return self._values.get(name, False if name == "is_running_flow" else None)
        if name in self._values:
            return self._values[name]
        if name == "parallel":  # Metaflow's outside @parallel: one node, this one
            return Parallel("127.0.0.1", 1, 0, None)
        if name == "card":  # set by the engine in a step with @card (flowdeck.cards.runtime)
            raise AttributeError("current.card exists only while a step decorated with @card "
                                 "runs. Add @card to the step (see docs/cards.md).")
        raise AttributeError(f"current has no attribute {name!r}")

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return f"<current {self._values.get('pathspec') or 'outside a task'}>"

    def __reduce__(self) -> str:
        """Pickled as a reference to the module's one `current`: a flow class shipped by value
        to another process (a Dask worker) must read that process's task, not a copy."""
        return "current"


current = Current()
