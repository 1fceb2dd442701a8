# Expected: no flow. These classes look like flows, but their FlowSpec is not
# Flowdeck's or Metaflow's.
from flowdeck_helpers import FlowSpec
from workflows.metaflow import step
import metaflow_like as metaflow


class LooksLikeAFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class AlsoNotAFlow(metaflow.FlowSpec):
    pass
