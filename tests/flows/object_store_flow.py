"""A flow for the object-store tests (tests/test_object_store.py): linear, foreach, join.

Environment switches (read in the tasks):
- OBJECT_STORE_FLOW_FAIL=<i>: the foreach task of item i raises.
- OBJECT_STORE_FLOW_KILL=<i>: the foreach task of item i is killed (SIGKILL) while its
  artifacts are being saved: after the blob of `big` was uploaded, before its attempt
  record is written.
- OBJECT_STORE_FLOW_KILL_RUN=<i>: the same, and the run's orchestrator (with its fork
  server) is killed too, so nobody records the task at all.
- OBJECT_STORE_FLOW_LOSE_STORE=1: the start task loses its way to the object store (its
  endpoint becomes unreachable) before it reads or writes anything there.
"""
import os
import signal
import sys

from flowdeck import FlowSpec, Parameter, step

BIG = bytes([7]) * (1 << 20)  # the `big` artifact of a foreach task: 1 MiB, known bytes


class KillWhenSaved:
    """Pickling it (when its task saves it, after the artifacts set before it) kills the
    task's process, and with `run=True` its ancestors running this file (the fork server
    and the orchestrator): no attempt record is written for that task."""

    def __init__(self, run):
        self.run = run

    def __reduce__(self):
        if self.run:
            pid = os.getppid()
            while pid > 1 and _runs_this_file(pid):
                parent = _parent(pid)
                os.kill(pid, signal.SIGKILL)
                pid = parent
        os.kill(os.getpid(), signal.SIGKILL)


def _runs_this_file(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return os.path.basename(__file__).encode() in handle.read()
    except OSError:
        return False


def _parent(pid):
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[1])


class ObjectStoreFlow(FlowSpec):
    """Squares numbers in a foreach and adds them up."""

    n = Parameter("n", default=3, help="how many numbers")

    @step
    def start(self):
        if os.environ.get("OBJECT_STORE_FLOW_LOSE_STORE"):
            os.environ.update(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")
        self.items = list(range(int(self.n)))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.sq = self.input * self.input
        self.big = BIG
        if os.environ.get("OBJECT_STORE_FLOW_FAIL") == str(self.input):
            raise RuntimeError(f"asked to fail on item {self.input}")
        if str(self.input) in (os.environ.get("OBJECT_STORE_FLOW_KILL"),
                               os.environ.get("OBJECT_STORE_FLOW_KILL_RUN")):
            # saved last: after `big` was uploaded
            self.zz_killer = KillWhenSaved(run="OBJECT_STORE_FLOW_KILL_RUN" in os.environ)
        print("square", self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.fsspec_loaded = "fsspec" in sys.modules
        print("total", self.total)


if __name__ == "__main__":
    ObjectStoreFlow()
