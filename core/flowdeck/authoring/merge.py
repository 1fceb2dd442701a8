"""`merge_artifacts` for join steps, with Metaflow's rules.

Values are compared by their content hash in the blob store, so merging
never unpickles an artifact: agreeing values are carried over by reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowdeck.store.blobs import BlobRef
from flowdeck.authoring.spec import MergeArtifactsException

if TYPE_CHECKING:  # pragma: no cover
    from flowdeck.authoring.spec import FlowSpec, Inputs


def merge_artifacts(flow: "FlowSpec", inputs: "Inputs", exclude: list[str],
                    include: list[str]) -> None:
    ctx = flow.__dict__.get("_fd_ctx")
    if ctx is None or not ctx.is_join:
        raise RuntimeError("merge_artifacts() can only be called in a join step "
                           "(a step that takes `inputs`).")
    if exclude and include:
        raise ValueError("merge_artifacts() takes `exclude` or `include`, not both.")
    set_here = {k for k in flow.__dict__ if not k.startswith("_fd")}
    candidates: dict[str, list[BlobRef]] = {}
    for inp in inputs:
        for name, ref in inp._fd_ctx.artifact_refs.items():
            if name in ctx.params or name.startswith("_"):
                continue
            candidates.setdefault(name, []).append(ref)
    missing = [n for n in include if n not in candidates]
    if missing:
        raise MergeArtifactsException(
            f"Step `{ctx.step}`: merge_artifacts(include=...) names {missing}, which no "
            "input has. Fix the names or set those artifacts before the join.", missing)
    chosen = include or [n for n in candidates if n not in exclude]
    conflicts = []
    for name in chosen:
        if name in set_here:
            continue
        refs = candidates[name]
        if len({r.sha for r in refs}) > 1:
            conflicts.append(name)
        else:
            ctx.artifact_refs[name] = refs[0]
    if conflicts:
        names = ", ".join(sorted(conflicts))
        raise MergeArtifactsException(
            f"Step `{ctx.step}` cannot merge artifacts whose values differ between its "
            f"inputs: {names}. Assign them in the join step first (for example "
            f"`self.{sorted(conflicts)[0]} = inputs[0].{sorted(conflicts)[0]}`) or pass "
            f"exclude={sorted(conflicts)!r}.", sorted(conflicts))
