"""Metaflow's other decorators: what they mean when a flow runs on this machine.

* `@environment(vars={...})`: the variables are set in the step's process.
* `@secrets(sources=[...])`: inline sources (`{"type": "inline", "options":
  {"env_vars": {...}}}`) are set as variables, as Metaflow's inline provider does;
  other providers cannot be reached locally, so a one-line notice says they are skipped.
* `@parallel` with `self.next(self.step, num_parallel=N)`: N tasks, as Metaflow runs
  @parallel locally; `current.parallel` gives `num_nodes` and `node_index`
  (= `self.input`), task 0 is the control task.
* `@card(type=..., id=..., options=..., timeout=...)`: a card of the task, rendered by
  the engine (`flowdeck.cards`); several per step. Each call is kept in order in the
  step function's `_fd_cards` list (the `card` entry of its decorators is the first
  one, so code that asks "has @card?" keeps working).
* `@kubernetes`, `@batch`, `@conda`, `@pypi`: accepted, and ignored here with a
  one-line notice at the start of the run (they choose where or with which packages a
  step runs, which a local run does not change).
* `@project(name=...)`: a flow decorator; see `project`.
* `@unbounded_test_foreach_internal` on the step after a foreach over an
  `UnboundedForeachInput` (Metaflow's internal test of unbounded foreach): the engine
  runs a control task, which runs no user code and is no input of the join, and one
  worker per item, whose `foreach_stack()` has None for the number of splits (the
  engine's part is in `flowdeck.engine.runtime`). On a plain foreach it changes nothing.

`FlowMutator`, `StepMutator`, `UserStepDecorator` and `user_step_decorator` (Metaflow
2.18's extension API) are in `flowdeck.authoring.mutators`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flowdeck.authoring.definitions import OPEN_DECORATOR_DEFAULTS, STEP_DECORATOR_ARGUMENTS
from flowdeck.authoring.exceptions import DefinitionError, MetaflowException
from flowdeck.authoring.spec import _attach, _step_decorator
from flowdeck.authoring.values import UnboundedForeachInput

#: Set the given environment variables in the step's process.
environment = _step_decorator("environment", STEP_DECORATOR_ARGUMENTS["environment"])
#: Secrets as environment variables (inline sources only, locally).
secrets = _step_decorator("secrets", OPEN_DECORATOR_DEFAULTS["secrets"], open_arguments=True)
#: The step runs as `num_parallel` tasks (see the module docstring).
parallel = _step_decorator("parallel", STEP_DECORATOR_ARGUMENTS["parallel"])
#: @card's arguments and their defaults (Metaflow's, owned by `definitions`).
CARD_DEFAULTS: dict[str, Any] = OPEN_DECORATOR_DEFAULTS["card"]


def card(func: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """`@card` / `@card(type="default"|"blank"|"html"|..., id=, options=, timeout=)`:
    the task gets a card (see flowdeck.cards); a step may have several."""
    def attach(f: Callable[..., Any]) -> Callable[..., Any]:
        attributes = {**CARD_DEFAULTS, **kwargs}
        cards = [*getattr(f, "_fd_cards", []), attributes]
        if not getattr(f, "_fd_decorators", {}).get("card"):
            _attach(f, "card", dict(attributes))
        f._fd_cards = cards  # type: ignore[attr-defined]
        return f

    return attach(func) if func is not None else attach


card._fd_defaults = dict(CARD_DEFAULTS)  # type: ignore[attr-defined]
card._fd_open = True  # type: ignore[attr-defined]


def step_cards(func: Callable[..., Any] | None) -> list[dict[str, Any]]:
    """The @card decorators of a step function, in the order they were applied ([] if
    none, or if a mutator removed its `card` decorator)."""
    decos = getattr(func, "_fd_decorators", {}) or {}
    if "card" not in decos:
        return []
    return list(getattr(func, "_fd_cards", None) or [decos["card"]])


kubernetes = _step_decorator("kubernetes", {}, open_arguments=True)
batch = _step_decorator("batch", {}, open_arguments=True)
conda = _step_decorator("conda", {}, open_arguments=True)
pypi = _step_decorator("pypi", {}, open_arguments=True)
#: Metaflow's internal unbounded-foreach test decorator (see the module docstring).
unbounded_test_foreach_internal = _step_decorator("unbounded_test_foreach_internal", {})

#: Decorators a local run ignores, with the notice it prints once per run.
IGNORED_LOCALLY = {
    "kubernetes": "the step runs on this machine, not on Kubernetes",
    "batch": "the step runs on this machine, not on AWS Batch",
    "conda": "the step runs in this interpreter; Flowdeck does not build conda environments",
    "pypi": "the step runs in this interpreter; Flowdeck does not install packages",
    "conda_base": "the flow runs in this interpreter; Flowdeck does not build conda "
                  "environments",
    "pypi_base": "the flow runs in this interpreter; Flowdeck does not install packages",
    "schedule": "a local run starts when you start it; the schedule applies where the flow "
                "is deployed: Argo Workflows, Step Functions",
    "trigger": "a local run starts when you start it; event triggers apply where the flow "
               "is deployed",
    "trigger_on_finish": "a local run starts when you start it; triggers on other flows "
                         "apply where the flow is deployed",
    "exit_hook": "exit hooks run where the flow is deployed on Argo Workflows, not in a "
                 "local run",
}


def _ignored_flow_decorator(name: str) -> Callable[..., Any]:
    """A flow-level decorator a local run accepts and ignores (`@pypi_base(...)`, used
    bare or called), noted once per run like the step-level ones."""
    def decorator(cls: type | None = None, **_arguments: Any) -> Any:
        def apply(klass: type) -> type:
            noted = getattr(klass, "_fd_ignored_flow_decorators", ())
            klass._fd_ignored_flow_decorators = (*noted, name)  # type: ignore[attr-defined]
            return klass
        return apply(cls) if cls is not None else apply

    decorator.__name__ = name
    return decorator


conda_base = _ignored_flow_decorator("conda_base")
pypi_base = _ignored_flow_decorator("pypi_base")
#: Metaflow's deployment decorators: production flows carry them, and Metaflow's own
#: local runs ignore them too.
schedule = _ignored_flow_decorator("schedule")
trigger = _ignored_flow_decorator("trigger")
trigger_on_finish = _ignored_flow_decorator("trigger_on_finish")
exit_hook = _ignored_flow_decorator("exit_hook")


@contextmanager
def profile(label: str, stats_dict: dict[str, int] | None = None) -> Iterator[None]:
    """Metaflow's `with profile("load"):` timer: prints the block's start and its time in
    ms, or adds the ms to `stats_dict[label]` when given one (printing nothing)."""
    if stats_dict is None:
        print(f"PROFILE: {label} starting")
    start = time.time()
    yield
    took = int((time.time() - start) * 1000)
    if stats_dict is None:
        print(f"PROFILE: {label} completed in {took}ms")
    else:
        stats_dict[label] = stats_dict.get(label, 0) + took

PROJECT_NAME = re.compile(r"^[a-z0-9_]{1,128}$")


class InternalTestUnboundedForeachInput(UnboundedForeachInput):
    """Metaflow's internal test input: wraps any indexable iterable as an unbounded one."""

    NAME = "InternalTestUnboundedForeachInput"

    def __init__(self, iterable: Any):
        self.iterable = iterable

    def __getitem__(self, key: Any) -> Any:
        if key is None:  # Metaflow's control task reads the whole input this way
            return self
        return self.iterable[key]

    def __len__(self) -> int:
        return len(self.iterable)

    def __iter__(self) -> Any:
        return iter(self.iterable)

    def __str__(self) -> str:
        return str(self.iterable)

    def __repr__(self) -> str:
        return f"{self.NAME}({self.iterable})"


def project(cls: type | None = None, *, name: Any = None, branch: str | None = None,
            production: bool | None = None) -> Any:
    """`@project(name=...)` on a flow class: Metaflow's project namespace.

    While the flow runs, `current.project_name`, `current.branch_name`
    (`user.<username>`; `test.<branch>` with `--branch`/`$METAFLOW_BRANCH`;
    `prod` with `--production`/`$METAFLOW_PRODUCTION`), `current.is_production`,
    `current.is_user_branch` and `current.project_flow_name` are set, and the run
    gets the tags `project:<name>` and `project_branch:<branch>`. `name` may be a
    config expression; it is read when the run starts.
    """
    def apply(klass: type) -> type:
        klass._fd_project = {"name": name, "branch": branch,  # type: ignore[attr-defined]
                             "production": production}
        return klass

    return apply(cls) if cls is not None else apply


def project_info(flow_cls: type, branch: str | None, production: bool,
                 user: str) -> dict[str, Any] | None:
    """The `current` fields of a flow's @project (None without one); MetaflowException for a
    bad name. `branch`/`production` come from the command line or the environment."""
    spec = getattr(flow_cls, "_fd_project", None)
    if spec is None:
        return None
    from flowdeck.authoring.configs import resolve_delayed
    name = resolve_delayed(spec["name"])
    if not isinstance(name, str) or not PROJECT_NAME.match(name):
        raise MetaflowException(f"@project on {flow_cls.__name__} needs a name of lowercase "
                                f"letters, digits and underscores (at most 128), not {name!r}. "
                                "Write @project(name='my_project').")
    branch = spec["branch"] if spec["branch"] is not None else branch
    production = bool(spec["production"]) if spec["production"] is not None else production
    if branch and not PROJECT_NAME.match(branch):
        raise MetaflowException(f"The @project branch {branch!r} may contain only lowercase "
                                "letters, digits and underscores. Choose another --branch.")
    if branch:
        branch_name = f"{'prod' if production else 'test'}.{branch}"
    elif production:
        branch_name = "prod"
    else:
        branch_name = f"user.{os.environ.get('METAFLOW_OWNER', user)}"
    return {"project_name": name, "branch_name": branch_name,
            "is_user_branch": not branch and not production, "is_production": production,
            "project_flow_name": f"{name}.{branch_name}.{flow_cls.__name__}"}


def inline_secrets(sources: Any, step: str) -> tuple[dict[str, str], list[str]]:
    """(environment variables, notices) of a step's @secrets sources, read locally."""
    env: dict[str, str] = {}
    skipped: list[str] = []
    for source in sources or []:
        if isinstance(source, dict) and source.get("type") == "inline":
            values = (source.get("options") or {}).get("env_vars") or {}
            env.update({str(k): str(v) for k, v in values.items()})
        else:
            skipped.append(f"@secrets on step `{step}`: source {source!r} is not fetched in a "
                           "local run (only inline sources are); its variables are not set.")
    return env, skipped


def is_decorator(value: Any) -> bool:
    return callable(value) and hasattr(value, "_fd_defaults")


def known_step_decorators() -> dict[str, Callable[..., Any]]:
    """Every step decorator by name, for `--with NAME[:k=v,...]`."""
    from flowdeck.authoring import spec
    found = {n: getattr(spec, n) for n in ("retry", "catch", "timeout", "resources")}
    found.update({n: v for n, v in globals().items() if is_decorator(v)})
    return found


def step_decorator_from_spec(spec: str, where: str, extra: dict[str, Any] | None = None,
                             prefix: str = "") -> tuple[str, Callable[[Any], Any]]:
    """A step decorator named by a Metaflow decospec (`retry`, `retry:times=2`) with its
    arguments (`extra` added), ready to apply: for `--with` and a mutator's
    `add_decorator("retry")`. `where` starts each error (what gave the spec), `prefix`
    goes before the spec its examples show."""
    known = known_step_decorators()
    name, _, args = spec.partition(":")
    name = name.strip()
    deco = known.get(name)
    if deco is None:
        offered = sorted(n for n in known if not n.endswith("_internal"))  # Metaflow's tests'
        raise MetaflowException(f"{where}: there is no step decorator `{name}`; use one of "
                                f"{', '.join(offered)}.")
    kwargs = {**_with_arguments(where, args, prefix), **(extra or {})}
    _check_with_values(where, prefix + name, kwargs, getattr(deco, "_fd_defaults", {}))
    try:
        return name, deco(**kwargs)  # checks the argument names
    except DefinitionError as exc:  # its text, not the line of code that applies it
        raise MetaflowException(f"{where}: {exc.diagnostic.message}") from None
    except TypeError as exc:
        raise MetaflowException(f"{where}: {exc}.") from None


def _check_with_values(where: str, name: str, given: dict[str, Any],
                       defaults: dict[str, Any]) -> None:
    """A number where the decorator takes one (`--with retry:times=abc` failed the run later,
    as an engine error)."""
    for key, value in given.items():
        default = defaults.get(key)
        if isinstance(default, (int, float)) and not isinstance(default, bool) and \
                not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise MetaflowException(f"{where}: {key}={value!r} is not a number; write "
                                    f"for example {name}:{key}={default}.")


def _with_arguments(where: str, text: str, prefix: str) -> dict[str, Any]:
    import ast
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        if not sep or not key.strip().isidentifier():
            raise MetaflowException(f"{where}: `{part}` is not key=value; write for example "
                                    f"{prefix}retry:times=2,minutes_between_retries=0.")
        try:
            out[key.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = raw.strip()
    return out
