"""A foreach whose tasks print, then wait while a `hold` file sits beside the flow (for the
Dask executor's streaming and lost-worker tests). Each task says which worker process runs
it (see `worker_pid`)."""
import os
import time

from flowdeck import FlowSpec, step


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def worker_pid() -> int:
    """The Dask worker that runs this task: the task's parent is the flow's zygote on that
    worker, whose parent is the worker's multiprocessing fork server."""
    return _parent(_parent(os.getppid()))


class HoldFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.nap, foreach="items")

    @step
    def nap(self):
        hold = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hold")
        print(f"napping {self.input} on worker {worker_pid()} as {os.getpid()} (held by "
              f"{hold}: {os.path.exists(hold)})", flush=True)
        while self.input == 0 and os.path.exists(hold):
            time.sleep(0.05)
        self.value = self.input * 10
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = [i.value for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("values", self.values)


if __name__ == "__main__":
    HoldFlow()
