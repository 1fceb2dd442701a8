"""Placeholders for names Flowdeck lacks, used only by `run_suite --lenient-imports`.

The measured figure uses the generated import lines as they are, so a flow fails
at its first name Flowdeck lacks. The lenient diagnostic binds each missing name
to a placeholder instead, which fails only when the flow really *uses* it, to show
what breaks next. It never counts towards the figure or the baseline.
"""


class MissingInFlowdeck(Exception):
    pass


class _Missing:
    def __init__(self, module, name):
        self._where = f"{module}.{name}"

    def _fail(self, *args, **kwargs):
        raise MissingInFlowdeck(f"{self._where} is used but Flowdeck has no such name")

    __call__ = _fail

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        self._fail()

    def __repr__(self):
        return f"<missing {self._where}>"


def missing(module, name):
    return _Missing(module, name)
