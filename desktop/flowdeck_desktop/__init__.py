"""Flowdeck desktop: watch a folder of flows, run them, and see their DAG come alive (PySide6)."""

from flowdeck import __version__  # one version string, the core's

__all__ = ["__version__"]
