"""`metaflow.plugins.cards.card_modules`: the card base classes of `flowdeck.cards`."""

from flowdeck.cards.card import MetaflowCard, MetaflowCardComponent

__all__ = ["MetaflowCard", "MetaflowCardComponent"]
