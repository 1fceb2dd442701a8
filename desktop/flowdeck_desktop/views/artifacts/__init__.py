"""The Artifacts tab: a task's artifacts listed, and the selected one in a viewer by type.

`pane.ArtifactsPane` (list and viewers), `viewers` (table, plot, image, tree, text,
repr), `helper` (the time-limited helper process that unpickles, never the window).
"""

from flowdeck_desktop.control.task_helper import HelperAnswer, HelperCall, HelperRequest
from flowdeck_desktop.views.artifacts.pane import ArtifactsPane

__all__ = ["ArtifactsPane", "HelperAnswer", "HelperCall", "HelperRequest"]
