"""`metaflow.plugins.cards.card_modules.basic`: `flowdeck.cards.basic`."""

from flowdeck.cards.basic import *  # noqa: F403
