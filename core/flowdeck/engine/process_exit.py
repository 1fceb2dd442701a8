"""Ending a process as Python's own exit would, without tearing down its heap.

A normal interpreter exit waits for the non-daemon threads, runs the exit handlers
(`atexit`, and the `weakref.finalize` cleanups registered with it), flushes stdio, and
then frees every module and object. That last part writes what was written anyway: no
file is left unflushed by it that a scan of the open files does not find. In a forked
worker it would write every inherited page (each one then copied); in a flow script's
own process it is a tenth of a two-step run's wall time (issue 15: `hello`).

So both end here instead: the worker (`task.finish_worker_process`, which adds its own
bounded wait) and `python flow.py` once its run is over (`exit_like_interpreter`), which
is used only where the script's `SystemExit` would have reached the interpreter anyway
(`script_cli.bare_script_call` decides), so no `finally` or `with` of the caller's is
skipped.

What a normal exit does that this does not: free objects, so a `__del__` (other than
a file's flush) does not run. Python does not promise that one at exit either; the
script's own globals are freed first, as the interpreter frees `__main__` first, so a
`NamedTemporaryFile` or a connection the script holds is still closed.
"""

from __future__ import annotations

import atexit
import gc
import io
import itertools
import os
import sys
import threading
from types import ModuleType
from typing import Any, NoReturn

from flowdeck.engines.processes import flush_c_stdio

#: The buffered file objects (what `open` returns, in text or binary mode).
_FILE_TYPES = frozenset((io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom))

#: The exit status Python gives when it cannot flush stdout or stderr at exit
#: (`Py_RunMain`: a failed `Py_FinalizeEx`), whatever the status asked.
FLUSH_FAILED_STATUS = 120


def open_files(objects: list[Any]) -> list[io.IOBase]:
    """The file objects among `objects` that may hold unwritten data. The type test runs
    in C (`compress`, `map`): the orchestrator's tens of thousands of objects in 1 ms."""
    files = itertools.compress(objects, map(_FILE_TYPES.__contains__, map(type, objects)))
    return [f for f in files if _writable(f)]


def _writable(handle: io.IOBase) -> bool:
    try:
        return not handle.closed and handle.writable()
    except ValueError:  # a detached TextIOWrapper
        return False


def flush_files(files: list[io.IOBase]) -> None:
    """Flush each file; one closed meanwhile, or one that cannot flush, is passed over."""
    for handle in files:
        try:
            handle.flush()
        except (OSError, ValueError):
            pass


def flush_stdio() -> bool:
    """Flush Python's stdout and stderr; False when one of them could not be flushed
    (a closed pipe), which Python's own exit reports with `FLUSH_FAILED_STATUS`."""
    flushed = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe, a closed stream
            flushed = False
        except AttributeError:  # None (no stream at all), or a user's object without flush
            pass
    return flushed


def exit_like_interpreter(code: int) -> NoReturn:
    """End this process with `code` as `sys.exit(code)` from the main module would, the
    heap's teardown excepted (see the module's docstring): wait for the non-daemon
    threads, run the exit handlers, free the main module's globals, flush every open
    file and both stdio layers, then `os._exit`."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's own wait
    except KeyboardInterrupt:  # Ctrl+C while waiting: Python stops waiting too
        pass
    atexit._run_exitfuncs()  # prints a failing handler's error, as the interpreter does
    _free_main_globals(sys.modules.get("__main__"))
    gc.unfreeze()  # a run unfreezes what it froze for its forks; frozen objects go unlisted
    try:
        flush_files(open_files(gc.get_objects()))
    except Exception:  # noqa: BLE001 (a file object of the user's that cannot be listed)
        pass
    flushed = flush_stdio()
    flush_c_stdio()
    os._exit(code if flushed else FLUSH_FAILED_STATUS)


def _free_main_globals(main: ModuleType | None) -> None:
    """Drop the script's own globals, as the interpreter's teardown does first, so what
    only they hold is closed by its owner (a temporary file removed, a socket shut)."""
    if main is None:
        return
    try:
        main.__dict__.clear()
    except Exception:  # noqa: BLE001 (a `__del__` that raised is reported by Python itself)
        pass
