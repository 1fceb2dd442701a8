"""Status colours and duration text shared by every view, so the DAG and the timeline agree."""

from __future__ import annotations

from PySide6.QtGui import QColor

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
