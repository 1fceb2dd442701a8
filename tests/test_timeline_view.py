"""TimelineView: rows per step, bars that can be clicked, repaint timer only while running."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from flowdeck_desktop.views.timeline_view import (
    STATUSES,
    TimelineTask,
    TimelineView,
    format_duration,
    status_color,
)

T0 = 1_700_000_000.0


class Clock:
    """A hand-driven clock, so bars of running tasks have a known length."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 60)


@pytest.fixture
def view(qtbot, clock: Clock) -> TimelineView:
    widget = TimelineView(clock=clock)
    widget.resize(800, 300)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def foreach_run(running: bool = False) -> list[TimelineTask]:
    """start, a foreach `train` of 6 tasks (2 workers), join, end."""
    tasks = [TimelineTask("1", "start", T0, T0 + 2, "succeeded")]
    for index in range(6):
        begin = T0 + 2 + (index // 2) * 10
        tasks.append(TimelineTask(f"t{index}", "train", begin, begin + 9, "succeeded"))
    tasks.append(TimelineTask("j", "join", T0 + 33, None if running else T0 + 40,
                              "running" if running else "succeeded"))
    return tasks


def center(rect) -> QPoint:
    return rect.center().toPoint()


def test_one_row_per_step_in_order_of_appearance(view: TimelineView) -> None:
    view.set_tasks(foreach_run())
    assert view.steps() == ["start", "train", "join"]
    view.set_tasks(foreach_run(), step_order=["start", "train", "join", "end"])
    assert view.steps() == ["start", "train", "join", "end"]  # steps not run yet get a row
    # Every bar of a step lies inside that step's row band, one band per step.
    tops = {}
    for task in foreach_run():
        rect = view.bar_rect(task.task_id)
        tops.setdefault(task.step, set()).add(round(rect.top() // 1))
    bands = sorted((min(v), task_step) for task_step, v in tops.items())
    assert [step for _, step in bands] == ["start", "train", "join"]


def test_foreach_tasks_share_a_row_in_thin_non_overlapping_lanes(view: TimelineView) -> None:
    view.set_tasks(foreach_run())
    single = view.bar_rect("1")
    rects = [view.bar_rect(f"t{index}") for index in range(6)]
    assert all(rect.height() < single.height() for rect in rects)
    for a in range(6):
        for b in range(a + 1, 6):
            assert not rects[a].intersects(rects[b]), (a, b)
    assert len({round(rect.top()) for rect in rects}) == 2  # two workers: two lanes


def test_bars_follow_the_time_axis(view: TimelineView) -> None:
    view.set_tasks(foreach_run())
    first, later = view.bar_rect("t0"), view.bar_rect("t4")
    assert later.left() > first.right()
    assert first.width() == pytest.approx(later.width(), abs=1.0)  # same duration
    assert view.bar_rect("missing") is None


def test_click_on_a_bar_emits_its_task_id(qtbot, view: TimelineView) -> None:
    view.set_tasks(foreach_run())
    for task_id in ("1", "t3", "t4", "j"):
        with qtbot.waitSignal(view.task_clicked) as blocker:
            qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=center(view.bar_rect(task_id)))
        assert blocker.args == [task_id]
        assert view.selected_task() == task_id


def test_click_on_empty_space_emits_nothing(qtbot, view: TimelineView) -> None:
    view.set_tasks(foreach_run())
    clicked: list[str] = []
    view.task_clicked.connect(clicked.append)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(view.width() - 5, view.height() - 5))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert clicked == []


def test_task_at_finds_thin_bars_with_some_slack(view: TimelineView) -> None:
    view.set_tasks([TimelineTask("a", "s", T0, T0 + 100, "succeeded"),
                    TimelineTask("tiny", "s2", T0 + 50, T0 + 50.001, "failed")])
    rect = view.bar_rect("tiny")
    assert rect.width() == pytest.approx(TimelineView.MIN_BAR_WIDTH)
    assert view.task_at(QPointF(rect.right() + 2, rect.center().y())) == "tiny"
    assert view.task_at(QPointF(rect.right() + 20, rect.center().y())) is None


def test_repaint_timer_runs_only_while_a_task_runs(view: TimelineView) -> None:
    view.set_tasks(foreach_run(running=False))
    assert not view.is_animating()
    view.update_task(TimelineTask("j2", "join", T0 + 41, None, "running"))
    assert view.is_animating()
    view.update_task(TimelineTask("j2", "join", T0 + 41, T0 + 45, "failed"))
    assert not view.is_animating()
    view.set_tasks(foreach_run(running=True))
    assert view.is_animating()
    view.clear()
    assert not view.is_animating()


def test_running_bar_grows_with_the_clock(view: TimelineView, clock: Clock) -> None:
    view.set_tasks([TimelineTask("done", "a", T0, T0 + 10, "succeeded"),
                    TimelineTask("run", "b", T0 + 10, None, "running")])
    before = view.bar_rect("run")
    assert before.right() == pytest.approx(view.width() - TimelineView.RIGHT_MARGIN, abs=1)
    clock.now += 60
    after = view.bar_rect("run")
    assert after.width() > before.width()
    assert view.bar_rect("done").width() < before.width()  # the axis rescales to fit "now"


def test_unchanged_update_does_not_repaint(view: TimelineView, monkeypatch) -> None:
    view.set_tasks(foreach_run())
    calls: list[int] = []
    monkeypatch.setattr(view, "update", lambda *args: calls.append(1))
    view.update_task(TimelineTask("t1", "train", T0 + 2, T0 + 11, "succeeded"))
    view.set_tasks(foreach_run())
    assert calls == []
    view.update_task(TimelineTask("t1", "train", T0 + 2, T0 + 12, "succeeded"))
    assert calls == [1]


def test_retry_attempts_are_separate_bars_and_the_latest_is_clicked(view: TimelineView) -> None:
    view.set_tasks([TimelineTask("x", "s", T0, T0 + 5, "failed", attempt=0),
                    TimelineTask("x", "s", T0 + 6, T0 + 10, "succeeded", attempt=1)])
    assert len(view.tasks()) == 2
    assert view.task("x").attempt == 1
    assert view.bar_rect("x").left() > view.width() / 2
    assert "attempt 2" in view.tooltip_text("x")


def test_tooltip_names_task_step_status_and_duration(view: TimelineView) -> None:
    view.set_tasks(foreach_run(running=True))
    text = view.tooltip_text("t2")
    assert "t2" in text and "train" in text and "succeeded" in text and "9.0 s" in text
    running = view.tooltip_text("j")
    assert "running" in running and "27.0 s so far" in running


def test_bars_are_painted_in_their_status_colour(view: TimelineView) -> None:
    statuses = ["succeeded", "failed", "cancelled", "reused", "running"]
    view.set_tasks([TimelineTask(status, status, T0 + 10 * index, T0 + 10 * index + 9
                                 if status != "running" else None, status)
                    for index, status in enumerate(statuses)])
    image = view.grab().toImage()
    dark = view.palette().color(view.palette().ColorRole.Base).lightness() < 128
    for status in statuses:
        point = center(view.bar_rect(status)) * image.devicePixelRatio()
        assert image.pixelColor(point) == status_color(status, dark), status


def test_status_colours_are_distinct_and_theme_aware() -> None:
    for dark in (False, True):
        names = {status_color(status, dark).name() for status in STATUSES}
        assert len(names) == len(STATUSES)
    assert status_color("running", False) != status_color("running", True)


def test_many_tasks_paint_without_items(view: TimelineView) -> None:
    tasks = [TimelineTask(str(index), "wide_foreach", T0 + index * 0.01, T0 + index * 0.01 + 4,
                          "succeeded") for index in range(5_000)]
    view.set_tasks(tasks)
    assert view.children() == [child for child in view.children() if not child.isWidgetType()]
    assert not view.grab().isNull()
    assert view.steps() == ["wide_foreach"]
    rect = view.bar_rect("2500")
    assert view.task_at(rect.center()) is not None


def test_invalid_status_is_rejected() -> None:
    with pytest.raises(ValueError):
        TimelineTask("1", "start", T0, None, "exploded")


def test_format_duration() -> None:
    assert format_duration(0.25) == "250 ms"
    assert format_duration(12.34) == "12.3 s"
    assert format_duration(185) == "3 m 05 s"
    assert format_duration(3720) == "1 h 02 m"


def test_empty_view_paints(view: TimelineView) -> None:
    assert not view.grab().isNull()
    assert view.steps() == []
    assert view.task_at(QPointF(10, 10)) is None


def test_hover_shows_a_tooltip(qtbot, view: TimelineView) -> None:
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QApplication, QToolTip

    view.set_tasks(foreach_run())
    pos = center(view.bar_rect("t2"))
    QApplication.sendEvent(view, QHelpEvent(QEvent.Type.ToolTip, pos, view.mapToGlobal(pos)))
    qtbot.waitUntil(lambda: "t2" in QToolTip.text())
    assert "train" in QToolTip.text()
    QToolTip.hideText()


def test_a_retry_ends_the_attempt_before_it(view: TimelineView) -> None:
    # As the run state reports it: attempt 0 "running" until attempt 1 starts.
    view.update_task(TimelineTask("x", "s", T0, None, "running", attempt=0))
    assert view.is_animating()
    view.update_task(TimelineTask("x", "s", T0, T0 + 5, "running", attempt=0))  # will retry
    assert not view.is_animating()  # ended: nothing grows with the clock
    view.update_task(TimelineTask("x", "s", T0 + 6, None, "running", attempt=1))
    view.update_task(TimelineTask("x", "s", T0 + 6, T0 + 9, "succeeded", attempt=1))
    assert {(t.attempt, t.status) for t in view.tasks()} == {(0, "failed"), (1, "succeeded")}
    assert not view.is_animating()
    # The same through set_tasks, with an attempt that never reported its end.
    view.set_tasks([TimelineTask("y", "s", T0, None, "running", attempt=0),
                    TimelineTask("y", "s", T0 + 4, T0 + 8, "succeeded", attempt=1)])
    assert not view.is_animating()
    assert view.tasks()[0] == TimelineTask("y", "s", T0, T0 + 4, "failed", attempt=0)


def test_task_with_unknown_start_is_drawn_at_its_end(view: TimelineView) -> None:
    view.set_tasks([TimelineTask("a", "start", T0, T0 + 10, "succeeded"),
                    TimelineTask("r", "reused_step", 0.0, T0 + 10, "reused"),
                    TimelineTask("p", "later", 0.0, None, "pending")])
    rect = view.bar_rect("r")
    assert rect is not None and rect.width() == pytest.approx(TimelineView.MIN_BAR_WIDTH)
    assert view.bar_rect("p") is None  # nothing to place yet
    assert view.steps() == ["start", "reused_step", "later"]
