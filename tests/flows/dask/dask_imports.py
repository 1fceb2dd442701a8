"""A flow using a module beside it (shipped to the workers by value) and, when asked, a
module only the orchestrator's Python can import (the workers cannot)."""
import os

import dask_helper

from flowdeck import FlowSpec, Parameter, step

if os.environ.get("DASK_TEST_ONLY_HERE"):
    import only_on_this_machine as extra
else:
    extra = None


class ImportsFlow(FlowSpec):
    word = Parameter("word", default="hello")

    @step
    def start(self):
        self.shout = dask_helper.shout(self.word)
        self.extra = extra.VALUE if extra is not None else None
        self.next(self.end)

    @step
    def end(self):
        print("shout", self.shout)


if __name__ == "__main__":
    ImportsFlow()
