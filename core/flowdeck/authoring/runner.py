"""Where the authoring API hands a flow class to the engine.

`FlowSpec.run()` and Metaflow's bare `MyFlow()` must start the engine, and the
engine must know `FlowSpec`: rather than import each other, the authoring API
asks this slot, which the package root (`flowdeck/__init__.py`, the composition
root) fills with the engine's entry point. The engine loads only when a flow
actually runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class EngineEntry(Protocol):
    """What the authoring API needs of the engine: its entry points, and the static graph
    (`flow._graph`) of a class that is not running."""

    def bare_script_call(self, flow_cls: type) -> None: ...

    def run_flow_class(self, flow_cls: type, params: dict[str, Any]) -> Any: ...

    def static_graph(self, flow_cls: type) -> Any: ...


_loader: Callable[[], EngineEntry] | None = None


def install(loader: Callable[[], EngineEntry]) -> None:
    """Called once by the package root with a function that loads the engine's entry."""
    global _loader
    _loader = loader


def entry() -> EngineEntry:
    if _loader is None:  # pragma: no cover - only if flowdeck/__init__ was bypassed
        raise RuntimeError("Flowdeck's engine is not wired; import flowdeck first.")
    return _loader()
