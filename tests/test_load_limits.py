"""The limits on loading artifacts: one factor moves the helper's and the window's
together, and a bad factor is named, not guessed at."""

from __future__ import annotations

import pytest

from flowdeck.engines.load_limits import (
    PATIENCE_ENV,
    LoadLimits,
    PatienceError,
    load_limits,
    window_load_limits,
)


def test_unset_or_blank_gives_the_usual_limits() -> None:
    for environ in ({}, {PATIENCE_ENV: ""}, {PATIENCE_ENV: "  "}):
        limits = load_limits(environ)
        assert limits == LoadLimits()
        assert (limits.summary_seconds, limits.summary_budget, limits.load_seconds) == (2, 6, 8)
        assert (limits.list_wait, limits.preview_wait, limits.export_wait,
                limits.plot_wait, limits.cards_wait) == (30, 10, 600, 60, 60)


def test_the_factor_scales_every_limit_and_the_window_still_waits_longer() -> None:
    usual, slow = load_limits({}), load_limits({PATIENCE_ENV: " 2.5 "})
    assert slow.patience == 2.5
    for name in ("summary_seconds", "summary_budget", "load_seconds", "list_wait",
                 "preview_wait", "export_wait", "plot_wait", "cards_wait"):
        assert getattr(slow, name) == 2.5 * getattr(usual, name), name
    for limits in (usual, slow, load_limits({PATIENCE_ENV: "0.01"})):
        assert limits.preview_wait > limits.load_seconds  # the helper's message comes first
        assert limits.list_wait > limits.summary_budget
        assert limits.summary_budget > limits.summary_seconds


@pytest.mark.parametrize("raw", ["slow", "0", "-1", "nan", "inf", "1e9", "3x"])
def test_a_bad_factor_is_refused_with_what_to_set(raw: str) -> None:
    with pytest.raises(PatienceError) as refused:
        load_limits({PATIENCE_ENV: raw})
    message = str(refused.value)
    assert f"${PATIENCE_ENV} is {raw!r}" in message
    assert "above 0 and at most 1000" in message and "or unset it" in message


def test_the_window_waits_the_usual_time_on_a_bad_factor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PATIENCE_ENV, "slow")  # the helper answers with the message
    assert window_load_limits() == LoadLimits()
    monkeypatch.setenv(PATIENCE_ENV, "3")
    assert window_load_limits().preview_wait == 30


def test_the_windows_helpers_wait_by_the_factor(qtbot, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowdeck_desktop.views.artifacts import ArtifactsPane
    from flowdeck_desktop.views.runs_plot import RunsPlot
    monkeypatch.setenv(PATIENCE_ENV, "2")
    pane, plot = ArtifactsPane(), RunsPlot()
    qtbot.addWidget(pane)
    qtbot.addWidget(plot)
    assert (pane.list_limit_s, pane.preview_limit_s, pane.export_limit_s) == (60, 20, 1200)
    assert plot.limit_s == 120
