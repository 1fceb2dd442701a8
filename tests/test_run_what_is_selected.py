"""Run acts on what is selected in the flow list, never on a flow selected earlier."""

from __future__ import annotations

import shutil

from conftest import EXAMPLES, WAIT_MS, close_window, flow_key

from flowdeck_desktop.app import build

TWO_FLOWS = '''from flowdeck import FlowSpec, step


class FirstFlow(FlowSpec):
    @step
    def start(self):
        print("first ran")
        self.next(self.end)

    @step
    def end(self):
        pass


class SecondFlow(FlowSpec):
    @step
    def start(self):
        print("second ran")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SecondFlow()
'''


def _select_row(window, model_index) -> None:
    window.tree.setCurrentIndex(window.proxy.mapFromSource(model_index))


def test_a_file_row_runs_its_flow_and_a_folder_row_runs_nothing(qtbot, settings, tmp_path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    shutil.copy(EXAMPLES / "train.py", folder)
    (folder / "two.py").write_text(TWO_FLOWS)
    controller, window = build(settings, [str(folder)], restore=False)
    try:
        qtbot.waitUntil(lambda: not controller.scanning(), timeout=WAIT_MS)
        model = controller.model
        window.select_flow(flow_key(controller, "TrainFlow"))
        assert window.act_run.isEnabled()
        _select_row(window, model._files[str(folder / "two.py")].index())
        assert window.selected_key is None and window.act_run.isEnabled()
        asked: list[list[str]] = []
        window.choose_flow = lambda keys: asked.append(keys) or flow_key(controller, "SecondFlow")
        with qtbot.waitSignal(controller.run_ended, timeout=WAIT_MS) as ended:
            window.run_selected()
        assert len(asked[0]) == 2
        assert ended.args[0] == flow_key(controller, "SecondFlow")  # not the earlier TrainFlow
        _select_row(window, model._files[str(folder / "train.py")].index())
        assert window.selected_key == flow_key(controller, "TrainFlow")
        _select_row(window, model._folder_item(str(folder)).index())
        assert window.selected_key is None and not window.act_run.isEnabled()
        assert not window.act_auto.isEnabled()
    finally:
        close_window(controller, window)

