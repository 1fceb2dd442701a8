"""Cards: HTML reports a step builds while it runs, with Metaflow's API (`metaflow.cards`).

    from flowdeck import card, current
    from flowdeck.cards import Markdown, Table, Image, Artifact, VegaChart, ProgressBar

    @card(type="blank", id="report")
    @step
    def train(self):
        current.card["report"].append(Markdown("# Training"))
        ...

The package, by concern:

* `card` (MetaflowCard, MetaflowCardComponent) and `components` (what a step appends);
* `basic`: the card types `default`, `blank`, `html`, `error` and the type registry;
* `html`: rendered components to one self-contained HTML page (no script, no network);
* `collector`: `current.card` (Metaflow's default-editable-card rules, `refresh()`);
* `runtime`: rendering in the task's process (live on refresh, final after success),
  called by the engine (`flowdeck.engine.task`);
* `index`: the task's card list on disk (`cards/cards.json`), written by the task,
  read by `client` (`get_cards`) and the window;
* `test_cards`: Metaflow's test card types, for Metaflow's own test suite.
"""

from flowdeck.cards.basic import BlankCard, DefaultCard, ErrorCard, HTMLCard
from flowdeck.cards.card import MetaflowCard, MetaflowCardComponent
from flowdeck.cards.client import Card, CardContainer, CardNotPresentException, get_cards
from flowdeck.cards.components import (
    Artifact,
    Error,
    EventsTimeline,
    Image,
    JSONViewer,
    Markdown,
    ProgressBar,
    PythonCode,
    Table,
    ValueBox,
    VegaChart,
    YAMLViewer,
)

__all__ = [
    "MetaflowCard", "MetaflowCardComponent", "Markdown", "Table", "Image", "Artifact",
    "VegaChart", "ProgressBar", "Error", "ValueBox", "JSONViewer", "YAMLViewer", "PythonCode",
    "EventsTimeline", "get_cards", "Card", "CardContainer",
    "CardNotPresentException", "DefaultCard", "BlankCard", "HTMLCard", "ErrorCard",
]
