"""Object-store benchmark: a 100 MB artifact through the s3 store, against s3fs itself.

An S3 endpoint on localhost (moto's server, in a process of its own so it does not
share this process's interpreter lock) takes, every round, in rotated order:

    flowdeck put+get   `BlobStore.put` of a fresh array (pickle, BLAKE2 hash, HEAD, PUT)
                       and `BlobStore.get` (GET, hash check, unpickle), through the
                       working copy of an `s3://` root, as a task and a reader do
    s3fs put+get       `pipe_file` and `cat_file` of the same bytes: the floor (no
                       pickling, no hash, no existence check)
    flowdeck dedup     `BlobStore.put` of a value already stored: hash and one HEAD, no
                       upload (a task storing an unchanged artifact again)
    s3fs info          one `info` of the stored object: the floor of that check

Each round makes fresh random float64 data (numpy's default generator) so no round is
deduplicated by an earlier one, except the dedup case, which stores the round's array
a second time. Medians over the rounds, and the ratio to the floor, are printed with
the machine's load: on a shared machine (other jobs, 2 cores) the figures say how the
two paths compare on it, not what a quiet machine or a real S3 would give.

    python bench/bench_s3_store.py [--rounds 5] [--mb 100] [--quick]

Needs s3fs and moto[server] (`pip install 'flowdeck[s3]' 'moto[server]'`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Machine  # noqa: E402

from flowdeck.store.blobs import BlobStore  # noqa: E402
from flowdeck.store.layout import mark_datastore  # noqa: E402

BUCKET = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server in its own process, with the bench bucket; (process, endpoint)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("moto's server did not start (pip install "
                                 "'moto[server]')") from None
            time.sleep(0.1)
    return server, endpoint


def through_flowdeck(root: Path, value: object, times: dict[str, list[float]]) -> None:
    """put, get and a second put (deduplicated) of `value` through the s3 store."""
    store = BlobStore(root)
    wall = time.perf_counter()
    ref = store.put("arr", value)
    put = time.perf_counter() - wall
    back = BlobStore(root).get(ref.sha)  # a reader's store: nothing shared with the writer
    total = time.perf_counter() - wall
    assert back.shape == value.shape  # type: ignore[attr-defined]
    times["flowdeck put"].append(put)
    times["flowdeck get"].append(total - put)
    times["flowdeck put+get"].append(total)
    wall = time.perf_counter()
    store.put("arr", value)  # stored already: hash and one HEAD, no upload
    times["flowdeck dedup"].append(time.perf_counter() - wall)
    store.backend.set_aside(store.path(ref.sha))  # deleted: moto keeps objects in memory


def through_s3fs(fs: object, key: str, raw: bytes, times: dict[str, list[float]]) -> None:
    """The floor: s3fs `pipe_file` + `cat_file` of the same bytes, then one `info`."""
    wall = time.perf_counter()
    fs.pipe_file(key, raw)  # type: ignore[attr-defined]
    put = time.perf_counter() - wall
    data = fs.cat_file(key)  # type: ignore[attr-defined]
    total = time.perf_counter() - wall
    assert len(data) == len(raw)
    times["s3fs put"].append(put)
    times["s3fs get"].append(total - put)
    times["s3fs put+get"].append(total)
    fs.invalidate_cache()  # type: ignore[attr-defined]
    wall = time.perf_counter()
    fs.info(key)  # type: ignore[attr-defined]
    times["s3fs info"].append(time.perf_counter() - wall)
    fs.rm_file(key)  # type: ignore[attr-defined]


def measure(rounds: int, megabytes: int, endpoint: str) -> dict[str, list[float]]:
    import numpy as np
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
    fs.mkdir(BUCKET)
    url = f"s3://{BUCKET}/store"
    root = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    mark_datastore(root, url, "run")
    rng = np.random.default_rng()
    times: dict[str, list[float]] = {k: [] for k in (
        "flowdeck put", "flowdeck get", "flowdeck put+get", "s3fs put", "s3fs get",
        "s3fs put+get", "flowdeck dedup", "s3fs info")}
    try:
        BlobStore(root).put("warm", b"x")  # the fsspec client and its connections, as in a task
        for round_ in range(rounds):
            value = rng.random(megabytes * 1_000_000 // 8)  # fresh: never stored before
            raw = value.tobytes()
            key = f"{BUCKET}/floor/{round_}"
            if round_ % 2 == 0:
                through_flowdeck(root, value, times)
                through_s3fs(fs, key, raw, times)
            else:
                through_s3fs(fs, key, raw, times)
                through_flowdeck(root, value, times)
            print(f"  round {round_ + 1}/{rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mb", type=int, default=100, help="artifact size in MB (10^6 bytes)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 20 MB (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.mb = 2, 20
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server, endpoint = start_server()
    os.environ["AWS_ENDPOINT_URL"] = endpoint  # read by botocore under s3fs, as users set it
    machine = Machine.now()
    try:
        times = measure(args.rounds, args.mb, endpoint)
    finally:
        server.terminate()
        server.wait(10)
    machine = machine.finished()
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.mb} MB fresh random float64 array per round, {args.rounds} rounds, "
          f"medians; moto S3 server on localhost ({endpoint}), separate process")
    for ours, floor in (("flowdeck put", "s3fs put"), ("flowdeck get", "s3fs get"),
                        ("flowdeck put+get", "s3fs put+get"),
                        ("flowdeck dedup", "s3fs info")):
        ratio = median[ours] / median[floor] if median[floor] else float("nan")
        print(f"  {ours:<17} {median[ours]:8.3f} s   {floor:<13} {median[floor]:8.3f} s   "
              f"ratio {ratio:5.2f}x")
    print(f"Machine: {machine.describe()}")


if __name__ == "__main__":
    main()
