"""`from metaflow.metaflow_current import current`, for flows that import it from there."""

from flowdeck.authoring.current import Current, Parallel, current

__all__ = ["Current", "Parallel", "current"]
