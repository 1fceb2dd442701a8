"""`metaflow.plugins.cards.card_modules.components`: `flowdeck.cards.components`."""

from flowdeck.cards.components import *  # noqa: F403
