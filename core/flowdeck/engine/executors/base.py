"""The seam between the orchestrator and whatever runs a task attempt."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from flowdeck.compiled_dataclasses import dataclass

#: The executor of runs that do not choose one (`--executor`), e.g. set by a launcher.
EXECUTOR_ENV = "FLOWDECK_EXECUTOR"
#: The Dask scheduler of runs on Dask that name none (`--scheduler`).
SCHEDULER_ENV = "FLOWDECK_DASK_SCHEDULER"

if TYPE_CHECKING:
    from flowdeck.engine.task import TaskRequest
    from flowdeck.engines.processes import RunGuard


@dataclass
class Launched:
    """A started attempt, as the orchestrator's selector loop sees it.

    `key` identifies the attempt in the loop (a local worker's pid; a negative stand-in
    for a remote one). `out_fd`/`err_fd` are read ends that reach EOF when the attempt's
    output ends. `exit_fd` turns readable once the attempt ended (a pidfd, or a pipe an
    executor's thread writes to); None means the loop polls `Executor.ended`.
    """

    key: int
    out_fd: int
    err_fd: int
    exit_fd: int | None
    pid: int | None = None  # the worker's pid where it is a process of this machine
    where: str | None = None  # the host or worker that runs it, when not this machine


class Executor(ABC):
    """Starts, watches and stops task attempts for one run; one instance per run."""

    #: Shown in run.json and events ("local", "dask").
    name: str = ""

    def before_guard(self, run_id: str) -> None:  # noqa: B027 (optional hook)
        """Called once, before the run forks its guard: what an executor reads of the whole
        process (every object) it reads here, where no child shares its pages yet. After
        that fork each page it touched would be copied (a scan of every object there cost
        1,158 page faults, 6.4 ms of a 0.1 s run)."""

    def open(self, guard: RunGuard | None) -> None:  # noqa: B027 (optional hook)
        """Called once before the first start (the run's guard tracks local workers)."""

    @abstractmethod
    def start(self, request: TaskRequest, close_inherited: Callable[[], None]) -> Launched:
        """Start one attempt of `request`. `close_inherited` closes, in a forked worker,
        the orchestrator's own fds (pipes must see EOF when their task's output ends)."""

    @abstractmethod
    def ended(self, launched: Launched, running_keys: set[int]) -> int | None:
        """The attempt's wait status (as `os.waitpid` gives it) once it ended, else None.

        Never blocks. Before it answers, everything the attempt left running is ended
        (its process group, its orphans); `running_keys` are the keys of the attempts not
        yet reaped (this one included), whose own processes stay.
        """

    @property
    def ends_fd(self) -> int | None:
        """An fd that turns readable when attempts tell they have ended before their
        process is gone (`early_ends`); None: the executor has no such word."""
        return None

    def early_ends(self, running_keys: set[int]) -> list[tuple[int, int]]:
        """(key, wait status) of the attempts that said they ended since the last call.
        The orchestrator finishes each such running attempt at once and `release`s it.
        `running_keys` as for `ended`: the attempts not finished yet, whose processes stay."""
        return []

    def release(self, launched: Launched) -> None:  # noqa: B027 (optional hook)
        """An attempt from `early_ends` is finished for the orchestrator: end what it left
        (as `ended` does) and clean up after its process once it is gone."""

    @abstractmethod
    def interrupt(self, launched: Launched) -> None:
        """Ask the attempt to stop as Ctrl+C would (the step sees KeyboardInterrupt)."""

    def nudge(self, launched: list[Launched]) -> None:  # noqa: B027 (optional hook)
        """During a cancel's grace, after `interrupt`: wake these attempts, in case their
        interrupt was only noted (`processes.nudge`). A worker that took its interrupt
        ignores nudges from then on. An executor that cannot reach its attempts' processes
        leaves it out: such an attempt may then end at the grace's kill, as a plain
        script's Ctrl+C would wait out its blocking call."""

    @abstractmethod
    def kill(self, launched: Launched) -> None:
        """Stop the attempt now, with everything it started."""

    def exit_message(self, launched: Launched, code: int) -> str | None:
        """Why an ended attempt wrote no record, when the executor knows better than its exit
        code (a lost remote worker); None: the orchestrator describes the exit itself."""
        return None

    def reap_killed(self, launched: Launched) -> bool:
        """After `kill`, at the run's end: True once the attempt is gone (reaped)."""
        return self.ended(launched, set()) is not None

    def close(self, running_keys: set[int]) -> list[int]:
        """End of the run: release what the executor holds; the pids that would not die."""
        return []
