"""Names a Metaflow flow uses that a local run has no work for, found missing in a user's
flows: deployment decorators, `profile`, `metadata`, `current.parallel` outside @parallel,
and a @catch variable that is an Exception as Metaflow's is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_flow

import flowdeck
from flowdeck.client import ClientError

FLOW = '''
from flowdeck import (FlowSpec, catch, current, exit_hook, profile, schedule, step, trigger,
                      trigger_on_finish)


@schedule(daily=True)
@trigger(event="data_ready")
@trigger_on_finish(flow="UpstreamFlow")
class DeployedFlow(FlowSpec):
    @catch(var="problem")
    @step
    def start(self):
        stats = {}
        with profile("load", stats_dict=stats):
            self.total = sum(range(1000))
        with profile("fit"):
            pass
        self.timed = sorted(stats)
        self.nodes = tuple(current.parallel)
        1 / 0
        self.next(self.end)

    @step
    def end(self):
        print("is exception", isinstance(self.problem, Exception))
        try:
            raise self.problem
        except Exception as err:
            print("raised", type(err).__name__, err.summary)


if __name__ == "__main__":
    DeployedFlow()
'''


def test_a_deployed_flows_names_run_locally(tmp_path: Path) -> None:
    path = tmp_path / "deployed.py"
    path.write_text(FLOW)
    done = run_flow(path)
    assert done.returncode == 0, done.stderr
    for name in ("@schedule", "@trigger ", "@trigger_on_finish"):
        assert f"{name.strip()} on DeployedFlow: ignored in a local run" in done.stderr
    assert "PROFILE: fit starting" in done.stdout and "PROFILE: fit completed in" in done.stdout
    assert "PROFILE: load" not in done.stdout  # counted in stats_dict instead
    assert "is exception True" in done.stdout
    assert "raised ExceptionWrapper builtins.ZeroDivisionError: division by zero" in done.stdout
    run = flowdeck.Flow("DeployedFlow", root=str(tmp_path / ".flowdeck")).latest_run
    start = run["start"].task.data
    assert start.timed == ["load"] and start.nodes == ("127.0.0.1", 1, 0, None)
    assert exit_hook_is_a_flow_decorator()


def exit_hook_is_a_flow_decorator() -> bool:
    @flowdeck.exit_hook(on_success=["notify"])
    class Hooked(flowdeck.FlowSpec):
        pass
    return "exit_hook" in Hooked._fd_ignored_flow_decorators


def test_metadata_picks_a_local_store_and_refuses_a_service(tmp_path: Path,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("FLOWDECK_HOME", str(tmp_path / "before"))  # restored after the test
    (tmp_path / ".flowdeck").mkdir()
    assert flowdeck.metadata(str(tmp_path)) == f"local@{tmp_path / '.flowdeck'}"
    assert flowdeck.get_metadata() == f"local@{tmp_path / '.flowdeck'}"
    with pytest.raises(ClientError, match="local store only"):
        flowdeck.metadata("service@https://mf.example.com")


@pytest.mark.parametrize("ms", ["service", "https://mf.example.com/api", "service@x"])
def test_metadata_refuses_every_spelling_of_a_service(tmp_path: Path, monkeypatch, ms: str) -> None:
    monkeypatch.chdir(tmp_path)  # `service` was taken for a folder of that name here
    with pytest.raises(ClientError, match="local store only"):
        flowdeck.metadata(ms)
    assert not (tmp_path / "service").exists()


def test_metadata_switches_this_client_only(tmp_path: Path, monkeypatch) -> None:
    """A store chosen with metadata() is this process's client's: never the environment,
    which a Runner's or a child's runs would inherit. `local` goes back to the usual
    store, and a folder that does not exist is refused."""
    monkeypatch.setenv("FLOWDECK_HOME", str(tmp_path / "usual"))
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    assert flowdeck.metadata(f"local@{chosen}") == f"local@{chosen}"
    assert os.environ["FLOWDECK_HOME"] == str(tmp_path / "usual")
    assert flowdeck.metadata("local") == f"local@{tmp_path / 'usual'}"
    with pytest.raises(ClientError, match="there is no folder"):
        flowdeck.metadata(str(tmp_path / "no" / "such"))


CATCH_SAVING = '''
import threading

from flowdeck import FlowSpec, catch, step


class CatchSavingFlow(FlowSpec):
    @step
    def start(self):
        self.lock = "from start"  # replaced in `bad` by a value that cannot be stored
        self.next(self.bad)

    @catch(var="err")
    @step
    def bad(self):
        self.kept = 42
        self.lock = threading.Lock()
        self.next(self.end)

    @step
    def end(self):
        print("caught", self.err.type, "kept", self.kept, "lock", hasattr(self, "lock"))
        print("said", str(self.err))


if __name__ == "__main__":
    CatchSavingFlow()
'''


def test_catch_covers_an_artifact_that_cannot_be_stored(tmp_path: Path) -> None:
    """As Metaflow's @catch does (the run failed): the step's other artifacts are kept,
    the variable says what failed, in Metaflow's name, and the run goes on."""
    path = tmp_path / "catch_saving.py"
    path.write_text(CATCH_SAVING)
    done = run_flow(path)
    assert done.returncode == 0, done.stderr
    assert ("caught metaflow.datastore.exceptions.UnpicklableArtifactException kept 42 "
            "lock False") in done.stdout
    assert "Artifact `lock` of type _thread.lock cannot be pickled" in done.stdout  # @catch's
    said = next(line for line in done.stdout.splitlines() if " said " in line)
    assert "UnpicklableArtifactException: Artifact `lock`" in said and "flowdeck." not in said
    broken = path.read_text().replace("    @catch(var=\"err\")\n", "")
    path.write_text(broken)
    failed = run_flow(path)
    assert failed.returncode == 1 and "flowdeck.store" not in failed.stderr
    assert "raised metaflow.datastore.exceptions.UnpicklableArtifactException" in failed.stderr


def test_client_membership_trigger_and_a_failed_runs_finish(tmp_path: Path) -> None:
    """`run.id in Flow(...)`, `"1" in run["start"]`, `run.trigger` and a failed run's
    `finished_at` read as in Metaflow (False, False, AttributeError, a time)."""
    path = tmp_path / "catch_saving.py"
    path.write_text(CATCH_SAVING)
    assert run_flow(path).returncode == 0
    path.write_text(CATCH_SAVING.replace("    @catch(var=\"err\")\n", ""))
    assert run_flow(path).returncode == 1
    flow = flowdeck.Flow("CatchSavingFlow", root=str(tmp_path / ".flowdeck"))
    failed, done = flow.runs()
    assert done.id in flow and failed.id in flow and "123-nope" not in flow
    assert "../x" not in flow and 7 not in flow
    start = done["start"]
    assert start.task.id in start and "999" not in start and "../1" not in start
    assert done.trigger is None and failed.trigger is None
    assert done.finished_at is not None and failed.finished_at is None
    assert failed.duration is not None  # its time is still known


NAMESPACED = '''
from flowdeck import FlowSpec, current, get_namespace, step


class NsFlow(FlowSpec):
    @step
    def start(self):
        print("ns", current.namespace, get_namespace())
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NsFlow()
'''


def test_metaflows_other_options_and_commands_are_taken(tmp_path: Path) -> None:
    """`run --namespace`, `run --max-log-size`, `--package-suffixes`, `--not-quiet`, and the
    `version` and `help` commands: Metaflow takes them; they were usage errors here."""
    path = tmp_path / "ns.py"
    path.write_text(NAMESPACED)
    chosen = run_flow(path, "--package-suffixes", ".py,.txt", "--not-quiet", "run",
                      "--namespace", "project:x", "--max-log-size", "10")
    assert chosen.returncode == 0, chosen.stderr
    assert "ns project:x project:x" in chosen.stdout
    default = run_flow(path, "run")
    assert "ns user:" in default.stdout and "project:x" not in default.stdout
    version = run_flow(path, "version")
    assert version.returncode == 0 and version.stdout.startswith(f"Flowdeck {flowdeck.__version__}")
    helped = run_flow(path, "help")
    assert helped.returncode == 0 and "usage: python ns.py" in helped.stdout
