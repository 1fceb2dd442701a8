"""Stand-in `metaflow` modules for the *generating* process only.

The suite's `metaflow_test` package, its `formatter.py` and a few test modules
import names from `metaflow` at import time (`StepMutator`, `current`,
`MetaflowException`, `get_cards`, ...). Generating code only needs those
imports to succeed: the formatter reads the test methods' source text and
never calls into Metaflow. So, instead of importing Metaflow (which must not
run in this measurement), the generator installs a permissive stand-in:
every `metaflow` / `metaflow.x.y` module exists and every attribute of it is a
distinct placeholder class named after the attribute.

Only `run_suite.py` installs it, in its own process. Flow and check processes
get `sandbox/blocked/metaflow`, which refuses to import at all.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types


class _Placeholder:
    """Base of every placeholder name; instances and calls are inert."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return self


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = type(name, (_Placeholder,), {"__module__": self.__name__})
        setattr(self, name, value)
        return value


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "metaflow" or fullname.startswith("metaflow."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []  # a package: submodules resolve through this finder too
        module.__file__ = "<flowdeck compat generation stub>"
        module.__flowdeck_generation_stub__ = True
        return module

    def exec_module(self, module):
        pass


_FINDER = _StubFinder()


def install() -> None:
    """Make `import metaflow...` resolve to stand-ins in this process (idempotent)."""
    loaded = sys.modules.get("metaflow")
    if loaded is not None and not getattr(loaded, "__flowdeck_generation_stub__", False):
        raise RuntimeError("the real metaflow is already imported in this process; the "
                           "compatibility runner must generate code without it")
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
