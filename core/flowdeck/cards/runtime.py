"""A task's cards while it runs and when it ends; called by the engine in the task's process.

`TaskCards.start` gives the step its `current.card` (when the step has @card).
`current.card.refresh()` renders each runtime-updatable card (`render_runtime`) into its
file at once, throttled by the decorator's `refresh_interval`, so the window and a
browser see it live. After a task that succeeded, `finish` renders every card
(`render`) with its `timeout`; after a failure it renders none (as Metaflow) and marks
live cards `stopped`, their files rewritten without the live badge and reload. Every write is atomic (a reader never sees half a card) and goes
to the paths `RunLayout` gives.

A card never fails its task: a card type that is unknown, raises, times out or returns
no HTML is recorded as an `error` entry (with Metaflow's error card as its file when
`save_errors`, the default), and a `[@card ERROR]` line goes to the task's stderr.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from flowdeck.cards.basic import ErrorCard, card_class
from flowdeck.cards.collector import CardComponentCollector, CardComponentManager, CardSpec
from flowdeck.cards.html import stopped_html
from flowdeck.cards.index import ERROR, FINAL, LIVE, STOPPED, CardEntry, TaskCardIndex
from flowdeck.engine.alarm import alarm
from flowdeck.store.blobs import atomic_write
from flowdeck.store.layout import RunLayout

#: Metaflow's pattern for card ids and the type names a card is saved under.
CARD_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_]+$")
DEFAULT_TIMEOUT_S = 45.0
DEFAULT_REFRESH_INTERVAL_S = 5.0


class CardTimeout(Exception):
    """A card's render ran past its @card(timeout=...)."""


def card_specs(decorators: list[dict[str, Any]]) -> list[CardSpec]:
    """The step's @card decorators (in the order they were applied) as CardSpecs."""
    specs = []
    for index, attrs in enumerate(decorators):
        card_type = str(attrs.get("type") or "default")
        card_id = attrs.get("id")
        if card_id is not None and not (isinstance(card_id, str)
                                        and CARD_ID_PATTERN.match(card_id)):
            print(f"[@card WARNING] @card(id={card_id!r}) is not made of letters, digits and "
                  "'_'; the card gets no id.", file=sys.stderr)
            card_id = None
        options = attrs.get("options") or {}
        cls = card_class(card_type)
        specs.append(CardSpec(
            index=index, type=card_type, id=card_id,
            options=dict(options) if isinstance(options, dict) else {},
            timeout=_number(attrs.get("timeout"), DEFAULT_TIMEOUT_S),
            save_errors=bool(attrs.get("save_errors", True)),
            customize=bool(attrs.get("customize", False)),
            refresh_interval=_number(attrs.get("refresh_interval"), DEFAULT_REFRESH_INTERVAL_S),
            editable=bool(cls is not None and cls.ALLOW_USER_COMPONENTS),
            exists=cls is not None, runtime=bool(cls is not None and cls.RUNTIME_UPDATABLE),
            attributes=dict(attrs)))
    return specs


def _number(value: Any, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _time_limit(seconds: float) -> AbstractContextManager[None]:
    """Raise CardTimeout in the render after `seconds`, unless a timer already runs (the
    step's own @timeout during a refresh: that one must keep its alarm)."""
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        seconds = 0
    return alarm(seconds, lambda: CardTimeout(
        f"the card took longer than its timeout of {seconds:g} s"))


def graph_dict(flow_cls: type) -> dict[str, Any]:
    """The flow's steps in Metaflow's card `graph` shape ({step: {type, next, doc, ...}})."""
    try:
        from flowdeck.authoring.graphview import graph_view
        view = graph_view(flow_cls)
    except Exception:
        return {}
    return {node.name: {"name": node.name, "type": node.type, "next": list(node.out_funcs),
                        "doc": node.doc, "foreach_artifact": node.foreach_param}
            for node in view}


class TaskCards:
    """The cards of one task attempt (see the module docstring)."""

    def __init__(self, layout: RunLayout, run_id: str, step: str, task_id: str, attempt: int,
                 decorators: list[dict[str, Any]], flow: Any = None):
        self.where = TaskCardIndex(layout, run_id, step, task_id)
        self.pathspec = f"{layout.flow}/{run_id}/{step}/{task_id}"
        self.attempt = attempt
        self.flow = flow
        self.specs = card_specs(decorators)
        self.collector = CardComponentCollector(self.specs, refresher=self._refresh)
        self._entries: dict[int, CardEntry] = {}
        self._graph: dict[str, Any] | None = None
        self._deadline: float | None = None

    # -- what the engine calls ------------------------------------------------------

    def start(self, current: Any) -> None:
        """Give the step its `current.card`."""
        current._update(card=self.collector)

    def finish(self, succeeded: bool, deadline: float | None = None) -> None:
        """Render every card after a successful task; after a failure, mark live ones.
        `deadline` (epoch seconds): when the task's process must be done (its @timeout),
        so a slow card times out as a card error instead of the task being killed."""
        self._deadline = deadline
        if not succeeded:
            live = [e for e in self._entries.values() if e.state == LIVE]
            for entry in live:
                self._stop(entry)
            if live:
                self._write_index()
            return
        for manager in self.collector.managers:
            self._render(manager, final=True)

    # -- rendering ------------------------------------------------------------------

    def _refresh(self, manager: CardComponentManager, mode: str) -> None:
        if manager.spec.runtime:
            try:
                self._render(manager, final=False)
            except Exception as exc:  # never into the user's step
                print(f"[@card ERROR] refreshing card {manager.spec.index} failed: {exc}",
                      file=sys.stderr)

    def _graph_value(self) -> dict[str, Any]:
        if self._graph is None:
            flow = self.flow
            self._graph = graph_dict(flow if isinstance(flow, type) else type(flow)) \
                if flow is not None else {}
        return self._graph

    def _task(self) -> Any:
        """The task as a client object (its artifacts once the attempt record exists)."""
        from flowdeck import client
        try:
            return client.Task(self.pathspec, root=self.where.layout.root,
                               _namespace_check=False)
        except Exception:
            return _BareTask(self.pathspec)

    def _render(self, manager: CardComponentManager, final: bool) -> None:
        spec = manager.spec
        save_type = spec.type if CARD_ID_PATTERN.match(spec.type) else "error"
        entry = self._entries.get(spec.index) or CardEntry(
            index=spec.index, type=save_type, id=spec.id, state=LIVE, attempt=self.attempt,
            options=_jsonable(spec.options))
        self._entries[spec.index] = entry
        task = self._task()
        data = manager.latest_data(final=final, mode="render" if final else "render_runtime")
        html: str | None = None
        error: str | None = None
        card: Any = None
        cls = card_class(spec.type)
        if cls is None:
            error = (f"There is no card type {spec.type!r}. Use `default`, `blank` or `html`, "
                     "or a MetaflowCard subclass with that `type` defined in the flow's code.")
        else:
            try:
                card = cls(options=spec.options, components=manager.rendered(),
                           graph=self._graph_value(), flow=self.flow)
            except TypeError as exc:
                error = (f"Card type {spec.type!r} does not take these arguments "
                         f"(options={spec.options!r}): {exc}")
        if card is not None:
            card.runtime_data = data
            limit = spec.timeout
            if final and self._deadline is not None:
                limit = max(0.1, min(limit, self._deadline - time.time()))
            try:
                with _time_limit(limit):
                    html = card.render(task) if final else card.render_runtime(task, data)
                if html is None or not isinstance(html, str):
                    error = (f"Card type {spec.type!r} rendered no HTML (render returned "
                             f"{type(html).__name__}). Return an HTML string.")
                    html = None
            except CardTimeout as exc:
                error = (f"Card type {spec.type!r} timed out: {exc}. Raise @card(timeout=...) "
                         "(and the step's @timeout, which bounds its cards too) or make the "
                         "card faster.")
            except NotImplementedError:
                if not final:
                    return  # a card with no runtime view: nothing live to show
                error = f"Card type {spec.type!r} does not implement render(task)."
            except Exception:
                error = (f"Card type {spec.type!r} raised an exception while rendering:\n"
                         f"{traceback.format_exc(limit=8)}")
        entry.updated = time.time()
        if html is not None:
            token = self._reload_token(card, task, data)
            self._write_card(entry, html.replace(card.RELOAD_POLICY_TOKEN, token))
            entry.state, entry.error = (FINAL if final else LIVE), None
            self._write_data(entry, card, task, data, token)
        else:
            print(f"[@card ERROR] {self.pathspec}: {error}", file=sys.stderr)
            entry.state, entry.error = ERROR, error
            if spec.save_errors:
                self._write_card(entry, ErrorCard().render(task, stack_trace=error))
            elif entry.file is None:
                del self._entries[spec.index]  # Metaflow keeps no card for it
        self._write_index()

    @staticmethod
    def _reload_token(card: Any, task: Any, data: dict[str, Any]) -> str:
        if data.get("render_seq") == "final":
            return "final"
        policy = getattr(card, "RELOAD_POLICY", "never")
        if policy == card.RELOAD_POLICY_ALWAYS:
            return f"render-seq-{data.get('render_seq')}"
        if policy == card.RELOAD_POLICY_ONCHANGE:
            try:
                return str(card.reload_content_token(task, data))
            except Exception:
                return "never"
        return "never"

    def _stop(self, entry: CardEntry) -> None:
        """Mark a live card `stopped` and take the live badge and reload out of its file
        (atomically, content kept): opened in a browser it would say live and reload
        forever, with nothing left to write it."""
        entry.state, entry.updated = STOPPED, time.time()
        if entry.file is None:
            return
        try:
            text = (self.where.folder / entry.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"[@card ERROR] {self.pathspec}: the stopped card's file could not be "
                  f"read to take its live badge out: {exc}", file=sys.stderr)
            return
        self._write_card(entry, stopped_html(text))

    def _write_card(self, entry: CardEntry, html: str) -> None:
        layout, where = self.where.layout, self.where
        path = layout.card_file(where.run_id, where.step, where.task_id, entry.index,
                                entry.type, "html")
        path.parent.mkdir(parents=True, exist_ok=True)
        body = html.encode("utf-8", errors="replace")
        atomic_write(path, body)
        entry.file = path.name
        entry.hash = hashlib.sha1(body).hexdigest()

    def _write_data(self, entry: CardEntry, card: Any, task: Any, data: dict[str, Any],
                    token: str) -> None:
        try:
            update = card.refresh(task, data)
            payload = json.dumps({"reload_token": token, "data": update}, default=str)
        except Exception:  # refresh is optional (NotImplementedError), or not JSON
            return
        layout, where = self.where.layout, self.where
        path = layout.card_file(where.run_id, where.step, where.task_id, entry.index,
                                entry.type, "data")
        atomic_write(path, payload.encode("utf-8"))
        entry.data_file = path.name

    def _write_index(self) -> None:
        self.where.write([self._entries[i] for i in sorted(self._entries)])


class _BareTask:
    """What a card gets when the client cannot open the task (only its pathspec)."""

    finished = False

    def __init__(self, pathspec: str):
        self.pathspec = pathspec

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __contains__(self, name: object) -> bool:
        return False


def _jsonable(value: Any) -> dict[str, Any]:
    try:
        json.dumps(value)
        return dict(value)
    except (TypeError, ValueError):
        return {k: repr(v) for k, v in dict(value).items()}
