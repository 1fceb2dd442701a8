"""`flowdeck [PATH...]` opens the window; `flowdeck run|list|graph ...` are the core's commands."""

from __future__ import annotations

import os
import sys

from flowdeck_desktop.command_line import CORE_COMMANDS, hands_over, parse_args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("run", "resume") and getattr(sys, "frozen", False):
        from flowdeck_desktop.system.frozen_cli import run_core_in_real_python
        return run_core_in_real_python(argv)
    if argv and argv[0] in CORE_COMMANDS:
        from flowdeck.cli.main import main as core_main
        return core_main(argv)
    unknown = _unknown_command(argv)
    if unknown:
        print(f"error: `{unknown}` is neither a command nor an existing file or folder. "
              f"Commands: {', '.join(sorted(CORE_COMMANDS))}; or give folders to watch and "
              "flow files to open (`flowdeck --help`).", file=sys.stderr)
        return 2
    options = parse_args(argv)  # before Qt: --help, --version, a bad option need no display
    if options.uninstall_desktop:  # works over ssh too, and without Qt
        from flowdeck_desktop.system.desktop_integration import main as integrate
        return integrate("uninstall")
    problem = _no_qt_problem(for_menu=options.install_desktop)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if options.install_desktop:  # a menu entry that opens a window: Qt first, no display
        from flowdeck_desktop.system.desktop_integration import main as integrate
        return integrate("install")
    problem = _no_display_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    # A plain start goes to the running window before loading the widgets (~0.1 s, not ~0.3 s)
    from flowdeck_desktop.system.single_instance import send_to_running
    if hands_over(options) and send_to_running(options.paths, run=options.run):
        return 0
    from flowdeck_desktop.app import run_app
    return run_app(argv, options)


INSTALL_QT = "python3 -m pip install 'flowdeck[desktop]'"


def _no_qt_problem(for_menu: bool = False) -> str | None:
    """Without PySide6 (a headless install) the window cannot open: say what to install.

    `for_menu`: for `--install-desktop`, whose menu entry and "Open with" for every .py
    file would start a window that cannot open, so that a double-click shows nothing.
    """
    try:
        import PySide6  # noqa: F401  (the window's only extra dependency)
    except ImportError:
        pass
    else:
        return None
    if for_menu:
        return ("error: Flowdeck's window needs Qt (PySide6), which is not installed here, so "
                "a menu entry would open nothing; nothing was installed. Install Qt with "
                f"`{INSTALL_QT}`, then run `flowdeck --install-desktop` again.")
    return ("error: the Flowdeck window needs Qt, which is not installed. Install it with "
            f"`{INSTALL_QT}`, or run flows without a window: `flowdeck run FILE.py`.")


HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb")


def _no_display_problem() -> str | None:
    """On Linux without X11 or Wayland, Qt would abort with a misleading library message."""
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.split(":")[0] in HEADLESS_PLATFORMS:
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return ("error: there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set), so the "
            "Flowdeck window cannot open. Run flows without a window: `flowdeck run FILE.py`; "
            "or start Flowdeck from a desktop session (over ssh: `ssh -X`).")


def _unknown_command(argv: list[str]) -> str | None:
    """The first word, when it names no command and no existing path (a typo, say)."""
    first = argv[0] if argv else ""
    if not first or first.startswith("-") or os.path.exists(first):
        return None
    looks_like_path = os.sep in first or first.endswith(".py")
    return None if looks_like_path else first


if __name__ == "__main__":
    sys.exit(main())
