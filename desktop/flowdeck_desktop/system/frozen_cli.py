"""`flowdeck run FILE` from a frozen app: the core's command line must run in a real Python.

A bundle's own executable is the app (it would open a window), so the whole
command goes to the interpreter a flow in that folder would get, with the
bundle's plain-file core on its path when that interpreter lacks flowdeck.
"""

from __future__ import annotations

import os
import subprocess
import sys

from flowdeck.engines.interpreter import check_interpreter, detect_interpreter
from flowdeck_desktop.system.resources import bundled_core


def run_core_in_real_python(argv: list[str]) -> int:
    """`flowdeck run FILE` from a frozen app: the core CLI must run in a real Python.

    The core starts flows with `sys.executable`, which in a bundle is the app
    itself (it would open a window instead of running the flow), so we hand the
    whole command to the interpreter a flow in that folder would get.
    """
    target = next((a for a in argv[1:] if not a.startswith("-")), ".")
    folder = os.path.dirname(os.path.abspath(target))
    interpreter = detect_interpreter(folder)
    check = check_interpreter(interpreter.path)
    if not check.works:
        print(f"error: {check.error}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    core = bundled_core()
    if core and not check.has_flowdeck:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [core, env.get("PYTHONPATH")]))
    return subprocess.call([interpreter.path, "-m", "flowdeck.cli.main", *argv], env=env)
