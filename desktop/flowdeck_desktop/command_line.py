"""The `flowdeck` command line of the window: its options, parsed without Qt.

Parsed before Qt loads (`__main__`), so `flowdeck --help`, `--version` and a mistyped
option answer over ssh and without a display, as the core's commands do; `app.run_app`
reads the same options to build the window.
"""

from __future__ import annotations

import argparse

from flowdeck import __version__
from flowdeck.compiled_dataclasses import dataclass

#: The first words that are the core's commands (no window, no Qt): `flowdeck.cli.main`.
CORE_COMMANDS = ("run", "resume", "list", "graph", "gc", "precompile")


@dataclass
class AppOptions:
    paths: list[str]
    screenshot: str | None = None
    run: bool = False
    exit_when_done: bool = False
    new_instance: bool = False
    quit_when_shown: bool = False
    size: tuple[int, int] | None = None
    install_desktop: bool = False
    uninstall_desktop: bool = False


def hands_over(options: AppOptions) -> bool:
    """Plain starts go to a running window; scripted ones need their own outcome and exit code."""
    return not (options.new_instance or options.screenshot or options.exit_when_done
                or options.quit_when_shown)


def parse_args(argv: list[str]) -> AppOptions:
    """The window's options; argparse exits on `--help`, `--version` and a bad option."""
    parser = argparse.ArgumentParser(
        prog="flowdeck", description="Watch folders of flows, run them and see their DAG "
        "come alive.",
        epilog=f"Commands without a window: {', '.join(CORE_COMMANDS)} (`flowdeck COMMAND "
        "--help` for each), e.g. `flowdeck run FILE.py`, `flowdeck list PATH`, `flowdeck "
        "graph FILE.py`.")
    parser.add_argument("paths", nargs="*", help="folders to watch or flow files to open")
    parser.add_argument("--version", action="version", version=f"flowdeck {__version__}")
    parser.add_argument("--run", action="store_true", help="run the selected flow at start")
    parser.add_argument("--screenshot", metavar="OUT.png",
                        help="run the selected flow, save a screenshot when it ends, and quit")
    parser.add_argument("--exit-when-done", action="store_true",
                        help="quit when the started run ends (for tests and scripts)")
    parser.add_argument("--new-instance", action="store_true",
                        help="open a window of its own instead of handing the paths to a "
                        "running Flowdeck")
    parser.add_argument("--install-desktop", action="store_true",
                        help="add Flowdeck to your applications menu and to \"Open with\" for "
                        ".py files (Linux, current user), then quit")
    parser.add_argument("--uninstall-desktop", action="store_true",
                        help="remove what --install-desktop added, then quit")
    parser.add_argument("--size", metavar="WxH", type=_size,
                        help="the window's size, e.g. 1280x720 (for --screenshot); the theme "
                        "follows the system's, or FLOWDECK_THEME=dark|light")
    parser.add_argument("--quit-when-shown", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return AppOptions(args.paths, args.screenshot, args.run or bool(args.screenshot),
                      args.exit_when_done or bool(args.screenshot), args.new_instance,
                      args.quit_when_shown, args.size, args.install_desktop,
                      args.uninstall_desktop)


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 200 or int(height) < 200:
        raise argparse.ArgumentTypeError(f"{text!r}: give the size as WIDTHxHEIGHT, each "
                                         "at least 200 pixels, e.g. 1280x720")
    return int(width), int(height)
