"""`metaflow.plugins` names flows import: Metaflow's internal unbounded-foreach test input."""

from flowdeck.authoring.decorators import InternalTestUnboundedForeachInput

__all__ = ["InternalTestUnboundedForeachInput"]
