"""How `python flow.py` ends once its run is over: without the interpreter's teardown when
nothing needs it.

Tearing the interpreter down (clearing every module, freeing every object) costs a flow
script about 10 ms after a two-step run, more with pandas or torch imported, and does
nothing a finished run needs: its records and events are written and closed. So the
script ends the way `sys.exit` would from the user's point of view, and then leaves with
`os._exit`:

- threads that are not daemons are waited for (as the interpreter does first);
- `atexit` handlers run, in their order (so do `weakref.finalize` callbacks and
  multiprocessing's clean-up, which are `atexit` handlers);
- every stream still open is flushed (the flow module's own files included), stdout and
  stderr last.

Only when that is all the teardown would do. The script exits normally (`sys.exit`) when
anything else could still act at teardown: an object whose class has a `__del__` written
in Python (a stream class of Python's own, such as gzip's, whose close writes a trailer,
included), a suspended generator (its `finally` would run), a tracer or profiler,
`python -i`, or an outer program that runs the script and expects `SystemExit` back
(`python -m cProfile flow.py`, `coverage run`, pdb, an IDE's runner).
"""

from __future__ import annotations

import atexit
import gc
import io
import itertools
import os
import sys
import types
from types import FrameType
from typing import Any


def exit_script(code: int, module_frame: FrameType | None) -> None:
    """End the flow script with `code`. `module_frame` is the running script's module-level
    frame, when the flow was called there outside any `try` or `with` (whose `finally` or
    `__exit__` must run on the way out); None otherwise."""
    if not _runs_alone(module_frame):
        sys.exit(code)
    _join_threads()
    atexit._run_exitfuncs()  # they run once: the teardown after `sys.exit` finds none left
    streams = _left_to_teardown()
    if streams is None:
        sys.exit(code)
    for stream in streams:
        _flush(stream)
    for std in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        _flush(std)
    os._exit(code)


def _runs_alone(module_frame: FrameType | None) -> bool:
    """True when the interpreter runs the script directly: nothing above its module frame,
    no tracer or profiler (in this thread or set for new ones), no interactive prompt to
    come."""
    threading = sys.modules.get("threading")
    traced_threads = threading is not None and (threading.gettrace() is not None
                                                or threading.getprofile() is not None)
    return (module_frame is not None and module_frame.f_back is None
            and sys.gettrace() is None and sys.getprofile() is None
            and not traced_threads and not sys.flags.inspect)


def _join_threads() -> None:
    """Wait for the threads that are not daemons, as the interpreter does before `atexit`."""
    threading = sys.modules.get("threading")
    if threading is None:
        return
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon and thread.is_alive():
            thread.join()


#: The standard library's own streams, written in C: freeing one flushes its buffer and
#: closes its file, nothing else (the file closes anyway when the process ends).
_C_STREAMS = (io.FileIO, io.BufferedWriter, io.BufferedReader, io.BufferedRandom,
              io.BufferedRWPair, io.TextIOWrapper, io.BytesIO, io.StringIO)


def _left_to_teardown() -> list[io.IOBase] | None:
    """The open streams whose buffers teardown would flush; None when it would do more:
    run a `__del__` written in Python (a class's own, or a stream class of Python's, such
    as gzip's, whose close writes a trailer), or wait for a thread that is not a daemon."""
    threading = sys.modules.get("threading")
    if threading is not None and any(
            t is not threading.main_thread() and not t.daemon and t.is_alive()
            for t in threading.enumerate()):
        return None
    gc.unfreeze()  # frozen objects (the engine freezes before each fork) are not listed
    objects = gc.get_objects()
    kinds = {kind: _kind_of(kind) for kind in set(map(type, objects))}  # C loops: ~20k objects
    if "finalizer" in kinds.values():
        return None
    wanted = {kind for kind, what in kinds.items() if what != "plain"}
    standard = _standard_streams()
    streams: list[io.IOBase] = []
    for obj in itertools.compress(objects, map(wanted.__contains__, map(type, objects))):
        if kinds[type(obj)] == "generator":
            if _suspended(obj):
                return None
        elif id(obj) not in standard and not _closed(obj):
            streams.append(obj)
    return streams


def _kind_of(kind: type) -> str:
    """"stream" (one of `_C_STREAMS`), "finalizer" (may run Python code when freed),
    "generator", or "plain"."""
    if kind in _C_STREAMS:
        return "stream"
    if kind in _GENERATORS:
        return "generator"
    if _IOBASE in kind.__mro__:  # issubclass(kind, io.IOBase) asks the ABC: ~20 times slower
        return "finalizer"
    finalizer = getattr(kind, "__del__", None)
    return "finalizer" if finalizer is not None and hasattr(finalizer, "__code__") else "plain"


_IOBASE = io.IOBase.__mro__[1]  # `_io._IOBase`, the C base of every stream class
_GENERATORS = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)


def _suspended(generator: Any) -> bool:
    """True for a generator that started and has not finished: freeing it runs its
    `finally` blocks."""
    for flag in ("gi_suspended", "cr_suspended", "ag_suspended"):
        value = getattr(generator, flag, None)
        if value is not None:
            return bool(value)
    return getattr(generator, "ag_frame", None) is not None  # no flag: assume it may be


def _closed(stream: io.IOBase) -> bool:
    try:
        return bool(stream.closed)
    except (ValueError, AttributeError):  # a stream whose raw file is gone
        return True


def _flush(stream: object) -> None:
    """Flush as teardown would: a failure is said on stderr and changes nothing else."""
    if stream is None:
        return
    try:
        stream.flush()  # type: ignore[attr-defined]
    except (OSError, ValueError) as exc:
        if stream not in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            print(f"Exception ignored while flushing {stream!r}: {exc}", file=sys.stderr)


def _standard_streams() -> set[int]:
    """The ids of the standard streams and the buffers and raw files under them."""
    ids: set[int] = set()
    for stream in (sys.stdin, sys.stdout, sys.stderr,
                   sys.__stdin__, sys.__stdout__, sys.__stderr__):
        layer: object = stream
        while layer is not None and id(layer) not in ids:
            ids.add(id(layer))
            layer = getattr(layer, "buffer", None) or getattr(layer, "raw", None)
    return ids
