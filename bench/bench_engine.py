"""Engine benchmark: `python flow.py` with Flowdeck against `python flow.py run` with Metaflow.

Each case is written twice, identical but for the import line, into a fresh
temporary folder; each engine runs it `--repeat` times (after one warm-up run
that also fills the bytecode cache) and we print the medians and the ratio.
Both engines run with the same interpreter and environment.

    python bench/bench_engine.py            # all cases, 5 runs each
    python bench/bench_engine.py --repeat 7 --only hello,linear10
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "core"

HELLO = '''
from flowdeck import FlowSpec, step

class HelloFlow(FlowSpec):
    @step
    def start(self):
        self.message = "hello"
        self.next(self.end)

    @step
    def end(self):
        print(self.message)

if __name__ == "__main__":
    HelloFlow()
'''

LINEAR10 = '''
from flowdeck import FlowSpec, step

class LinearFlow(FlowSpec):
    @step
    def start(self):
        self.count = 0
        self.next(self.s1)
{middle}
    @step
    def end(self):
        print("count", self.count)

if __name__ == "__main__":
    LinearFlow()
'''

STEP = '''
    @step
    def s{i}(self):
        self.count += 1
        self.next(self.{nxt})
'''

FOREACH = '''
from flowdeck import FlowSpec, step

class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range({n}))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)

if __name__ == "__main__":
    ForeachFlow()
'''

BIG_ARRAY = '''
import numpy as np
from flowdeck import FlowSpec, step

class BigArrayFlow(FlowSpec):
    @step
    def start(self):
        self.arr = np.random.default_rng(0).random(100 * 1024 * 1024 // 8)
        self.next(self.end)

    @step
    def end(self):
        print("sum", float(self.arr.sum()))

if __name__ == "__main__":
    BigArrayFlow()
'''

CPU_BOUND = '''
import time
from flowdeck import FlowSpec, step

class CpuFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2, 3]
        self.next(self.burn, foreach="items")

    @step
    def burn(self):
        began = time.process_time()
        while time.process_time() - began < 1.0:
            pass
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CpuFlow()
'''


@dataclass
class Case:
    name: str
    label: str
    source: str
    metaflow_reference: float | None  # the measured Metaflow median, for context
    target_ratio: float | None  # ours must be at most 1/target of Metaflow's time
    absolute_target: float | None = None  # ours only: seconds
    flowdeck_args: tuple[str, ...] = ()
    compare: bool = True


def linear_source() -> str:
    names = [f"s{i}" for i in range(1, 9)] + ["end"]
    middle = "".join(STEP.format(i=i, nxt=names[i]) for i in range(1, 9))
    return LINEAR10.format(middle=middle)


CASES = [
    Case("hello", "2-step hello", HELLO, 0.93, 15),
    Case("linear10", "10-step linear", linear_source(), 3.68, 40),
    Case("foreach20", "foreach over 20 items + join", FOREACH.format(n=20), 5.07, 25),
    Case("array100mb", "100 MB float64 artifact, start -> end", BIG_ARRAY, 5.70, 8),
    Case("foreach1000", "foreach over 1,000 trivial items (ours only)", FOREACH.format(n=1000),
         None, None, absolute_target=3.0, compare=False),
    Case("cpu4x1s", "4 CPU-bound items of 1 s, 2 workers (ours only)", CPU_BOUND, None, None,
         absolute_target=2.4, flowdeck_args=("run", "--max-workers", "2"), compare=False),
]


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CORE), env.get("PYTHONPATH")]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users' interpreters cache bytecode
    env.setdefault("USERNAME", "bench")  # Metaflow refuses to run without a user name
    if env.get("USER") == "root":
        env["USER"] = "bench"
    return env


def time_command(cmd: list[str], cwd: Path, repeat: int) -> list[float]:
    env = bench_env()
    times = []
    for _ in range(max(repeat, 1)):
        began = time.perf_counter()
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - began)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return times


def run_case(case: Case, repeat: int, with_metaflow: bool) -> dict[str, float | None]:
    """Medians of both engines, their runs interleaved so machine drift hits both alike."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{case.name}-"))
    try:
        ours = folder / "ours" / "flow.py"
        ours.parent.mkdir()
        ours.write_text(case.source)
        commands = {"flowdeck": ([sys.executable, str(ours), *case.flowdeck_args], ours.parent)}
        if with_metaflow and case.compare:
            mf = folder / "metaflow" / "flow.py"
            mf.parent.mkdir()
            mf.write_text(case.source.replace("from flowdeck import", "from metaflow import"))
            commands["metaflow"] = ([sys.executable, str(mf), "run"], mf.parent)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for cmd, cwd in commands.values():
            time_command(cmd, cwd, 0)  # warm-up: bytecode caches, datastore folders
        for _ in range(repeat):
            for name, (cmd, cwd) in commands.items():
                times[name] += time_command(cmd, cwd, 1)[-1:]
        return {"flowdeck": statistics.median(times["flowdeck"]),
                "metaflow": statistics.median(times["metaflow"]) if "metaflow" in times else None}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", help="comma-separated case names")
    parser.add_argument("--no-metaflow", action="store_true", help="ours only")
    args = parser.parse_args()
    with_metaflow = not args.no_metaflow
    if with_metaflow:
        try:
            import metaflow  # noqa: F401
        except ImportError:
            print("metaflow is not installed: pip install -e '.[bench]' (or --no-metaflow)")
            return 2
    chosen = [c for c in CASES if not args.only or c.name in args.only.split(",")]
    print(f"{'case':<48} {'Flowdeck':>9} {'Metaflow':>9} {'ratio':>7} {'target':>9}  ok")
    rows = []
    for case in chosen:
        r = run_case(case, args.repeat, with_metaflow)
        mine, theirs = r["flowdeck"], r["metaflow"]
        ratio = theirs / mine if theirs else None
        if case.target_ratio:
            target = f">= {case.target_ratio}x"
            ok = ratio is not None and ratio >= case.target_ratio
        else:
            target = f"< {case.absolute_target:g} s"
            ok = mine < (case.absolute_target or 0)
        rows.append((case, mine, theirs, ratio, target, ok))
        print(f"{case.label:<48} {mine:>8.3f}s "
              f"{(f'{theirs:.3f}s' if theirs else '-'):>9} "
              f"{(f'{ratio:.1f}x' if ratio else '-'):>7} {target:>9}  {'yes' if ok else 'NO'}",
              flush=True)
    print(f"\nmedians of {args.repeat} interleaved runs after a warm-up; {sys.executable} "
          f"(Python {sys.version.split()[0]}), {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
