"""The state a running step sees through `self`: its artifacts, parameters and foreach frames.

Kept apart from `spec.py` so the authoring API stays small: `FlowSpec`
delegates every engine concern to the `StepContext` attached to it.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from flowdeck.compiled_dataclasses import dataclass
from flowdeck.store.blobs import BlobRef, BlobStore


@dataclass(frozen=True)
class Frame:
    """One enclosing split of a task: which split task opened it and which branch this is.

    `kind` is "foreach", "split", "loop" (a recursive switch's round), or "control": the
    control task of an unbounded foreach, which stands beside the fan-out's workers
    rather than being one of its items. `unbounded` marks the frame of an unbounded
    foreach's worker: `num_splits` is then the engine's count of items, which the step
    does not see (its `foreach_stack()` says None, as Metaflow's does).
    """

    split_step: str
    split_task_id: str
    kind: str  # "foreach", "split", "loop" or "control"
    var: str | None
    index: int
    num_splits: int
    unbounded: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = {"split_step": self.split_step, "split_task_id": self.split_task_id,
               "kind": self.kind, "var": self.var, "index": self.index,
               "num_splits": self.num_splits}
        if self.unbounded:
            out["unbounded"] = True
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Frame":
        return cls(d["split_step"], str(d["split_task_id"]), d["kind"], d.get("var"),
                   int(d["index"]), int(d["num_splits"]), bool(d.get("unbounded", False)))


def frames_signature(frames: tuple[Frame, ...] | list[Frame]) -> str:
    """Identity of a task's place in the fan-out, stable across runs (for resume)."""
    return "/".join(f"{f.split_step}:control" if f.kind == "control" else
                    f"{f.split_step}:{f.index}" for f in frames)


#: Artifact values the orchestrator loaded before forking, by blob digest. A forked task
#: inherits them (copy-on-write) and reads them without loading the blob again: a foreach's
#: list is loaded once per fan-out, not once per task (N tasks x N items). Filled only by
#: `preload` in the process that forks the workers; a worker only reads it.
INHERITED: dict[str, Any] = {}
INHERITED_LIMIT = 4  # values kept (the newest fan-outs): memory stays bounded


def preload(blobs: BlobStore, ref: BlobRef) -> None:
    """Load a blob into INHERITED for the tasks forked after this; a value that cannot be
    loaded here is left to the task, which reports the problem as its own failure."""
    preload_digest(blobs, ref.sha)


def preload_digest(blobs: BlobStore, sha: str) -> None:
    """`preload` by digest (what the fork server is told)."""
    if sha in INHERITED:
        return
    try:
        value = blobs.get(sha)
    except Exception:  # noqa: BLE001 (the task loads it again and reports the real error)
        return
    while len(INHERITED) >= INHERITED_LIMIT:
        del INHERITED[next(iter(INHERITED))]
    INHERITED[sha] = value


def foreach_input_ref(frames: tuple[Frame, ...], parents: list[Any]) -> BlobRef | None:
    """The list of a task's innermost foreach, which its `self.input` indexes; None when
    the task is no foreach item. `parents` are the task's parent results (any objects
    with an `artifacts` dict of BlobRef)."""
    foreach = [f for f in frames if f.kind == "foreach" and f.var]
    if not foreach or len(parents) != 1:
        return None
    ref: BlobRef | None = parents[0].artifacts.get(foreach[-1].var or "")
    return ref


@dataclass
class StepContext:
    """Everything `self` needs while a step runs (or while a join reads an input)."""

    flow_name: str
    run_id: str
    step: str
    task_id: str
    blobs: BlobStore
    params: dict[str, Any] = field(default_factory=dict)
    artifact_refs: dict[str, BlobRef] = field(default_factory=dict)
    frames: tuple[Frame, ...] = ()
    is_join: bool = False
    read_only: bool = False
    transition: tuple[list[str], str | None] | None = None
    next_calls: int = 0
    #: Where the step called self.next() (file, line): a foreach the engine refuses at the
    #: split is named there, not at the step's end or a later task's `self.input`.
    next_at: tuple[str, int] | None = None
    loaded: dict[str, Any] = field(default_factory=dict)  # read-only cache, not persisted
    #: A join's input whose step failed and @catch kept going: what it caught.
    caught: dict[str, Any] | None = None
    _foreach: list[Frame] | None = field(default=None, init=False, repr=False, compare=False)

    def load(self, ref: BlobRef) -> Any:
        if ref.sha in INHERITED:
            return INHERITED[ref.sha]
        return self.blobs.get(ref.sha)

    def foreach_frames(self) -> list[Frame]:
        """The foreach frames, innermost last (computed once: `self.input` asks twice)."""
        if self._foreach is None:
            self._foreach = [f for f in self.frames if f.kind == "foreach"]
        return self._foreach
