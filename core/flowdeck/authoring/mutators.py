"""Metaflow 2.18's extension API, the part a local run needs.

* `UserStepDecorator`: subclass it and define `pre_step(step_name, flow, inputs)`
  and/or `post_step(step_name, flow, exception)`; put `@MyDeco` or
  `@MyDeco(key=value)` on a step (the arguments reach `init`). They run in the
  task's process, around the step's own code.
* `@user_step_decorator` on a generator function `f(step_name, flow, inputs=None,
  attributes=None)`: the code before its `yield` runs before the step, the code
  after it once the step returned.
* `StepMutator` (on a step) and `FlowMutator` (on the flow class): `pre_mutate` and
  `mutate` are called once when the run starts, before anything runs, with a
  `MutableStep` / `MutableFlow` that lists and adds or removes step decorators
  (`add_decorator(retry, deco_kwargs={"times": 2})`, `remove_decorator("retry")`).

Metaflow's registry by name (decorators given as strings, `--with` of user
decorators) and mutators that add parameters are not offered: using them
raises NotImplementedError, naming what to write instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from flowdeck.authoring.spec import flow_parameters, flow_steps, step_decorators


def _wrap_step(func: Callable[..., Any], before: Callable[[Any, Any], Any],
               after: Callable[[Any, BaseException | None, Any], None]) -> Callable[..., Any]:
    """A step function that calls `before(flow, inputs)` and `after(flow, exc, token)`
    around `func`, keeping the step's marks (`is_step`, `name`, its decorators)."""

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any) -> Any:
        inputs = args[0] if args else None
        token = before(self, inputs)
        try:
            result = func(self, *args)
        except BaseException as exc:
            after(self, exc, token)
            raise
        after(self, None, token)
        return result

    return wrapper


class UserStepDecorator:
    """Base of a user-defined step decorator (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._setup(*args, **kwargs)

    def _setup(self, *args: Any, **kwargs: Any) -> None:
        self._func: Callable[..., Any] | None = None
        if len(args) == 1 and callable(args[0]) and not kwargs:  # bare `@MyDeco`
            self._func = args[0]
            self.init()
        else:
            self.init(*args, **kwargs)

    def init(self, *args: Any, **kwargs: Any) -> None:
        """Receives the decorator's arguments; store what pre_step/post_step need."""

    def pre_step(self, step_name: str, flow: Any, inputs: Any = None) -> None:
        """Runs in the task, before the step's code."""

    def post_step(self, step_name: str, flow: Any, exception: BaseException | None = None
                  ) -> None:
        """Runs in the task, after the step's code (`exception` is what it raised, if any)."""

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return self._decorate(func)

    def _decorate(self, func: Callable[..., Any]) -> Callable[..., Any]:
        name = func.__name__
        return _wrap_step(func, lambda flow, inputs: self.pre_step(name, flow, inputs),
                          lambda flow, exc, _: self.post_step(name, flow, exc))

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = super().__new__(cls)
        if len(args) == 1 and callable(args[0]) and not kwargs:  # bare: decorate at once
            instance._setup(*args)
            assert instance._func is not None
            return instance._decorate(instance._func)
        return instance


def user_step_decorator(generator: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a generator function into a step decorator (see the module docstring)."""

    def make(attributes: dict[str, Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            def before(flow: Any, inputs: Any) -> Any:
                gen = generator(func.__name__, flow, inputs, attributes)
                next(gen)
                return gen

            def after(flow: Any, exc: BaseException | None, gen: Any) -> None:
                if exc is not None:
                    gen.close()
                    return
                try:
                    next(gen)
                except StopIteration:
                    return
                raise RuntimeError(f"@{generator.__name__} yielded twice; a user step "
                                   "decorator yields exactly once, where the step runs.")

            return _wrap_step(func, before, after)
        return decorate

    @functools.wraps(generator)
    def decorator(func: Callable[..., Any] | None = None, **attributes: Any) -> Any:
        if func is not None:
            return make({})(func)
        return make(attributes)

    return decorator


class MutableStep:
    """A step as a mutator sees it: its name and decorators, which it may change."""

    def __init__(self, name: str, func: Callable[..., Any]):
        self.name = name
        self._func = func

    @property
    def decorator_specs(self) -> Iterator[tuple[str, str, list[Any], dict[str, Any]]]:
        """(name, full name, args, kwargs) of each decorator on the step."""
        for name, attributes in step_decorators(self._func).items():
            yield name, f"flowdeck.{name}", [], dict(attributes)

    def has_decorator(self, name: str) -> bool:
        return name in step_decorators(self._func)

    def add_decorator(self, deco_type: Any, deco_args: list[Any] | None = None,
                      deco_kwargs: dict[str, Any] | None = None, duplicates: int = 1) -> None:
        """Add a step decorator (a Flowdeck/Metaflow decorator object, not a name)."""
        if isinstance(deco_type, str) or not hasattr(deco_type, "_fd_defaults"):
            raise NotImplementedError(f"add_decorator({deco_type!r}) on step `{self.name}`: "
                                      "pass the decorator itself (for example `retry`, "
                                      "imported from flowdeck), not its name.")
        if deco_args:
            raise NotImplementedError("Step decorators take keyword arguments only; pass "
                                      "deco_kwargs={...}.")
        name = deco_type.__name__
        if self.has_decorator(name) and duplicates != 2:  # 2: Metaflow's OVERRIDE
            return
        deco_type(**(deco_kwargs or {}))(self._func)

    def remove_decorator(self, name: str, *args: Any, **kwargs: Any) -> bool:
        decos = getattr(self._func, "_fd_decorators", {})
        return decos.pop(name, None) is not None


class MutableFlow:
    """A flow class as a FlowMutator sees it: its steps, parameters and configs."""

    def __init__(self, flow_cls: type):
        self._cls = flow_cls

    @property
    def steps(self) -> Iterator[tuple[str, MutableStep]]:
        for name, func in flow_steps(self._cls).items():
            yield name, MutableStep(name, func)

    @property
    def parameters(self) -> Iterator[tuple[str, Any]]:
        yield from flow_parameters(self._cls).items()

    @property
    def configs(self) -> Iterator[tuple[str, Any]]:
        from flowdeck.authoring.configs import ConfigValue, flow_configs, resolved
        values = resolved() or {}
        for config in flow_configs(self._cls).values():
            value = values.get(config.name)
            yield config.name, ConfigValue(value) if isinstance(value, dict) else value

    def add_parameter(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("FlowMutator.add_parameter is not offered by Flowdeck; "
                                  "declare the Parameter on the flow class.")

    def remove_parameter(self, *args: Any, **kwargs: Any) -> bool:
        raise NotImplementedError("FlowMutator.remove_parameter is not offered by Flowdeck; "
                                  "remove the Parameter from the flow class.")


class StepMutator:
    """Base of a mutator put on a step: `pre_mutate`/`mutate(mutable_step)` at run start."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._setup(*args, **kwargs)

    def _setup(self, *args: Any, **kwargs: Any) -> None:
        if len(args) == 1 and callable(args[0]) and not kwargs:
            self.init()
        else:
            self.init(*args, **kwargs)

    def init(self, *args: Any, **kwargs: Any) -> None:
        """Receives the mutator's arguments."""

    def pre_mutate(self, mutable_step: MutableStep) -> None:
        """Called first, for every mutator of the flow."""

    def mutate(self, mutable_step: MutableStep) -> None:
        """Called after every pre_mutate."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = super().__new__(cls)
        if len(args) == 1 and callable(args[0]) and not kwargs:  # bare `@MyMutator`
            instance._setup(*args)
            return instance(args[0])
        return instance

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        mutators = list(getattr(func, "_fd_mutators", []))
        func._fd_mutators = mutators + [self]  # type: ignore[attr-defined]
        return func


class FlowMutator:
    """Base of a mutator put on the flow class: `pre_mutate`/`mutate(mutable_flow)`."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._setup(*args, **kwargs)

    def _setup(self, *args: Any, **kwargs: Any) -> None:
        if len(args) == 1 and isinstance(args[0], type) and not kwargs:
            self.init()
        else:
            self.init(*args, **kwargs)

    def init(self, *args: Any, **kwargs: Any) -> None:
        """Receives the mutator's arguments."""

    def pre_mutate(self, mutable_flow: MutableFlow) -> None:
        """Called first, before any mutate."""

    def mutate(self, mutable_flow: MutableFlow) -> None:
        """Called once the configs are read, before the run starts."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = super().__new__(cls)
        if len(args) == 1 and isinstance(args[0], type) and not kwargs:  # bare `@MyMutator`
            instance._setup(*args)
            return instance(args[0])
        return instance

    def __call__(self, flow_cls: type) -> type:
        mutators = list(flow_cls.__dict__.get("_fd_flow_mutators", []))
        flow_cls._fd_flow_mutators = mutators + [self]  # type: ignore[attr-defined]
        return flow_cls


def apply_mutators(flow_cls: type) -> None:
    """Run every FlowMutator and StepMutator of a flow once (pre_mutate, then mutate)."""
    if flow_cls.__dict__.get("_fd_mutated"):
        return
    flow_cls._fd_mutated = True  # type: ignore[attr-defined]
    flow_mutators = [m for k in reversed(flow_cls.__mro__)
                     for m in k.__dict__.get("_fd_flow_mutators", [])]
    step_mutators = [(name, func, m) for name, func in flow_steps(flow_cls).items()
                     for m in getattr(func, "_fd_mutators", [])]
    if not flow_mutators and not step_mutators:
        return
    mutable = MutableFlow(flow_cls)
    for fm in flow_mutators:
        fm.pre_mutate(mutable)
    for name, func, sm in step_mutators:
        sm.pre_mutate(MutableStep(name, func))
    for fm in flow_mutators:
        fm.mutate(mutable)
    for name, func, sm in step_mutators:
        sm.mutate(MutableStep(name, func))
