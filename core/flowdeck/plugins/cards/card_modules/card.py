"""`metaflow.plugins.cards.card_modules.card`: `flowdeck.cards.card`."""

from flowdeck.cards.card import *  # noqa: F403
