"""`metaflow.plugins` names flows import: Metaflow's internal unbounded-foreach test input,
and `metaflow.plugins.cards...` (the card modules Metaflow's own tests import), which are
`flowdeck.cards`."""

from flowdeck.authoring.decorators import InternalTestUnboundedForeachInput
from flowdeck.authoring.values import UnboundedForeachInput

__all__ = ["InternalTestUnboundedForeachInput", "UnboundedForeachInput"]
