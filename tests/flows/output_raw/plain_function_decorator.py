import functools

import metaflow as mf
from metaflow import step as mstep


def logged(f):
    @functools.wraps(f)
    def wrapper(*a, **k):
        print("calling", f.__name__)
        return f(*a, **k)
    return wrapper


class AliasFlow(mf.FlowSpec):
    @mf.step
    def start(self):
        self.next(self.middle)

    @mstep
    @logged
    def middle(self):
        self.next(self.end)

    @mstep
    def end(self):
        pass


if __name__ == "__main__":
    AliasFlow()
