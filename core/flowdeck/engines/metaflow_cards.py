"""Copy a Metaflow-bridge task's cards into Flowdeck's store, in a helper process.

A run made by the Metaflow bridge keeps its cards in Metaflow's datastore, which
only Metaflow's client reads (`metaflow.cards.get_cards`). The window's Cards tab
reads one format, the task's card folder with its `cards.json` (`flowdeck.cards.index`),
so this helper, started in the flow's own interpreter, renders nothing: it asks
Metaflow's client for the task's cards and writes each card's HTML and the index
there, where the tab already looks (and follows the index's modification time)::

    python -m flowdeck.engines.metaflow_cards ROOT FLOW RUN_ID STEP TASK_ID

It prints one JSON object: `{"cards": N, "error": null | "what is wrong"}`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from flowdeck.cards.html import components_html, page
from flowdeck.cards.index import FINAL, CardEntry, TaskCardIndex
from flowdeck.engines.inspect_task import run_info
from flowdeck.engines.metaflow import MetaflowEngine
from flowdeck.store.blobs import atomic_write
from flowdeck.store.layout import InvalidId, RunLayout


def export_cards(root: str, flow: str, run_id: str, step: str, task_id: str
                 ) -> dict[str, Any]:
    """Write the Metaflow task's cards into Flowdeck's card folder of that task."""
    info = run_info(root, flow, run_id)
    if info.get("engine") != "metaflow":
        return {"cards": 0, "error": f"Run {run_id} was not made by the Metaflow bridge."}
    mf_run = info.get("metaflow_run_id")
    if not mf_run:
        return {"cards": 0, "error": "This Metaflow run never started (no Metaflow run id "
                                     "was recorded); see its log for why."}
    try:
        from metaflow import Task, namespace
        from metaflow.cards import get_cards
    except ImportError:
        return {"cards": 0, "error": "This interpreter cannot import metaflow; install it "
                                     "with `python -m pip install metaflow` to see the cards."}
    file = info.get("file") or ""
    if file and os.path.isdir(os.path.dirname(file)):
        os.chdir(MetaflowEngine().working_dir(file))  # where the run found its .metaflow/
    try:
        index = TaskCardIndex(RunLayout(Path(root), flow), run_id, step, task_id)
        namespace(None)
        cards = list(get_cards(Task(f"{flow}/{mf_run}/{step}/{task_id}")))
    except InvalidId as exc:
        return {"cards": 0, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 (Metaflow's client: missing task, datastore)
        return {"cards": 0, "error": f"Metaflow could not list the cards of "
                                     f"{flow}/{mf_run}/{step}/{task_id}: {exc}"}
    entries = [_write_card(index, number, card) for number, card in enumerate(cards)]
    index.write(entries)
    return {"cards": len(entries), "error": None}


def _write_card(index: TaskCardIndex, number: int, card: Any) -> CardEntry:
    """One Metaflow card as a file of the task's card folder and its index entry."""
    card_type = str(getattr(card, "type", "") or "default")
    card_id = getattr(card, "id", None)
    entry = CardEntry(index=number, type=card_type, id=card_id, state=FINAL,
                      updated=time.time())
    try:
        html = card.get()
    except Exception as exc:  # noqa: BLE001 (a card Metaflow cannot read back)
        entry.state = "error"
        entry.error = f"Metaflow could not read card {number} ({card_type}): {exc}"
        return entry
    data = html.encode("utf-8") if isinstance(html, str) else bytes(html)
    entry.hash = getattr(card, "hash", None) or hashlib.sha1(data).hexdigest()
    entry.file = f"metaflow-{number}-{_safe(card_type)}.html"
    index.folder.mkdir(parents=True, exist_ok=True)
    atomic_write(index.folder / entry.file, data)
    static = static_html(data.decode("utf-8", "replace"), f"{card_type} card")
    if static is not None:
        entry.static_file = f"metaflow-{number}-{_safe(card_type)}.static.html"
        atomic_write(index.folder / entry.static_file, static.encode("utf-8"))
    return entry


#: Where a Metaflow card keeps its content: base64 JSON its script draws in the browser.
_CARD_DATA = re.compile(r'window\.__MF_DATA__\["[^"]*"\]\s*=\s*"([A-Za-z0-9+/=]+)"')


def static_html(card_html: str, title: str) -> str | None:
    """A script-free page of a Metaflow card's components (markdown, tables, images,
    artifacts, the DAG), drawn by Flowdeck's own card renderer; None when the card
    carries no data Flowdeck can read (the browser still shows it)."""
    match = _CARD_DATA.search(card_html)
    if match is None:
        return None
    try:
        data = json.loads(base64.b64decode(match.group(1)))
    except (binascii.Error, ValueError):
        return None
    components = data.get("components") if isinstance(data, dict) else None
    if not isinstance(components, list):
        return None
    pathspec = (data.get("metadata") or {}).get("pathspec", "")
    return page(title, components_html(components), subtitle=str(pathspec))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "card"


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: python -m flowdeck.engines.metaflow_cards ROOT FLOW RUN_ID STEP TASK_ID",
              file=sys.stderr)
        return 2
    print(json.dumps(export_cards(*argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
