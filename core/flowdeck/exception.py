"""Metaflow's exception names (`metaflow.exception`), so `from flowdeck.exception import X`
works in a flow written for Metaflow.

Where Flowdeck already has the error, the Metaflow name is that class
(`UnhandledInMergeArtifactsException` is what `merge_artifacts` raises, and it is a
`MergeArtifactsException`); the others are plain subclasses of `MetaflowException`
with Metaflow's constructors. The client's lookups raise `MetaflowNotFound` (also a
`KeyError`) and `MetaflowNamespaceMismatch`.
"""

from __future__ import annotations

import traceback

from flowdeck.authoring.exceptions import (
    ExceptionWrapper,
    FailureHandledByCatch,
    MergeArtifactsException,
    MetaflowException,
    MissingInMergeArtifactsException,
    StepTimeout,
    UnhandledInMergeArtifactsException,
)

#: Metaflow's name for what `@timeout` raises inside a step.
TimeoutException = StepTimeout
#: What `@catch` stores in its `var` (Metaflow: MetaflowExceptionWrapper).
MetaflowExceptionWrapper = ExceptionWrapper


class ExternalCommandFailed(MetaflowException):
    headline = "External command failed"
    metaflow_name = "metaflow.exception.ExternalCommandFailed"

    def __init__(self, msg: str = ""):
        super().__init__(msg)


class MetaflowNotFound(MetaflowException, KeyError):
    """A flow, run, step, task or artifact that does not exist.

    Also a KeyError, as Metaflow's `run["missing_step"]` raises one; its `str()` is
    the message itself, not KeyError's quoted repr.
    """

    headline = "Object not found"
    metaflow_name = "metaflow.exception.MetaflowNotFound"

    def __str__(self) -> str:
        return MetaflowException.__str__(self)


class MetaflowNamespaceMismatch(MetaflowException):
    headline = "Object not in the current namespace"
    metaflow_name = "metaflow.exception.MetaflowNamespaceMismatch"

    def __init__(self, namespace: str | None = None, msg: str | None = None):
        super().__init__(msg or f"Object not in namespace '{namespace}'")


class MetaflowInvalidPathspec(MetaflowException):
    headline = "Invalid pathspec"
    metaflow_name = "metaflow.exception.MetaflowInvalidPathspec"


class MetaflowInternalError(MetaflowException):
    headline = "Internal error"
    metaflow_name = "metaflow.exception.MetaflowInternalError"


class MetaflowTaggingError(MetaflowException):
    headline = "Tagging error"
    metaflow_name = "metaflow.exception.MetaflowTaggingError"


class MetaflowUnknownUser(MetaflowException):
    headline = "Unknown user"
    metaflow_name = "metaflow.exception.MetaflowUnknownUser"

    def __init__(self) -> None:
        super().__init__("Could not determine your user name from the environment "
                         "($METAFLOW_USER, $USER, ...). Set METAFLOW_USER.")


class InvalidDecoratorAttribute(MetaflowException):
    headline = "Unknown decorator attribute"
    metaflow_name = "metaflow.exception.InvalidDecoratorAttribute"

    def __init__(self, deconame: str, attr: str, defaults: list[str]):
        super().__init__(f"Decorator '{deconame}' does not support the attribute '{attr}'. "
                         f"These attributes are supported: {', '.join(defaults)}.")


class CommandException(MetaflowException):
    headline = "Invalid command"
    metaflow_name = "metaflow.exception.CommandException"


class MetaflowDataMissing(MetaflowException):
    headline = "Data missing"
    metaflow_name = "metaflow.exception.MetaflowDataMissing"


class ParameterFieldFailed(MetaflowException):
    headline = "Parameter field failed"
    metaflow_name = "metaflow.exception.ParameterFieldFailed"

    def __init__(self, name: str, field: str):
        super().__init__(f"When evaluating the field *{field}* for the Parameter *{name}*, "
                         f"the following exception occurred:\n\n{traceback.format_exc()}")


class ParameterFieldTypeMismatch(MetaflowException):
    headline = "Parameter field with a mismatching type"
    metaflow_name = "metaflow.exception.ParameterFieldTypeMismatch"


__all__ = [
    "MetaflowException", "MetaflowExceptionWrapper", "ExternalCommandFailed",
    "MetaflowNotFound", "MetaflowNamespaceMismatch", "MetaflowInvalidPathspec",
    "MetaflowInternalError", "MetaflowTaggingError", "MetaflowUnknownUser",
    "InvalidDecoratorAttribute", "CommandException", "MetaflowDataMissing",
    "ParameterFieldFailed", "ParameterFieldTypeMismatch", "MergeArtifactsException",
    "UnhandledInMergeArtifactsException", "MissingInMergeArtifactsException",
    "TimeoutException", "FailureHandledByCatch",
]
