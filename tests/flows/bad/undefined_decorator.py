# expect: undefined-decorator line 14
# expect: undefined-decorator line 19
import functools

from flowdeck import FlowSpec, retry, step


def logged(function):
    return functools.wraps(function)(function)


class TypoFlow(FlowSpec):
    """Misspelt decorators: Python stops with NameError when it defines the class."""
    @stpe
    def start(self):
        self.next(self.end)

    @logged
    @retyr(times=2)
    @step
    def end(self):
        pass

    @retry
    @functools.cache
    def helper(self):
        return 1
