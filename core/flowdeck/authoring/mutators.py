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
  (`add_decorator(retry, deco_kwargs={"times": 2})`, `add_decorator("retry:times=2")`,
  a user step decorator, `remove_decorator("retry")`, `duplicates=step.OVERRIDE`), and
  reads the flow's steps, parameters and configs as attributes (`mutable_flow.limits`).

Metaflow's registry of user decorators by name (`--with my_deco`, `add_decorator(
"my_deco")`) and mutators that add parameters are not offered: using them raises
NotImplementedError, naming what to write instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from flowdeck.authoring.exceptions import MetaflowException
from flowdeck.authoring.spec import flow_parameters, flow_steps, step_decorators


def _wrap_step(func: Callable[..., Any], before: Callable[[Any, Any], Any],
               after: Callable[[Any, BaseException | None, Any], None],
               name: str = "") -> Callable[..., Any]:
    """A step function that calls `before(flow, inputs)` and `after(flow, exc, token)`
    around `func`, keeping the step's marks (`is_step`, `name`, its decorators). `name`:
    the user decorator's, listed in `_fd_user_decorators` (a mutator's duplicates)."""

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

    marks: Any = wrapper
    marks._fd_user_decorators = (*getattr(func, "_fd_user_decorators", ()), name)
    marks._fd_layer = (before, after)  # to rebuild it around another function (OVERRIDE)
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
                          lambda flow, exc, _: self.post_step(name, flow, exc),
                          _user_decorator_name(type(self)))

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

            return _wrap_step(func, before, after, generator.__name__)
        return decorate

    @functools.wraps(generator)
    def decorator(func: Callable[..., Any] | None = None, **attributes: Any) -> Any:
        if func is not None:
            return make({})(func)
        return make(attributes)

    decorator._fd_user_step_decorator = True  # type: ignore[attr-defined]
    return decorator


def _user_decorator_name(deco: Any) -> str:
    """A user step decorator's name: a class's `decorator_name` (Metaflow's) or its own."""
    return str(getattr(deco, "decorator_name", None) or getattr(deco, "__name__", "decorator"))


def _is_user_step_decorator(deco: Any) -> bool:
    return getattr(deco, "_fd_user_step_decorator", False) or (
        isinstance(deco, type) and issubclass(deco, UserStepDecorator))


class MutableStep:
    """A step as a mutator sees it: its name and decorators, which it may change."""

    #: What `add_decorator` does with a decorator the step already has (Metaflow's values).
    IGNORE = 1  # keep the one there
    ERROR = 2  # raise
    OVERRIDE = 3  # replace it

    def __init__(self, name: str, func: Callable[..., Any], owner: type | None = None):
        self.name = name
        self._func = func
        self._owner = owner  # the flow class, where a user decorator's wrapper goes

    @property
    def decorator_specs(self) -> Iterator[tuple[str, str, list[Any], dict[str, Any]]]:
        """(name, full name, args, kwargs) of each decorator on the step."""
        for name, attributes in step_decorators(self._func).items():
            yield name, f"flowdeck.{name}", [], dict(attributes)

    def has_decorator(self, name: str) -> bool:
        return name in step_decorators(self._func)

    def add_decorator(self, deco_type: Any, deco_args: list[Any] | None = None,
                      deco_kwargs: dict[str, Any] | None = None,
                      duplicates: int = IGNORE) -> None:
        """Add a step decorator: a decorator (`retry`), a Metaflow decospec naming one
        (`"retry"`, `"retry:times=2"`), or a user step decorator. `duplicates` says what
        to do when the step has it already: IGNORE (keep it), OVERRIDE, ERROR."""
        if duplicates not in (self.IGNORE, self.ERROR, self.OVERRIDE):
            raise ValueError(f"Invalid duplicates value: {duplicates!r} (use "
                             "MutableStep.IGNORE, MutableStep.ERROR or MutableStep.OVERRIDE)")
        kwargs = dict(deco_kwargs or {})
        if _is_user_step_decorator(deco_type):
            self._add_user_decorator(deco_type, list(deco_args or []), kwargs, duplicates)
            return
        if deco_args:
            raise MetaflowException(f"add_decorator({deco_type!r}) on step `{self.name}`: "
                                    "step decorators take no positional arguments; pass "
                                    "deco_kwargs={...}.")
        where = f"add_decorator({deco_type!r}) on step `{self.name}`"
        if isinstance(deco_type, str):
            from flowdeck.authoring.decorators import step_decorator_from_spec
            if deco_type.partition(":")[0].strip() not in _builtin_decorator_names():
                raise NotImplementedError(
                    f"{where}: Flowdeck has no registry of user decorators by name; pass "
                    "the decorator itself (the class or @user_step_decorator function).")
            name, decorate = step_decorator_from_spec(deco_type, where, kwargs)
        elif hasattr(deco_type, "_fd_defaults"):
            name, decorate = deco_type.__name__, deco_type(**kwargs)
        else:
            raise TypeError(f"{where}: add_decorator takes a step decorator (retry, catch, "
                            "...), its name, or a user step decorator.")
        if self.has_decorator(name) and name not in _ALLOW_MULTIPLE:
            if not self._keep_adding(name, duplicates):
                return
            self.remove_decorator(name)
        decorate(self._func)

    def _keep_adding(self, name: str, duplicates: int) -> bool:
        """The step has `name` already: False to keep it (IGNORE), True to replace it."""
        if duplicates == self.ERROR:
            raise MetaflowException(f"Step `{self.name}` already has the decorator @{name}; "
                                    "pass duplicates=MutableStep.OVERRIDE to replace it or "
                                    "MutableStep.IGNORE to keep it.")
        return duplicates == self.OVERRIDE

    def _add_user_decorator(self, deco: Any, args: list[Any], kwargs: dict[str, Any],
                            duplicates: int) -> None:
        """Wrap the step in a user step decorator; the flow class gets the wrapper."""
        name = _user_decorator_name(deco)
        func = self._func
        if name in getattr(func, "_fd_user_decorators", ()):
            if not self._keep_adding(name, duplicates):
                return
            func = _without_user_decorator(func, name)
        if isinstance(deco, type):  # a UserStepDecorator class: its arguments reach `init`
            self._set_func(deco(*args, **kwargs)(func))
        else:  # a @user_step_decorator function: its attributes
            self._set_func(deco(**kwargs)(func))

    def remove_decorator(self, name: str, *args: Any, **kwargs: Any) -> bool:
        """Take the decorator `name` off the step (a user step decorator too); False when
        the step has none of that name."""
        if name in getattr(self._func, "_fd_user_decorators", ()):
            self._set_func(_without_user_decorator(self._func, name))
            return True
        decos = getattr(self._func, "_fd_decorators", {})
        return decos.pop(name, None) is not None

    def _set_func(self, func: Callable[..., Any]) -> None:
        """The step's function is now `func` (wrapped or unwrapped): the flow class's too."""
        self._func = func
        if self._owner is not None:
            setattr(self._owner, self.name, func)


#: Step decorators a step may have several of (Metaflow's `allow_multiple`): always added.
_ALLOW_MULTIPLE = frozenset({"card"})


def _builtin_decorator_names() -> set[str]:
    from flowdeck.authoring.decorators import known_step_decorators
    return set(known_step_decorators())


def _without_user_decorator(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """`func` with its outermost user decorator called `name` taken off (OVERRIDE). Each
    wrapper holds the function it wraps (`__wrapped__`): the ones above it are kept, put
    back around what was below it."""
    above: list[Callable[..., Any]] = []
    current = func
    while getattr(current, "_fd_user_decorators", ()) and \
            current._fd_user_decorators[-1] != name:  # type: ignore[attr-defined]
        above.append(current)
        current = current.__wrapped__  # type: ignore[attr-defined]
    if not getattr(current, "_fd_user_decorators", ()):
        return func
    rebuilt = current.__wrapped__  # type: ignore[attr-defined]
    for wrapper in reversed(above):
        rebuilt = _rewrap(wrapper, rebuilt)
    # The step's marks as the outermost function had them: decorators applied above a
    # user decorator (`@retry` over `@tagger`) live on its wrapper only.
    for mark, value in vars(func).items():
        if mark.startswith("_fd_") and mark not in ("_fd_user_decorators", "_fd_layer"):
            setattr(rebuilt, mark, value)
    return rebuilt


def _rewrap(wrapper: Any, inner: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of a user decorator's `wrapper` around another function."""
    before, after = wrapper._fd_layer
    return _wrap_step(inner, before, after, wrapper._fd_user_decorators[-1])


class MutableFlow:
    """A flow class as a FlowMutator sees it: its steps, parameters and configs (also as
    attributes: `mutable_flow.start`, `mutable_flow.alpha`, `mutable_flow.limits`)."""

    IGNORE, ERROR, OVERRIDE = MutableStep.IGNORE, MutableStep.ERROR, MutableStep.OVERRIDE

    def __init__(self, flow_cls: type):
        self._cls = flow_cls

    @property
    def steps(self) -> Iterator[tuple[str, MutableStep]]:
        for name, func in flow_steps(self._cls).items():
            yield name, MutableStep(name, func, self._cls)

    def __getattr__(self, name: str) -> Any:
        """A step (as a MutableStep), a Parameter or a config's value, by attribute; as in
        Metaflow, nothing else of the class."""
        if name.startswith("_"):
            raise AttributeError(name)
        steps = flow_steps(self._cls)
        if name in steps:
            return MutableStep(name, steps[name], self._cls)
        parameters = flow_parameters(self._cls)
        if name in parameters:
            return parameters[name]
        from flowdeck.authoring.configs import ConfigValue, flow_configs, resolved
        config = flow_configs(self._cls).get(name)
        if config is not None:
            value = (resolved() or {}).get(config.name)
            return ConfigValue(value) if isinstance(value, dict) else value
        raise AttributeError(f"{self._cls.__name__} has no step, parameter or config "
                             f"`{name}` (a mutator sees only those)")

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
    for name, _, sm in step_mutators:  # the step as it is now (an earlier one may wrap it)
        sm.pre_mutate(MutableStep(name, flow_steps(flow_cls)[name], flow_cls))
    for fm in flow_mutators:
        fm.mutate(mutable)
    for name, _, sm in step_mutators:
        sm.mutate(MutableStep(name, flow_steps(flow_cls)[name], flow_cls))
