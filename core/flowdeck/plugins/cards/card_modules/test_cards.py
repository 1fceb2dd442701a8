"""`metaflow.plugins.cards.card_modules.test_cards`: `flowdeck.cards.test_cards`."""

from flowdeck.cards.test_cards import *  # noqa: F403
from flowdeck.cards.test_cards import _component_values_to_hash  # noqa: F401
