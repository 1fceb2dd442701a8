"""Flowdeck core: write Metaflow-style flows and run them with plain `python flow.py`.

No Qt here: the desktop app (`flowdeck_desktop`) talks to runs only through
the event stream and the datastore.
"""

__version__ = "0.2.0"

import sys as _sys  # noqa: E402
from typing import Any  # noqa: E402

from flowdeck.authoring import runner as _runner  # noqa: E402
from flowdeck.authoring.current import current  # noqa: E402
from flowdeck.authoring.exceptions import (  # noqa: E402
    ExceptionWrapper,
    StepTimeout,
)
from flowdeck.authoring.exceptions import show_user_errors as _show_user_errors  # noqa: E402
from flowdeck.authoring.spec import (  # noqa: E402
    FlowSpec,
    JSONType,
    MergeArtifactsException,
    Parameter,
    catch,
    resources,
    retry,
    step,
    timeout,
)


def _engine_entry() -> Any:
    """The engine's entry points, loaded when a flow first runs (not on `import flowdeck`)."""
    from flowdeck.engine import script_cli
    return script_cli


_runner.install(_engine_entry)
# A mistake in the flow's class, raised while Python defines it: one line, no traceback.
_sys.excepthook = _show_user_errors(_sys.excepthook)

_CLIENT = "flowdeck.client"
_DECORATORS = "flowdeck.authoring.decorators"
_MUTATORS = "flowdeck.authoring.mutators"
#: Names loaded only when a flow uses them, so `import flowdeck` stays small and fast.
_LAZY = {
    **dict.fromkeys(("Flow", "Run", "Step", "Task", "DataArtifact", "Metaflow", "namespace",
                     "get_namespace", "default_namespace", "get_metadata", "metadata",
                     "default_metadata"),
                    _CLIENT),
    **dict.fromkeys(("Config", "config_expr", "ConfigValue"), "flowdeck.authoring.configs"),
    "IncludeFile": "flowdeck.authoring.includefile",
    **dict.fromkeys(("project", "parallel", "environment", "secrets", "card", "kubernetes",
                     "batch", "conda", "pypi", "conda_base", "pypi_base", "schedule",
                     "trigger", "trigger_on_finish", "exit_hook", "profile",
                     "unbounded_test_foreach_internal"), _DECORATORS),
    **dict.fromkeys(("FlowMutator", "StepMutator", "UserStepDecorator", "user_step_decorator"),
                    _MUTATORS),
    "MetaflowException": "flowdeck.authoring.exceptions",
    **dict.fromkeys(("Runner", "ExecutingRun"), "flowdeck.programmatic"),
}


def __getattr__(name: str):  # PEP 562: these modules load only when asked for
    module = _LAZY.get(name)
    if module is not None:
        import importlib
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flowdeck' has no attribute {name!r}")


__all__ = [
    "FlowSpec", "step", "Parameter", "JSONType", "current", "retry", "catch", "timeout",
    "resources", "ExceptionWrapper", "StepTimeout", "MergeArtifactsException", "__version__",
    *_LAZY,
]
