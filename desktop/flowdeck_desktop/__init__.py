"""Flowdeck desktop: watch a folder of flows, run them, and see their DAG come alive (PySide6)."""

__version__ = "0.1.0"
