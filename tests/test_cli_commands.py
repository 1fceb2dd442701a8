"""The `flowdeck` command as a user types it: run, resume, help, and a mistyped command."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLES, FLOWS, child_env

from flowdeck.store.index import RunIndex
from flowdeck.store.layout import RunLayout


def flowdeck(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowdeck_desktop", *args], cwd=cwd,
                          env=child_env(QT_QPA_PLATFORM="offscreen"), capture_output=True,
                          text=True, timeout=120)


def test_run_shows_the_flows_own_output_on_success(tmp_path: Path) -> None:
    flow = tmp_path / "train.py"
    flow.write_text((EXAMPLES / "train.py").read_text())
    done = flowdeck("run", str(flow), "--rates", "0.3,0.01", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "best rate 0.01" in done.stdout and "run succeeded" in done.stdout


def test_run_says_why_a_flow_did_not_start_and_what_to_install(tmp_path: Path) -> None:
    """A missing package: the window said the pip command for the flow's interpreter;
    `flowdeck run` showed only the traceback and "The run did not start"."""
    flow = tmp_path / "m3.py"
    flow.write_text("import numpy_not_installed_pkg\n" + (EXAMPLES / "train.py").read_text())
    done = flowdeck("run", str(flow), cwd=tmp_path)
    assert done.returncode == 1
    said = done.stdout + done.stderr
    assert "The run did not start (exit code 1)." in said
    assert ("m3.py failed before TrainFlow started (line 1): ModuleNotFoundError: No module "
            "named 'numpy_not_installed_pkg'. Install it into the flow's interpreter: `") in said
    assert " -m pip install numpy_not_installed_pkg`" in said
    assert "Run it again once fixed" not in said  # it said why; "once fixed" said less


def test_run_help_lists_its_options(tmp_path: Path) -> None:
    done = flowdeck("run", "--help", cwd=tmp_path)
    assert done.returncode == 0
    for option in ("--flow", "--engine", "FILE", "python FILE --help"):
        assert option in done.stdout


def test_resume_from_the_command_line_resumes_the_failed_run(tmp_path: Path) -> None:
    flow = tmp_path / "failing.py"
    flow.write_text((FLOWS / "failing.py").read_text())
    failed = flowdeck("run", str(flow), cwd=tmp_path)
    assert failed.returncode != 0
    assert f"flowdeck resume {flow}" in failed.stdout  # the hint is a command that works
    flow.write_text(flow.read_text().replace("FIX_ME = False", "FIX_ME = True"))
    resumed = flowdeck("resume", str(flow), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    name = next(line.split("(")[0].split()[-1] for line in flow.read_text().splitlines()
                if line.startswith("class "))
    latest = RunIndex(RunLayout(tmp_path / ".flowdeck", name)).latest().record
    assert latest.origin_run_id and latest.status == "succeeded"


def test_a_mistyped_command_is_an_error_not_a_window(tmp_path: Path) -> None:
    done = flowdeck("resme", "flow.py", cwd=tmp_path)
    assert done.returncode == 2
    assert "`resme` is neither a command" in done.stderr


def _without_display() -> dict[str, str]:
    return {k: v for k, v in child_env().items()
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}


def test_help_version_and_a_bad_option_answer_without_a_display(tmp_path: Path) -> None:
    """Over ssh, `flowdeck --help` is the first thing typed: it must not ask for a screen."""
    def typed(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowdeck_desktop", *args], cwd=tmp_path,
                              env=_without_display(), capture_output=True, text=True,
                              timeout=120)
    helped = typed("--help")
    assert helped.returncode == 0, helped.stderr
    assert "usage: flowdeck" in helped.stdout and "--new-instance" in helped.stdout
    assert "Commands without a window: run, resume, list, graph, gc" in helped.stdout
    import flowdeck
    versioned = typed("--version")
    assert versioned.returncode == 0 and versioned.stdout.strip() == f"flowdeck {flowdeck.__version__}"
    wrong = typed("--bogus-option", str(tmp_path))
    assert wrong.returncode == 2
    assert "unrecognized arguments: --bogus-option" in wrong.stderr
    assert "display" not in wrong.stderr and "Traceback" not in wrong.stderr


def test_run_refuses_a_flow_the_file_does_not_start(tmp_path: Path) -> None:
    """`flowdeck run` runs `python FILE`: a file whose script part starts another flow ran
    that one and said "succeeded"; one without a script part ran nothing and exited 0."""
    two = tmp_path / "two.py"
    body = ("from flowdeck import FlowSpec, step\n\n\n"
            "class {name}(FlowSpec):\n    @step\n    def start(self):\n"
            "        print('{name} ran')\n        self.next(self.end)\n\n"
            "    @step\n    def end(self):\n        pass\n\n\n")
    two.write_text(body.format(name="FirstFlow") + body.format(name="SecondFlow")
                   + "if __name__ == '__main__':\n    SecondFlow()\n")
    other = flowdeck("run", "--flow", "FirstFlow", str(two), cwd=tmp_path)
    assert other.returncode == 2 and "FirstFlow ran" not in other.stdout + other.stderr
    assert f"{two}:29: running the file starts SecondFlow, not FirstFlow" in other.stderr
    chosen = flowdeck("run", "--flow", "SecondFlow", str(two), cwd=tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    assert "SecondFlow ran" in chosen.stdout
    silent = tmp_path / "silent.py"
    silent.write_text(body.format(name="SilentFlow"))
    nothing = flowdeck("run", str(silent), cwd=tmp_path)
    assert nothing.returncode == 2 and "Traceback" not in nothing.stderr
    assert "does not start SilentFlow when it runs" in nothing.stderr
    assert 'if __name__ == "__main__": SilentFlow()' in nothing.stderr


def test_run_picks_the_flow_the_file_starts_and_refuses_one_it_never_reaches(
        tmp_path: Path) -> None:
    """A flow built on a base class (or mixin) of FlowSpec is the one `python FILE` runs:
    `run`, `graph` and `resume` take it without --flow, as `python FILE` and `Runner` do
    (they refused with "has several flows", offering the base). In a script part that
    starts FirstFlow and then SecondFlow, the first run ends the script: `--flow
    SecondFlow` ran FirstFlow and exited 0."""
    mixin = tmp_path / "mixin.py"
    mixin.write_text(
        "from flowdeck import FlowSpec, Parameter, step\n\n\n"
        "class CommonParams(FlowSpec):\n    seed = Parameter('seed', default=0, type=int)\n\n\n"
        "class TrainFlow(CommonParams):\n    @step\n    def start(self):\n"
        "        print('seed is', self.seed)\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    TrainFlow()\n")
    ran = flowdeck("run", str(mixin), "--seed", "4", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "seed is 4" in ran.stdout
    shown = flowdeck("graph", str(mixin), cwd=tmp_path)
    assert shown.returncode == 0 and "start" in shown.stdout, shown.stderr
    resumed = flowdeck("resume", str(mixin), cwd=tmp_path)
    assert "several flows" not in resumed.stderr and "Traceback" not in resumed.stderr
    two = tmp_path / "two.py"
    body = ("class {name}(FlowSpec):\n    @step\n    def start(self):\n"
            "        print('{name} ran')\n        self.next(self.end)\n\n"
            "    @step\n    def end(self):\n        pass\n\n\n")
    two.write_text("from flowdeck import FlowSpec, step\n\n\n" + body.format(name="FirstFlow")
                   + body.format(name="SecondFlow")
                   + "if __name__ == '__main__':\n    FirstFlow()\n    SecondFlow()\n")
    unreached = flowdeck("run", "--flow", "SecondFlow", str(two), cwd=tmp_path)
    assert unreached.returncode == 2, unreached.stdout
    assert "FirstFlow ran" not in unreached.stdout
    assert (f"{two}:27: running the file starts FirstFlow, whose run ends the script before "
            "SecondFlow() is reached") in unreached.stderr
    first = flowdeck("run", "--flow", "FirstFlow", str(two), cwd=tmp_path)
    assert first.returncode == 0 and "FirstFlow ran" in first.stdout, first.stderr
    either = tmp_path / "either.py"  # a start that may not run ends nothing
    either.write_text(two.read_text().replace(
        "    FirstFlow()\n    SecondFlow()\n",
        "    import os\n    if os.environ.get('FIRST'):\n        FirstFlow()\n    SecondFlow()\n"))
    second = flowdeck("run", "--flow", "SecondFlow", str(either), cwd=tmp_path)
    assert second.returncode == 0 and "SecondFlow ran" in second.stdout, second.stderr
    both = tmp_path / "both.py"  # `.run()` returns the run: the script goes on (review)
    both.write_text(two.read_text().replace(
        "    FirstFlow()\n    SecondFlow()\n", "    FirstFlow().run()\n    SecondFlow().run()\n"))
    reached = flowdeck("run", "--flow", "SecondFlow", str(both), cwd=tmp_path)
    assert reached.returncode == 0 and "SecondFlow ran" in reached.stdout, reached.stderr


def test_a_folder_given_for_a_flow_file_says_so(tmp_path: Path) -> None:
    """It said "no such file" of a folder that exists."""
    for command in (("run",), ("graph",), ("resume",)):
        told = flowdeck(*command, str(tmp_path), cwd=tmp_path)
        assert told.returncode == 2, (command, told.stderr)
        assert (f"error: {tmp_path} is a folder. Give the path of a flow's .py file in it; "
                f"`flowdeck list {tmp_path}` lists the flows there.") in told.stderr, command
    missing = flowdeck("run", str(tmp_path / "gone.py"), cwd=tmp_path)
    assert missing.returncode == 2 and "gone.py: no such file." in missing.stderr


def test_a_named_pipe_given_for_a_flow_file_is_said_as_list_says_it(tmp_path: Path) -> None:
    """`flowdeck graph` said "no such file" of a FIFO that `flowdeck list` names; each
    command answers at once (the pipe is never opened, so nothing waits for a writer)."""
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    listed = flowdeck("list", str(tmp_path), cwd=tmp_path)
    said = "This is a named pipe (FIFO), not a regular file, so it is not read."
    assert said in listed.stdout, listed.stdout
    for command in (("run",), ("graph",), ("resume",)):
        told = flowdeck(*command, str(fifo), cwd=tmp_path)
        assert told.returncode == 2, (command, told.stderr)
        assert f"error: {fifo}: {said} Give the path of a flow's .py file." in told.stderr


def test_a_reader_that_stops_early_and_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    """`flowdeck list | head -1` ends quietly (as a process ended by SIGPIPE), and `graph` on
    a file with a syntax error names it instead of saying the file defines no flow."""
    for n in range(300):
        (tmp_path / f"flow_{n}.py").write_text((EXAMPLES / "train.py").read_text())
    lister = subprocess.Popen([sys.executable, "-m", "flowdeck_desktop", "list", str(tmp_path)],
                              env=child_env(QT_QPA_PLATFORM="offscreen"), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert lister.stdout is not None and lister.stderr is not None
    # The smallest pipe (one page), set before the interpreter has started: 300 lines no
    # longer fit in it, so the lister is still writing when the reader goes (with the
    # usual 64 kB it could finish first and exit 0, a race seen on a loaded machine).
    fcntl.fcntl(lister.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    assert lister.stdout.readline().strip()  # the first line, as `head -1` reads it
    lister.stdout.close()
    err = lister.stderr.read().decode()
    assert lister.wait(timeout=120) == 141 and "Traceback" not in err and "Broken" not in err
    broken = tmp_path / "broken.py"
    broken.write_text("from flowdeck import FlowSpec\nx = [\n")
    graph = flowdeck("graph", str(broken), cwd=tmp_path)
    assert graph.returncode == 1
    assert f"{broken}:2:5: error: Syntax error" in graph.stderr
    assert "cannot be read as a flow file; fix the errors above" in graph.stderr
    assert "defines no flow" not in graph.stderr


def test_run_starts_the_flow_in_the_current_folder(tmp_path: Path) -> None:
    """`flowdeck run sub/flow.py` from a terminal runs where `python sub/flow.py run` would:
    a relative path the user gives names a file of the folder they are in."""
    sub = tmp_path / "sub"
    sub.mkdir()
    (tmp_path / "rates.txt").write_text("0.5\n")
    flow = sub / "cwd.py"
    flow.write_text(
        "import os\nfrom flowdeck import FlowSpec, Parameter, step\n\n\n"
        "class CwdFlow(FlowSpec):\n    source = Parameter('source', default='rates.txt')\n\n"
        "    @step\n    def start(self):\n        self.where = os.getcwd()\n"
        "        self.rate = float(open(self.source).read())\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    CwdFlow()\n")
    done = flowdeck("run", "sub/cwd.py", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    from flowdeck import Flow
    run = Flow("CwdFlow", root=sub / ".flowdeck").latest_run  # the store stays beside the file
    assert run.data.where == str(tmp_path) and run.data.rate == 0.5


def test_a_flows_printing_commands_end_quietly_when_the_reader_stops(tmp_path: Path) -> None:
    """`python flow.py output-raw | head -5` (and output-dot) end as a process
    ended by SIGPIPE, without a BrokenPipeError traceback."""
    steps = "".join(f"    @step\n    def s{i}(self):\n        self.next(self.s{i + 1})\n\n"
                    for i in range(300))
    flow = tmp_path / "long.py"
    flow.write_text("from flowdeck import FlowSpec, step\n\n\nclass LongFlow(FlowSpec):\n"
                    "    @step\n    def start(self):\n        self.next(self.s0)\n\n" + steps +
                    "    @step\n    def s300(self):\n        self.next(self.end)\n\n"
                    "    @step\n    def end(self):\n        pass\n\n\n"
                    "if __name__ == '__main__':\n    LongFlow()\n")
    for command in ("output-raw", "output-dot"):  # each larger than the one-page pipe
        reader = subprocess.Popen([sys.executable, str(flow), command], env=child_env(),
                                  cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert reader.stdout is not None and reader.stderr is not None
        fcntl.fcntl(reader.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)  # see above
        assert reader.stdout.readline()
        reader.stdout.close()
        err = reader.stderr.read().decode()
        assert reader.wait(timeout=120) == 141, (command, err)
        assert "Traceback" not in err and "Broken" not in err


def test_help_and_usage_errors_are_each_command_s_own(tmp_path: Path) -> None:
    """`resume` named its optional STEP among the required arguments; `precompile --x`
    answered with the top level's usage; `graph -h` described neither itself nor FILE."""
    done = flowdeck("resume", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("the following arguments are required: FILE")
    done = flowdeck("precompile", "--x", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("usage: flowdeck precompile")
    assert "flowdeck precompile: error: unrecognized arguments: --x" in done.stderr
    done = flowdeck("graph", "-h", cwd=tmp_path)
    assert "is never run" in done.stdout and "FILE         the flow's .py file" in done.stdout


TWO_FLOWS_NO_MAIN = '''from flowdeck import FlowSpec, step


class AFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class BFlow(AFlow):
    pass
'''


def test_a_file_that_starts_none_of_its_flows_says_so_before_asking_which(
        tmp_path: Path) -> None:
    """It asked for --flow, then, given one, said the file starts no flow: two round trips."""
    flow = tmp_path / "two.py"
    flow.write_text(TWO_FLOWS_NO_MAIN)
    done = flowdeck("run", str(flow), cwd=tmp_path)
    assert done.returncode == 2
    assert "has several flows and runs none of them: it has no `if __name__" in done.stderr
    shown = flowdeck("graph", str(flow), cwd=tmp_path)  # never run: which one is the question
    assert "has several flows; choose one with --flow (AFlow, BFlow)" in shown.stderr


def test_an_unknown_option_is_said_for_a_terminal_once(tmp_path: Path) -> None:
    """`flowdeck run` told to remove the option from "Run options (Parameters pane)", which
    a terminal has not, and repeated the engine's error line (second review)."""
    flow = tmp_path / "train.py"
    flow.write_text((EXAMPLES / "train.py").read_text())
    done = flowdeck("run", str(flow), "--bogus", "3", cwd=tmp_path)
    assert done.returncode == 2
    said = done.stdout + done.stderr
    assert "Parameters pane" not in said
    assert ("--bogus is not an option of this flow's command line: remove it from the "
            "command, or correct its spelling.") in said
    assert said.count("no option --bogus") == 1
