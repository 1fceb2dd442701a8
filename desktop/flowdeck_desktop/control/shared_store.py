"""Reading a flow's runs from its object store (`s3://...`) without blocking the window.

A flow whose Store is an object store keeps its runs there; this machine's working copy
(`layout.working_root`, which History and the list's marks read) holds only the runs
made here until the object store's are fetched into it (`store.index.fetch_shared_runs`,
the core's reading functions). A request may take seconds, or minutes when the store
cannot be reached (the SDK retries), so every fetch runs on a thread of its own and
reports back through a queued signal: a timer started off the GUI thread never fires.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from flowdeck.store.index import fetch_shared_run, fetch_shared_runs
from flowdeck.store.layout import InvalidId, RunLayout


class SharedRunsFetcher(QObject):
    """Fetches flows' runs (or one run's files) from their object stores, one request per
    flow and run at a time; `fetched(key, run_id, problem)` on the GUI thread when one is
    done (`run_id` "" for the run list; `problem` None, or what failed and what to do).

    Plain daemon threads, not a QThreadPool: a pool's destructor waits for its jobs, and a
    request to an unreachable store must not hold the window's closing for minutes.
    """

    fetched = Signal(str, str, object)  # flow key, run id ("" for the runs), problem or None

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._busy: set[tuple[str, str]] = set()

    def busy(self, key: str) -> bool:
        """Whether a fetch for the flow `key` is under way."""
        return any(k == key for k, _ in self._busy)

    def fetch(self, key: str, layout: RunLayout, url: str, run_id: str = "") -> bool:
        """Start fetching the flow's runs (or the run `run_id`'s files) from `url` into its
        working copy `layout`; False when the same fetch is already under way."""
        job = (key, run_id)
        if job in self._busy:
            return False
        self._busy.add(job)
        threading.Thread(target=self._work, args=(key, layout, url, run_id),
                         name=f"fetch-runs-{layout.flow}", daemon=True).start()
        return True

    def _work(self, key: str, layout: RunLayout, url: str, run_id: str) -> None:
        """On the fetch's thread: never touches a widget, only emits."""
        problem: str | None = None
        try:
            if run_id:
                fetch_shared_run(layout, url, run_id)
            else:
                fetch_shared_runs(layout, url)
        except (OSError, InvalidId) as exc:  # ObjectStoreError is an OSError
            problem = str(exc)
        except Exception as exc:  # noqa: BLE001 (an SDK's own error type: said, not raised)
            problem = (f"Cannot read the runs in {url}: {type(exc).__name__}: {exc}. Check "
                       "the URL, the credentials and the network, then select the flow "
                       "again.")
        try:
            self.fetched.emit(key, run_id, problem)
        except RuntimeError:  # the window closed meanwhile: nobody is left to tell
            pass

    def done(self, key: str, run_id: str) -> None:
        """The GUI thread took the result of a fetch: the same one may start again."""
        self._busy.discard((key, run_id))
