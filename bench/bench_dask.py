"""Dask executor benchmark: tasks on a 2-worker LocalCluster against local forks and `client.map`.

Cases (whole `python flow.py run` processes, timed by the harness, interleaved per round;
the `client.map` floors are timed in this process against the same cluster):

    cpu      N CPU-bound tasks of W s each (a foreach; each task spins on its own CPU
             clock until it used W s):
               local     `--max-workers 2` (forked here)
               dask      `--executor dask --scheduler ADDR --max-workers 2`
               floor     `client.map` of the same spinning function over N items
             goal: dask within 1.3x of local
    trivial  N tasks that do nothing:
               dask      as above; per-task overhead = (dask - floor) / N
               floor     `client.map` of a no-op
               local     for reference
    scale    (`--scale`) the local executor on a trivial foreach of 1,000 and 10,000 tasks:
             events.jsonl size, files in the run folder, the orchestrator's peak RSS;
             what docs/scale-out.md extrapolates to 100,000 tasks

The cluster is `distributed.LocalCluster(n_workers=2, threads_per_worker=1,
processes=True)` on 127.0.0.1, started once; both the flows and the floors use it. On a
shared machine (2 cores here, other jobs running) the figures say how the paths compare
on it, not what a quiet machine gives: the load average is printed before and after.

    python bench/bench_dask.py [--rounds 3] [--quick] [--scale]

`--quick`: 20 CPU tasks of 0.5 s and 100 trivial tasks, one round (a smoke run).
Needs `pip install 'flowdeck[dask]'`.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Command, Machine, interleave, run_once  # noqa: E402

FLOW = '''
import time

from flowdeck import FlowSpec, Parameter, step


def spin(seconds):
    """Use `seconds` of this process's CPU (not wall time: fair under contention)."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


class BurnFlow(FlowSpec):
    items = Parameter("items", default=10)
    work = Parameter("work", default=0.0)

    @step
    def start(self):
        self.jobs = list(range(self.items))
        self.next(self.burn, foreach="jobs")

    @step
    def burn(self):
        if self.work:
            spin(self.work)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.count = len(inputs)
        self.next(self.end)

    @step
    def end(self):
        print("done", self.count)


if __name__ == "__main__":
    BurnFlow()
'''


def spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def noop(_: int) -> None:
    return None


def client_map(client: object, items: int, work: float) -> float:
    """Wall seconds of `client.map` over `items` (spinning `work` s each, or a no-op)."""
    began = time.perf_counter()
    if work:
        futures = client.map(spin, [work] * items, pure=False)  # type: ignore[attr-defined]
    else:
        futures = client.map(noop, range(items), pure=False)  # type: ignore[attr-defined]
    client.gather(futures)  # type: ignore[attr-defined]
    wall = time.perf_counter() - began
    client.cancel(futures)  # type: ignore[attr-defined]
    return wall


def flow_commands(folder: Path, address: str, items: int, work: float,
                  with_local: bool = True) -> dict[str, Command]:
    flow = str(folder / "burn.py")
    base = (sys.executable, flow, "run", "--items", str(items), "--work", str(work),
            "--max-workers", "2", "--quiet")
    fresh = True  # a new store each run: no run finds its values stored by the one before
    commands = {"dask": Command(base + ("--executor", "dask", "--scheduler", address),
                                folder, f"done {items}", fresh)}
    if with_local:
        commands["local"] = Command(base, folder, f"done {items}", fresh)
    return commands


def measure(folder: Path, client: object, address: str, items: int, work: float,
            rounds: int) -> dict[str, float]:
    series = interleave(flow_commands(folder, address, items, work), rounds,
                        progress=lambda name: print(f"  {name} done", file=sys.stderr))
    floors = [client_map(client, items, work) for _ in range(max(rounds, 1))]
    return {"local": series["local"].wall, "dask": series["dask"].wall,
            "floor": statistics.median(floors)}


def scale(folder: Path, sizes: tuple[int, ...]) -> list[dict[str, float]]:
    """The local executor on trivial foreaches: event file, run folder, orchestrator RSS."""
    rows = []
    for size in sizes:
        command = Command((sys.executable, str(folder / "burn.py"), "run", "--items",
                           str(size), "--quiet"), folder, f"done {size}").in_new_folder()
        sample = run_once(command)  # in a new folder: its store is the run's alone
        runs = sorted((command.cwd / ".flowdeck" / "BurnFlow" / "runs").iterdir(),
                      key=lambda p: p.stat().st_mtime)
        run = runs[-1]
        files = sum(1 for p in run.rglob("*") if p.is_file())
        rows.append({"tasks": size, "wall_s": sample.wall,
                     "events_bytes": (run / "events.jsonl").stat().st_size,
                     "run_files": files, "orchestrator_peak_rss_mb": sample.peak_rss / 2**20})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="20 CPU tasks and 100 trivial ones, one round")
    parser.add_argument("--scale", action="store_true",
                        help="also the local 1,000 and 10,000-task scale figures")
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    args = parser.parse_args()
    try:
        import distributed
    except ImportError:
        print("distributed is not installed: pip install 'flowdeck[dask]'", file=sys.stderr)
        return 2
    cpu_items, trivial_items, rounds = (20, 100, 1) if args.quick else (200, 1000, args.rounds)
    machine = Machine.now()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        folder = Path(tmp)
        (folder / "burn.py").write_text(FLOW)
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None,
                                           silence_logs=logging.ERROR,
                                           scheduler_kwargs={"dashboard": False,
                                                             "dashboard_address": ":0"})
        client = distributed.Client(cluster)
        try:
            address = str(cluster.scheduler_address)
            print(f"cpu: {cpu_items} tasks of 0.5 s CPU", file=sys.stderr)
            cpu = measure(folder, client, address, cpu_items, 0.5, rounds)
            print(f"trivial: {trivial_items} no-op tasks", file=sys.stderr)
            trivial = measure(folder, client, address, trivial_items, 0.0, rounds)
        finally:
            client.close()
            cluster.close()
        figures["cpu"] = cpu
        figures["trivial"] = trivial
        if args.scale:
            print("scale: local 1,000 and 10,000 trivial tasks", file=sys.stderr)
            figures["scale"] = scale(folder, (1000,) if args.quick else (1000, 10_000))
    machine = machine.finished()
    ratio = cpu["dask"] / cpu["local"]
    print(f"Measured on: {machine.describe()}")
    print(f"\n{cpu_items} CPU-bound tasks of 0.5 s, 2 workers (median wall of {rounds} "
          "round(s), whole processes):\n")
    print("| run | wall s | vs local |")
    print("|---|---:|---:|")
    for name in ("local", "dask", "floor"):
        label = {"local": "local executor, --max-workers 2",
                 "dask": "Dask executor, 2-worker LocalCluster",
                 "floor": "client.map of the same function (floor)"}[name]
        print(f"| {label} | {cpu[name]:.2f} | {cpu[name] / cpu['local']:.2f}x |")
    print(f"\ngoal dask within 1.3x of local: {'met' if ratio <= 1.3 else 'not met'} "
          f"({ratio:.2f}x)")
    per_task = (trivial["dask"] - trivial["floor"]) / trivial_items
    print(f"\n{trivial_items} trivial tasks: Dask executor {trivial['dask']:.2f} s, "
          f"client.map of a no-op {trivial['floor']:.2f} s, local {trivial['local']:.2f} s; "
          f"overhead per task on Dask over the floor {per_task * 1000:.1f} ms "
          f"(local: {trivial['local'] / trivial_items * 1000:.1f} ms per task, all in)")
    if "scale" in figures:
        print("\n| tasks (local, trivial) | wall s | events.jsonl | files in run | "
              "orchestrator peak RSS |")
        print("|---:|---:|---:|---:|---:|")
        for row in figures["scale"]:  # type: ignore[attr-defined]
            print(f"| {row['tasks']:,} | {row['wall_s']:.1f} | "
                  f"{row['events_bytes'] / 2**20:.2f} MB | {row['run_files']:,} | "
                  f"{row['orchestrator_peak_rss_mb']:.0f} MB |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine.describe(), **figures},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
