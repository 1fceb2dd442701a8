"""Flowdeck core: write Metaflow-style flows and run them with plain `python flow.py`.

No Qt here: the desktop app (`flowdeck_desktop`) talks to runs only through
the event stream and the datastore.
"""

__version__ = "0.2.0"

from typing import Any  # noqa: E402

from flowdeck.authoring import runner as _runner  # noqa: E402
from flowdeck.authoring.current import current  # noqa: E402
from flowdeck.authoring.exceptions import ExceptionWrapper, StepTimeout  # noqa: E402
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

_CLIENT_NAMES = {"Flow", "Run", "Step", "Task", "DataArtifact"}


def __getattr__(name: str):  # PEP 562: the client loads only when asked for
    if name in _CLIENT_NAMES:
        from flowdeck import client
        return getattr(client, name)
    raise AttributeError(f"module 'flowdeck' has no attribute {name!r}")


__all__ = [
    "FlowSpec", "step", "Parameter", "JSONType", "current", "retry", "catch", "timeout",
    "resources",
    "Flow", "Run", "Step", "Task", "DataArtifact", "ExceptionWrapper", "StepTimeout",
    "MergeArtifactsException", "__version__",
]
