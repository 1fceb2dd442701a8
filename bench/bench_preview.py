"""Artifact preview benchmark (issue 13): a 100 MB pandas DataFrame, previewed vs unpickled.

A flow stores one DataFrame of about 100 MB (`--mb`). Then, in interleaved rounds
(`harness.interleave`, medians), whole processes:

    helper     the artifact helper exactly as the window starts it
               (`python -m flowdeck.engines.inspect_task ... --preview frame`):
               wall time and its peak RSS
    unpickle   a process that unpickles the whole value (`client ... .data`) and
               touches every column, what a window reading values itself would pay
    window     the real ArtifactsPane, offscreen, in a fresh process: from the task's
               "click" (`show_task`, with the artifact selected at once) to the table
               shown (`preview_shown`), and that process's RSS after (the helper's
               memory is the helper's, not the window's); twice: with the preview the
               task stored beside the blob (store/previews.py), then with it deleted
               (the helper loads the value)
    window+unpickle  the same window process, unpickling the value itself instead
               (import, load, touch): its time and RSS after

It prints the medians and the ratios (window preview against window unpickle, for
time and for memory growth). Figures depend on the machine: run it on a quiet one;
it prints the load average it ran under.

    python bench/bench_preview.py [--repeat 5] [--mb 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CORE, ROOT, Command, Machine, bench_env, interleave  # noqa: E402

DESKTOP = ROOT / "desktop"

FLOW = '''import numpy as np
import pandas as pd
from flowdeck import FlowSpec, step

ROWS = {rows}


class BigFrameFlow(FlowSpec):
    @step
    def start(self):
        rng = np.random.default_rng(7)
        self.frame = pd.DataFrame({{f"c{{i}}": rng.random(ROWS) for i in range(10)}})
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BigFrameFlow().run()
'''

UNPICKLE = '''import sys
from flowdeck.client import Run
root, run_id, task_id = sys.argv[1:4]
value = Run(f"BigFrameFlow/{run_id}", root=root, _namespace_check=False)["start"][task_id]["frame"].data
print("rows", len(value), "sum", float(value.to_numpy().sum()))
'''


def _rss(kind: str = "VmRSS") -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(kind + ":"):
                return int(line.split()[1]) * 1024
    return 0


def child(mode: str, root: str, run_id: str, task_id: str) -> None:
    """One window process (offscreen): preview through the pane, or unpickle in-process.
    Prints one JSON line: seconds, RSS before and after."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    for path in (str(CORE), str(DESKTOP)):
        sys.path.insert(0, path)
    from PySide6.QtWidgets import QApplication

    from flowdeck.client import Run
    from flowdeck_desktop.views.artifacts import ArtifactsPane

    app = QApplication([])
    pane = ArtifactsPane()
    pane.resize(1100, 500)
    pane.show()
    app.processEvents()
    task = Run(f"BigFrameFlow/{run_id}", root=root, _namespace_check=False)["start"][task_id]
    listed = [{"name": a.id, "type": a.type, "size": a.size} for a in task.artifacts]
    before = _rss()
    began = time.perf_counter()
    if mode == "window":
        shown: list[str] = []
        pane.preview_shown.connect(lambda name, kind: shown.append(kind))
        pane.show_task(sys.executable, root, "BigFrameFlow", run_id, "start", task_id, True,
                       listed=listed)
        pane.select("frame")  # the click on the artifact, at once
        while not shown:
            app.processEvents()
            time.sleep(0.001)
        seconds = time.perf_counter() - began
        if shown != ["table"]:
            raise SystemExit(f"the preview was not a table: {shown}, {pane.message.text()}")
    else:
        value = task["frame"].data
        total = float(value.to_numpy().sum())  # what showing it would touch, at least
        seconds = time.perf_counter() - began
        assert total == total
    app.processEvents()
    print(json.dumps({"seconds": seconds, "rss_before": before, "rss_after": _rss()}))


def window_rounds(mode: str, root: str, run_id: str, task_id: str, repeat: int
                  ) -> list[dict[str, float]]:
    out = []
    env = bench_env()
    env["PYTHONPATH"] = os.pathsep.join([str(CORE), str(DESKTOP), env.get("PYTHONPATH", "")])
    for _ in range(repeat):
        done = subprocess.run([sys.executable, __file__, "--child", mode, root, run_id, task_id],
                              env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"{mode} round failed:\n{done.stderr[-3000:]}")
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "ROOT", "RUN", "TASK"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    machine = Machine.now()
    folder = Path(tempfile.mkdtemp(prefix="bench-preview-"))
    try:
        flow = folder / "big_frame.py"
        flow.write_text(FLOW.format(rows=args.mb * 1024 * 1024 // 80))
        made = subprocess.run([sys.executable, str(flow), "run"], cwd=folder, env=bench_env(),
                              capture_output=True, text=True, timeout=600)
        if made.returncode != 0:
            raise SystemExit(f"the flow failed:\n{made.stderr[-3000:]}")
        sys.path.insert(0, str(CORE))
        from flowdeck.client import Run
        from flowdeck.store.layout import RunLayout
        layout = RunLayout.for_file(flow, "BigFrameFlow")
        [run_id] = layout.run_ids()
        root = str(layout.root)
        [task] = list(Run(f"BigFrameFlow/{run_id}", root=root, _namespace_check=False)["start"])
        size = task["frame"].size
        print(f"DataFrame artifact: {size / 1e6:.1f} MB pickled; {args.repeat} rounds, medians",
              file=sys.stderr)
        unpickle = folder / "unpickle.py"
        unpickle.write_text(UNPICKLE)
        commands = {
            "helper": Command((sys.executable, "-m", "flowdeck.engines.inspect_task", root,
                               "BigFrameFlow", run_id, "start", task.id, "--preview", "frame"),
                              folder, '"kind": "table"'),
            "unpickle": Command((sys.executable, str(unpickle), root, run_id, task.id), folder,
                                "rows"),
        }
        series = interleave(commands, args.repeat)
        window = window_rounds("window", root, run_id, task.id, args.repeat)
        # The same click once the task's stored preview is gone (a run made before stored
        # previews, or a value whose kind gets none): the helper loads the value.
        from flowdeck.store.blobs import BlobStore
        from flowdeck.store.previews import preview_path
        stored = preview_path(BlobStore(Path(root)), task["frame"].sha)
        if stored is None or not stored.exists():
            raise SystemExit("the task stored no preview of its DataFrame")
        stored.unlink()
        window_helper = window_rounds("window", root, run_id, task.id, args.repeat)
        inline = window_rounds("unpickle", root, run_id, task.id, args.repeat)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    machine = machine.finished()

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    mb = 1024 * 1024
    w_time, u_time = med(window, "seconds"), med(inline, "seconds")
    w_grow = med(window, "rss_after") - med(window, "rss_before")
    u_grow = med(inline, "rss_after") - med(inline, "rss_before")
    print(f"# Artifact preview: a {size / 1e6:.0f} MB pandas DataFrame ({args.repeat} rounds, "
          "medians)\n")
    print("| what | wall (s) | memory |")
    print("|---|---|---|")
    for name, label in (("helper", "helper process, `--preview` (as the window runs it)"),
                        ("unpickle", "a process unpickling the whole value")):
        s = series[name]
        print(f"| {label} | {s.wall:.3f} | peak RSS {s.peak_rss / mb:.0f} MB |")
    print(f"| window: click to table shown (the task's stored preview) | {w_time:.3f} | "
          f"RSS after {med(window, 'rss_after') / mb:.0f} MB (+{w_grow / mb:.1f} MB) |")
    h_time = med(window_helper, "seconds")
    h_grow = med(window_helper, "rss_after") - med(window_helper, "rss_before")
    print(f"| window: click to table shown (no stored preview: the helper) | {h_time:.3f} | "
          f"RSS after {med(window_helper, 'rss_after') / mb:.0f} MB (+{h_grow / mb:.1f} MB) |")
    print(f"| window unpickling it itself | {u_time:.3f} | RSS after "
          f"{med(inline, 'rss_after') / mb:.0f} MB (+{u_grow / mb:.1f} MB) |")
    print(f"\nwindow preview / window unpickle: stored preview: time {w_time / u_time:.3f}x; "
          f"helper: time {h_time / u_time:.2f}x; memory growth "
          f"{w_grow / u_grow if u_grow > 0 else float('nan'):.3f}x")
    print(f"\n{machine.describe()}")


if __name__ == "__main__":
    main()
