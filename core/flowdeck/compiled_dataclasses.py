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
from collections.abc import Iterable
from importlib._bootstrap_external import MAGIC_NUMBER  # loaded in every interpreter
from types import CodeType
from typing import TYPE_CHECKING, Any

__all__ = ["dataclass"]

_FORMAT = 2  # bump when the file's layout changes (2: each method's code marshalled apart)
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
    """The compiled methods: those read from the file (each still marshalled: a process
    decodes only the methods of the classes it makes), and those this process used."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.pid = os.getpid()
        self.stored: dict[str, bytes] = self._read() if path else {}
        self.used: dict[str, CodeType] = {}
        self.new = False

    def _read(self) -> dict[str, bytes]:
        assert self.path is not None
        try:
            with open(self.path, "rb") as handle:
                loaded = marshal.loads(handle.read())
        except Exception:  # noqa: BLE001 - damaged bytes can make marshal raise SystemError too
            return {}
        if not (isinstance(loaded, tuple) and len(loaded) == 3 and loaded[0] == _FORMAT
                and loaded[1] == MAGIC_NUMBER and isinstance(loaded[2], dict)):
            return {}  # another layout, or another bytecode (a pre-release of this version)
        return {k: v for k, v in loaded[2].items() if isinstance(k, str) and isinstance(v, bytes)}

    def code(self, source: str) -> CodeType:
        code = self.used.get(source) or self._stored_code(source)
        if code is None:
            # as dataclasses' exec(source) does: without this module's `annotations` future
            code = compile(source, "<string>", "exec", dont_inherit=True)
            if not self.new:  # only then: an exit handler costs every forked task a little
                self.new = True
                import atexit
                atexit.register(self.write)
        self.used[source] = code
        return code

    def _stored_code(self, source: str) -> CodeType | None:
        """The file's code for `source`; None if it has none, or a damaged one (dropped,
        so that the code compiled instead replaces it when the file is written)."""
        raw = self.stored.get(source)
        if raw is None:
            return None
        try:
            code = marshal.loads(raw)
        except Exception:  # noqa: BLE001 - as for the whole file
            code = None
        if isinstance(code, CodeType):
            return code
        del self.stored[source]
        return None

    def write(self, force: bool = False) -> bool:
        """Keep what was compiled (with what the file had, unless it grew too large); only
        in the process that read the file (a forked task runs its exit handlers too).
        `force`: whatever PYTHONDONTWRITEBYTECODE says (`write_cache_for`). False when the
        file could not be written."""
        if not (self.new and self.path) or (sys.dont_write_bytecode and not force) or \
                os.getpid() != self.pid:
            return True
        fresh = {source: marshal.dumps(code) for source, code in self.used.items()
                 if source not in self.stored}
        kept = {**self.stored, **fresh} if len(self.stored) < _MAX_ENTRIES else \
            {source: marshal.dumps(code) for source, code in self.used.items()}
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
            return False
        self.new = False
        return True


def cache_path() -> str | None:
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
        _CACHE = _Cache(cache_path())
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


def write_cache_for(packages: Iterable[str]) -> int:
    """Import every module of `packages` and write the compiled methods of all their
    dataclasses, whatever PYTHONDONTWRITEBYTECODE says, as `compileall` writes bytecode
    (`flowdeck precompile`); how many methods the file holds, 0 where it keeps none or
    could not be written.

    Where that variable is set (CI machines, many container images) no process writes the
    file, and every `python flow.py` compiled about 170 methods again: 0.186 s against
    0.153 s for `import flowdeck.engine.script_cli` here (40 pairs). A module that cannot
    be imported (an optional dependency missing) is skipped: its classes compile at their
    first use, as before."""
    import importlib
    import pkgutil
    for name in packages:
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        for module in pkgutil.walk_packages(package.__path__, f"{name}.",
                                            onerror=lambda _name: None):
            if module.name.rsplit(".", 1)[-1] == "__main__":  # it would start the program
                continue
            try:
                importlib.import_module(module.name)
            except Exception:  # noqa: BLE001, S112 (an optional dependency missing)
                continue
    cache = _cache()
    if not cache.path or not cache.write(force=True):
        return 0
    return len({**cache.stored, **cache.used})


if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
else:
    dataclass = _compiled_dataclass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
