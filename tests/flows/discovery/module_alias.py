# Expected: one flow, ModuleAliasFlow, engine flowdeck, through `import flowdeck as fd`.
import flowdeck as fd


class ModuleAliasFlow(fd.FlowSpec):
    @fd.step
    def start(self):
        self.next(self.end)

    @fd.step
    def end(self):
        pass
