"""A flow file that fails before its run starts gets the right diagnosis in the window."""

from __future__ import annotations

from pathlib import Path

from conftest import WAIT_MS, close_window, flow_key

from flowdeck.engines.startup import diagnose_start
from flowdeck_desktop.app import build

BROKEN_IMPORT = '''from flowdeck import FlowSpec, step
import flowdeck_no_such_package_xyz


class BrokenFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BrokenFlow().run()
'''

# A file that never starts its flow is refused before a process starts (test_app.py).


def _run_in_window(qtbot, settings, folder: Path, name: str):
    controller, window = build(settings, [str(folder)], restore=False)
    qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
    key = flow_key(controller, name)
    window.select_flow(key)
    with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS):
        window.run_selected()
    return controller, window


def test_an_import_error_is_reported_as_itself_with_its_line(qtbot, settings, tmp_path) -> None:
    (tmp_path / "broken.py").write_text(BROKEN_IMPORT)
    controller, window = _run_in_window(qtbot, settings, tmp_path, "BrokenFlow")
    try:
        qtbot.waitUntil(lambda: "ModuleNotFoundError" in window.error_pane.summary.text())
        summary = window.error_pane.summary.text()
        assert "flowdeck_no_such_package_xyz" in summary and "ended without" not in summary
        assert "pip install flowdeck_no_such_package_xyz" in summary
        assert "Traceback" in window.error_pane.text.toPlainText()
        assert window.error_pane.location == (str(tmp_path / "broken.py"), 2)
        assert window.bottom.currentWidget() is window.error_pane
        assert not window.act_resume.isEnabled()  # nothing ran: nothing to resume
    finally:
        close_window(controller, window)


def test_a_nonzero_exit_without_traceback_shows_the_last_output() -> None:
    failure = diagnose_start("Metaflow 2.19\n    Flow needs --environment=conda\n", 1,
                             "/p/flow.py", "F", "/usr/bin/python3")
    assert "exited with code 1" in failure.summary and "--environment=conda" in failure.summary


def test_a_script_that_ends_well_without_running_the_flow_says_so() -> None:
    """What the launch cannot see (a `main()` that starts nothing) ends with exit code 0 and
    no run: the window says the flow did not run and how to start it."""
    failure = diagnose_start("", 0, "/p/flow.py", "F", "/usr/bin/python3")
    assert "ended without running F" in failure.summary
    assert 'if __name__ == "__main__": F()' in failure.summary


def test_an_option_said_to_go_before_the_command_is_not_read_as_a_needed_environment() -> None:
    """"--environment goes before the command" was read as Metaflow's "requires
    --environment=X" and advised `--environment=goes`; only Metaflow's own sentence names
    the environment a flow needs."""
    from flowdeck.engines.startup import IN_WINDOW, option_hint
    misplaced = ("error: --environment goes before the command `run`, as in Metaflow: "
                 "`python train.py --environment=conda run`.")
    assert "goes`" not in option_hint(misplaced, IN_WINDOW)
    assert option_hint(misplaced, IN_WINDOW) == ""
    needed = "    @conda decorator requires --environment=conda or --environment=fast-bakery"
    assert "`--environment=conda`" in option_hint(needed, IN_WINDOW)
