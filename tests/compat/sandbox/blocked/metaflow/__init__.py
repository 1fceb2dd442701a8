"""Stands first on the flow and check processes' PYTHONPATH in the compatibility run.

Flowdeck is measured on its own: any `import metaflow` or `from metaflow... import`
left in a generated flow, in a step, or in engine code fails here instead of
quietly running the real Metaflow.
"""

raise ImportError(
    "metaflow is blocked in Flowdeck's compatibility run (tests/compat): the flow must run "
    "on Flowdeck alone; an import of metaflow reached the real package name")
