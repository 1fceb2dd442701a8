"""The whole reliability campaign: every script in turn, then one table.

    python3 reliability/run_all.py            # everything (about 10 minutes on 2 cores)
    python3 reliability/run_all.py --quick    # fewer rounds of each (about 3 minutes)
    python3 reliability/run_all.py --only kill_rounds --only soak

Each script also runs alone (`python3 reliability/kill_rounds.py --quick`) and ends with
`tried / survived / lost`. This exits 1 when any script lost anything (or failed to
report), so it can gate a release. Not part of the pytest suite: it takes minutes and
measures this machine.

Rounds (full / --quick), chosen so the full campaign fits in about 20 minutes here:
kill_rounds 120 / 24, cancel_rounds 300 / 60, window_stops 100 / 20, save_storms 20 / 5,
bad_inputs all 49 cases either way, corrupt_store 50 / 25, disk_full 12 / 4, soak 300 / 100
runs, live_output one 100 MB run either way.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

from common import ended_with_this_script

HERE = Path(__file__).resolve().parent
SCRIPTS = ["kill_rounds", "cancel_rounds", "window_stops", "save_storms", "bad_inputs",
           "corrupt_store", "disk_full", "soak", "live_output"]
SCRIPT_TIMEOUT_S = 1800


def run_script(name: str, quick: bool, seed: int | None) -> tuple[dict[str, object], int]:
    """Run one script, echoing its output; its CAMPAIGN summary and exit code."""
    cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if quick else [])
    if seed is not None:
        cmd += ["--seed", str(seed)]
    print(f"\n### {name}: {' '.join(cmd[1:])}", flush=True)
    began = time.monotonic()
    summary: dict[str, object] = {"name": name, "tried": 0, "survived": 0, "lost": 0}
    with subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace",
                          preexec_fn=ended_with_this_script()) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("CAMPAIGN "):
                summary = json.loads(line[len("CAMPAIGN "):])
            elif "propagateSizeHints" not in line:  # offscreen Qt's one harmless remark
                print(line, end="", flush=True)
        try:
            code = proc.wait(timeout=SCRIPT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -1
    summary["seconds"] = round(time.monotonic() - began, 1)
    summary["script"] = name
    if code not in (0, 1) or "tried" not in summary:
        summary["lost"] = int(summary.get("lost") or 0) + 1
        summary["crashed"] = f"exited {code}"
    return summary, code


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the reliability campaign.")
    parser.add_argument("--quick", action="store_true", help="fewer rounds of every script")
    parser.add_argument("--only", action="append", choices=SCRIPTS,
                        help="run only this script (may be repeated)")
    parser.add_argument("--seed", type=int, default=None, help="seed for every script")
    args = parser.parse_args()
    began = time.monotonic()
    results = [run_script(name, args.quick, args.seed)[0] for name in args.only or SCRIPTS]
    print(f"\n## Reliability campaign, {datetime.date.today()}, "
          f"`python3 reliability/run_all.py{' --quick' if args.quick else ''}`\n")
    print("| script | tried | survived | lost | time |")
    print("|---|---:|---:|---:|---:|")
    for result in results:
        note = f" ({result['skipped']})" if result.get("skipped") else ""
        note += f" ({result['crashed']})" if result.get("crashed") else ""
        print(f"| {result['script']}{note} | {result['tried']} | {result['survived']} | "
              f"{result['lost']} | {result['seconds']:.0f} s |")
    lost = sum(int(r["lost"]) for r in results)  # type: ignore[call-overload]
    tried = sum(int(r["tried"]) for r in results)  # type: ignore[call-overload]
    print(f"\nall: tried {tried}, lost {lost}, in {time.monotonic() - began:.0f} s")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
