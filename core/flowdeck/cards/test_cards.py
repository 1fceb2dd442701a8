"""Metaflow's test card types and components, by the same names and behaviour.

Metaflow ships these in its card registry so its own test suite
(`../shared/metaflow-test-core/tests/card_*.py`) can check what a card contains; the
suite imports them as `metaflow.plugins.cards.card_modules.test_cards`, which is this
module on Flowdeck (`flowdeck.plugins.cards.card_modules.test_cards`). Written from
their documented behaviour; a card renders plain text, which is what the checks compare.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
import time
from typing import Any

from flowdeck.cards.card import MetaflowCard, MetaflowCardComponent, render_safely

_SEPARATOR = "$&#!!@*"


class TestStringComponent(MetaflowCardComponent):
    REALTIME_UPDATABLE = True

    def __init__(self, text: str):
        self._text = text

    def render(self) -> str:
        return str(self._text)

    def update(self, text: str) -> None:
        self._text = text


class TestJSONComponent(MetaflowCardComponent):
    REALTIME_UPDATABLE = True

    def __init__(self, data: Any):
        self._data = data

    @render_safely
    def render(self) -> Any:
        return self._data

    def update(self, data: Any) -> None:
        self._data = data


class _Joined(MetaflowCard):
    """A card whose content is its components' text joined by Metaflow's separator."""

    def __init__(self, components: list[Any] | None = None, **kwargs: Any):
        self._components = list(components or [])

    def render(self, task: Any) -> str:
        return _SEPARATOR.join(str(c) for c in self._components)


class TestPathSpecCard(MetaflowCard):
    type = "test_pathspec_card"

    def render(self, task: Any) -> str:
        tail = "".join(random.choice(string.ascii_uppercase + string.digits) for _ in range(6))
        return f"{task.pathspec} {tail}"


class TestEditableCard(_Joined):
    type = "test_editable_card"
    separator = _SEPARATOR
    ALLOW_USER_COMPONENTS = True


class TestEditableCard2(_Joined):
    type = "test_editable_card_2"
    separator = _SEPARATOR
    ALLOW_USER_COMPONENTS = True


class TestNonEditableCard(_Joined):
    type = "test_non_editable_card"
    separator = _SEPARATOR


class TaskSpecCard(MetaflowCard):
    type = "taskspec_card"

    def render(self, task: Any) -> str:
        return str(task.pathspec)


class TestMockCard(MetaflowCard):
    type = "test_mock_card"

    def __init__(self, options: dict[str, Any] | None = None, **kwargs: Any):
        self._key = (options or {}).get("key", "dummy_key")

    def render(self, task: Any) -> str:
        return f"{task[self._key].data}"


class TestErrorCard(MetaflowCard):
    type = "test_error_card"

    def render(self, task: Any) -> str:
        raise Exception("Unknown Things Happened")


class TestTimeoutCard(MetaflowCard):
    type = "test_timeout_card"

    def __init__(self, options: dict[str, Any] | None = None, **kwargs: Any):
        self._timeout = (options or {}).get("timeout", 10)

    def render(self, task: Any) -> str:
        time.sleep(self._timeout)
        return f"{task.pathspec}"


_REFRESHABLE = """
<html>
<script>
var METAFLOW_RELOAD_TOKEN = "[METAFLOW_RELOAD_TOKEN]"
</script>
<h1>[PATHSPEC]</h1>
<h1>[REPLACE_CONTENT_HERE]</h1>
</html>
"""


class TestRefreshCard(MetaflowCard):
    type = "test_refresh_card"
    HTML_TEMPLATE = _REFRESHABLE
    RUNTIME_UPDATABLE = True
    ALLOW_USER_COMPONENTS = True
    RELOAD_POLICY = MetaflowCard.RELOAD_POLICY_ALWAYS

    def render(self, task: Any) -> str:
        return self._render_func(task, self.runtime_data)

    def _render_func(self, task: Any, data: Any) -> str:
        return self.HTML_TEMPLATE.replace("[REPLACE_CONTENT_HERE]", json.dumps(
            (data or {}).get("user"))).replace("[PATHSPEC]", task.pathspec)

    def render_runtime(self, task: Any, data: dict[str, Any]) -> str:
        return self._render_func(task, data)

    def refresh(self, task: Any, data: dict[str, Any]) -> Any:
        return data


def _component_values_to_hash(components: dict[str, Any]) -> str:
    comma_str = ",".join("".join(x) for v in components.values() for x in v)
    return hashlib.sha256(comma_str.encode("utf-8")).hexdigest()


class TestRefreshComponentCard(MetaflowCard):
    type = "test_component_refresh_card"
    HTML_TEMPLATE = _REFRESHABLE
    RUNTIME_UPDATABLE = True
    ALLOW_USER_COMPONENTS = True
    RELOAD_POLICY = MetaflowCard.RELOAD_POLICY_ONCHANGE

    def __init__(self, components: list[Any] | None = None, **kwargs: Any):
        self._components = list(components or [])

    def render(self, task: Any) -> str:
        return self.HTML_TEMPLATE.replace("[REPLACE_CONTENT_HERE]", json.dumps(
            self._components)).replace("[PATHSPEC]", task.pathspec)

    def render_runtime(self, task: Any, data: dict[str, Any]) -> str:
        return self.render(task)

    def refresh(self, task: Any, data: dict[str, Any]) -> Any:
        return data["components"]

    def reload_content_token(self, task: Any, data: dict[str, Any]) -> str:
        if task.finished:
            return "final"
        return f"runtime-{_component_values_to_hash(data['components'])}"


class TestImageCard(MetaflowCard):
    type = "test_image_card"

    def render(self, task: Any) -> str:
        from flowdeck.cards.components import Image
        png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABRDE8UwAAAA"
               "BJRU5ErkJggg==")
        import base64
        src = Image(base64.b64decode(png)).render()["src"]
        return f"<html><img src='{src}' /></html>"
