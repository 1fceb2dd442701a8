"""`merge_artifacts` for join steps, with Metaflow's rules.

Artifacts are compared by value. The blob hash answers first: the same
hash is the same value, so most merges never unpickle anything and carry
agreeing values over by reference. Different hashes do not prove different
values, though: a set pickles in an order that follows the process's hash
seed, and blobs of older stores have names from another hash. So then the
values themselves are compared, and a fresh run and every resume of it
agree on the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowdeck.authoring.exceptions import (
    MetaflowException,
    MissingInMergeArtifactsException,
    UnhandledInMergeArtifactsException,
)
from flowdeck.store.blobs import BlobRef, BlobStore

if TYPE_CHECKING:  # pragma: no cover
    from flowdeck.authoring.spec import FlowSpec, Inputs


def merge_artifacts(flow: "FlowSpec", inputs: "Inputs", exclude: list[str],
                    include: list[str]) -> None:
    ctx = flow.__dict__.get("_fd_ctx")
    if ctx is None or not ctx.is_join:
        raise MetaflowException("merge_artifacts() can only be called in a join step "
                                "(a step that takes `inputs`).")
    if exclude and include:
        raise MetaflowException("merge_artifacts() takes `exclude` or `include`, not both.")
    set_here = {k for k in flow.__dict__ if not k.startswith("_fd")}
    candidates: dict[str, list[BlobRef]] = {}
    for inp in inputs:
        for name, ref in inp._fd_ctx.artifact_refs.items():
            if name in ctx.params or name.startswith("_"):
                continue
            candidates.setdefault(name, []).append(ref)
    missing = [n for n in include if n not in candidates]
    if missing:
        raise MissingInMergeArtifactsException(
            f"Step `{ctx.step}`: merge_artifacts(include=...) names {missing}, which no "
            "input has. Fix the names or set those artifacts before the join.", missing)
    chosen = include or [n for n in candidates if n not in exclude]
    merged = {}
    conflicts = []
    for name in chosen:
        if name in set_here:
            continue
        refs = candidates[name]
        if _refs_agree(ctx.blobs, refs):
            merged[name] = refs[0]  # the first input's: the same on every run
        else:
            conflicts.append(name)
    if conflicts:  # all or nothing: a failed merge leaves `self` as it was
        names = ", ".join(sorted(conflicts))
        raise UnhandledInMergeArtifactsException(
            f"Step `{ctx.step}` cannot merge artifacts whose values differ between its "
            f"inputs: {names}. Assign them in the join step first (for example "
            f"`self.{sorted(conflicts)[0]} = inputs[0].{sorted(conflicts)[0]}`) or pass "
            f"exclude={sorted(conflicts)!r}.", sorted(conflicts))
    ctx.artifact_refs.update(merged)


def _refs_agree(blobs: BlobStore, refs: list[BlobRef]) -> bool:
    """True when every ref holds the same value: the same bytes (one name, or one value
    named in two digest schemes: a large array from an older run), or values that compare
    equal."""
    distinct = list({r.sha: r for r in refs}.values())
    if all(blobs.same_bytes(distinct[0], r) for r in distinct[1:]):
        return True
    first = blobs.get(distinct[0].sha)
    return all(values_agree(first, blobs.get(r.sha)) for r in distinct[1:])


def values_agree(a: Any, b: Any) -> bool:
    """True only when `a` and `b` are of one type and `a == b` clearly says True.

    `==` can raise, or answer with something other than a bool (a numpy array
    answers element by element): those count as "not the same value".
    """
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        answer = a == b
    except Exception:
        return False
    return answer is True
