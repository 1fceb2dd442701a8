"""`flowdeck [PATH...]` opens the window; `flowdeck run|list|graph ...` are the core's commands."""

from __future__ import annotations

import sys

CORE_COMMANDS = {"run", "list", "graph"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in CORE_COMMANDS:
        from flowdeck.cli import main as core_main
        return core_main(argv)
    from .app import run_app
    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
