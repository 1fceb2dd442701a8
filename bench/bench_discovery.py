"""Benchmark of flow discovery: cold scan, incremental diff, memory, against Metaflow.

Usage (from the repository root):

    PYTHONPATH=core python3 bench/bench_discovery.py [--files 1000] [--repeat 5]
        [--metaflow-files 5] [--no-metaflow]

It generates a folder of `--files` Python files in a temporary directory, half
of them flows of 5 to 30 steps (linear runs, static splits and foreaches),
half other Python (helpers, classes, tests), and measures:

* cold scan: a new `FlowCatalog` scanning the whole folder (median of runs);
  also with the `FlowSpec` prefilter off, so every file is parsed;
* incremental: one flow file saved while a real `FolderWatcher` runs; the time
  from the end of the quiet period (last write + quiet period) to the
  `on_change` callback carrying the diff;
* memory: bytes the catalog keeps after a cold scan (tracemalloc, after a
  collection), its peak during the scan, and the process RSS growth;
* Metaflow: `python flow.py output-raw --json` on a few generated Metaflow
  flows, which imports each flow, against flowdeck's `analyze_file` on the
  same files.

Only medians are printed; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

from flowdeck.analysis.flowfile import analyze_file  # noqa: E402
from flowdeck.discovery.catalog import CatalogDiff, FlowCatalog  # noqa: E402
from flowdeck.discovery.watcher import FolderWatcher  # noqa: E402

# -- generating the folder ----------------------------------------------------

def flow_source(index: int, steps: int, rng: random.Random, engine: str = "flowdeck") -> str:
    """A valid flow of about `steps` steps: linear runs, static splits and foreaches."""
    names: list[str] = []
    body: list[str] = []
    counter = [0]

    def fresh() -> str:
        counter[0] += 1
        return f"s{counter[0]}"

    def step(name: str, nxt: str, join: bool = False) -> None:
        args = "self, inputs" if join else "self"
        body.append(f"    @step\n    def {name}({args}):\n"
                    f'        """Step {name} of flow {index}: does a little work."""\n'
                    f"        self.value_{name} = {rng.randint(0, 1000)}\n"
                    f"        total = sum(range({rng.randint(1, 50)}))\n"
                    f"        {'self.merge_artifacts(inputs)' if join else 'self.total = total'}\n"
                    f"        {nxt}\n")
        names.append(name)

    current = "start"
    remaining = steps - 2
    pending_next: list[tuple[str, str]] = []
    after_join = False
    while remaining > 0:
        # A join cannot split again (Metaflow's rule): a linear step comes first.
        kind = "linear" if after_join or remaining < 4 else rng.choice(
            ["linear", "linear", "split", "foreach"])
        after_join = kind != "linear"
        if kind == "linear":
            nxt = fresh()
            pending_next.append((current, f"self.next(self.{nxt})"))
            current = nxt
            remaining -= 1
        elif kind == "split":
            a, b, j = fresh(), fresh(), fresh()
            pending_next.append((current, f"self.next(self.{a}, self.{b})"))
            pending_next.append((a, f"self.next(self.{j})"))
            pending_next.append((b, f"self.next(self.{j})"))
            pending_next.append((j, "JOIN"))
            current = j
            remaining -= 3
        else:
            body_step, j = fresh(), fresh()
            pending_next.append((current, f"self.items = list(range(3))\n        "
                                          f"self.next(self.{body_step}, foreach='items')"))
            pending_next.append((body_step, f"self.next(self.{j})"))
            pending_next.append((j, "JOIN"))
            current = j
            remaining -= 2
    pending_next.append((current, "self.next(self.end)"))
    joins = {name for name, nxt in pending_next if nxt == "JOIN"}
    order: list[str] = []
    transitions: dict[str, str] = {}
    for name, nxt in pending_next:
        if nxt == "JOIN":
            continue
        if name not in transitions:
            order.append(name)
        transitions[name] = nxt
    for name in order:
        step(name, transitions[name], join=name in joins)
    body.append('    @step\n    def end(self):\n        """The end."""\n        print("done")\n')
    module = "metaflow" if engine == "metaflow" else "flowdeck"
    return (f'"""Generated flow number {index}."""\n'
            f"from {module} import FlowSpec, Parameter, step\n\n\n"
            f"class Generated{index}Flow(FlowSpec):\n"
            f'    """Flow {index} with {steps} steps, generated for the benchmark."""\n\n'
            f"    alpha = Parameter('alpha', default={rng.randint(1, 9)}, help='A number.')\n\n"
            + "\n".join(body)
            + f"\n\nif __name__ == '__main__':\n    Generated{index}Flow()\n")


def other_source(index: int, rng: random.Random) -> str:
    """Ordinary Python of 100 to 300 lines: functions, a class, constants."""
    parts = [f'"""Helper module {index}."""\nimport os\nimport json\n\nLIMIT = {rng.randint(1, 99)}\n']
    for f in range(rng.randint(8, 25)):
        parts.append(
            f"\ndef helper_{f}(values, scale={rng.random():.3f}):\n"
            f'    """Scale and filter values ({f})."""\n'
            f"    out = []\n    for v in values:\n        if v > LIMIT:\n"
            f"            out.append(v * scale)\n        else:\n            out.append(-v)\n"
            f"    return json.dumps(out) if os.environ.get('X{f}') else out\n")
    parts.append(f"\nclass Thing{index}:\n    def __init__(self, x):\n        self.x = x\n\n"
                 f"    def __repr__(self):\n        return f'Thing{index}({{self.x}})'\n")
    return "".join(parts)


def make_folder(root: Path, files: int, seed: int = 7) -> list[Path]:
    rng = random.Random(seed)
    flows: list[Path] = []
    for i in range(files):
        sub = root / f"pkg{i % 20}"
        sub.mkdir(exist_ok=True)
        if i % 2 == 0:
            path = sub / f"flow_{i}.py"
            path.write_text(flow_source(i, rng.randint(5, 30), rng))
            flows.append(path)
        else:
            (sub / f"mod_{i}.py").write_text(other_source(i, rng))
    return flows


# -- measurements ------------------------------------------------------------------

def cold_scan(root: Path, repeat: int, prefilter: bool = True) -> tuple[float, int, int]:
    times: list[float] = []
    flows = problems = 0
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        snapshot, _ = FlowCatalog([root], prefilter=prefilter).scan()
        times.append(time.perf_counter() - started)
        flows = len(snapshot.entries)
        problems = sum(1 for e in snapshot.entries if not e.ok) + len(snapshot.problems)
    return statistics.median(times), flows, problems


def rescan_unchanged(root: Path, repeat: int) -> float:
    catalog = FlowCatalog([root])
    catalog.scan()
    catalog.scan()  # settles racy (just written) files
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        catalog.scan()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def incremental(root: Path, flows: list[Path], repeat: int, quiet: float) -> tuple[float, float]:
    """Median (end of quiet period -> callback) and median catalog refresh time."""
    got = threading.Event()
    received: list[tuple[float, CatalogDiff]] = []

    def on_change(diff: CatalogDiff) -> None:
        received.append((time.perf_counter(), diff))
        got.set()

    latencies: list[float] = []
    refresh: list[float] = []
    watcher = FolderWatcher([root], on_change, quiet_period=quiet, rescan_interval=3600)
    watcher.start()
    if not watcher.wait_idle(60):  # the first scan runs on the watcher's thread
        raise RuntimeError("the watcher's first scan did not finish within 60 s")
    try:
        for n in range(repeat):
            target = flows[n * 7 % len(flows)]
            got.clear()
            received.clear()
            text = target.read_text().replace('"""The end."""', f'"""The end ({n})."""')
            target.write_text(text)
            written = time.perf_counter()
            if not got.wait(10):
                raise RuntimeError(f"no diff for {target} within 10 s")
            at, diff = received[0]
            if len(diff.changed) != 1:
                raise RuntimeError(f"expected one changed flow, got {diff.as_dict()}")
            latencies.append(at - written - quiet)
            refresh.append(diff.seconds)
    finally:
        watcher.stop()
    return statistics.median(latencies), statistics.median(refresh)


def memory(root: Path) -> tuple[int, int, int]:
    """(retained bytes, peak bytes) by tracemalloc, and RSS growth in bytes."""
    gc.collect()
    rss_before = _rss()
    tracemalloc.start()
    catalog = FlowCatalog([root])
    catalog.scan()
    gc.collect()
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = _rss()
    del catalog
    return retained, peak, rss_after - rss_before


def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def metaflow_comparison(tmp: Path, count: int, repeat: int) -> tuple[float, float] | None:
    """Median seconds per file: Metaflow's output-raw --json versus flowdeck analyze_file."""
    try:
        import metaflow  # noqa: F401
    except ImportError:
        print("metaflow is not installed: skipping the comparison")
        return None
    folder = tmp / "metaflow_flows"
    folder.mkdir()
    rng = random.Random(11)
    paths = []
    for i in range(count):
        path = folder / f"mf_flow_{i}.py"
        path.write_text(flow_source(i, rng.randint(5, 30), rng, engine="metaflow"))
        paths.append(path)
    env = dict(os.environ, USERNAME="flowdeck-bench", METAFLOW_HOME=str(tmp / "mfhome"),
               HOME=str(tmp / "home"))
    (tmp / "home").mkdir()
    mf_times: list[float] = []
    for path in paths:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(path), "output-raw", "--json"],
                              cwd=folder, env=env, capture_output=True, text=True)
        mf_times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            print(f"metaflow failed on {path.name}: {proc.stderr.strip()[-400:]}")
            return None
    fd_times: list[float] = []
    for _ in range(repeat):
        for path in paths:
            started = time.perf_counter()
            analyze_file(path)
            fd_times.append(time.perf_counter() - started)
    return statistics.median(mf_times), statistics.median(fd_times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quiet", type=float, default=0.15)
    parser.add_argument("--metaflow-files", type=int, default=5)
    parser.add_argument("--no-metaflow", action="store_true")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="flowdeck-bench-"))
    try:
        root = tmp / "flows"
        root.mkdir()
        flows = make_folder(root, args.files)
        size = sum(p.stat().st_size for p in root.rglob("*.py"))
        print(f"folder: {args.files} files ({len(flows)} flows), {size / 1e6:.1f} MB, "
              f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        cold, n_flows, bad = cold_scan(root, args.repeat)
        print(f"cold scan:                 {cold * 1000:8.1f} ms median of {args.repeat} "
              f"({n_flows} flows found, {bad} with errors)")
        cold_all, _, _ = cold_scan(root, args.repeat, prefilter=False)
        print(f"cold scan, no prefilter:   {cold_all * 1000:8.1f} ms median of {args.repeat} "
              "(every file parsed)")
        warm = rescan_unchanged(root, args.repeat)
        print(f"rescan, nothing changed:   {warm * 1000:8.1f} ms median of {args.repeat}")
        latency, refresh = incremental(root, flows, max(args.repeat, 5), args.quiet)
        print(f"diff after one save:       {latency * 1000:8.1f} ms median of "
              f"{max(args.repeat, 5)} from the end of the {args.quiet * 1000:.0f} ms quiet "
              f"period to the callback (catalog refresh itself {refresh * 1000:.2f} ms)")
        retained, peak, rss = memory(root)
        print(f"catalog memory:            {retained / 1e6:8.1f} MB retained, "
              f"{peak / 1e6:.1f} MB peak while scanning (tracemalloc); "
              f"RSS growth {rss / 1e6:.1f} MB")
        if not args.no_metaflow:
            result = metaflow_comparison(tmp, args.metaflow_files, args.repeat)
            if result:
                mf, fd = result
                print(f"metaflow output-raw --json: {mf * 1000:8.1f} ms per file median of "
                      f"{args.metaflow_files} (imports the flow)")
                print(f"flowdeck analyze_file:      {fd * 1000:8.2f} ms per file on the same "
                      f"files: {mf / fd:,.0f}x faster; whole 1,000-file folder cold "
                      f"{cold:.2f} s vs about {mf * len(flows):.0f} s for Metaflow on its "
                      f"{len(flows)} flows")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
