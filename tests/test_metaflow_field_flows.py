"""What running other people's Metaflow flows on Flowdeck's engine found, each fixed.

Flows from Metaflow's docs, its test tree and public tutorials, run unchanged through
the `as_metaflow` entry and compared with Metaflow 2.19 itself:

- `Parameter(multiple=True)`: one `--name value` per value, a tuple in the step (the
  last value was kept); the window's form and a run's record hand it on the same way.
- `resume` with no step named reuses every finished task whose inputs were reused:
  the items of a failed foreach that finished are not run again.
- Mutators as Metaflow's docs write them: IGNORE/ERROR/OVERRIDE, a decorator by name,
  a user step decorator, configs as attributes of the MutableFlow.
- An import from metaflow inside a step of what the engine lacks: the refusal line.
- @catch's wrapper and the client's `successful`/`finished`, Metaflow's `show`, and
  Metaflow-only commands refused in one line.
Real `python -m flowdeck.engines.as_metaflow FILE ...` processes; Metaflow itself runs
where the comparison needs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import child_env

from flowdeck import Flow, namespace
from flowdeck.analysis.flowfile import analyze_file
from flowdeck.store.records import ParamRecord, parameter_arguments


def _entry(path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowdeck.engines.as_metaflow", str(path),
                           *args], cwd=path.parent, env=child_env(METAFLOW_USER="tester",
                                                                  **env),
                          capture_output=True, text=True, timeout=180)


def _metaflow(path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(path), *args], cwd=path.parent,
                          env=child_env(METAFLOW_USER="tester", USER="tester",
                                        METAFLOW_DEFAULT_DATASTORE="local",
                                        METAFLOW_DEFAULT_METADATA="local", **env),
                          capture_output=True, text=True, timeout=180)


def _write(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def _latest(path: Path, flow: str):
    namespace(None)
    return Flow(flow, root=str(path.parent / ".flowdeck")).latest_run


def _printed(result: subprocess.CompletedProcess[str], marker: str) -> list[str]:
    """The text after `marker` on each output line that has it (prefixes left out)."""
    return [line.split(marker, 1)[1].strip() for line in
            (result.stdout + result.stderr).splitlines() if marker in line]


MULTIPLE = """
from metaflow import FlowSpec, Parameter, step


class MultipleFlow(FlowSpec):
    val = Parameter("val", default=2, multiple=True)
    ints = Parameter("ints", default=[1, 2], multiple=True, type=int)
    words = Parameter("words", multiple=True, type=str)

    @step
    def start(self):
        print("GOT", repr((self.val, self.ints, self.words)))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MultipleFlow()
"""


def test_a_multiple_parameter_takes_each_value_as_metaflow_does(tmp_path: Path) -> None:
    ours = _write(tmp_path / "ours", "multiple.py", MULTIPLE)
    theirs = _write(tmp_path / "theirs", "multiple.py", MULTIPLE)
    given = ("run", "--val", "3", "--val", "5", "--words", "a b", "--words", "c")
    done, reference = _entry(ours, *given), _metaflow(theirs, *given)
    assert done.returncode == 0 and reference.returncode == 0, done.stderr + reference.stderr
    assert _printed(done, "GOT") == _printed(reference, "GOT") == [
        "((3, 5), (1, 2), ('a b', 'c'))"]
    run = _latest(ours, "MultipleFlow")
    assert run["start"].task.data.val == (3, 5)
    # No value: the default's items (a scalar default is one), or none; $METAFLOW_RUN_VAL
    # is split at white space, as click splits it.
    plain = _entry(ours, "run", METAFLOW_RUN_VAL="7 8")
    assert plain.returncode == 0, plain.stderr
    assert _printed(plain, "GOT") == ["((7, 8), (1, 2), ())"]
    # The record gives a rerun the same values: one --val per value.
    record = _latest(ours, "MultipleFlow").record
    vals = {p.name: p for p in record.params}["val"]
    assert vals.multiple and vals.arguments() == ["--val", "7", "--val", "8"]


def test_the_window_hands_a_multiple_parameter_on_one_value_per_flag(tmp_path: Path) -> None:
    """The form's text for a `multiple` parameter holds its values as a shell would split
    them; the static view (no import) knows which parameters are multiple."""
    path = _write(tmp_path, "multiple.py", MULTIPLE)
    params = {p.name: p for p in analyze_file(str(path)).flows[0].parameters}
    assert params["val"].multiple and params["val"].type == "int"
    assert params["ints"].multiple and params["ints"].type == "int"
    assert not ParamRecord("x", "x", 1, "1").multiple
    assert parameter_arguments("words", "a 'b c' d", True) == [
        "--words", "a", "--words", "b c", "--words", "d"]
    assert parameter_arguments("words", "a 'b", True) == ["--words", "a", "--words", "'b"]
    assert parameter_arguments("name", "a b", False) == ["--name", "a b"]


FOREACH_RESUME = """
import os
from metaflow import FlowSpec, step


class FeResume(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.process, foreach="items")

    @step
    def process(self):
        if self.input == 2 and os.path.exists("FAIL"):
            raise RuntimeError("boom")
        print("PROCESSING", self.input)
        self.result = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = sorted(i.result for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("RESULTS", self.results)


if __name__ == "__main__":
    FeResume()
"""


def test_a_resume_reruns_only_the_failed_foreach_item(tmp_path: Path) -> None:
    """Metaflow clones the items that finished and runs the failed one again; naming the
    step reruns it whole; a resume continues the latest `run` (not a resume); a succeeded
    run resumes by reusing everything."""
    path = _write(tmp_path, "fe.py", FOREACH_RESUME)
    (tmp_path / "FAIL").touch()
    assert _entry(path, "run").returncode == 1
    failed = _latest(path, "FeResume")
    (tmp_path / "FAIL").unlink()
    resumed = _entry(path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _printed(resumed, "PROCESSING") == ["2"]
    assert _printed(resumed, "RESULTS") == ["[2, 4, 6]"]
    run = _latest(path, "FeResume")
    origins = {t.data.result: t.origin_pathspec for t in run["process"]}
    assert origins[2] and origins[6] and origins[2].startswith(f"FeResume/{failed.id}/")
    assert origins[4] is None  # item 2 ran again
    assert run["join"].task.origin_pathspec is None  # one of its inputs is new
    from flowdeck.store.events import read_events
    reused = [e for e in read_events(run.dir / "events.jsonl")
              if e["type"] == "task_started" and e.get("reused") and e["step"] == "process"]
    assert sorted(e["foreach"]["index"] for e in reused) == [0, 2]  # the window's [i]
    named = _entry(path, "resume", "process")
    assert named.returncode == 0, named.stderr
    assert sorted(_printed(named, "PROCESSING")) == ["1", "2", "3"]
    again = _entry(path, "resume")  # the latest `run` again, as Metaflow: not a resume
    assert again.returncode == 0, again.stderr
    assert _printed(again, "PROCESSING") == ["2"]
    succeeded = _latest(path, "FeResume")
    whole = _entry(path, "resume", "--origin-run-id", succeeded.id)
    assert whole.returncode == 0, whole.stderr
    assert _printed(whole, "PROCESSING") == [] and _printed(whole, "RESULTS") == []
    assert _latest(path, "FeResume").successful


MUTATORS = """
from metaflow import (FlowSpec, FlowMutator, Config, current, retry, step,
                      user_step_decorator)


@user_step_decorator
def around(step_name, flow, inputs=None, attributes=None):
    print("AROUND before", step_name, attributes)
    yield
    print("AROUND after", step_name)


class harden(FlowMutator):
    def mutate(self, mutable_flow):
        print("LIMITS", dict(mutable_flow.limits), mutable_flow.alpha.name)
        for name, mutable_step in mutable_flow.steps:
            mutable_step.add_decorator("retry:times=2", duplicates=mutable_step.IGNORE)
            mutable_step.add_decorator(around, deco_kwargs={"k": 1})
        mutable_flow.start.add_decorator(retry, deco_kwargs={"times": 4},
                                         duplicates=mutable_flow.OVERRIDE)
        mutable_flow.end.add_decorator(around, deco_kwargs={"k": 2},
                                       duplicates=mutable_flow.OVERRIDE)


@harden
class MutatedFlow(FlowSpec):
    limits = Config("limits", default_value={"cpu": 4})
    from metaflow import Parameter
    alpha = Parameter("alpha", default=1)

    @retry(times=1)
    @step
    def start(self):
        if current.retry_count < 4:  # passes only with @retry(times=4): OVERRIDE won
            raise RuntimeError("not yet")
        self.next(self.end)

    @step
    def end(self):
        if current.retry_count < 2:  # passes only with the added retry:times=2
            raise RuntimeError("not yet")
        print("END ran")


if __name__ == "__main__":
    MutatedFlow()
"""


def test_mutators_add_decorators_by_name_and_user_decorators_with_duplicates(
        tmp_path: Path) -> None:
    path = _write(tmp_path, "mutated.py", MUTATORS)
    done = _entry(path, "run")
    assert done.returncode == 0, done.stderr
    assert _printed(done, "LIMITS") == ["{'cpu': 4} alpha"]
    assert _printed(done, "END") == ["ran"]
    # the user decorator wraps each step once; OVERRIDE on end replaced k=1 with k=2
    assert "AROUND before start {'k': 1}" in done.stdout
    assert "AROUND before end {'k': 2}" in done.stdout
    assert "AROUND before end {'k': 1}" not in done.stdout
    wrong = _write(tmp_path / "wrong", "mutated.py", MUTATORS.replace(
        "duplicates=mutable_flow.OVERRIDE)\n        mutable_flow.end",
        "duplicates=mutable_flow.ERROR)\n        mutable_flow.end"))
    refused = _entry(wrong, "run")
    assert refused.returncode != 0
    assert "Step `start` already has the decorator @retry; pass " \
           "duplicates=MutableStep.OVERRIDE" in refused.stderr


def test_an_import_inside_a_step_that_the_engine_lacks_gets_the_refusal(
        tmp_path: Path) -> None:
    path = _write(tmp_path, "imports.py", """
        from metaflow import FlowSpec, step


        class ImportFlow(FlowSpec):
            @step
            def start(self):
                from metaflow import S3
                self.next(self.end)

            @step
            def end(self):
                pass


        if __name__ == "__main__":
            ImportFlow()
        """)
    done = _entry(path, "run")
    assert done.returncode == 1
    said = "imports.py:8: error: `S3` is imported from metaflow, and Flowdeck's engine has " \
           "no `S3`. Run it with Metaflow's engine: `flowdeck run --engine metaflow"
    assert said in done.stderr
    error = _latest(path, "ImportFlow")["start"].task.exception
    assert said in error.exception  # the recorded message, as the window shows it


CATCH = """
from metaflow import FlowSpec, catch, step


class CatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.failing)

    @catch(var="error")
    @step
    def failing(self):
        if True:
            raise ValueError("caught me")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CatchFlow()
"""


def test_catch_results_read_as_in_metaflow(tmp_path: Path) -> None:
    """The task @catch saved is finished but not successful; its wrapper's type is
    `builtins.ValueError` and its str the stack trace, as Metaflow's client says."""
    path = _write(tmp_path, "catch.py", CATCH)
    done = _entry(path, "run")
    assert done.returncode == 0, done.stderr
    run = _latest(path, "CatchFlow")
    task = run["failing"].task
    assert task.finished and not task.successful
    assert run.successful and run.finished
    wrapper = task.data.error
    assert wrapper.type == "builtins.ValueError" and wrapper.exception == "caught me"
    assert str(wrapper).startswith("Traceback") and "ValueError: caught me" in str(wrapper)
    assert repr(wrapper) == str(wrapper)


def test_show_and_metaflow_only_commands(tmp_path: Path) -> None:
    path = _write(tmp_path, "shown.py", """
        from metaflow import FlowSpec, retry, step


        class ShownFlow(FlowSpec):
            \"\"\"The flow's doc.\"\"\"

            @retry
            @step
            def start(self):
                \"\"\"Start's doc.\"\"\"
                self.next(self.end)

            @step
            def end(self):
                pass


        if __name__ == "__main__":
            ShownFlow()
        """)
    shown = _entry(path, "show")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == ("\nThe flow's doc.\n\n@retry\nStep start\n    Start's doc.\n"
                            "    => end\n\nStep end\n    ?\n\n")
    # About runs already made: where to read (or tag) them, not "run it on Metaflow's
    # engine", which cannot reach a run made on this one.
    for command, says in (("dump", "task.data"), ("logs", "task.stdout"),
                          ("card", "get_cards(task)"), ("tag", "add_tag('NAME')")):
        refused = _entry(path, command, "1/start")
        assert refused.returncode == 2
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"error: {path}: `{command}` is a Metaflow command that Flowdeck's engine does "
            "not have (") and says in lines[0]
        assert "--engine metaflow" not in lines[0]
    deploy = _entry(path, "argo-workflows", "create")
    assert deploy.returncode == 2 and "flowdeck run --engine metaflow" in deploy.stderr
    assert not os.path.exists(tmp_path / ".flowdeck")  # nothing ran


def test_the_form_edits_a_multiple_parameter_as_a_line_of_values(qtbot, tmp_path: Path,
                                                                  ) -> None:
    from PySide6.QtWidgets import QLineEdit

    from flowdeck_desktop.views.params_form import ParamsForm

    path = _write(tmp_path, "multiple.py", MULTIPLE)
    form = ParamsForm()
    qtbot.addWidget(form)
    form.set_parameters(analyze_file(str(path)).flows[0].parameters)
    assert form.values() == {"val": "2", "ints": "1 2", "words": ""}
    assert all(isinstance(form._editors[n], QLineEdit) for n in ("val", "ints", "words"))


def test_a_step_mutator_removes_a_user_step_decorator(tmp_path: Path) -> None:
    path = _write(tmp_path, "removed.py", """
        from metaflow import FlowSpec, StepMutator, step, user_step_decorator


        @user_step_decorator
        def loud(step_name, flow, inputs=None, attributes=None):
            print("LOUD", step_name)
            yield


        class quiet(StepMutator):
            def mutate(self, mutable_step):
                print("REMOVED", mutable_step.remove_decorator("loud"),
                      mutable_step.remove_decorator("nothing"))


        class RemovedFlow(FlowSpec):
            @quiet
            @loud
            @step
            def start(self):
                self.next(self.end)

            @loud
            @step
            def end(self):
                pass


        if __name__ == "__main__":
            RemovedFlow()
        """)
    done = _entry(path, "run")
    assert done.returncode == 0, done.stderr
    assert _printed(done, "REMOVED") == ["True False"]  # as Metaflow says
    assert _printed(done, "LOUD") == ["end"]


def test_a_resume_reruns_a_parallel_gang_whole(tmp_path: Path) -> None:
    """The nodes of a @parallel step meet at run time: a resume reruns all of them, not
    the one that failed (which would wait for peers that never start)."""
    path = _write(tmp_path, "gang.py", """
        import os
        from metaflow import FlowSpec, current, parallel, step


        class GangFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.train, num_parallel=3)

            @parallel
            @step
            def train(self):
                print("NODE", current.parallel.node_index)
                if current.parallel.node_index == 1 and os.path.exists("FAIL"):
                    raise ValueError("node 1 failed")
                self.next(self.join)

            @step
            def join(self, inputs):
                self.next(self.end)

            @step
            def end(self):
                pass


        if __name__ == "__main__":
            GangFlow()
        """)
    (tmp_path / "FAIL").touch()
    assert _entry(path, "run").returncode == 1
    (tmp_path / "FAIL").unlink()
    resumed = _entry(path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(_printed(resumed, "NODE")) == ["0", "1", "2"]


def test_a_mutator_replacing_a_user_decorator_keeps_the_decorators_above_it(
        tmp_path: Path) -> None:
    path = _write(tmp_path, "swap.py", """
        from metaflow import (FlowSpec, FlowMutator, card, current, retry, step,
                              user_step_decorator)


        @user_step_decorator
        def tagger(step_name, flow, inputs=None, attributes=None):
            print("TAGGER", attributes)
            yield


        class Swap(FlowMutator):
            def mutate(self, mutable_flow):
                start = mutable_flow.start
                start.add_decorator(tagger, deco_kwargs={"v": 2}, duplicates=start.OVERRIDE)
                start.add_decorator("card:type=blank,id=second")  # cards add up


        @Swap
        class SwapFlow(FlowSpec):
            @card(type="blank", id="first")
            @retry(times=2)
            @tagger(v=1)
            @step
            def start(self):
                if current.retry_count < 1:
                    raise ValueError("flaky")
                self.next(self.end)

            @step
            def end(self):
                pass


        if __name__ == "__main__":
            SwapFlow()
        """)
    done = _entry(path, "run")
    assert done.returncode == 0, done.stderr  # @retry survived the swap
    assert _printed(done, "TAGGER") == ["{'v': 2}", "{'v': 2}"]
    from flowdeck.cards import get_cards
    assert [c.id for c in get_cards(_latest(path, "SwapFlow")["start"].task)] == [
        "first", "second"]


def test_metaflows_engine_records_every_value_of_a_multiple_parameter(tmp_path: Path) -> None:
    """The bridge (`flowdeck run --engine metaflow`) keeps each value, so History's rerun
    gives them all back."""
    path = _write(tmp_path, "names.py", """
        from metaflow import FlowSpec, Parameter, step


        class NamesFlow(FlowSpec):
            names = Parameter("names", multiple=True, type=str)

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass


        if __name__ == "__main__":
            NamesFlow()
        """)
    done = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", "--engine",
                           "metaflow", str(path), "--names", "a", "--names", "b c"],
                          cwd=tmp_path, env=child_env(METAFLOW_USER="tester", USER="tester"),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    from flowdeck.store.index import RunIndex
    from flowdeck.store.layout import RunLayout
    record = RunIndex(RunLayout(tmp_path / ".flowdeck", "NamesFlow")).latest().record
    assert record.cli_args() == ["--names", "a", "--names", "b c"]


RUN_ARTIFACT = """
from metaflow import FlowSpec, step


class TrackedFlow(FlowSpec):
    @step
    def start(self):
        self.run = {"id": "tracker-1"}  # as `self.run = wandb.init()` stores a tracker's run
        self.next(self.a, self.b)

    @step
    def a(self):
        print("a reads", self.run["id"])
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        print("join reads", inputs.a.run["id"], inputs[1].run["id"])
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        print("end reads", self.run["id"])


if __name__ == "__main__":
    TrackedFlow()
"""


def test_an_artifact_called_run_is_read_back_in_later_steps(tmp_path: Path) -> None:
    """Metaflow's FlowSpec has no `run` method; Flowdeck's did hide such an artifact (a
    later step read a bound method, silently)."""
    path = tmp_path / "tracked.py"
    path.write_text(RUN_ARTIFACT)
    result = _entry(path, "run")
    assert result.returncode == 0, result.stderr
    for line in ("a reads tracker-1", "join reads tracker-1 tracker-1", "end reads tracker-1"):
        assert line in result.stdout


def test_an_error_of_the_script_itself_shows_as_python_shows_it(tmp_path: Path) -> None:
    """A syntax error, or a missing environment variable read at import: the script's own
    frames only, as `python FILE` prints them (runpy's and the entry's frames showed)."""
    missing = tmp_path / "needs_env.py"
    missing.write_text("import os\nfrom metaflow import FlowSpec, step\n"
                       "DATA = os.environ['FLOWDECK_TEST_NOT_SET']\n")
    broken = tmp_path / "broken.py"
    broken.write_text("from metaflow import FlowSpec, step\nclass A(FlowSpec)\n    pass\n")
    for path, last in ((missing, "KeyError: 'FLOWDECK_TEST_NOT_SET'"),
                       (broken, "SyntaxError: expected ':'")):
        result = _entry(path, "run")
        assert result.returncode == 1
        assert result.stderr.rstrip().endswith(last), result.stderr
        assert "runpy" not in result.stderr and "as_metaflow" not in result.stderr
        assert f"{path.name}\", line " in result.stderr
