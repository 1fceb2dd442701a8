# expect: decorator-argument line 10
# expect: decorator-argument line 15
import metaflow
from flowdeck import FlowSpec, retry, step, timeout


class MisspeltFlow(FlowSpec):
    """Misspelt decorator arguments: Python refuses them when it defines the class."""

    @retry(tims=3)
    @step
    def start(self):
        self.next(self.end)

    @timeout(second=5, minutes=1)
    @metaflow.catch(var="err")
    @step
    def end(self):
        pass
