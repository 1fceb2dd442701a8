"""Python's method resolution order (C3 linearisation), over classes known by key.

Static analysis reads a flow's classes from their source and never creates them, so it
cannot ask Python for `__mro__`; it orders them the way Python would, so the steps and
parameters it finds are the ones a run finds (the engines collect them over
`reversed(flow.__mro__)`, the nearer class winning).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def c3_merge(sequences: Sequence[Sequence[K]]) -> list[K] | None:
    """C3's merge of the bases' linearisations and the list of bases, or None where Python
    refuses the class ("Cannot create a consistent method resolution order")."""
    pending = [list(s) for s in sequences if s]
    merged: list[K] = []
    while pending:
        for sequence in pending:
            head = sequence[0]
            if not any(head in other[1:] for other in pending):
                break
        else:
            return None
        merged.append(head)
        pending = [rest for rest in ([x for x in s if x != head] for s in pending) if rest]
    return merged


def linearise(key: K, bases: Sequence[K], mro_of: dict[K, list[K]]) -> list[K] | None:
    """The MRO of the class `key` whose bases are `bases` (each in `mro_of`, or a class
    known by name only, whose MRO is itself), or None when Python refuses the order."""
    if len(set(bases)) != len(bases):
        return None  # `class A(B, B)`: "duplicate base class"
    merged = c3_merge([mro_of.get(b, [b]) for b in bases] + [list(bases)])
    return None if merged is None else [key, *merged]
