"""The built-in card types (`default`, `blank`, `html`, `error`) and the card type registry.

* `default`: the components the step appended, then the task's parameters, its
  artifacts (bounded reprs; values over `MAX_LOAD_BYTES` are listed, not loaded) and
  the flow's steps with this one marked.
* `blank`: only the appended components (`options={"title": ...}`).
* `html`: the HTML string in an artifact (`options={"artifact": "html"}`, the default
  name), passed through as it is, scripts and remote content included, as in Metaflow:
  the step wrote it (unlike the other types, whose pages carry no script and fetch
  nothing; docs/cards.md).
* `error`: what a card that failed shows in its place (when `save_errors`).

`card_class(type)` finds a type among these, Metaflow's test card types and every
`MetaflowCard` subclass the flow's code defined (so a custom card class in the flow
file works without packaging it as an extension).
"""

from __future__ import annotations

from typing import Any

from flowdeck.cards.card import MetaflowCard
from flowdeck.cards.components import bounded_repr
from flowdeck.cards.html import component_html, components_html, page

#: Artifacts stored larger than this are listed with their size and type, not loaded.
MAX_LOAD_BYTES = 50 * 1024 * 1024
#: The default card lists at most this many artifacts.
MAX_ARTIFACTS = 200


def _title(task: Any) -> str:
    return str(getattr(task, "pathspec", "") or "card")


def graph_steps(graph: Any, current_step: str | None = None) -> dict[str, Any]:
    """The `dag` value of a Metaflow-shaped graph dict ({step: {"type", "next", ...}})."""
    steps = []
    if isinstance(graph, dict):
        for name, node in graph.items():
            if isinstance(node, dict):
                steps.append({"name": name, "type": node.get("type"),
                              "next": list(node.get("next") or []),
                              "foreach": node.get("foreach_artifact")})
    return {"type": "dag", "steps": steps, "current": current_step}


class BlankCard(MetaflowCard):
    """Only what the step appended."""

    type = "blank"
    ALLOW_USER_COMPONENTS = True
    RUNTIME_UPDATABLE = True
    RELOAD_POLICY = MetaflowCard.RELOAD_POLICY_ONCHANGE

    def __init__(self, options: dict[str, Any] | None = None,
                 components: list[Any] | None = None, graph: Any = None, flow: Any = None,
                 **kwargs: Any):
        self._options = dict(options or {})
        self._components = list(components or [])
        self._graph = graph
        self._flow = flow

    def _body(self, task: Any, live: bool) -> str:
        return components_html(self._components)

    def render(self, task: Any, runtime: bool = False) -> str:
        title = str(self._options.get("title") or _title(task))
        return page(title, self._body(task, runtime), subtitle=_title(task)
                         if title != _title(task) else f"{type(self).type} card", live=runtime,
                         refresh_seconds=2)

    def render_runtime(self, task: Any, data: dict[str, Any]) -> str:
        return self.render(task, runtime=True)

    def refresh(self, task: Any, data: dict[str, Any]) -> Any:
        return data.get("components")

    def reload_content_token(self, task: Any, data: dict[str, Any]) -> str:
        if getattr(task, "finished", False):
            return "final"
        return f"runtime-{data.get('component_update_ts')}"


class DefaultCard(BlankCard):
    """The appended components, the task's parameters and artifacts, and the flow's steps."""

    type = "default"

    def _body(self, task: Any, live: bool) -> str:
        parts = []
        if self._components:
            parts.append({"type": "section", "title": None, "contents": self._components})
        params, artifacts = _artifact_values(task, self._parameter_names())
        parts.append({"type": "section", "title": "Parameters", "contents": [
            {"type": "facts", "items": params, "empty": "This flow has no parameters."}]})
        empty = ("Artifacts appear when the task ends." if live
                 else "The task stored no artifacts.")
        parts.append({"type": "section", "title": "Artifacts",
                      "contents": artifacts or [{"type": "text", "text": empty}]})
        step = getattr(task, "step_name", None) or (
            str(task.pathspec).split("/")[2] if getattr(task, "pathspec", None) else None)
        parts.append({"type": "section", "title": "Steps",
                      "contents": [graph_steps(self._graph, step)]})
        return components_html(parts)

    def _parameter_names(self) -> list[str]:
        flow = self._flow
        if flow is None:
            return []
        from flowdeck.authoring.spec import parameter_names
        try:
            return list(parameter_names(flow if isinstance(flow, type) else type(flow)))
        except Exception:
            return []


def _artifact_values(task: Any, parameters: list[str]) -> tuple[list[tuple[str, str]],
                                                                 list[dict[str, Any]]]:
    """(parameters as (name, repr), artifact components) of a task, each value bounded."""
    params: list[tuple[str, str]] = []
    shown: list[dict[str, Any]] = []
    try:
        artifacts = list(task)
    except Exception as exc:
        return [], [{"type": "error", "title": "The artifacts could not be listed",
                     "message": f"{type(exc).__name__}: {exc}"}]
    for artifact in artifacts:
        name = str(getattr(artifact, "id", None) or getattr(artifact, "name", ""))
        if name.startswith("_") or name == "name":
            continue
        size = getattr(artifact, "size", 0) or 0
        kind = str(getattr(artifact, "type", "") or "")
        if size > MAX_LOAD_BYTES:
            text = f"<{kind or 'value'} of {size / 1e6:.0f} MB: not shown in the card>"
        else:
            try:
                value = artifact.data
                kind = type(value).__name__
                text = bounded_repr(value)
            except Exception as exc:  # unpickling needs a module, or fails
                text = f"<could not be read: {type(exc).__name__}: {exc}>"
        if name in parameters:
            params.append((name, text))
        elif len(shown) < MAX_ARTIFACTS:
            shown.append({"type": "artifact", "name": name, "data_type": kind, "repr": text})
    return params, shown


class HTMLCard(MetaflowCard):
    """The HTML the step stored in an artifact (`options={"artifact": "html"}`)."""

    type = "html"

    def __init__(self, options: dict[str, Any] | None = None, **kwargs: Any):
        self._artifact = str((options or {}).get("artifact") or "html")

    def render(self, task: Any) -> str:
        if self._artifact not in task:
            raise ValueError(f"@card(type='html') shows the HTML in artifact "
                             f"`{self._artifact}`, but the task has no such artifact. Set "
                             f"self.{self._artifact} = '<html>...' in the step, or pass "
                             "options={'artifact': NAME}.")
        value = task[self._artifact].data
        if not isinstance(value, str):
            raise ValueError(f"@card(type='html'): artifact `{self._artifact}` is a "
                             f"{type(value).__name__}, not an HTML string.")
        return value


class ErrorCard(MetaflowCard):
    """What a failed card shows instead (its error and traceback)."""

    type = "error"

    def render(self, task: Any, stack_trace: str | None = None) -> str:
        body = component_html({"type": "error", "title": "This card could not be made",
                                    "message": stack_trace or "unknown error"})
        return page(_title(task), body, subtitle="card error")


def _subclasses(base: type) -> list[type]:
    found: list[type] = []
    sub: type
    for sub in base.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def card_class(card_type: str | None) -> type[MetaflowCard] | None:
    """The card class of a type name: built-in first, then Metaflow's test types, then
    any MetaflowCard subclass the flow's code defined; None if there is none."""
    if not card_type:
        return None
    builtin: tuple[type[MetaflowCard], ...] = (DefaultCard, BlankCard, HTMLCard, ErrorCard)
    for known in builtin:
        if known.type == card_type:
            return known
    import flowdeck.cards.test_cards  # noqa: F401  (registers Metaflow's test types)
    for cls in _subclasses(MetaflowCard):
        if getattr(cls, "type", None) == card_type:
            return cls
    return None
