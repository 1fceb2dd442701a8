# Expected: one flow, AliasFlow, engine flowdeck: FlowSpec and step under other names.
from flowdeck import FlowSpec as F, step as s


class AliasFlow(F):
    @s
    def start(self):
        self.next(self.end)

    @s
    def end(self):
        pass
