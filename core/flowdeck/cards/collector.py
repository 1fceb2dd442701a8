"""`current.card`: the components a step adds to its cards, with Metaflow's rules.

`current.card.append/extend/clear/refresh/components` act on the step's *default
editable* card; `current.card["id"]` on the card with that id; `current.card.get(type=)`
lists the cards of a type. Which card is default editable follows Metaflow
(`CardComponentCollector._finalize`): among the cards whose type allows user components,
the only one; else the one with `customize=True`; else the only one without an id.
A misuse never fails the step: it prints a `[@card WARNING]` line on stderr and, unless
`$METAFLOW_CARD_NO_WARNING` is set, shows the warning in the cards.

`refresh()` asks the task's renderer (`flowdeck.cards.runtime`) to write the live
card, at most once per the decorator's `refresh_interval` seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import field
from typing import Any

from flowdeck.cards.card import MetaflowCardComponent, create_component_id, error_value
from flowdeck.cards.components import StubComponent, WarningComponent
from flowdeck.compiled_dataclasses import dataclass

#: The card's refresh callback: (manager, mode) -> None, given by the task's renderer.
Refresher = Callable[["CardComponentManager", str], None]


def _warn(message: str) -> None:
    print(f"[@card WARNING] {message}", file=sys.stderr)


class ComponentStore:
    """One card's components, in order, by id (list-like and dict-like, as in Metaflow)."""

    def __init__(self, components: list[Any] | None = None):
        self._map: dict[str, Any] = {}
        self.layout_last_changed_on = time.time()
        for component in components or []:
            self._store(component)

    def _store(self, component: Any, component_id: str | None = None) -> None:
        if not isinstance(component, MetaflowCardComponent):
            _warn(f"Component ({component!s:.200}) is not a valid MetaflowCardComponent. It "
                  "will not be stored.")
            return
        if component_id is not None:
            component.component_id = component_id
        elif component.component_id is None:
            component.component_id = create_component_id(component)
        assert component.component_id is not None
        self._map[component.component_id] = component
        self.layout_last_changed_on = time.time()

    def append(self, component: Any, id: str | None = None) -> None:
        self._store(component, id)

    def extend(self, components: list[Any]) -> None:
        for component in components:
            self._store(component)

    def clear(self) -> None:
        self._map.clear()
        self.layout_last_changed_on = time.time()

    def keys(self) -> list[str]:
        return list(self._map)

    def values(self) -> list[Any]:
        return list(self._map.values())

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._map.values()))

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __getitem__(self, key: str) -> Any:
        if key not in self._map:
            self._store(StubComponent(key), key)
        return self._map[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._map:
            raise KeyError(f"A component with id `{key}` is already in the card; a component "
                           "cannot be replaced. Update it, or delete it first.")
        self._store(value, key)

    def __delitem__(self, key: str) -> None:
        if key not in self._map:
            raise KeyError(f"No component with id `{key}` in the card; it has: "
                           f"{', '.join(self._map) or 'none'}.")
        del self._map[key]
        self.layout_last_changed_on = time.time()


def render_component(component: Any) -> Any:
    """A component's rendered value; one that raises becomes an error block (never fails)."""
    try:
        return component.render()
    except Exception as exc:
        return error_value(f"{type(component).__name__} could not be rendered", exc)


@dataclass
class CardSpec:
    """One @card decorator of the step, as the renderer and the collector see it."""

    index: int
    type: str
    id: str | None
    options: dict[str, Any]
    timeout: float
    save_errors: bool
    customize: bool
    refresh_interval: float
    editable: bool = False
    exists: bool = False
    runtime: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)


class CardComponentManager:
    """The components of one card, and its `refresh()`."""

    def __init__(self, spec: CardSpec, refresher: Refresher | None,
                 components: list[Any] | None = None):
        self.spec = spec
        self._refresher = refresher
        self._components = ComponentStore(components)
        self._last_refresh = 0.0
        self.latest_user_data: Any = None
        self.render_seq = 0

    def append(self, component: Any, id: str | None = None) -> None:
        self._components.append(component, id=id)

    def extend(self, components: list[Any]) -> None:
        self._components.extend(components)

    def clear(self) -> None:
        self._components.clear()

    @property
    def components(self) -> ComponentStore:
        return self._components

    def __iter__(self) -> Iterator[Any]:
        return iter(self._components)

    def __len__(self) -> int:
        return len(self._components)

    def refresh(self, data: Any = None, force: bool = False) -> None:
        """Write the live card now, unless the last refresh was under `refresh_interval`
        seconds ago (the final card always shows the latest state)."""
        self.latest_user_data = data
        now = time.monotonic()
        if not force and self._last_refresh and \
                now - self._last_refresh < self.spec.refresh_interval:
            return
        self._last_refresh = now
        self.render_seq += 1
        if self._refresher is not None:
            self._refresher(self, "render_runtime")

    def rendered(self) -> list[Any]:
        """Every component's rendered value, in order (failures as error blocks)."""
        return [v for v in (render_component(c) for c in self._components) if v is not None]

    def latest_data(self, final: bool = False, mode: str = "render") -> dict[str, Any]:
        """Metaflow's data object for `render_runtime`, `refresh` and reload tokens."""
        components = {}
        for component in self._components:
            if getattr(component, "REALTIME_UPDATABLE", False):
                value = render_component(component)
                if value is not None:
                    components[component.component_id] = value
        user = self.latest_user_data
        try:
            json.dumps(user)
        except (TypeError, ValueError):
            _warn("The data given to current.card.refresh() is not JSON-serializable; it is "
                  "not shipped to the card.")
            user = {}
        return {"user": user if user is not None else {}, "components": components,
                "render_seq": "final" if final else self.render_seq,
                "component_update_ts": self._components.layout_last_changed_on,
                "mode": mode}


class CardComponentCollector:
    """`current.card` in a step with @card (see the module docstring)."""

    def __init__(self, specs: list[CardSpec], refresher: Refresher | None = None):
        self._specs = specs
        self._refresher = refresher
        self._managers = [CardComponentManager(s, refresher) for s in specs]
        self._no_warnings = os.environ.get("METAFLOW_CARD_NO_WARNING", "").lower() in (
            "1", "true", "yes")
        self._warned: set[str] = set()
        self._by_id: dict[str, int] = {}
        self._default: int | None = None
        self._finalize()

    def _finalize(self) -> None:
        editable = [s for s in self._specs if s.editable]
        ids = [s.id for s in self._specs if s.id is not None]
        for spec in self._specs:
            if spec.id is not None:
                self._by_id[spec.id] = spec.index
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            self._warning(f"Multiple @card decorators have the same id: {', '.join(duplicates)}."
                          f" `current.card['{duplicates[0]}']` will not work.")
            for duplicate in duplicates:
                del self._by_id[duplicate]
        if not editable:
            return
        if len(editable) == 1:
            self._default = editable[0].index
            return
        without_id = [s for s in editable if s.id is None]
        if len(without_id) == 1:
            self._default = without_id[0].index
        customize = [s for s in editable if s.customize]
        if len(customize) > 1:
            self._warning("Multiple @card decorators have `customize=True`. Only one @card "
                          "per @step can have `customize=True`; `current.card.append` ignores "
                          "them all.")
        elif len(customize) == 1:
            self._default = customize[0].index

    def _warning(self, message: str, key: str | None = None) -> None:
        if key is not None:
            if key in self._warned:
                return
            self._warned.add(key)
        _warn(message)
        if not self._no_warnings:
            for manager in self._managers:
                manager.append(WarningComponent(message))

    @property
    def managers(self) -> list[CardComponentManager]:
        return list(self._managers)

    def _default_manager(self, what: str) -> CardComponentManager | None:
        if self._default is not None:
            return self._managers[self._default]
        if len(self._specs) == 1:
            spec = self._specs[0]
            problem = (f"Card of type `{spec.type}` is not an editable card. Please use an "
                       "editable card." if spec.exists else
                       f"Card of type `{spec.type}` doesn't exist. Please use a card `type` "
                       "which exists.")
        else:
            problem = ("`current.card` cannot choose between several editable cards: set the "
                       "`id` argument of every @card of the step and use current.card[id].")
        self._warning(f"{problem} `current.card.{what}` does nothing in this task.", key=what)
        return None

    def get(self, type: str | None = None) -> list[CardComponentManager]:
        """The cards of a type (a list: several @card may share a type)."""
        return [m for m in self._managers if m.spec.type == type]

    def __getitem__(self, key: str) -> Any:
        if key in self._by_id:
            return self._managers[self._by_id[key]]
        self._warning(f"`current.card['{key}']` is not present. Set the `id` argument of a "
                      f"@card to '{key}' to use it; this returns an empty list meanwhile.",
                      key=f"getitem:{key}")
        return []

    def __setitem__(self, key: str, value: list[Any]) -> None:
        if key not in self._by_id:
            self._warning(f"`current.card['{key}']` is not present. Set the `id` argument of "
                          f"a @card to '{key}' to use it.", key=f"setitem:{key}")
            return
        if not isinstance(value, list):
            self._warning(f"`current.card['{key}']` not set: give a list of components.")
            return
        index = self._by_id[key]
        self._managers[index] = CardComponentManager(self._specs[index], self._refresher, value)

    def append(self, component: Any, id: str | None = None) -> None:
        manager = self._default_manager("append")
        if manager is not None:
            manager.append(component, id=id)

    def extend(self, components: list[Any]) -> None:
        manager = self._default_manager("extend")
        if manager is not None:
            manager.extend(components)

    def clear(self) -> None:
        manager = self._default_manager("clear")
        if manager is not None:
            manager.clear()

    def refresh(self, *args: Any, **kwargs: Any) -> None:
        manager = self._default_manager("refresh")
        if manager is not None:
            manager.refresh(*args, **kwargs)

    @property
    def components(self) -> Any:
        manager = self._default_manager("components")
        return manager.components if manager is not None else []

    def __iter__(self) -> Iterator[Any]:
        manager = self._default_manager("components")
        return iter(manager.components if manager is not None else [])
