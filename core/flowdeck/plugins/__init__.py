"""`metaflow.plugins` names flows import: Metaflow's internal unbounded-foreach test input,
and `metaflow.plugins.cards...` (the card modules Metaflow's own tests import), which are
`flowdeck.cards`."""

from flowdeck.authoring.decorators import InternalTestUnboundedForeachInput

__all__ = ["InternalTestUnboundedForeachInput"]
