"""A task's card list (`cards/cards.json`): the one record of which cards a task has.

Written only by the task's own process (`flowdeck.cards.runtime`), atomically, each
time a card is written; read by the client (`get_cards`) and by the window's Cards tab,
which polls this one small file's modification time to follow live cards. Paths come
from `RunLayout`; entries name their file relative to the task's cards folder.

States: `live` (written by `current.card.refresh()` while the task runs), `final`
(rendered after the task succeeded), `error` (the card failed: `error` says why; the
file, if any, is the error card), `stopped` (a live card whose task then failed or was
cancelled, so no final card was made, as in Metaflow; its file is rewritten without
the live badge and reload).

A task that never got to say so (killed, or its run's orchestrator killed) leaves
`live` in the file: readers ask `TaskCardIndex.read_effective`, which reads a live card
of a run that has ended or crashed (the store's one rule, `effective_status`) as
`stopped`, and `html.stopped_html` for its page.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, field
from pathlib import Path
from typing import Any

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.blobs import atomic_write_json
from flowdeck.store.index import read_run
from flowdeck.store.layout import RunLayout
from flowdeck.store.status import RUN_FINAL

LIVE, FINAL, ERROR, STOPPED = "live", "final", "error", "stopped"


@dataclass
class CardEntry:
    """One card of a task, as the index records it."""

    index: int
    type: str
    id: str | None
    state: str
    file: str | None = None          # the HTML file's name in the cards folder, if written
    hash: str | None = None          # sha1 of the HTML (Metaflow's card hash)
    data_file: str | None = None     # the latest refresh data (`Card.get_data()`)
    #: A rendering of the card that needs no script, for views without a browser engine,
    #: where the card's own HTML draws itself with JavaScript (Metaflow's cards do).
    static_file: str | None = None
    error: str | None = None         # why the card failed (also shown in the window)
    attempt: int = 0
    updated: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CardEntry":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        entry = cls(**known)
        for name in ("file", "data_file", "static_file"):  # a name, never a path out of the folder
            value = getattr(entry, name)
            if value is not None and (not isinstance(value, str) or "/" in value
                                      or value.startswith(".")):
                setattr(entry, name, None)
        return entry


@dataclass
class TaskCardIndex:
    """Where one task's cards live, and its index."""

    layout: RunLayout
    run_id: str
    step: str
    task_id: str

    @property
    def folder(self) -> Path:
        return self.layout.cards_dir(self.run_id, self.step, self.task_id)

    @property
    def path(self) -> Path:
        return self.layout.card_index(self.run_id, self.step, self.task_id)

    def read(self) -> list[CardEntry]:
        """The task's cards in decorator order; [] when it has none (or none yet)."""
        return read_index(self.path)

    def read_effective(self) -> list[CardEntry]:
        """The task's cards as a reader must see them: a `live` card of a run that has
        ended or crashed is `stopped` (nothing will write it again, so it is not live)."""
        entries = self.read()
        if any(e.state == LIVE for e in entries) and run_ended(self.layout, self.run_id):
            for entry in entries:
                if entry.state == LIVE:
                    entry.state = STOPPED
        return entries

    def write(self, entries: list[CardEntry]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"version": 1, "cards": [asdict(e) for e in entries]})


def run_ended(layout: RunLayout, run_id: str) -> bool:
    """Whether a run has ended, crashed included, by the store's rule (`effective_status`);
    one whose record cannot be read has not, as far as its cards can tell."""
    return read_run(layout, run_id).status in RUN_FINAL


def read_index(path: str | os.PathLike[str]) -> list[CardEntry]:
    """Entries of a `cards.json`; [] if it is missing; a damaged file reads as no cards
    (it is rewritten whole by the task, so damage means a foreign edit)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return []
    cards = data.get("cards") if isinstance(data, dict) else None
    out = []
    for item in cards if isinstance(cards, list) else []:
        if isinstance(item, dict):
            try:
                out.append(CardEntry.from_dict(item))
            except TypeError:
                continue
    return out
