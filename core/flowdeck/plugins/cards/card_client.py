"""`metaflow.plugins.cards.card_client`: `flowdeck.cards.client`."""

from flowdeck.cards.client import Card, CardContainer, get_cards

__all__ = ["Card", "CardContainer", "get_cards"]
