"""`dataclass` for Flowdeck's own classes, with the methods it writes compiled once per
installed version instead of at every start, as Python keeps a module's bytecode.

`dataclasses` writes the source of each method it adds (`__init__`, `__repr__`, `__eq__`,
a frozen class's `__setattr__` ...) and compiles it with `exec` when the class is made:
about 0.1 ms a method, half of `import flowdeck`'s time (38 classes, about 19 ms of a
flow script's start). A method's source depends on the class's definition alone, so its
compiled code is kept in `__pycache__/compiled_dataclasses.<tag>.marshal`, keyed by that
source: a changed class has another source, which is compiled and added. Everything else
is the standard library's `dataclass` (its checks, its fields, the methods' behaviour):
while it makes a class, the name `exec` in the `dataclasses` module (which calls it once,
on each method's source, in Python 3.11 to 3.13) is shadowed by one that takes the
compiled code from the cache, and put back after.

The file follows Python's own rules for bytecode caches: not written under
`PYTHONDONTWRITEBYTECODE` (`sys.dont_write_bytecode`) or with `sys.pycache_prefix` set,
not written where the package's folder is read-only or in a frozen app (the packaged
window), and a damaged or foreign file is ignored. It is written (atomically) at exit
by a process that compiled something new.

Type checkers see the standard `dataclass` (see the TYPE_CHECKING branch).
"""

from __future__ import annotations

import _thread
import dataclasses
import marshal
import os
import sys
from importlib._bootstrap_external import MAGIC_NUMBER  # loaded in every interpreter
from types import CodeType
from typing import TYPE_CHECKING, Any

__all__ = ["dataclass"]

_FORMAT = 1  # bump when the file's layout changes
_MAX_ENTRIES = 4000  # past it, only what this process used is kept (stale sources pile up)
_LOCK = _thread.RLock()
_MISSING = object()


def _after_fork_in_child() -> None:
    """A fork while another thread held the lock would leave it held forever in the child
    (and `exec` shadowed): then a new lock, and the module as it was. The usual case, a
    free lock, costs one acquire and release: this runs in every task worker, where each
    object made or page touched is copied from the parent."""
    global _LOCK
    if _LOCK.acquire(blocking=False):  # free, or held by this thread (which releases it)
        _LOCK.release()
        return
    _LOCK = _thread.RLock()
    if vars(dataclasses).get("exec") is _exec:  # forked while a class was being made
        del vars(dataclasses)["exec"]


class _Cache:
    """The compiled methods: those read from the file, and those this process used."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.pid = os.getpid()
        self.stored: dict[str, CodeType] = self._read() if path else {}
        self.used: dict[str, CodeType] = {}
        self.new = False

    def _read(self) -> dict[str, CodeType]:
        assert self.path is not None
        try:
            with open(self.path, "rb") as handle:
                loaded = marshal.loads(handle.read())
        except Exception:  # noqa: BLE001 - damaged bytes can make marshal raise SystemError too
            return {}
        if not (isinstance(loaded, tuple) and len(loaded) == 3 and loaded[0] == _FORMAT
                and loaded[1] == MAGIC_NUMBER and isinstance(loaded[2], dict)):
            return {}  # another layout, or another bytecode (a pre-release of this version)
        return {k: v for k, v in loaded[2].items()
                if isinstance(k, str) and isinstance(v, CodeType)}

    def code(self, source: str) -> CodeType:
        code = self.used.get(source) or self.stored.get(source)
        if code is None:
            # as dataclasses' exec(source) does: without this module's `annotations` future
            code = compile(source, "<string>", "exec", dont_inherit=True)
            if not self.new:  # only then: an exit handler costs every forked task a little
                self.new = True
                import atexit
                atexit.register(self.write)
        self.used[source] = code
        return code

    def write(self) -> None:
        """Keep what was compiled (with what the file had, unless it grew too large); only
        in the process that read the file (a forked task runs its exit handlers too)."""
        if not (self.new and self.path) or sys.dont_write_bytecode or os.getpid() != self.pid:
            return
        kept = {**self.stored, **self.used} if len(self.stored) < _MAX_ENTRIES else self.used
        # pid and a random part: containers sharing one install can have the same pid
        tmp = f"{self.path}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(marshal.dumps((_FORMAT, MAGIC_NUMBER, kept)))
            os.replace(tmp, self.path)
        except OSError:  # a read-only install: compile at every start, as before
            try:
                os.unlink(tmp)
            except OSError:
                pass
        self.new = False


def _cache_path() -> str | None:
    """Beside the package's bytecode; None where Python keeps none there (no cache tag, a
    `pycache_prefix`), or in a frozen app, whose modules live in its archive."""
    tag = sys.implementation.cache_tag
    if tag is None or sys.pycache_prefix is not None or getattr(sys, "frozen", False):
        return None
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    return os.path.join(folder, f"compiled_dataclasses.{tag}.marshal")


_CACHE: _Cache | None = None


def _cache() -> _Cache:
    global _CACHE
    if _CACHE is None:
        _CACHE = _Cache(_cache_path())
    return _CACHE


def _exec(source: Any, globals: dict[str, Any] | None = None,
          locals: dict[str, Any] | None = None) -> None:
    """`exec` as `dataclasses` calls it (once, on each method's source text), the text's
    compiled code taken from the cache."""
    code = _cache().code(source) if isinstance(source, str) else source
    exec(code, globals, locals)


def _compiled_dataclass(cls: type | None = None, /, **options: Any) -> Any:
    """`dataclasses.dataclass(cls, **options)`, its methods' code from the cache."""
    def wrap(cls: type) -> type:
        with _LOCK:  # the module's `exec` is shadowed for one class at a time
            namespace = vars(dataclasses)
            previous = namespace.get("exec", _MISSING)
            namespace["exec"] = _exec
            try:
                return dataclasses.dataclass(cls, **options)
            finally:  # what was there: nothing, or another library's own patch
                if previous is _MISSING:
                    del namespace["exec"]
                else:
                    namespace["exec"] = previous
    return wrap if cls is None else wrap(cls)


if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
else:
    dataclass = _compiled_dataclass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
