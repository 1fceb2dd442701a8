"""What a run needs settled before its first task starts, beyond parameters.

The engine calls `begin_run` in the orchestrator's process, before it forks any
task, so every task inherits the result:

* the flow's configs are read (`configs.read_configs`) and installed, so
  delayed expressions can be evaluated;
* FlowMutators and StepMutators run, `--with` decorators are added, and every
  step decorator's delayed arguments are evaluated;
* @project gives `current.project_name` & co. and the `project:` tags;
* the run's tags: `--tag` (user tags) and the system tags Metaflow sets
  (`user:<name>`, `runtime:dev`, `python_version:...`, `date:...`);
* each step's environment (@environment, inline @secrets), applied by
  `before_task` in the task's own process, which also sets `current.parallel`.

Decorators a local run ignores (@kubernetes, @card, ...) get a one-line notice.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import field
from typing import Any

from flowdeck.authoring import configs as configs_mod
from flowdeck.authoring.current import Parallel, current, username
from flowdeck.authoring.exceptions import MetaflowException
from flowdeck.authoring.spec import flow_constants, flow_steps, step_decorators
from flowdeck.authoring.values import PARALLEL_VAR
from flowdeck.compiled_dataclasses import dataclass

#: Metaflow's variables for `--branch` and `--production` (its top-level options).
BRANCH_ENV = "METAFLOW_BRANCH"
PRODUCTION_ENV = "METAFLOW_PRODUCTION"
_TRUE = {"1", "true", "yes", "y", "on"}


@dataclass
class RunSetup:
    """What the command line adds to a run beyond its parameters."""

    tags: list[str] = field(default_factory=list)
    with_decorators: list[str] = field(default_factory=list)
    config_files: dict[str, str] = field(default_factory=dict)
    config_values: dict[str, str] = field(default_factory=dict)
    branch: str | None = None
    production: bool | None = None
    max_num_splits: int | None = None
    quiet: bool = False
    #: `run --namespace NS`: the client's namespace in the steps ("" : every run), as in
    #: Metaflow; None: the default, user:NAME.
    namespace: str | None = None


@dataclass
class RunContext:
    """What `begin_run` settled: configs by attribute (stored like parameters), tags."""

    config_values: dict[str, Any]
    user_tags: list[str]
    system_tags: list[str]
    notices: list[str]


#: step -> environment variables for its tasks (set by begin_run, read by before_task).
_step_env: dict[str, dict[str, str]] = {}
_max_num_splits: int | None = None


def begin_run(flow_cls: type, setup: RunSetup, store_root: str,
              origin_configs: dict[str, Any] | None = None) -> RunContext:
    """Settle configs, decorators, project and tags for a run of `flow_cls` (module doc)."""
    global _max_num_splits
    config_by_name = _read_configs(flow_cls, setup, origin_configs)
    configs_mod.install(config_by_name)
    if _has_mutators(flow_cls):
        from flowdeck.authoring.mutators import apply_mutators
        apply_mutators(flow_cls)
    add_with_decorators(flow_cls, setup.with_decorators)
    notices = resolve_step_decorators(flow_cls)
    user = username()
    project = _project(flow_cls, setup, user)
    user_tags = _checked_tags(setup.tags)
    system_tags = _system_tags(user, project)
    chosen = f"user:{user}" if setup.namespace is None else (setup.namespace or None)
    current._set_run(**(project or {}), tags=list(user_tags), username=user,
                     namespace=chosen, store_root=store_root)
    if setup.namespace is not None:  # the tasks are forks: they inherit the client's choice
        from flowdeck.client import namespace
        namespace(chosen)
    _max_num_splits = setup.max_num_splits
    attrs = {c.name: attr for attr, c in configs_mod.flow_configs(flow_cls).items()}
    return RunContext({attrs[n]: v for n, v in config_by_name.items()}, user_tags, system_tags,
                      notices)


def _checked_tags(tags: list[str]) -> list[str]:
    if not tags:
        return []
    from flowdeck.client import check_tags  # only a run given --tag pays for the client
    try:
        return check_tags(tags)
    except MetaflowException as exc:
        raise MetaflowException(f"--tag: {exc}") from None


def _read_configs(flow_cls: type, setup: RunSetup,
                  origin: dict[str, Any] | None) -> dict[str, Any]:
    """Configs by name: a resumed run keeps its origin's; a new run reads them now."""
    declared = configs_mod.flow_configs(flow_cls)
    if origin is not None:
        return {c.name: origin.get(attr) for attr, c in declared.items()}
    if not declared and not setup.config_files and not setup.config_values:
        return {}
    return configs_mod.read_configs(flow_cls, configs_mod.ConfigSources(
        dict(setup.config_files), dict(setup.config_values)))


def _has_mutators(flow_cls: type) -> bool:
    return any("_fd_flow_mutators" in k.__dict__ for k in flow_cls.__mro__) or any(
        hasattr(f, "_fd_mutators") for f in flow_steps(flow_cls).values())


def _project(flow_cls: type, setup: RunSetup, user: str) -> dict[str, Any] | None:
    if getattr(flow_cls, "_fd_project", None) is None:
        return None
    from flowdeck.authoring.decorators import project_info
    branch = setup.branch if setup.branch is not None else (os.environ.get(BRANCH_ENV) or None)
    production = setup.production
    if production is None:
        production = os.environ.get(PRODUCTION_ENV, "").strip().lower() in _TRUE
    return project_info(flow_cls, branch, production, user)


def _system_tags(user: str, project: dict[str, Any] | None) -> list[str]:
    from flowdeck import __version__
    python = ".".join(map(str, sys.version_info[:3]))
    tags = [f"user:{user}", "runtime:dev", f"python_version:{python}",
            f"date:{time.strftime('%Y-%m-%d')}", f"flowdeck_version:{__version__}"]
    if project:
        tags += [f"project:{project['project_name']}",
                 f"project_branch:{project['branch_name']}"]
    return tags


# -- step decorators ------------------------------------------------------------------------

def add_with_decorators(flow_cls: type, specs: list[str]) -> None:
    """`--with NAME[:key=value,...]`: add the decorator to every step that lacks it."""
    for spec in specs:
        from flowdeck.authoring.decorators import step_decorator_from_spec
        name, decorate = step_decorator_from_spec(spec, f"--with {spec}", prefix="--with ")
        for func in flow_steps(flow_cls).values():
            if name not in step_decorators(func):
                decorate(func)


#: Step decorators whose meaning the engine reads itself (no set-up here).
_ENGINE_DECORATORS = frozenset({"retry", "catch", "timeout", "resources",
                                "unbounded_test_foreach_internal"})


def resolve_step_decorators(flow_cls: type) -> list[str]:
    """Evaluate delayed arguments of every step decorator, check them, and note what a local
    run ignores; returns those notices. Also records each step's environment."""
    notices: list[str] = []
    ignored: dict[str, list[str]] = {}
    _step_env.clear()
    for name, func in flow_steps(flow_cls).items():
        decos = getattr(func, "_fd_decorators", None)
        if not decos:
            continue
        for deco, attributes in list(decos.items()):
            if any(configs_mod.has_delayed(k) or configs_mod.has_delayed(v) or
                   str(k).startswith(configs_mod.UNPACK_KEY) for k, v in attributes.items()):
                decos[deco] = configs_mod.unpack_delayed(attributes)
        if set(decos) - _ENGINE_DECORATORS:
            notices += _step_setup(name, decos, ignored)
    from_ignored = []
    flow_level = sorted(set(getattr(flow_cls, "_fd_ignored_flow_decorators", ())))
    if ignored or flow_level:
        from flowdeck.authoring.decorators import IGNORED_LOCALLY
        from_ignored = [f"@{deco} on {flow_cls.__name__}: ignored in a local run "
                        f"({IGNORED_LOCALLY[deco]})." for deco in flow_level]
        from_ignored += [f"@{deco} on {', '.join(f'`{s}`' for s in steps)}: ignored in a local "
                         f"run ({IGNORED_LOCALLY[deco]})." for deco, steps in sorted(ignored.items())]
    return notices + from_ignored


def _step_setup(name: str, decos: dict[str, Any], ignored: dict[str, list[str]]) -> list[str]:
    """A step's environment (@environment, inline @secrets); notes what a local run ignores."""
    from flowdeck.authoring.decorators import IGNORED_LOCALLY, inline_secrets
    for deco in decos:
        if deco in IGNORED_LOCALLY:
            ignored.setdefault(deco, []).append(name)
    env = {str(k): str(v) for k, v in ((decos.get("environment") or {}).get("vars")
                                       or {}).items()}
    secret_env, skipped = inline_secrets((decos.get("secrets") or {}).get("sources"), name)
    env.update(secret_env)
    if env:
        _step_env[name] = env
    return skipped


def constant_values(flow_cls: type) -> dict[str, Any]:
    """The flow's class constants that can be stored as artifacts (picklable ones)."""
    import pickle
    out = {}
    for name, value in flow_constants(flow_cls).items():
        try:
            pickle.dumps(value, protocol=5)
        except Exception:  # noqa: BLE001 - an unpicklable class attribute stays a class attribute
            continue
        out[name] = value
    return out


# -- in the task's process ----------------------------------------------------------------

def before_task(step: str, task_id: str, frames: tuple[Any, ...]) -> None:
    """Set up the task's own process: its step's environment and `current.parallel`."""
    env = _step_env.get(step)
    if env:
        os.environ.update(env)
    foreach = [f for f in frames if f.kind == "foreach"]
    if foreach and foreach[-1].var == PARALLEL_VAR:
        frame = foreach[-1]
        # The engine numbers a fan-out's tasks consecutively, so node 0's id is known here.
        control = str(int(task_id) - frame.index) if task_id.isdigit() else None
        current._update(parallel=Parallel("127.0.0.1", frame.num_splits, frame.index, control))


def is_parallel_worker(frames: tuple[Any, ...]) -> bool:
    """A task of a `num_parallel` fan-out other than node 0 (Metaflow's worker tasks, which
    need not call self.next(): the control task, node 0, decides the transition)."""
    foreach = [f for f in frames if f.kind == "foreach"]
    return bool(foreach) and foreach[-1].var == PARALLEL_VAR and foreach[-1].index > 0


def max_num_splits() -> int | None:
    """`--max-num-splits`: the most tasks one foreach may start (None: no limit)."""
    return _max_num_splits


def print_notices(notices: list[str]) -> None:
    for notice in notices:
        print(f"flowdeck: {notice}", file=sys.stderr)


def export_run_state() -> dict[str, Any]:
    """What `begin_run` settled in this process, for a task that does not inherit it by
    fork (a remote worker's): each step's environment, --max-num-splits, `current`'s
    run-level values and the configs. Plain values, picklable."""
    return {"step_env": {k: dict(v) for k, v in _step_env.items()},
            "max_num_splits": _max_num_splits, "run_values": dict(current._run_values),
            "configs": configs_mod.resolved()}


def adopt_run_state(state: dict[str, Any]) -> None:
    """In a remote task's process: take the run state `export_run_state` gave."""
    global _max_num_splits
    _step_env.clear()
    _step_env.update(state.get("step_env") or {})
    _max_num_splits = state.get("max_num_splits")
    current._set_run(**(state.get("run_values") or {}))
    configs_mod.install(state.get("configs"))
