"""How long loading artifacts may take: in the helper that unpickles them, and in the
window that waits for the helper.

Both sides read their limits here, so the window always waits a little longer than the
helper's own limit, and one knob moves them together: `$FLOWDECK_LOAD_PATIENCE`
multiplies every limit (3 gives a slow network drive three times as long; 0.5 halves
them). The helper inherits the window's environment, so setting it where the window
starts is enough. The test suite sets it too: a loaded test machine can take longer
than a person would wait, and a test must not depend on how busy its host is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

PATIENCE_ENV = "FLOWDECK_LOAD_PATIENCE"
MAX_PATIENCE = 1000.0  # beyond this a limit is no limit; a typo (3000 for 3) is refused


class PatienceError(ValueError):
    """`$FLOWDECK_LOAD_PATIENCE` is not a usable factor; the message says what to set."""


@dataclass(frozen=True)
class LoadLimits:
    """Every limit on loading artifacts, in seconds, at one patience factor."""

    patience: float = 1.0

    @property
    def summary_seconds(self) -> float:
        """The helper's list unpickles each small artifact for its one-line summary this
        long at most; a slower one is marked as not loading, the others still listed."""
        return 2.0 * self.patience

    @property
    def summary_budget(self) -> float:
        """...and all of them together this long; the rest are previewed when selected."""
        return 6.0 * self.patience

    @property
    def load_seconds(self) -> float:
        """The helper stops loading a value for a preview or an export after this long."""
        return 8.0 * self.patience

    @property
    def list_wait(self) -> float:
        """The window kills a list helper after this long (past the summary budget and the
        interpreter's start)."""
        return 30.0 * self.patience

    @property
    def preview_wait(self) -> float:
        """The window kills a preview helper after this long: a little past `load_seconds`,
        so the helper's own message, which names the cause, usually comes first."""
        return 10.0 * self.patience

    @property
    def export_wait(self) -> float:
        """The window kills an export helper after this long: writing a large value takes
        longer than loading it."""
        return 600.0 * self.patience

    @property
    def cards_wait(self) -> float:
        """The window kills the helper that copies a Metaflow-bridge task's cards out of
        Metaflow's datastore after this long."""
        return 60.0 * self.patience

    @property
    def plot_wait(self) -> float:
        """The window kills the helper loading one artifact of every run for a plot after
        this long."""
        return 60.0 * self.patience


#: The limits a person waits by (patience 1).
USUAL_LIMITS = LoadLimits()


def load_limits(environ: Mapping[str, str] | None = None) -> LoadLimits:
    """The limits at `$FLOWDECK_LOAD_PATIENCE` (1 when unset); PatienceError names the
    variable, its value and what to set when it is not a positive number up to 1000."""
    raw = (os.environ if environ is None else environ).get(PATIENCE_ENV, "").strip()
    if not raw:
        return USUAL_LIMITS
    try:
        patience = float(raw)
    except ValueError:
        patience = math.nan
    if not 0 < patience <= MAX_PATIENCE:  # also refuses nan and inf
        raise PatienceError(
            f"${PATIENCE_ENV} is {raw!r}: give a factor for the time limits on loading "
            f"artifacts, above 0 and at most {MAX_PATIENCE:g} (3 waits three times as long), "
            "or unset it.")
    return LoadLimits(patience)


def window_load_limits() -> LoadLimits:
    """The limits the window waits by: a bad `$FLOWDECK_LOAD_PATIENCE` gives the usual
    ones here, since the helper, reading the same variable, answers with the message."""
    try:
        return load_limits()
    except PatienceError:
        return USUAL_LIMITS
