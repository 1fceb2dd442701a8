# Expected: one flow, PlainMetaflowFlow, engine metaflow, through `import metaflow`.
import metaflow


class PlainMetaflowFlow(metaflow.FlowSpec):
    @metaflow.step
    def start(self):
        self.next(self.end)

    @metaflow.step
    def end(self):
        pass
