"""Reading cards back: `get_cards(task)` returns a `CardContainer` of `Card`s, as
Metaflow's `metaflow.cards.get_cards` does.

A card's HTML is read only when asked for (`Card.get()` / `.html`), so listing the
cards of many tasks costs one small index file each. A task reused by `resume` has no
cards of its own: with `follow_resumed` (the default) its origin task's are returned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowdeck.cards.html import stopped_html
from flowdeck.cards.index import STOPPED, CardEntry, TaskCardIndex
from flowdeck.exception import MetaflowException


class CardNotPresentException(MetaflowException):
    """No card matches (Metaflow's name)."""

    headline = "Card not found in datastore"

    def __init__(self, pathspec: str, card_type: str | None = None,
                 card_hash: str | None = None, card_id: str | None = None):
        what = (f"with type '{card_type}' " if card_type else "") + (
            f"with id '{card_id}' " if card_id else "") + (
            f"with hash '{card_hash}' " if card_hash else "")
        super().__init__(f"Card {what}not found for pathspec {pathspec}")


class IncorrectArgumentException(MetaflowException):
    headline = "Incorrect argument to get_cards"

    def __init__(self, obj_type: Any):
        super().__init__(f"get_cards takes a Task or a pathspec string "
                         f"'Flow/run_id/step/task_id', not a {obj_type}.")


class Card:
    """One card of a task: `.id`, `.type`, `.hash`, `.path`, `.html` / `get()`,
    `get_data()`, `view()` (opens it in the browser)."""

    def __init__(self, entry: CardEntry, folder: Path, pathspec: str):
        self._entry = entry
        self._folder = folder
        self.pathspec = pathspec
        self._html: str | None = None

    @property
    def id(self) -> str | None:
        return self._entry.id

    @property
    def type(self) -> str:
        return self._entry.type

    @property
    def hash(self) -> str:
        return self._entry.hash or ""

    @property
    def state(self) -> str:
        """`live`, `final`, `error` or `stopped` (see flowdeck.cards.index): a live card of
        a run that has ended or crashed is `stopped`."""
        return self._entry.state

    @property
    def error(self) -> str | None:
        """Why the card failed (its file, if any, is the error card)."""
        return self._entry.error

    @property
    def path(self) -> str:
        return str(self._folder / self._entry.file) if self._entry.file else ""

    def get(self) -> str:
        """The card's HTML (read once, then kept); a stopped card's without the live badge
        and reload its task had no chance to take out (it was killed)."""
        if self._html is None:
            if not self._entry.file:
                raise CardNotPresentException(self.pathspec, self.type, card_id=self.id)
            text = Path(self.path).read_text(encoding="utf-8", errors="replace")
            self._html = stopped_html(text) if self.state == STOPPED else text
        return self._html

    @property
    def html(self) -> str:
        return self.get()

    def get_data(self) -> dict[str, Any] | None:
        """The card's latest refresh data (`{"reload_token", "data"}`), or None."""
        if not self._entry.data_file:
            return None
        try:
            value = json.loads((self._folder / self._entry.data_file).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def view(self) -> None:
        import webbrowser
        webbrowser.open(Path(self.path).as_uri())

    def _repr_html_(self) -> str:
        return self.get()

    def __str__(self) -> str:
        return f"<Card at '{self.path}'>"

    __repr__ = __str__


class CardContainer:
    """The cards of a task: `len`, iteration, `[i]` by position or `["id"]` by card id."""

    def __init__(self, cards: list[Card], origin_pathspec: str | None = None):
        self._cards = cards
        self.from_resumed = origin_pathspec is not None
        self.origin_pathspec = origin_pathspec

    def __len__(self) -> int:
        return len(self._cards)

    def __iter__(self) -> Iterator[Card]:
        return iter(self._cards)

    def __getitem__(self, key: int | str) -> Card:
        if isinstance(key, str):
            for card in self._cards:
                if card.id == key:
                    return card
            raise KeyError(f"No card with id {key!r}; the ids are: "
                           f"{', '.join(str(c.id) for c in self._cards if c.id) or 'none'}.")
        return self._cards[key]

    def __repr__(self) -> str:
        return f"<CardContainer of {len(self._cards)} card(s)>"

    def _repr_html_(self) -> str:
        return "".join(c.get() for c in self._cards if c.path)


def _task_of(task: Any) -> Any:
    from flowdeck import client
    if isinstance(task, str):
        if len(task.split("/")) != 4:
            raise IncorrectArgumentException(f"pathspec {task!r}")
        return client.Task(task, _namespace_check=False)
    if not isinstance(task, client.Task):
        raise IncorrectArgumentException(type(task).__name__)
    return task


def task_card_index(task: Any) -> TaskCardIndex:
    """Where a client Task's cards are."""
    return TaskCardIndex(task.run.layout, task.run.id, task.step_name, task.id)


def get_cards(task: Any, id: str | None = None, type: str | None = None,
              follow_resumed: bool = True) -> CardContainer:
    """The cards of a task (a client Task or its pathspec), optionally only those of one
    id or type; a task reused by resume gives its origin task's cards. None that match:
    CardNotPresentException, as in Metaflow."""
    task = _task_of(task)
    origin = None
    if follow_resumed and task.origin_pathspec:
        from flowdeck import client
        origin = task.origin_pathspec
        task = client.Task(origin, root=task.run.layout.root, _namespace_check=False)
    where = task_card_index(task)
    cards = [Card(e, where.folder, task.pathspec) for e in where.read_effective()
             if e.file and (id is None or e.id == id) and (type is None or e.type == type)]
    if not cards:  # as Metaflow: none (yet) is an exception, not an empty container
        raise CardNotPresentException(task.pathspec, card_type=type, card_id=id)
    return CardContainer(cards, origin_pathspec=origin)
