"""The two base classes of Metaflow's card API: `MetaflowCard` (a card type) and
`MetaflowCardComponent` (something a step appends to a card).

Same names, attributes and method signatures as Metaflow's
`metaflow.plugins.cards.card_modules.card`, so a card type or component written for
Metaflow works unchanged: a card type is a class with a `type` name and
`render(task) -> str` (HTML); a component has `render()` returning a JSON-able value
(a dict for the built-in components, a string for simple ones) and, when it can change
while the task runs, `update(...)` and `REALTIME_UPDATABLE = True`.
"""

from __future__ import annotations

import functools
import traceback
import uuid
from collections.abc import Callable
from typing import Any


class MetaflowCard:
    """A card type. `@card(type=T, options=O)` instantiates the subclass whose `type` is
    T after the task (and at each `refresh()` for a RUNTIME_UPDATABLE one) with
    `options=O`, `components=` (the rendered components the step appended), `graph=`
    (the flow's steps) and `flow=`, and calls `render(task)` for the card's HTML."""

    RELOAD_POLICY_NEVER = "never"
    RELOAD_POLICY_ALWAYS = "always"
    RELOAD_POLICY_ONCHANGE = "onchange"
    RELOAD_POLICY_TOKEN = "[METAFLOW_RELOAD_TOKEN]"

    type: str | None = None
    #: `current.card.append` may add to this card (it is "editable").
    ALLOW_USER_COMPONENTS = False
    #: `current.card.refresh()` re-renders it while the task runs (`render_runtime`).
    RUNTIME_UPDATABLE = False
    RELOAD_POLICY = RELOAD_POLICY_NEVER
    scope = "task"
    runtime_data: Any = None

    def __init__(self, options: dict[str, Any] | None = None,
                 components: list[Any] | None = None, graph: Any = None,
                 flow: Any = None, **kwargs: Any):
        pass

    def render(self, task: Any) -> str:
        """The card's HTML for the finished task."""
        raise NotImplementedError()

    def render_runtime(self, task: Any, data: dict[str, Any]) -> str:
        """The card's HTML while the task runs (`current.card.refresh()`)."""
        raise NotImplementedError()

    def refresh(self, task: Any, data: dict[str, Any]) -> Any:
        """The data update shipped to a live card (`Card.get_data()`)."""
        raise NotImplementedError()

    def reload_content_token(self, task: Any, data: dict[str, Any]) -> str:
        return "content-token"


class MetaflowCardComponent:
    """Something a step appends to a card (`current.card.append(component)`)."""

    REALTIME_UPDATABLE = False
    _component_id: str | None = None
    _logger: Any = None

    @property
    def component_id(self) -> str | None:
        return self._component_id

    @component_id.setter
    def component_id(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Component ID must be a string")
        self._component_id = value

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError()

    def render(self) -> Any:
        """A JSON-able value: a dict with a `type` for the built-in components."""
        raise NotImplementedError()


def create_component_id(component: Any) -> str:
    """A new id for a component appended without one (Metaflow's form: `markdown_1a2b3c`)."""
    return f"{type(component).__name__.lower()}_{uuid.uuid4().hex[:6]}"


def error_value(title: str, exc: BaseException | str) -> dict[str, Any]:
    """The rendered form of a component that failed: shown in the card in its place."""
    if isinstance(exc, BaseException):
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    else:
        message, detail = str(exc), ""
    return {"type": "error", "title": title, "message": message, "detail": detail}


class ComponentInputError(ValueError):
    """A component was given the wrong kind of data; the message says what was given and
    what to pass. Raised from `render` (a constructor only records the problem, so a
    slip never fails the user's step); `render_safely` shows it as an error block without
    a traceback, which would point into the card's code, not at the user's call."""


def render_safely(func: Callable[..., Any]) -> Callable[..., Any]:
    """A component's `render` that raises gives an error block instead (never a failed
    card, never a failed task): Metaflow's `render_safely`."""

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(self, *args, **kwargs)
        except ComponentInputError as exc:
            return error_value(f"{type(self).__name__}: wrong kind of data", str(exc))
        except Exception as exc:
            return error_value(f"{type(self).__name__} could not be rendered", exc)

    return wrapper


def with_default_component_id(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.component_id is None:
            self.component_id = create_component_id(self)
        return func(self, *args, **kwargs)

    return wrapper
