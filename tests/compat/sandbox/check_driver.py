"""Run a pair's generated check_flow.py exactly as the suite's harness does, and report.

    python check_driver.py [--alias] RESULT.json RUN_ID [TOP_OPTIONS...]   (cwd: the pair's folder)

The suite runs `python check_flow.py MetadataCheck RUN_ID TOP_OPTIONS...`; its
`__main__` block imports the flow class from test_flow.py, builds
`new_checker(flow)` and calls `check_results(flow, checker)`. We run that same
block with runpy, with `metaflow_test` resolving to Flowdeck's helpers (and the
real `metaflow` blocked), and write what happened to RESULT.json. With `--alias`
(the unchanged files), Flowdeck's alias entry makes their `metaflow` imports
resolve to Flowdeck first, as it does for the flow.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback


def _where(exc: BaseException) -> str:
    """The innermost line of the generated check (or flow) file the error passed through."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        name = os.path.basename(frame.filename)
        if name in ("check_flow.py", "test_flow.py"):
            return f"{name}:{frame.lineno}: {(frame.line or '').strip()}"
    return ""


def main() -> int:
    args = sys.argv[1:]
    if args and args[0] == "--alias":
        from flowdeck.engines.as_metaflow import install
        install("check_flow.py")
        args = args[1:]
    result_path, run_id, options = args[0], args[1], args[2:]
    sys.path.insert(0, os.getcwd())
    sys.argv = ["check_flow.py", "MetadataCheck", run_id, *options]
    result: dict = {"ok": False}
    try:
        runpy.run_path("check_flow.py", run_name="__main__")
    except BaseException as exc:  # noqa: BLE001 - every outcome is reported
        if isinstance(exc, KeyboardInterrupt):
            raise
        result.update(type=type(exc).__name__, module=type(exc).__module__,
                      message=str(exc)[:2000], where=_where(exc),
                      traceback="".join(traceback.format_exception(exc))[-6000:])
    else:
        result["ok"] = True
    check = sys.modules.get("metaflow_test.flowdeck_check")
    if check is not None:
        result["missing"] = list(check.MISSING)
        result["notes"] = list(check.NOTES)
        if result["ok"] and check.MISSING:  # a test swallowed a missing feature
            result.update(ok=False, type="FeatureMissing", module="metaflow_test",
                          message=check.MISSING[0] + " (raised, then caught by the test)",
                          where="")
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
