"""`flowdeck [PATH...]` opens the window; `flowdeck run|list|graph ...` are the core's commands."""

from __future__ import annotations

import sys

CORE_COMMANDS = {"run", "list", "graph"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run" and getattr(sys, "frozen", False):
        from .interpreter import run_core_in_real_python
        return run_core_in_real_python(argv)
    if argv and argv[0] in CORE_COMMANDS:
        from flowdeck.cli import main as core_main
        return core_main(argv)
    for flag, action in (("--install-desktop", "install"), ("--uninstall-desktop", "uninstall")):
        if flag in argv:  # before Qt: works over ssh and without a display
            from .desktop_integration import main as integrate
            return integrate(action)
    from .app import run_app
    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
