"""Blob store benchmark: write and read a fresh 100 MB float64 array (never deduplicated).

Each repetition makes new random data, so every `put` hashes and writes the
whole blob (the engine benchmark's array case uses a fixed seed, so after its
warm-up the blob already exists and only the hash is paid). Prints medians
and minimums of wall time and of CPU time (all threads):

    put      pickle (zero-copy), hash, write
    get      map the file, verify its hash, unpickle (pages then already mapped)
    get+sum  get, then touch every element
    holds    the "read but not changed" check a task makes before keeping a reference
    damage   the check resume makes before reusing a task (hash, once per blob)

    python bench/bench_blobs.py [--repeat 15] [--mb 100]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))

from flowdeck.store.blobs import BlobStore  # noqa: E402


def measure(repeat: int, megabytes: int) -> dict[str, list[float]]:
    import numpy as np

    rng = np.random.default_rng()
    times: dict[str, list[float]] = {k: [] for k in (
        "put", "get", "get+sum", "holds", "damage", "cpu put", "cpu get")}
    root = Path(tempfile.mkdtemp(prefix="bench-blobs-"))
    try:
        for _ in range(repeat):
            value = rng.random(megabytes * 1024 * 1024 // 8)
            store = BlobStore(root)
            cpu, wall = time.process_time(), time.perf_counter()
            ref = store.put("arr", value)
            times["put"].append(time.perf_counter() - wall)
            times["cpu put"].append(time.process_time() - cpu)
            cpu, wall = time.process_time(), time.perf_counter()
            back = store.get(ref.sha)
            times["get"].append(time.perf_counter() - wall)
            times["cpu get"].append(time.process_time() - cpu)
            float(back.sum())
            times["get+sum"].append(time.perf_counter() - wall)
            wall = time.perf_counter()
            assert store.holds(ref, store.encode("arr", back))
            times["holds"].append(time.perf_counter() - wall)
            wall = time.perf_counter()
            assert store.damage(ref) is None
            times["damage"].append(time.perf_counter() - wall)
            del back
            shutil.rmtree(root / "blobs")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    for name, values in measure(args.repeat, args.mb).items():
        print(f"{name:<8} median {statistics.median(values) * 1000:7.1f} ms   "
              f"min {min(values) * 1000:7.1f} ms")
    print(f"\n{args.mb} MB, {args.repeat} repetitions; {sys.executable} "
          f"(Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
