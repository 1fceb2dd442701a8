"""Shared helpers for the discovery and watcher tests: flow sources, a diff collector."""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from flowdeck.discovery.catalog import CatalogDiff
from flowdeck.discovery.watcher import WatchStatus

CASES = Path(__file__).resolve().parent / "flows" / "discovery"

_counter = itertools.count()


def flow_source(name: str = "DemoFlow", note: str = "", steps: int = 1,
                engine: str = "flowdeck") -> str:
    """A valid linear flow `name` with `steps` middle steps; `note` changes its content."""
    middle = [f"m{i}" for i in range(steps)]
    chain = ["start"] + middle + ["end"]
    lines = [f"from {engine} import FlowSpec, step", "", "",
             f"class {name}(FlowSpec):", f'    """{name}: {note}"""', ""]
    for here, nxt in zip(chain, chain[1:]):
        lines += ["    @step", f"    def {here}(self):", f"        self.next(self.{nxt})", ""]
    lines += ["    @step", "    def end(self):", f'        """End ({note})."""', ""]
    return "\n".join(lines)


#: A base flow in `shared.py`, and two flows inheriting from it that never say FlowSpec,
#: name no `...Flow` and apply no `@step` (the prefilter hid both).
SHARED = """
    from metaflow import FlowSpec, step, Parameter


    class Pipeline(FlowSpec):
        alpha = Parameter("alpha", default=1)

        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            print("alpha", self.alpha)
    """
NIGHTLY = """
    from metaflow import Parameter
    from shared import Pipeline


    class Nightly(Pipeline):
        beta = Parameter("beta", default=5)


    if __name__ == "__main__":
        Nightly()
    """
ALIASED = """
    from metaflow import step as metaflow_step
    from shared import Pipeline


    class Tuned(Pipeline):
        @metaflow_step
        def end(self):
            print("tuned end")


    if __name__ == "__main__":
        Tuned()
    """


def copy_case(name: str, folder: Path) -> Path:
    """Copy a named case from tests/flows/discovery into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    shutil.copy(CASES / name, target)
    return target


def keys(entries) -> list[str]:
    return sorted(e.key for e in entries)


def names(entries) -> list[str]:
    return sorted(e.name for e in entries)


class Collector:
    """Receives a watcher's callbacks; tests wait on it with timeouts, never sleeps."""

    def __init__(self) -> None:
        self.diffs: list[CatalogDiff] = []
        self.statuses: list[WatchStatus] = []
        self._cond = threading.Condition()

    def on_change(self, diff: CatalogDiff) -> None:
        with self._cond:
            self.diffs.append(diff)
            self._cond.notify_all()

    def on_status(self, status: WatchStatus) -> None:
        with self._cond:
            self.statuses.append(status)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def wait_diffs(self, count: int, timeout: float = 10.0) -> list[CatalogDiff]:
        """Wait for `count` diffs and take them (later waits see only newer ones)."""
        assert self.wait_for(lambda: len(self.diffs) >= count, timeout), (
            f"expected {count} diffs, got {[d.as_dict() for d in self.diffs]}")
        with self._cond:
            taken, self.diffs = self.diffs, []
        return taken

    def wait_status(self, kind: str, timeout: float = 10.0) -> WatchStatus:
        assert self.wait_for(lambda: any(s.kind == kind for s in self.statuses), timeout), (
            f"no {kind!r} status; got {self.statuses}")
        return next(s for s in self.statuses if s.kind == kind)

    def barrier(self, folder: Path, timeout: float = 10.0) -> list[CatalogDiff]:
        """Diffs caused by earlier file operations, once a fresh marker flow shows up.

        inotify delivers events in order and each file's quiet period starts
        at its last event, so anything pending from earlier operations is
        delivered before the marker's diff, or (when the watcher's thread
        woke late and found both due) in the same diff: the marker is removed
        from that one, which is kept only if something else remains.
        """
        n = next(_counter)
        name = f"Barrier{n}Flow"
        path = folder / f"zz_barrier_{n}.py"
        path.write_text(flow_source(name))

        def arrived() -> bool:
            return any(e.name == name for d in self.diffs for e in d.added)

        assert self.wait_for(arrived, timeout), f"barrier {name} never arrived"
        with self._cond:
            index = next(i for i, d in enumerate(self.diffs)
                         if any(e.name == name for e in d.added))
            before = self.diffs[:index]
            shared = self.diffs[index]
            self.diffs = self.diffs[index + 1:]
        rest = replace(shared, added=tuple(e for e in shared.added if e.name != name),
                       paths=tuple(p for p in shared.paths if p != str(path)),
                       skipped_changed=False, problems_changed=False, roots_changed=False)
        if rest.added or rest.changed or rest.removed:
            before.append(rest)
        return before


def threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def write_atomic(path: Path, text: str) -> None:
    """Write a temporary file beside `path`, then rename it over (how many editors save)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
