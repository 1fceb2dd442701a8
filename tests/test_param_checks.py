"""A parameter value the run would refuse is said beside the form, before any process
starts; a run the engine refuses before it begins leaves no failed run behind.

Found by a new user: typing `abc` into an int field started a run that exited with
code 2, marked the flow failed in the list and titled it with a run id never stored.
"""

from __future__ import annotations

from pathlib import Path

from conftest import WAIT_MS, flow_key, opened_window

from flowdeck.analysis.flowfile import ParameterInfo
from flowdeck.analysis.parameter_text import text_problem
from flowdeck.store.layout import RunLayout
from flowdeck_desktop.views.params_form import ParamsForm

TYPED = """
import datetime

from flowdeck import FlowSpec, JSONType, Parameter, step


def day(text):
    return datetime.date.fromisoformat(text)


class TypedFlow(FlowSpec):
    epochs = Parameter("epochs", type=int, default=3)
    lr = Parameter("lr", default=0.1)
    config = Parameter("config", type=JSONType, default='{"a": 1}')
    when = Parameter("when", type=day, default="2026-01-01")

    @step
    def start(self):
        self.seen = (self.epochs, self.lr, self.config, self.when)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TypedFlow()
"""


def test_the_form_names_each_value_the_run_would_refuse(qtbot) -> None:
    form = ParamsForm()
    qtbot.addWidget(form)
    form.set_parameters([
        ParameterInfo("epochs", "epochs", 1, default=3, has_default=True, type="int"),
        ParameterInfo("lr", "lr", 2, default=0.1, has_default=True, type="float"),
        ParameterInfo("config", "config", 3, type="JSONType"),
        ParameterInfo("sizes", "sizes", 4, type="int", multiple=True),
        ParameterInfo("when", "when", 5, type="day"),
    ])
    assert form.problems() == [] and form.values_error.isHidden()
    editors = form._editors  # the form's line edits, typed into as a user would
    for name, text in [("epochs", "abc"), ("lr", "1e-3"), ("config", "{'a': 1}"),
                       ("sizes", "1 2 x"), ("when", "not a day")]:
        editors[name].setFocus()  # type: ignore[attr-defined]
        editors[name].selectAll()  # type: ignore[attr-defined]
        qtbot.keyClicks(editors[name], text)
    problems = form.problems()
    assert [p.split(":")[0] for p in problems] == ["epochs", "config", "sizes"]
    assert "'abc' is not a valid int" in problems[0] and "'x' is not a valid int" in problems[2]
    assert not form.values_error.isHidden() and "epochs" in form.values_error.text()
    form.reset_defaults()
    assert form.problems() == [] and form.values_error.isHidden()
    assert text_problem("float", "inf") is None and text_problem("day", "x") is None


def test_run_refuses_a_mistyped_value_before_starting(qtbot, settings, tmp_path: Path) -> None:
    (tmp_path / "typed.py").write_text(TYPED)
    with opened_window(qtbot, settings, [tmp_path]) as (controller, window):
        key = flow_key(controller, "TypedFlow")
        window.select_flow(key)
        window.params._editors["epochs"].setText("abc")  # type: ignore[attr-defined]
        window.run_selected()
        assert not controller.is_running(key) and key not in controller.runs
        level, text = window.last_message
        assert level == "error" and "epochs: 'abc' is not a valid int" in text
        assert window.side.currentWidget() is window.params


def test_a_run_refused_before_it_began_is_no_failed_run(qtbot, settings,
                                                        tmp_path: Path) -> None:
    """The flow's own type refuses the value (only the run can tell): the message says
    why, the list keeps the last real outcome, and the title names no run."""
    (tmp_path / "typed.py").write_text(TYPED)
    with opened_window(qtbot, settings, [tmp_path]) as (controller, window):
        key = flow_key(controller, "TypedFlow")
        window.select_flow(key)
        window.params._editors["when"].setText("not a day")  # type: ignore[attr-defined]
        with qtbot.waitSignal(controller.start_failed, timeout=WAIT_MS):
            window.run_selected()
        assert "invalid value for --when" in window.last_message[1]
        assert controller.model._run_status.get(key) is None  # no run: no failed mark
        assert "did not start" in window.flow_title.text()
        assert "run 1" not in window.flow_title.text()
        assert not list(RunLayout(tmp_path / ".flowdeck", "TypedFlow").runs_dir.glob("*"))
