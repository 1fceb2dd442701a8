"""How a parameter's command-line text becomes its value, by the parameter's kind.

One definition for the engine (`Parameter.convert`) and for the window's form, which
checks what the user typed before it starts a run: a mistyped number is then said
beside its field, not by a run that fails to start.
"""

from __future__ import annotations

import json
from typing import Any

BOOL_WORDS = {"true": True, "1": True, "yes": True, "y": True, "on": True,
              "false": False, "0": False, "no": False, "n": False, "off": False}

#: The kinds converted here; any other type is the flow's own (called with the text).
BUILT_IN_KINDS = frozenset(("bool", "int", "float", "str", "json"))

#: A parameter's kind by the type name static analysis reads (`type=JSONType`, or the
#: default's type: a list or dict default makes a JSON parameter, as in the engine).
KIND_OF_TYPE_NAME = {"bool": "bool", "int": "int", "float": "float", "str": "str",
                     "JSONType": "json", "list": "json", "dict": "json"}


def separated(value: Any, separator: str | None) -> Any:
    """A parameter's value split at its `separator=` (a string value only: Metaflow's rule),
    for the engine and the bridge alike (the bridge recorded 'x,y' where the engine's run
    records ['x', 'y'])."""
    return value.split(separator) if separator and isinstance(value, str) else value


def value_text(kind: str | None, separator: str | None, value: Any) -> str:
    """The command-line text that gives a parameter of `kind` (a built-in kind or None) the
    value `value` back: JSON for a JSON parameter, the items joined for a `separator=` one,
    true/false for a flag. One rule for the records of both engines' runs (the bridge's
    copy wrote a bool default as JSON and an unsplit separator value)."""
    if kind == "json":
        return json.dumps(value)
    if separator and isinstance(value, list):  # `a,b` -> [a, b]
        return separator.join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def convert_text(kind: str, raw: str) -> Any:
    """The value of text `raw` for a parameter of built-in `kind`; ValueError saying why
    the text is not one (json.JSONDecodeError is a ValueError)."""
    if kind == "bool":
        word = raw.strip().lower()
        if word not in BOOL_WORDS:
            raise ValueError(f"{raw!r} is not a boolean (use true or false)")
        return BOOL_WORDS[word]
    if kind == "json":
        return json.loads(raw)
    return {"int": int, "float": float, "str": str}[kind](raw)


def text_problem(kind: str, raw: str) -> str | None:
    """Why `raw` is no value of `kind` (as `--name` would be refused), None if it is one
    or the kind is not built in (the flow's own type decides at run time)."""
    if kind not in BUILT_IN_KINDS:
        return None
    try:
        convert_text(kind, raw)
    except ValueError as exc:
        return f"{raw!r} is not a valid {kind} ({exc})"
    return None


def parameter_problem(type_name: str, raw: str) -> str | None:
    """`text_problem` for a parameter known by the type name static analysis reads
    (`ParameterInfo.type`): what the window's form and Runner's keywords both check."""
    kind = KIND_OF_TYPE_NAME.get(type_name)
    return text_problem(kind, raw) if kind is not None else None


def same_value(type_name: str, a: str, b: str) -> bool:
    """Whether two command-line texts give a parameter (known by the type name static
    analysis reads) the same value: `0.10` and `0.1` for a float, `{"a":1}` and
    `{"a": 1}` for JSON, `True` and `true` for a bool; texts, compared as they are, for a
    str or the flow's own type (and when either text is no value of its kind)."""
    if a == b:
        return True
    kind = KIND_OF_TYPE_NAME.get(type_name)
    if kind is None or kind == "str":
        return False
    try:
        first, second = convert_text(kind, a), convert_text(kind, b)
    except ValueError:
        return False
    if kind == "json":  # by JSON's own types: 1, 1.0 and true are three values (== says one)
        return json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    return bool(first == second)
