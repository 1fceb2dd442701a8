"""`metaflow.plugins.cards.exception`: the card exceptions of `flowdeck.cards.client`."""

from flowdeck.cards.client import CardNotPresentException, IncorrectArgumentException

__all__ = ["CardNotPresentException", "IncorrectArgumentException"]
