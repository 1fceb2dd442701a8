"""A plain Metaflow flow with two cards on one step (run through the bridge in tests)."""

from metaflow import FlowSpec, card, current, step
from metaflow.cards import Markdown, Table


class CardedFlow(FlowSpec):
    @card(type="blank", id="report")
    @card
    @step
    def start(self):
        self.score = 0.93
        current.card["report"].append(Markdown("# Model report"))
        current.card["report"].append(Table([["score", self.score]], headers=["name", "value"]))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CardedFlow()
