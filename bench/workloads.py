"""The engine benchmark's workloads, written once for each tool in that tool's own idiom.

Every workload becomes a file that runs as a whole `python file.py` process:

    hello     two steps, "hello" passed from the first to the second
    linear    ten steps in a chain, each adding one to a counter
    foreach   a fan-out over N integers (each task squares one) and a join summing them
    array     a 100 MB float64 array made by one task and summed by the next; `seeded`
              makes the same array every run (Flowdeck's and Metaflow's content-addressed
              stores then skip the write: the dedup path), unseeded makes new data every
              run (a real write)
    cpu       four tasks burning 1 s of CPU each, at most two at once

Tools and their idioms:

    flowdeck   a FlowSpec run by `python flow.py` (`run --max-workers 2` for cpu); every
               artifact is persisted
    metaflow   the same file with `from metaflow import`, `python flow.py run`; persisted
    dask       `dask.delayed` functions and one `dask.compute`: the default local (threaded)
               scheduler; for cpu `scheduler="processes", num_workers=2`, since threads
               would share one GIL. Results stay in memory, nothing is persisted
    cluster    `distributed.LocalCluster(n_workers=2, threads_per_worker=1)` on the
               loopback address, no dashboard, with a `Client`: `client.submit` for
               chains, `client.map` for the fan-out; results in memory
    hamilton   functions in the file, one `driver.Builder().with_modules(...)` driver and
               `execute`; the fan-out is `Parallelizable`/`Collect` (dynamic execution, the
               default synchronous executor; `MultiProcessingExecutor(max_tasks=2)` for cpu)
    floor      hand-written plain Python doing the least the workload needs: hello and
               linear just compute and print; foreach and cpu fork one child per item (at
               most as many at once as the engine runs), each does its item and `_exit`s,
               the parent waits for all (no results kept); array makes the array,
               `np.save`s it to a new file and `np.load`s it back in the same process
               (the least any tool that hands data between tasks through the disk must
               do; no fsync, as Flowdeck does none), then sums it and removes the file.
               A new file each run: overwriting the previous run's file cost 0.03 s
               instead of 0.28 s per 100 MB on this machine's file system, a saving no
               store of new values gets

Each tool's run prints a line the harness checks (`expect`), so a tool that silently
did nothing cannot look fast.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import Command

ARRAY_ITEMS = 100 * 1024 * 1024 // 8  # 100 MB of float64


@dataclass(frozen=True)
class Workload:
    """One benchmark case: its shape and size."""

    name: str  # the --only name
    label: str  # the table's row
    shape: str  # hello | linear | foreach | array | cpu
    tasks: int  # tasks Flowdeck runs (steps and foreach items): per-task figures divide by it
    n: int = 0  # foreach items
    seeded: bool = False  # array: the same data every run (dedup) or new data (a real write)
    #: Rounds at least, whatever --repeat says: the 100 MB cases' kernel time for fresh
    #: memory swings from 0.1 to 0.9 s between two runs of the same command on this machine
    #: (huge-page compaction), which a median of 3 does not outvote.
    min_rounds: int = 0

    @property
    def expect(self) -> str:
        return {"hello": "hello", "linear": "count 8", "array": "sum ", "cpu": "burned 4",
                "foreach": f"total {sum(i * i for i in range(self.n))}"}[self.shape]

    @property
    def array_maker(self) -> str:
        seed = "0" if self.seeded else ""
        return f"np.random.default_rng({seed}).random({ARRAY_ITEMS})"


def fanout_workers() -> int:
    """How many tasks Flowdeck runs at once by default (its --max-workers not given): the
    floor forks as many children at once."""
    from flowdeck.engine.runtime import default_max_workers
    return default_max_workers()


# -- Flowdeck and Metaflow: one FlowSpec file, the import line differs ------------------

FLOW = {
    "hello": '''
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
''',
    "linear": '''
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
''',
    "foreach": '''
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
''',
    "array": '''
import numpy as np
from flowdeck import FlowSpec, step

class BigArrayFlow(FlowSpec):
    @step
    def start(self):
        self.arr = {maker}
        self.next(self.end)

    @step
    def end(self):
        print("sum", float(self.arr.sum()))

if __name__ == "__main__":
    BigArrayFlow()
''',
    "cpu": '''
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
        self.burned = sum(1 for _ in inputs)  # Metaflow's Inputs has no len()
        self.next(self.end)

    @step
    def end(self):
        print("burned", self.burned)

if __name__ == "__main__":
    CpuFlow()
''',
}

LINEAR_STEP = '''
    @step
    def s{i}(self):
        self.count += 1
        self.next(self.{nxt})
'''


def flow_source(w: Workload) -> str:
    if w.shape == "linear":
        names = [f"s{i}" for i in range(1, 9)] + ["end"]
        middle = "".join(LINEAR_STEP.format(i=i, nxt=names[i]) for i in range(1, 9))
        return FLOW["linear"].replace("{middle}", middle)
    return FLOW[w.shape].replace("{n}", str(w.n)).replace("{maker}", w.array_maker)


# -- Dask, local threaded scheduler (processes for cpu) ---------------------------------

BURN = '''
def burn(item):
    began = time.process_time()
    while time.process_time() - began < 1.0:
        pass
    return item
'''

DASK = {
    "hello": '''
import dask

@dask.delayed
def start():
    return "hello"

@dask.delayed
def end(message):
    return message

if __name__ == "__main__":
    (message,) = dask.compute(end(start()))
    print(message)
''',
    "linear": '''
import dask

@dask.delayed
def start():
    return 0

@dask.delayed
def step(count):
    return count + 1

@dask.delayed
def end(count):
    return count

if __name__ == "__main__":
    count = start()
    for _ in range(8):
        count = step(count)
    (count,) = dask.compute(end(count))
    print("count", count)
''',
    "foreach": '''
import dask

@dask.delayed
def work(item):
    return item * item

@dask.delayed
def join(squares):
    return sum(squares)

if __name__ == "__main__":
    (total,) = dask.compute(join([work(i) for i in range({n})]))
    print("total", total)
''',
    "array": '''
import dask
import numpy as np

@dask.delayed
def start():
    return {maker}

@dask.delayed
def end(arr):
    return float(arr.sum())

if __name__ == "__main__":
    (total,) = dask.compute(end(start()))
    print("sum", total)
''',
    "cpu": '''
import time
import dask
''' + BURN + '''
if __name__ == "__main__":
    done = dask.compute(*[dask.delayed(burn)(i) for i in range(4)],
                        scheduler="processes", num_workers=2)
    print("burned", len(done))
''',
}

# -- Dask distributed LocalCluster -------------------------------------------------------

CLUSTER_HEAD = '''
import time
from dask.distributed import Client, LocalCluster

def start():
    return 0

def step(count):
    return count + 1

def work(item):
    return item * item

def make():
    import numpy as np
    return {maker}

def total(arr):
    return float(arr.sum())
''' + BURN + '''

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, \\
            Client(cluster) as client:
'''

CLUSTER = {
    "hello": '''
        message = client.submit(lambda: "hello")
        print(client.submit(lambda m: m, message).result())
''',
    "linear": '''
        count = client.submit(start)
        for _ in range(8):
            count = client.submit(step, count)
        print("count", client.submit(lambda c: c, count).result())
''',
    "foreach": '''
        squares = client.map(work, range({n}))
        print("total", client.submit(sum, squares).result())
''',
    "array": '''
        print("sum", client.submit(total, client.submit(make, pure=False)).result())
''',
    "cpu": '''
        print("burned", len(client.gather(client.map(burn, range(4)))))
''',
}

# -- Hamilton ----------------------------------------------------------------------------

HAMILTON_MAIN = '''
if __name__ == "__main__":
    import sys
    from hamilton import driver
    builder = driver.Builder().with_modules(sys.modules[__name__])
{builder}    result = builder.build().execute([{final!r}]{inputs})
    print({prefix}result[{final!r}])
'''

HAMILTON = {
    "hello": ('''
def message() -> str:
    return "hello"

def end(message: str) -> str:
    return message
''', "end", "", "", ""),
    "foreach": ('''
from hamilton.htypes import Collect, Parallelizable

def item(n: int) -> Parallelizable[int]:
    for i in range(n):
        yield i

def square(item: int) -> int:
    return item * item

def total(square: Collect[int]) -> int:
    return sum(square)
''', "total", "    builder = builder.enable_dynamic_execution(allow_experimental_mode=True)\n",
              ", inputs={'n': {n}}", "'total', "),
    "array": ('''
import numpy as np

def arr() -> np.ndarray:
    return {maker}

def total(arr: np.ndarray) -> float:
    return float(arr.sum())
''', "total", "", "", "'sum', "),
    "cpu": ('''
import time
from hamilton.htypes import Collect, Parallelizable

def item() -> Parallelizable[int]:
    yield from range(4)

def burn(item: int) -> int:
    began = time.process_time()
    while time.process_time() - began < 1.0:
        pass
    return item

def burned(burn: Collect[int]) -> int:
    return len(burn)
''', "burned", "    from hamilton.execution import executors\n"
              "    builder = builder.enable_dynamic_execution(allow_experimental_mode=True)"
              ".with_remote_executor(executors.MultiProcessingExecutor(max_tasks=2))\n",
     "", "'burned', "),
}


def hamilton_source(w: Workload) -> str:
    if w.shape == "linear":
        body = "def start() -> int:\n    return 0\n"
        previous = "start"
        for i in range(1, 9):
            body += f"\ndef s{i}({previous}: int) -> int:\n    return {previous} + 1\n"
            previous = f"s{i}"
        body += f"\ndef end({previous}: int) -> int:\n    return {previous}\n"
        final, builder, inputs, prefix = "end", "", "", "'count', "
    else:
        body, final, builder, inputs, prefix = HAMILTON[w.shape]
    main = HAMILTON_MAIN.format(builder=builder, final=final, inputs=inputs, prefix=prefix)
    return (body + main).replace("{n}", str(w.n)).replace("{maker}", w.array_maker)


# -- hand-written floors -----------------------------------------------------------------

FORK_FLOOR = '''
"""Fork `n` children, at most `workers` alive at once; each does its item and _exits.

With --persist, each child also stores its result as a task of any persisting engine
must at the least: the pickled value in a file named by its digest and a record naming
it, each written to a temporary file and renamed into place; the parent then reads every
record and value back and sums them (the join). Nothing else: no logs, events, timeouts,
process groups or checks, so it is a floor for a process per task that persists."""
import hashlib
import json
import os
import pickle
import sys
import time

n, workers, burn = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
if "--import-flowdeck" in sys.argv:
    import flowdeck  # noqa: F401  the engine's imports, as an orchestrator holds them
store = f"store-{os.getpid()}" if "--persist" in sys.argv else ""
if store:
    os.mkdir(store)


def put(path, data):
    tmp = f"{store}/.tmp-{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


running = started = total = 0
while started < n or running:
    while running < workers and started < n:
        if os.fork() == 0:
            if burn:
                began = time.process_time()
                while time.process_time() - began < burn:
                    pass
            else:
                total = started * started
                if store:
                    value = pickle.dumps(total)
                    name = hashlib.blake2b(value, digest_size=20).hexdigest()
                    put(f"{store}/{name}", value)
                    put(f"{store}/task-{started}.json", json.dumps({"value": name}).encode())
            os._exit(0)
        running += 1
        started += 1
    os.wait()
    running -= 1
if store:
    for task in range(n):
        with open(f"{store}/task-{task}.json", "rb") as handle:
            name = json.loads(handle.read())["value"]
        with open(f"{store}/{name}", "rb") as handle:
            total += pickle.loads(handle.read())
    print("total", total)  # the store stays: the harness removes it once every run is timed
print("forked", n)
'''

FLOOR = {
    "hello": 'message = "hello"\nprint(message)\n',
    "linear": 'count = 0\nfor _ in range(8):\n    count += 1\nprint("count", count)\n',
    "array": '''
import os
import numpy as np

arr = {maker}
path = f"arr-{os.getpid()}.npy"  # a new file, as a store writes one per new value
np.save(path, arr)
del arr
print("sum", float(np.load(path).sum()))
os.remove(path)
''',
}


# -- the tools ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Tool:
    """A tool compared on the workloads: how it runs each, and the package it needs."""

    name: str
    label: str
    module: str  # importable when installed ("" for none beyond the interpreter)

    def missing(self) -> str:
        """Why this tool cannot run here ('' when it can)."""
        try:
            found = not self.module or importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):  # a broken or blocked install counts as missing
            found = False
        return "" if found else "not installed (pip install -e '.[bench]')"

    def command(self, w: Workload, folder: Path) -> Command | None:
        """Write this tool's file for `w` under `folder`; None when it does not run `w`."""
        folder = folder / self.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "flow.py"
        argv: list[str] = [sys.executable, str(path)]
        expect = w.expect
        if self.name == "flowdeck":
            source = flow_source(w)
            if w.shape == "cpu":
                argv += ["run", "--max-workers", "2"]
        elif self.name == "metaflow":
            if w.shape == "foreach" and w.n > 100:
                return None  # over 300 s at 1,000 items (issue 15): not run
            source = flow_source(w).replace("from flowdeck import", "from metaflow import")
            argv += ["run", "--max-workers", "2"] if w.shape == "cpu" else ["run"]
        elif self.name == "dask":
            source = DASK[w.shape].replace("{n}", str(w.n)).replace("{maker}", w.array_maker)
        elif self.name == "cluster":
            source = (CLUSTER_HEAD + CLUSTER[w.shape]).replace("{n}", str(w.n)).replace(
                "{maker}", w.array_maker)
        elif self.name == "hamilton":
            source = hamilton_source(w)
        elif self.name == "floor":
            if w.shape in ("foreach", "cpu"):
                source = FORK_FLOOR
                n, workers, burn = (w.n, fanout_workers(), 0.0) if w.shape == "foreach" \
                    else (4, 2, 1.0)
                argv += [str(n), str(workers), str(burn)]
                expect = "forked"
            else:
                source = FLOOR[w.shape].replace("{maker}", w.array_maker)
        else:
            raise ValueError(f"unknown tool {self.name!r}")
        path.write_text(source)
        # The stores of the tools that persist start empty every run, but where the workload
        # repeats its data on purpose ("repeated data": the dedup path is what it measures).
        fresh = not w.seeded and self.name in ("flowdeck", "metaflow")
        return Command(tuple(argv), folder, expect, fresh)


TOOLS = [
    Tool("flowdeck", "Flowdeck", ""),
    Tool("metaflow", "Metaflow", "metaflow"),
    Tool("dask", "Dask local", "dask"),
    Tool("cluster", "Dask LocalCluster", "distributed"),
    Tool("hamilton", "Hamilton", "hamilton"),
    Tool("floor", "hand-written floor", ""),
]
