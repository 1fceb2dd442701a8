"""Small facts shared by the authoring API and the client, importing nothing of ours.

They sit apart so that `spec`, `current`, `configs`, `includefile` and the client can
all use them without importing each other (no import circles).
"""

from __future__ import annotations

import os
from typing import Any

from flowdeck.authoring.definitions import PARALLEL_VAR  # noqa: F401 (its users import it here)
from flowdeck.store.records import account_name

#: The step decorator that runs an unbounded foreach's step (the only one Flowdeck has).
UNBOUNDED_FOREACH_DECORATOR = "unbounded_test_foreach_internal"


class UnboundedForeachInput:
    """Base of the values a foreach treats as unbounded (Metaflow's class of that name).

    A foreach over one runs as Metaflow runs it locally: a control task plus one
    worker per item, followed by a join; the engine counts the items by iterating the
    value once, and each worker reads its item as `value[index]`.
    """


def username() -> str:
    """The user a run belongs to, by Metaflow's rule: what namespaces and `user:` tags name.

    `$METAFLOW_USER` first (flows and CI set it on purpose), then the usual
    login variables (root does not count, as in Metaflow), then the account.
    """
    for var in ("METAFLOW_USER", "SUDO_USER", "USERNAME", "USER", "LOGNAME"):
        value = os.environ.get(var)
        if value and (value != "root" or var == "METAFLOW_USER"):
            return value
    return account_name() or "unknown"


class IncludedFile:
    """What the run stores for an IncludeFile: the contents and the path they came from.

    Steps and the client see only the contents. Its `str()` is the path, because
    the run's record shows a parameter as the text that gives it on a command line
    (a rerun passes the path again, not the contents).
    """

    def __init__(self, path: str, content: str | bytes):
        self.path = path
        self.content = content

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return self.path

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IncludedFile):
            return (self.path, self.content) == (other.path, other.content)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.path, self.content))


def contents(value: Any) -> Any:
    """The contents an IncludeFile value stands for (other values unchanged)."""
    return value.content if isinstance(value, IncludedFile) else value
