"""Status colours and duration text shared by every view, so the DAG and the timeline agree;
and the dark and light palettes `FLOWDECK_THEME` can force (otherwise the system's palette
applies, and every view follows its changes)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "reused")

#: (light palette, dark palette): mid-tones that read on white and on near-black.
STATUS_COLORS = {
    "pending": ("#8b929c", "#8a8a8a"),
    "running": ("#2f80ed", "#42a5f5"),
    "succeeded": ("#2ea55c", "#66bb6a"),
    "failed": ("#e0474c", "#ef5350"),
    "cancelled": ("#d9892b", "#ffa726"),
    "reused": ("#8d6ad8", "#a98bea"),
}


def status_color(status: str, dark: bool = False) -> QColor:
    """The colour of a step or task status; an unknown status gets the pending grey."""
    light, dark_name = STATUS_COLORS.get(status, STATUS_COLORS["pending"])
    return QColor(dark_name if dark else light)


def format_duration(seconds: float | None) -> str:
    """Short human duration: "850 ms", "1.2 s", "3 m 05 s", "1 h 02 m"; empty when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        minutes, secs = divmod(int(round(seconds)), 60)
        return f"{minutes} m {secs:02d} s"
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours} h {rest // 60:02d} m"


THEME_ENV = "FLOWDECK_THEME"  # "dark" or "light"; unset or anything else: the system's

_DARK = {
    QPalette.ColorRole.Window: "#2b2d30", QPalette.ColorRole.WindowText: "#dfe1e5",
    QPalette.ColorRole.Base: "#1e1f22", QPalette.ColorRole.AlternateBase: "#26282b",
    QPalette.ColorRole.ToolTipBase: "#3c3f41", QPalette.ColorRole.ToolTipText: "#dfe1e5",
    QPalette.ColorRole.PlaceholderText: "#8c8f94", QPalette.ColorRole.Text: "#dfe1e5",
    QPalette.ColorRole.Button: "#3a3d41", QPalette.ColorRole.ButtonText: "#dfe1e5",
    QPalette.ColorRole.BrightText: "#ff6b6b", QPalette.ColorRole.Light: "#4a4d51",
    QPalette.ColorRole.Midlight: "#404347", QPalette.ColorRole.Mid: "#313336",
    QPalette.ColorRole.Dark: "#1a1b1d", QPalette.ColorRole.Shadow: "#101112",
    QPalette.ColorRole.Highlight: "#3574f0", QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#6ea8fe", QPalette.ColorRole.LinkVisited: "#b392f0",
}
_LIGHT = {
    QPalette.ColorRole.Window: "#efefef", QPalette.ColorRole.WindowText: "#1f1f1f",
    QPalette.ColorRole.Base: "#ffffff", QPalette.ColorRole.AlternateBase: "#f5f5f5",
    QPalette.ColorRole.ToolTipBase: "#ffffdc", QPalette.ColorRole.ToolTipText: "#1f1f1f",
    QPalette.ColorRole.PlaceholderText: "#767676", QPalette.ColorRole.Text: "#1f1f1f",
    QPalette.ColorRole.Button: "#efefef", QPalette.ColorRole.ButtonText: "#1f1f1f",
    QPalette.ColorRole.BrightText: "#c62828", QPalette.ColorRole.Light: "#ffffff",
    QPalette.ColorRole.Midlight: "#e3e3e3", QPalette.ColorRole.Mid: "#b8b8b8",
    QPalette.ColorRole.Dark: "#9f9f9f", QPalette.ColorRole.Shadow: "#767676",
    QPalette.ColorRole.Highlight: "#308cc6", QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#0b57d0", QPalette.ColorRole.LinkVisited: "#7c4dff",
}


def make_palette(dark: bool) -> QPalette:
    """A complete dark or light palette (disabled text greyed), for Fusion."""
    palette = QPalette()
    for role, name in (_DARK if dark else _LIGHT).items():
        palette.setColor(role, QColor(name))
    muted = QColor("#6f7277" if dark else "#a0a0a0")
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, muted)
    return palette


def palette_is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightnessF() < 0.5


def apply_theme(app: QGuiApplication, choice: str | None) -> str | None:
    """Force the dark or light palette (`FLOWDECK_THEME`); returns what was applied.

    Anything else leaves the system's palette, which the views follow as it changes.
    Custom palettes are honoured fully by the Fusion style, so it is used with them.
    """
    wanted = (choice or "").strip().lower()
    if wanted not in ("dark", "light"):
        return None
    from PySide6.QtWidgets import QApplication
    if isinstance(app, QApplication) and app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    hints = app.styleHints()
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+: tell the platform theme too
        hints.setColorScheme(Qt.ColorScheme.Dark if wanted == "dark" else Qt.ColorScheme.Light)
    app.setPalette(make_palette(wanted == "dark"))
    return wanted
