"""Where a run's task attempts execute: forked here (local) or on a cluster (dask).

The orchestrator (`engine.runtime`) decides what runs when; an `Executor` only starts an
attempt, tells when it ended and stops it. Every executor hands the loop the same
things to watch (`Launched`: two output fds and an exit fd), so scheduling, events,
retries, resume and the window are the same whatever runs the tasks.
"""
