"""Preloaded into each worker process of the LocalCluster a run starts (`--executor dask`
without a scheduler): the worker leaves the run's process group and session.

The LocalCluster's worker processes are the orchestrator's children, in its process
group. A terminal's Ctrl+C (SIGINT to the foreground group), `kill -TERM -- -PGID`, or
`flowdeck run` and the window signalling the run's group reached them at once: each died
of its KeyboardInterrupt with its task zygote, while the orchestrator was only starting
the run's own stop. A step's `except KeyboardInterrupt:`/`finally:` clean-up did not run
and what it had started was left running (found by a review: 3 of 9 Ctrl+C, every
SIGTERM). In a session of its own the worker hears of a stop from the orchestrator, as
the workers of a cluster started elsewhere always did: SIGINT to each attempt, then
SIGKILL past the grace. The run's guard still finds what it leaves by $FLOWDECK_RUN_ID,
and the worker ends when the orchestrator closes the cluster.
"""

from __future__ import annotations

import os
from typing import Any


def dask_setup(worker: Any) -> None:  # noqa: ARG001 (Dask's preload hook)
    """Dask calls it in the worker process before the worker takes any task."""
    try:
        os.setsid()
    except OSError:  # already a session leader (a worker started by hand elsewhere)
        pass
