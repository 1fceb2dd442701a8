"""The authoring API: `FlowSpec`, `@step`, `Parameter` and the step decorators.

Names and behaviour follow Metaflow so that a Metaflow flow runs after
changing only its import line. The engine itself lives in `runtime.py`;
this module only records what the user declared and gives `self` its
Metaflow semantics (lazy artifacts, `self.next`, `self.input`, joins).
"""

from __future__ import annotations

import json
import os
import sys
from collections import namedtuple
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from flowdeck.analysis.parameter_text import BUILT_IN_KINDS, convert_text
from flowdeck.authoring import runner
from flowdeck.authoring.definitions import (
    ARGUMENT_CHECKS,
    PARAMETER_NAME_MESSAGE,
    READ_ONLY_FLOW_ATTRIBUTES,
    STEP_DECORATOR_ARGUMENTS,
    custom_start_end_message,
    separator_message,
    unknown_arguments_message,
)
from flowdeck.authoring.exceptions import DefinitionError, MergeArtifactsException
from flowdeck.engine.taskstate import StepContext

__all__ = ["MergeArtifactsException"]  # re-exported: flows import it from here or from flowdeck

if TYPE_CHECKING:  # pragma: no cover
    from flowdeck.client import Run

_MISSING = object()
#: The artifact `self.next(..., num_parallel=N)` fans out over (Metaflow's name for it).
from flowdeck.authoring.values import PARALLEL_VAR  # noqa: E402  (re-exported)

#: One enclosing foreach, as Metaflow's `self._foreach_stack` lists it (its field names).
ForeachFrame = namedtuple("ForeachFrame", ["step", "var", "num_splits", "index", "value"])
#: `self.__dict__` key of {artifact: (BlobRef it was loaded from, id of the loaded value)}:
#: lets the task keep the reference of an artifact the step only read.
LOADED = "_fd_loaded"


# -- decorators -------------------------------------------------------------

def _attach(func: Callable[..., Any], name: str, attributes: dict[str, Any]) -> Callable[..., Any]:
    decos = dict(getattr(func, "_fd_decorators", {}))
    decos[name] = attributes
    func._fd_decorators = decos  # type: ignore[attr-defined]
    return func


def step(func: Callable[..., Any] | None = None, *, start: bool = False, end: bool = False,
         node_info: dict[str, Any] | None = None) -> Any:
    """Mark a method as a step of the flow. The method itself is not wrapped.

    `name` is set as in Metaflow, whose `for step in flow: step.name` reads it. Metaflow
    2.19's keywords are taken: `node_info` is kept on the method, `start`/`end` (another
    step made the first or last) are refused with what to write instead.
    """
    for keyword, given in (("start", start), ("end", end)):
        if given:
            raise DefinitionError(custom_start_end_message(keyword))
    if func is None:  # `@step()`, `@step(node_info={...})`
        return lambda method: _mark_step(method, node_info)
    return _mark_step(func, node_info)


def _mark_step(func: Callable[..., Any], node_info: dict[str, Any] | None) -> Callable[..., Any]:
    if node_info is not None:
        func.node_info = node_info  # type: ignore[attr-defined]
    func.is_step = True  # type: ignore[attr-defined]
    func.name = func.__name__  # type: ignore[attr-defined]
    if not hasattr(func, "_fd_decorators"):
        func._fd_decorators = {}  # type: ignore[attr-defined]
    return func


#: Keyword arguments `**config` unpacks to (see configs.UNPACK_KEY); checked once expanded.
_UNPACKED = "_unpacked_delayed_"


def _step_decorator(name: str, defaults: dict[str, Any],
                    open_arguments: bool = False) -> Callable[..., Any]:
    """Build a decorator usable bare (`@retry`) or called (`@retry(times=2)`).

    `open_arguments` accepts any keyword (decorators kept only for compatibility,
    whose arguments Flowdeck does not read).
    """

    def decorator(func: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        unknown = {k for k in kwargs if not k.startswith(_UNPACKED)} - set(defaults)
        if unknown and not open_arguments:
            raise DefinitionError(unknown_arguments_message(name, sorted(unknown)))
        attributes = {**defaults, **kwargs}
        check = ARGUMENT_CHECKS.get(name)
        problem = check(attributes) if check is not None else None
        if problem:
            raise DefinitionError(problem)
        if func is not None:
            return _attach(func, name, attributes)
        return lambda f: _attach(f, name, attributes)

    decorator.__name__ = name
    decorator.__doc__ = f"Metaflow-compatible @{name}; arguments: {', '.join(defaults)}."
    decorator._fd_defaults = dict(defaults)  # type: ignore[attr-defined]
    decorator._fd_open = open_arguments  # type: ignore[attr-defined]
    return decorator


#: Retry a failed task up to `times` more times (arguments: `definitions`).
retry = _step_decorator("retry", STEP_DECORATOR_ARGUMENTS["retry"])
#: After the last attempt fails, store the exception in `var` and carry on.
catch = _step_decorator("catch", STEP_DECORATOR_ARGUMENTS["catch"])
#: Fail (and maybe retry) a task that runs longer than the given time.
timeout = _step_decorator("timeout", STEP_DECORATOR_ARGUMENTS["timeout"])
#: Metaflow's resource request. Run locally, `memory` (MB) caps what each task may
#: allocate (a MemoryError past it) and `cpu` counts against --max-workers; the rest is
#: accepted for compatibility and not enforced here.
resources = _step_decorator("resources", STEP_DECORATOR_ARGUMENTS["resources"])


def step_decorators(func: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    return dict(getattr(func, "_fd_decorators", {}))


# -- parameters ---------------------------------------------------------------

class JSONType:
    """Parameter type whose command-line value is parsed as JSON."""

    name = "JSON"


class Parameter:
    """A flow parameter: set on the command line (`--name value`) or by `run(name=...)`.

    Inside a step it reads as its value; assigning to it is an error.
    """

    def __init__(self, name: str = "", default: Any = _MISSING, type: Any = None,
                 help: str | None = None, required: bool = False,
                 show_default: bool = True, separator: str | None = None, **kwargs: Any):
        if not isinstance(name, str) or not name:
            raise DefinitionError(PARAMETER_NAME_MESSAGE)
        self.name = name
        self.separator = separator  # a str value is split into a list, as in Metaflow
        #: `--name a --name b` gives the tuple ('a', 'b') (Metaflow passes `multiple` to
        #: click): each value is of `type`, and no value at all gives ().
        self.multiple = bool(kwargs.pop("multiple", False))
        self.default = None if default is _MISSING else default
        self.has_default = default is not _MISSING and default is not None
        self._given_type = type
        self._default_type = self._type_of(self.default)
        if separator and not self._splits_text(type):
            raise DefinitionError(separator_message(name, typed=type is not None))
        self.help = help or ""
        self.required = bool(required)
        self.show_default = show_default
        self.extra = kwargs
        self.attribute = name

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        ctx = obj.__dict__.get("_fd_ctx")
        if ctx is not None and self.attribute in ctx.params:
            return ctx.params[self.attribute]
        return self.default_value(owner.__name__ if owner else "")

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"`{self.attribute}` is a Parameter and parameters are "
                             "read-only; store the value under another name.")

    @property
    def type(self) -> Any:
        """The given type, else the default's, as Metaflow's `_get_type`: a default that is
        a `config_expr` has the type of its value once the run's configs are read (a config
        of 0.7 makes a float parameter, so `--p false` is False for a bool), str before."""
        if self._given_type is not None:
            return self._given_type
        if self._default_type is None:  # a delayed default: typed by its value
            from flowdeck.authoring import configs
            if configs.resolved() is not None:
                try:
                    return self._type_of(configs.resolve_delayed(self.default)) or str
                except Exception:  # noqa: BLE001 (reading the default says it: _delayed_value)
                    return str
            return str
        return self._default_type

    @type.setter
    def type(self, value: Any) -> None:
        self._given_type = value

    @property
    def typed_by_config(self) -> bool:
        """Whether a `config_expr` default decides the type (none given): known only once
        the run's configs are read (help, built before, cannot say it)."""
        return self._given_type is None and self._default_type is None

    def _splits_text(self, given_type: Any) -> bool:
        """Whether `separator=` may split this parameter: its type is str, given or by its
        default (a default computed or read from a config is not held against it)."""
        if given_type is not None:
            return given_type is str
        return self._default_type in (str, None)

    def _type_of(self, default: Any) -> Any:
        """The type a default gives (a multiple's: its first item's); None for a delayed
        `config_expr` default, whose type is its value's."""
        if is_config_expr(default):
            return None
        if self.multiple and isinstance(default, (list, tuple)):  # the items' type, as click
            default = default[0] if default else None
        return builtin_type(default) if default is not None and not callable(default) else str

    @property
    def kind(self) -> str:
        if self.type is JSONType or getattr(self.type, "name", None) == "JSON":
            return "json"
        return getattr(self.type, "__name__", "str")

    def default_value(self, flow_name: str = "") -> Any:
        """The default, called if it is a function; a JSONType default string is parsed.

        Metaflow passes a default through the parameter's type, so a JSONType
        default written as '{"a": 1}' reads as a dict in the step, not a str.
        """
        value = self.default
        if is_config_expr(value):  # its value, plain: a dict, not a ConfigValue records refuse
            value = self._delayed_value(value)
        elif callable(value) and not isinstance(value, type):
            value = self._call_default(value, flow_name)
        if self.multiple:
            return self.convert_many([] if value is None else value)
        if self.kind == "json" and isinstance(value, (str, bytes)):
            return self._parse_json_default(value)
        return self._typed_default(value)

    def _delayed_value(self, expression: Any) -> Any:
        """A `config_expr` default's value; its failure is the file's mistake, said with
        the expression (it read "its default, its default function(), raised ...")."""
        from flowdeck.authoring import configs
        try:
            return configs.resolve_delayed(expression)
        except Exception as exc:  # noqa: BLE001 (the user's expression: any exception)
            from flowdeck.analysis.diagnostics import UsageError
            raise UsageError(f"Parameter `{self.name}`: its default {expression!r} could not "
                             f"be read: {exc} Fix the expression, or give --{self.name} on "
                             "the command line.") from None

    def _call_default(self, func: Callable[..., Any], flow_name: str) -> Any:
        """A default function's value; its exception is the file's mistake, said with the
        function's line (Metaflow: "Parameter field failed"), not an engine traceback."""
        try:
            return func(*_default_arguments(func, self.name, flow_name))
        except Exception as exc:  # noqa: BLE001 (the user's code: any exception)
            import traceback

            from flowdeck.analysis.diagnostics import UsageError
            code = getattr(func, "__code__", None)
            frames = [f for f in traceback.extract_tb(exc.__traceback__)
                      if code is not None and f.filename == code.co_filename]
            where = (f" ({frames[-1].filename}, line {frames[-1].lineno}: "
                     f"{(frames[-1].line or '').strip()})" if frames else "")
            name = getattr(func, "__name__", "its default function")
            raise UsageError(f"Parameter `{self.name}`: its default, {name}(){where}, raised "
                             f"{type(exc).__name__}: {exc}. Fix the function, or give "
                             f"--{self.name} on the command line.") from None

    def _typed_default(self, value: Any) -> Any:
        """A default of a built-in type passed through that type, as Metaflow (click) does:
        `default="0.01", type=float` reads as 0.01 and `default=1, type=float` as 1.0 in a
        step. A default the type refuses is the file's mistake, named as such."""
        kind = self.kind
        if value is None or kind not in ("int", "float", "bool", "str") or \
                isinstance(value, {"int": int, "float": float, "bool": bool, "str": str}[kind]):
            return value
        if kind == "str" or (kind != "bool" and isinstance(value, (int, float))):
            return {"int": int, "float": float, "str": str}[kind](value)
        if not isinstance(value, str):
            return value
        try:
            return self.convert(value)
        except ValueError:
            from flowdeck.analysis.diagnostics import UsageError
            raise UsageError(f"Parameter `{self.name}` has type {kind}, but its default "
                             f"{value!r} is not a valid {kind}. Fix the default in the flow "
                             f"file (for example default={self._example()}).") from None

    def _example(self) -> str:
        return {"int": "10", "float": "0.01", "bool": "False"}.get(self.kind, "'text'")

    def _parse_json_default(self, text: str | bytes) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            from flowdeck.analysis.diagnostics import UsageError
            raise UsageError(f"Parameter `{self.name}` has type JSONType, but its default "
                             f"{text!r} is not valid JSON ({exc}). Write the default as a "
                             "JSON string such as '{\"a\": 1}', or as a Python dict or "
                             "list.") from None

    def convert_many(self, raw: Any) -> tuple[Any, ...]:
        """A `multiple` parameter's value: a tuple of `convert`ed items. A string is one
        environment variable's worth, split at white space as click splits it; a single
        non-sequence value (a scalar default) is one item."""
        if isinstance(raw, str):
            items: Any = raw.split()
        elif isinstance(raw, (list, tuple)):
            items = raw
        else:
            items = [raw]
        return tuple(self._typed_default(self.convert(item)) for item in items)

    def convert(self, raw: Any) -> Any:
        """Turn a command-line string (or a Python value) into this parameter's type."""
        if not isinstance(raw, str):
            return raw
        kind = self.kind
        try:
            if kind in BUILT_IN_KINDS:
                return convert_text(kind, raw)
            return self.type(raw)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid value for --{self.name}: {raw!r} is not a valid "
                             f"{kind} ({exc})") from None

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, default={self.default!r}, type={self.kind})"


def _default_arguments(func: Any, name: str, flow_name: str) -> tuple[Any, ...]:
    """What a function default is called with: Metaflow's context, unless it takes nothing.

    Asked of the signature, not by calling twice: a default function may have
    side effects and must run exactly once.
    """
    import inspect
    try:
        takes_none = not inspect.signature(func).parameters
    except (TypeError, ValueError):
        takes_none = False
    if takes_none:
        return ()
    from flowdeck.authoring import configs
    from flowdeck.authoring.values import username
    values = configs.resolved() or {}
    return (SimpleNamespace(flow_name=flow_name, parameter_name=name, user_name=username(),
                            logger=print, ds_type="local",
                            configs=SimpleNamespace(**{k: configs.ConfigValue(v) if
                                                       isinstance(v, dict) else v
                                                       for k, v in values.items()})),)


def is_config_expr(value: Any) -> bool:
    """Whether `value` is a `config_expr(...)` (its module is imported by config_expr)."""
    configs = sys.modules.get("flowdeck.authoring.configs")
    return configs is not None and isinstance(value, configs.DelayEvaluator)


def builtin_type(value: Any) -> type:
    for candidate in (bool, int, float, str):
        if isinstance(value, candidate):
            return candidate
    return JSONType if isinstance(value, (list, dict)) else str


# -- joins --------------------------------------------------------------------

class Inputs:
    """The `inputs` of a join: iterable, indexable, and `inputs.step_name` for static splits."""

    def __init__(self, flows: list["FlowSpec"]):
        self._flows = flows

    def __iter__(self) -> Iterator["FlowSpec"]:
        return iter(self._flows)

    def __len__(self) -> int:
        return len(self._flows)

    def __getitem__(self, index: int) -> "FlowSpec":
        return self._flows[index]

    def __getattr__(self, name: str) -> "FlowSpec":
        if name.startswith("_"):
            raise AttributeError(name)
        for flow in self._flows:
            if flow._fd_ctx.step == name:
                return flow
        steps = ", ".join(f._fd_ctx.step for f in self._flows)
        raise AttributeError(f"inputs has no branch named {name!r}; the branches are {steps}")


class SwitchConditionError(RuntimeError):
    """A switch's condition artifact is missing or names no case (Metaflow raises a
    RuntimeError there too); the message names the step, the value and the cases."""


# -- the flow -----------------------------------------------------------------

class _YieldsToArtifact:
    """A method of Flowdeck's FlowSpec that Metaflow's has not (`run`): in a step, an
    artifact of that name stored by an earlier step is what `self.run` gives, as on
    Metaflow (`self.run = wandb.init()` is common). Without this the method, found on
    the class first, hid the artifact: the step read a bound method, silently."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, flow: Any, owner: type | None = None) -> Any:
        if flow is None:
            return self.method
        ctx = flow.__dict__.get("_fd_ctx")
        if ctx is not None and self.name in ctx.artifact_refs:
            return flow.__getattr__(self.name)  # loads it into the instance, which then wins
        return self.method.__get__(flow, owner)


class FlowSpec:
    """Base class of flows. Subclass it, add `@step` methods from `start` to `end`.

    `python flow.py` runs the flow, whether the file ends with
    `MyFlow().run()` or with Metaflow's bare `MyFlow()`.
    """

    def __init__(self, use_cli: bool = True):
        if use_cli:
            runner.entry().bare_script_call(type(self))

    # -- running ----------------------------------------------------------

    @_YieldsToArtifact
    def run(self, **params: Any) -> "Run":
        """Run the flow and return its `Run` handle.

        In the flow's own script this reads the command line (`run`, `show`,
        `resume`, `--param value`); from any other program it reads only
        `params`, never that program's `sys.argv`.
        """
        return runner.entry().run_flow_class(type(self), params)

    @property
    def name(self) -> str:
        return type(self).__name__

    # -- inside a step ----------------------------------------------------------

    def next(self, *steps: Any, foreach: str | None = None,
             num_parallel: int | None = None, condition: str | None = None,
             **kwargs: Any) -> None:
        """Say which step(s) run after this one; the last statement of every step but `end`.

        `num_parallel=N` (Metaflow's @parallel) runs the next step as N tasks: it
        is a foreach over `range(N)` kept in the artifact `_parallel_ubf_iter`, the
        name Metaflow uses, so joins, resume and the client treat it as one.

        `self.next({"a": self.x, "b": self.y}, condition="artifact")` is a switch
        (Metaflow 2.18): the artifact's value, read now, picks the one step that
        runs next; a case may name this step itself, which runs it again.
        """
        ctx = self.__dict__.get("_fd_ctx")
        if ctx is None or ctx.read_only:
            raise RuntimeError("self.next() can only be called inside a running step.")
        caller = sys._getframe(1)
        ctx.next_at = (caller.f_code.co_filename, caller.f_lineno)
        if kwargs:
            raise TypeError(f"self.next() got unsupported argument(s) {sorted(kwargs)}; "
                            "Flowdeck supports plain transitions, foreach=, num_parallel= "
                            "and condition=.")
        if condition is not None or (len(steps) == 1 and isinstance(steps[0], dict)):
            chosen = self._switch_case(ctx, steps, condition, foreach, num_parallel)
            ctx.next_calls += 1
            if ctx.next_calls > 1:
                raise RuntimeError(f"Step `{ctx.step}` called self.next() more than once. "
                                   "Call it exactly once, as the last statement of the step.")
            ctx.transition = ([chosen], None)
            return
        if num_parallel is not None:
            if foreach is not None or not isinstance(num_parallel, int) or num_parallel < 1:
                raise TypeError(f"Step `{ctx.step}`: self.next(..., num_parallel=N) takes a "
                                f"positive int N and no foreach=; got {num_parallel!r}.")
            self._parallel_ubf_iter = list(range(num_parallel))
            foreach = PARALLEL_VAR
        ctx.next_calls += 1
        if ctx.next_calls > 1:
            raise RuntimeError(f"Step `{ctx.step}` called self.next() more than once. "
                               "Call it exactly once, as the last statement of the step.")
        names = []
        for target in steps:
            name = getattr(target, "__name__", None)
            if not callable(target) or not getattr(target, "is_step", False) or name is None:
                raise TypeError(f"self.next() takes steps such as self.{ctx.step}; got "
                                f"{target!r}.")
            names.append(name)
        ctx.transition = (names, foreach)

    def _switch_case(self, ctx: Any, steps: tuple[Any, ...], condition: str | None,
                     foreach: str | None, num_parallel: int | None) -> str:
        """The step a switch picks: the case the condition artifact's value names.

        Raised errors name the step, the value and the cases (Metaflow checks the same).
        """
        step = ctx.step
        form = ('self.next({"case": self.step_a, "other": self.step_b}, '
                'condition="artifact_name")')
        if len(steps) != 1 or not isinstance(steps[0], dict) or not steps[0]:
            raise TypeError(f"Step `{step}`: with condition=, self.next() takes one non-empty "
                            f"dict of cases, as {form}.")
        if condition is None:
            raise TypeError(f"Step `{step}` passes a dict of cases to self.next() without "
                            f"condition=. Name the artifact that picks the case: {form}.")
        if not isinstance(condition, str):
            raise TypeError(f"Step `{step}`: condition= must be the name of an artifact (a "
                            f"string), not {condition!r}.")
        if foreach is not None or num_parallel is not None:
            raise TypeError(f"Step `{step}`: a switch (condition=) cannot be combined with "
                            "foreach= or num_parallel=. Put the fan-out in the step a case "
                            "leads to.")
        cases: dict[Any, Any] = steps[0]
        try:
            value = getattr(self, condition)
        except AttributeError:
            raise SwitchConditionError(
                f"Step `{step}` switches on self.{condition}, which is not set. Assign "
                f"self.{condition} (one of {list(cases)}) before calling self.next().") from None
        try:
            target = cases[value] if value in cases else None
        except TypeError:  # an unhashable value
            target = None
        if target is None:
            raise SwitchConditionError(
                f"Step `{step}` switches on self.{condition}, whose value {value!r} is not "
                f"one of the cases {list(cases)}. Set self.{condition} to one of them, or add "
                "a case for it.")
        name = getattr(target, "__name__", None)
        if not callable(target) or not getattr(target, "is_step", False) or name is None:
            raise TypeError(f"Step `{step}`: switch case {value!r} leads to {target!r}, which "
                            "is not a step. Each case must name a step, as self.step_name.")
        return str(name)

    @property
    def input(self) -> Any:
        """The item of the innermost foreach this task belongs to (None outside a foreach)."""
        ctx = self.__dict__.get("_fd_ctx")
        if ctx is None or not ctx.foreach_frames():
            return None
        return _foreach_item(self, ctx, ctx.foreach_frames()[-1])

    @property
    def index(self) -> int | None:
        """Zero-based position of this task in its innermost foreach (None outside one)."""
        ctx = self.__dict__.get("_fd_ctx")
        frames = ctx.foreach_frames() if ctx else []
        return frames[-1].index if frames else None

    def foreach_stack(self) -> list[tuple[int, int | None, Any]]:
        """(index, number of splits, value) for each enclosing foreach, outermost first."""
        ctx: StepContext | None = self.__dict__.get("_fd_ctx")
        out: list[tuple[int, int | None, Any]] = []
        if ctx is None:
            return out
        for frame in ctx.foreach_frames():
            try:
                value = _foreach_item(self, ctx, frame)
            except (AttributeError, LookupError, TypeError):
                value = None
            # an unbounded foreach's size is not the step's to know (Metaflow: None)
            out.append((frame.index, None if frame.unbounded else frame.num_splits, value))
        return out

    @property
    def _foreach_stack(self) -> list[ForeachFrame]:
        """Metaflow's private frames of the enclosing foreaches: step, var, num_splits,
        index, value (flows written for Metaflow read `frame.var`)."""
        ctx: StepContext | None = self.__dict__.get("_fd_ctx")
        if ctx is None:
            return []
        return [ForeachFrame(f.split_step, f.var, num_splits, f.index, value)
                for f, (_, num_splits, value) in zip(ctx.foreach_frames(),
                                                     self.foreach_stack())]

    @property
    def _current_step(self) -> str | None:
        """The name of the running step (Metaflow's private attribute)."""
        ctx = self.__dict__.get("_fd_ctx")
        return ctx.step if ctx is not None else None

    @property
    def _graph(self) -> Any:
        """The flow's static graph with Metaflow's node attributes (`type`, `in_funcs`,
        `out_funcs`, `parallel_step`, ...), as `flow._graph[step_name]` reads it."""
        from flowdeck.authoring.graphview import graph_view
        return graph_view(type(self))

    @property
    def _graph_info(self) -> dict[str, Any]:
        """The graph as the dict Metaflow stores for a run (`current.graph`)."""
        return graph_info(type(self))

    def __iter__(self) -> Iterator[Callable[..., Any]]:
        """The flow's steps (bound methods, each with `.name`) in graph order, as Metaflow's
        `for step in flow` gives them."""
        return iter([getattr(self, node.name) for node in self._graph])

    def merge_artifacts(self, inputs: Inputs, exclude: list[str] | None = None,
                        include: list[str] | None = None) -> None:
        """Carry artifacts that all inputs agree on into this join step.

        Artifacts already set in this step are left alone; an artifact whose
        value differs between inputs is an error unless it is excluded.
        """
        from flowdeck.authoring.merge import merge_artifacts
        merge_artifacts(self, inputs, exclude or [], include or [])

    # -- attribute protocol -----------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name.startswith("_fd"):
            raise AttributeError(name)
        ctx = self.__dict__.get("_fd_ctx")
        if ctx is not None:
            ref = ctx.artifact_refs.get(name)
            if ref is not None:
                value = ctx.load(ref)
                object.__setattr__(self, name, value)
                self.__dict__.setdefault(LOADED, {})[name] = (ref, id(value))
                return value
            where = f"step `{ctx.step}`"
            hint = (" In a join, read it from `inputs` (for example inputs[0]." + name +
                    ") or call self.merge_artifacts(inputs)." if ctx.is_join else
                    f" Assign self.{name} in this step or a step before it.")
            if ctx.caught and ctx.read_only:  # a join's input whose step failed under @catch
                where = f"input `{ctx.step}/{ctx.task_id}`"
                hint = (f" That task failed ({ctx.caught.get('type')}: "
                        f"{ctx.caught.get('message')}) and @catch kept the run going, so it "
                        "stored nothing after the error. Leave such inputs out in the join "
                        "(their @catch variable is set).")
            elif ctx.caught:  # the step before failed under @catch
                hint = (f" The step before this one failed ({ctx.caught.get('type')}: "
                        f"{ctx.caught.get('message')}) and @catch kept the run going, so "
                        f"`{name}` was not stored. Check its @catch variable before reading "
                        "what it made.")
            raise AttributeError(f"Flow {type(self).__name__} has no artifact `{name}` in "
                                 f"{where}.{hint}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        ctx = self.__dict__.get("_fd_ctx")
        if ctx is not None and not name.startswith("_fd"):
            if ctx.read_only:
                raise AttributeError(f"Inputs of a join are read-only; assign `{name}` on self.")
            if name in READ_ONLY_FLOW_ATTRIBUTES:
                raise AttributeError(f"`self.{name}` is read-only in a step: "
                                     f"{READ_ONLY_FLOW_ATTRIBUTES[name]}. Store the value under "
                                     f"another name (say `self.my_{name}`).")
            if name in flow_constants(type(self)):
                raise AttributeError(f"`{name}` is a class attribute of {type(self).__name__}, "
                                     "and flow-level attributes are constants while the flow "
                                     "runs (as in Metaflow); store the value under another "
                                     "name.")
        object.__setattr__(self, name, value)


def _foreach_item(flow: FlowSpec, ctx: StepContext, frame: Any) -> Any:
    """`self.input` without caching the whole foreach list on `self`.

    Caching it as an attribute would make every one of N foreach tasks
    pickle the N-item list again when it persists its artifacts.
    """
    if frame.var in flow.__dict__:
        return flow.__dict__[frame.var][frame.index]
    ref = ctx.artifact_refs.get(frame.var)
    if ref is None:
        return getattr(flow, frame.var)[frame.index]
    cache = ctx.loaded
    if frame.var not in cache:
        cache[frame.var] = ctx.load(ref)
    return cache[frame.var][frame.index]


def flow_steps(flow_cls: type) -> dict[str, Callable[..., Any]]:
    """The step functions of a flow class, by name (including inherited steps)."""
    out = {}
    for name in dir(flow_cls):
        if name.startswith("__"):
            continue
        value = getattr(flow_cls, name, None)
        if callable(value) and getattr(value, "is_step", False):
            out[name] = value
    return out


_CONSTANTS: dict[type, dict[str, Any]] = {}


def flow_constants(flow_cls: type) -> dict[str, Any]:
    """Class attributes that Metaflow makes constants: plain values set on the flow class.

    They become artifacts of every task and cannot be assigned in a step.
    Methods, classes, modules, descriptors (parameters, configs, properties)
    and names starting with `_` are not constants, nor is anything FlowSpec
    itself defines.
    """
    found = _CONSTANTS.get(flow_cls)
    if found is None:
        found = {}
        for klass in reversed(flow_cls.__mro__):
            if klass in (object, FlowSpec) or not issubclass(klass, FlowSpec):
                continue
            for attr, value in vars(klass).items():
                if _is_constant(attr, value):
                    found[attr] = value
                else:
                    found.pop(attr, None)
        _CONSTANTS[flow_cls] = found
    return found


def _is_constant(attr: str, value: Any) -> bool:
    import types
    if attr.startswith("_") or callable(value) or hasattr(type(value), "__get__"):
        return False
    return not isinstance(value, (types.ModuleType, type, staticmethod, classmethod))


def parameter_names(flow_cls: type) -> list[str]:
    """The flow's parameter names (as given on the command line), sorted: `current.parameter_names`."""
    return sorted(p.name for p in flow_parameters(flow_cls).values())


def flow_parameters(flow_cls: type) -> dict[str, Parameter]:
    """Parameters of a flow class by attribute name."""
    out = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Parameter):
                out[attr] = value
    return out


def graph_info(flow_cls: type) -> dict[str, Any]:
    """Metaflow's `_graph_info` of a flow class (what `current.graph` returns): the file,
    start and end steps, parameters and constants with their kinds, every step as
    `output-raw` shows it, the nested `graph_structure`, the doc and the flow decorators.
    Built once per class, when first asked for."""
    info = flow_cls.__dict__.get("_fd_graph_info")
    if info is None:
        from flowdeck.authoring.graphview import graph_view
        graph = graph_view(flow_cls)._graph
        raw = graph.as_dict()
        parameters = flow_parameters(flow_cls)
        info = {
            "file": os.path.basename(graph.file),  # Metaflow's sys.argv[0]: the flow's file
            "start_step": graph.start_step, "end_step": graph.end_step,
            "parameters": [{"name": attr, "type": type(p).__name__}
                           for attr, p in parameters.items()],
            "constants": [{"name": name, "type": type(value).__name__}
                          for name, value in flow_constants(flow_cls).items()
                          if name not in parameters],
            "steps": raw["graph"],  # defaults included, as `output-raw` lists them
            "graph_structure": raw["graph_structure"],
            "doc": raw["doc"],
            "decorators": _flow_decorators(flow_cls), "extensions": {},
        }
        flow_cls._fd_graph_info = info  # type: ignore[attr-defined]
    return info


def _flow_decorators(flow_cls: type) -> list[dict[str, Any]]:
    """The class's flow-level decorators in Metaflow's `_graph_info` shape."""
    found = []
    project = flow_cls.__dict__.get("_fd_project")
    if project:
        found.append(("project", {"name": project.get("name"), "branch": project.get("branch"),
                                  "production": bool(project.get("production"))}))
    found += [(name, {}) for name in flow_cls.__dict__.get("_fd_ignored_flow_decorators", ())]
    return [{"name": name, "attributes": attributes, "statically_defined": True,
             "inserted_by": None} for name, attributes in found]


def new_flow_instance(flow_cls: type, ctx: StepContext) -> FlowSpec:
    """An instance for one task, without calling `__init__` (which would start the CLI)."""
    flow: FlowSpec = object.__new__(flow_cls)
    object.__setattr__(flow, "_fd_ctx", ctx)
    return flow

