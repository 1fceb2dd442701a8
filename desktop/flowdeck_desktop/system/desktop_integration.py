"""`flowdeck --install-desktop`: a launcher-menu entry, icons and "Open with" on Linux.

Everything goes under the user's XDG data directory (`$XDG_DATA_HOME`, else
`~/.local/share`), so no root is needed and uninstalling removes exactly
what was installed. The `.desktop` file's `Exec` is rewritten to the
command that started us (the bundle's executable, the `flowdeck` script, or
`python -m flowdeck_desktop`), so the entry works even when `flowdeck` is
not on the desktop session's PATH. No Qt here: it runs before any window.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from dataclasses import field
from pathlib import Path

from flowdeck.compiled_dataclasses import dataclass
from flowdeck_desktop.system.resources import resources_dir as find_resources
from flowdeck_desktop.system.resources import searched_for
from flowdeck_desktop.system.user_dirs import data_home

APP_ID = "flowdeck"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)


@dataclass
class IntegrationReport:
    """What an install or uninstall did, for the person who asked and for tests."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return ([f"installed {p}" for p in self.written] + [f"removed {p}" for p in self.removed]
                + [f"refreshed with {c}" for c in self.refreshed] + self.notes)


class MissingResources(Exception):
    """This install lacks `resources/` (a broken or hand-made one): not the user's folders."""


def resources_dir() -> Path:
    """The resources folder (see `resources.py`); a clear error when this install lacks it."""
    folder = find_resources()
    if folder is None:
        places = ", ".join(str(p) for p in searched_for("resources"))
        raise MissingResources(
            f"this Flowdeck has no resources folder with flowdeck.desktop (looked in {places}). "
            "Reinstall it: `python3 -m pip install --force-reinstall 'flowdeck[desktop]'`, "
            "or run it from a full checkout")
    return folder


def launch_command() -> list[str]:
    """How the desktop should start this Flowdeck: the frozen app, the script, or the module."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    script = shutil.which(APP_ID)
    if script:
        return [script]
    return [sys.executable, "-m", "flowdeck_desktop"]


#: Characters that make the Desktop Entry Specification require an Exec argument in quotes.
EXEC_RESERVED = frozenset(' \t\n"\'\\><~|&;$*?#()`')


def exec_argument(arg: str) -> str:
    """One Exec argument as the spec's Exec rules want it (before the string escapes).

    A literal `%` is `%%` (else it reads as a field code such as `%F`); an argument with
    a reserved character goes in double quotes, inside which `"`, backtick, `$` and `\\`
    take a backslash each.
    """
    literal = arg.replace("%", "%%")
    if literal and not set(literal) & EXEC_RESERVED:
        return literal
    return '"' + "".join("\\" + c if c in '"`$\\' else c for c in literal) + '"'


def string_value(text: str) -> str:
    """`text` as a desktop-entry string value: the spec's escapes for backslash and control
    characters. Exec values go through these too, after the Exec quoting, which is why a
    literal `$` in a quoted path is written `\\\\$` and a backslash `\\\\\\\\`."""
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
            .replace("\r", "\\r"))


def _exec_value(command: list[str], rest: str) -> str:
    """A desktop-entry Exec value: `command` quoted for the spec, then the template's own
    arguments and field codes (`rest`, already valid as written).

    GLib (GNOME, most file managers) looks the program up before it turns `%%` back
    into `%`, so it would never find a program whose path holds a `%` and would drop the
    entry: such a program is started through `env`, which GLib finds.
    """
    program = ["env", *command] if "%" in command[0] else command
    quoted = string_value(" ".join(exec_argument(a) for a in program))
    return f"{quoted} {rest}" if rest else quoted


def desktop_entry_text(template: str, command: list[str]) -> str:
    """The shipped entry with every `Exec=flowdeck ...` and `TryExec` pointing at `command`."""
    lines = []
    for line in template.splitlines():
        if line.startswith("Exec=flowdeck"):
            line = "Exec=" + _exec_value(command, line[len("Exec=flowdeck"):].strip())
        elif line.startswith("TryExec="):
            line = f"TryExec={string_value(command[0])}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def installed_paths(base: Path | None = None) -> dict[str, Path]:
    """Every file the install writes, by role, under the XDG data directory."""
    base = base or data_home()
    paths = {"desktop": base / "applications" / f"{APP_ID}.desktop",
             "svg": base / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"}
    for size in ICON_SIZES:
        paths[f"png{size}"] = base / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
    return paths


def _sources(resources: Path) -> dict[str, Path]:
    icons = resources / "icons"
    sources = {"svg": icons / f"{APP_ID}.svg"}
    sources.update({f"png{s}": icons / f"{APP_ID}-{s}.png" for s in ICON_SIZES})
    return sources


def install(base: Path | None = None, command: list[str] | None = None) -> IntegrationReport:
    """Write the entry and icons for the current user, then refresh the desktop's caches."""
    report = IntegrationReport()
    resources = resources_dir()
    targets = installed_paths(base)
    entry = desktop_entry_text((resources / f"{APP_ID}.desktop").read_text(encoding="utf-8"),
                               command or launch_command())
    targets["desktop"].parent.mkdir(parents=True, exist_ok=True)
    targets["desktop"].write_text(entry, encoding="utf-8")
    report.written.append(str(targets["desktop"]))
    for role, source in _sources(resources).items():
        if not source.is_file():
            report.notes.append(f"note: {source} is missing; run packaging/make_icons.py.")
            continue
        targets[role].parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, targets[role])
        report.written.append(str(targets[role]))
    _refresh(base or data_home(), report)
    return report


def uninstall(base: Path | None = None) -> IntegrationReport:
    """Remove exactly what `install` wrote; missing files are fine (already uninstalled)."""
    report = IntegrationReport()
    for path in installed_paths(base).values():
        if path.exists():
            path.unlink()
            report.removed.append(str(path))
    if report.removed:
        _refresh(base or data_home(), report)
    return report


def _refresh(base: Path, report: IntegrationReport) -> None:
    """Rebuild the caches that make the menu entry and "Open with" appear, when the tools exist."""
    jobs = [("update-desktop-database", [str(base / "applications")]),
            ("gtk-update-icon-cache", ["-f", "-t", "-q", str(base / "icons" / "hicolor")])]
    if (base / "mime" / "packages").is_dir():
        jobs.append(("update-mime-database", [str(base / "mime")]))
    for tool, args in jobs:
        exe = shutil.which(tool)
        if exe is None or not Path(args[-1]).is_dir():
            continue
        try:
            result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            report.notes.append(f"note: {tool} failed ({exc}); log out and in to refresh menus.")
            continue
        if result.returncode == 0:
            report.refreshed.append(tool)
        else:
            report.notes.append(f"note: {tool} said: {result.stderr.strip()[:200]}")


def main(action: str) -> int:
    """Entry for `--install-desktop` / `--uninstall-desktop`: what was done on stdout,
    what went wrong (and what to do) on stderr."""
    if not sys.platform.startswith("linux"):
        print("error: --install-desktop is for Linux desktops; on macOS drag Flowdeck.app to "
              "Applications, on Windows use the installer's shortcuts.", file=sys.stderr)
        return 2
    try:
        report = install() if action == "install" else uninstall()
    except MissingResources as exc:
        print(f"error: {exc}.", file=sys.stderr)
        return 1
    except OSError as exc:
        where = exc.filename or data_home()
        print(f"error: cannot write {where}: {exc.strerror or exc}. Check that {data_home()} "
              "is writable, or set XDG_DATA_HOME to a folder that is.", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line)
    if action == "install":
        print(f"Flowdeck is in your applications menu; start it with: "
              f"{shlex.join(launch_command())}")
    elif not report.removed:
        print(f"Nothing to remove: Flowdeck's desktop entry and icons are not installed "
              f"under {data_home()}.")
    return 0
