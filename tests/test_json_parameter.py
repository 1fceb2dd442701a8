"""A JSONType parameter's string default reads as parsed JSON, as in Metaflow."""

from __future__ import annotations

from pathlib import Path

from conftest import run_flow

from flowdeck import Flow

FLOW = '''
from flowdeck import FlowSpec, JSONType, Parameter, step

class JsonFlow(FlowSpec):
    cfg = Parameter("cfg", type=JSONType, default={default})

    @step
    def start(self):
        print("cfg is a", type(self.cfg).__name__)
        self.seen = self.cfg
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    JsonFlow()
'''


def _flow(tmp_path: Path, default: str) -> Path:
    path = tmp_path / "jsonflow.py"
    path.write_text(FLOW.replace("{default}", default))
    return path


def test_a_string_default_of_a_json_parameter_is_parsed(tmp_path: Path) -> None:
    path = _flow(tmp_path, """'{"a": 1, "b": [2, 3]}'""")
    result = run_flow(path)
    assert result.returncode == 0, result.stderr
    assert "cfg is a dict" in result.stdout
    run = Flow("JsonFlow", root=tmp_path / ".flowdeck").latest_run
    assert run["start"].task.data.seen == {"a": 1, "b": [2, 3]}
    given = run_flow(path, "--cfg", '{"c": 4}')
    assert given.returncode == 0, given.stderr
    assert Flow("JsonFlow", root=tmp_path / ".flowdeck").latest_run.data.seen == {"c": 4}


def test_a_default_that_is_not_json_is_an_error_naming_the_parameter(tmp_path: Path) -> None:
    path = _flow(tmp_path, "'{a: 1}'")
    result = run_flow(path)
    assert result.returncode == 2
    assert "Parameter `cfg` has type JSONType" in result.stderr
    assert "'{a: 1}' is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
