"""A failed run says how to resume it, as a command the user can paste as it is: the
entry the run was started with, and the file's path quoted where it has a space."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FLOWS, child_env
from scaleout_servers import local_cluster, s3_server

FLAKY = """from {package} import FlowSpec, step
import os


class FlakyFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self):
        if not os.path.exists("fixed"):
            raise ValueError("not fixed yet")
        self.next(self.end)

    @step
    def end(self):
        print("resumed to the end")


if __name__ == "__main__":
    FlakyFlow()
"""


def _run(argv: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=folder, env=child_env(), capture_output=True, text=True,
                          timeout=120)


def _hint(stderr: str) -> str:
    found = re.search(r"Fix it, then continue with `([^`]+)`", stderr)
    assert found, stderr
    return found.group(1)


@pytest.mark.parametrize("package, entry", [
    ("flowdeck", [sys.executable]),
    ("metaflow", [sys.executable, "-m", "flowdeck.engines.as_metaflow"]),
])
def test_the_resume_hint_is_a_command_to_paste(tmp_path: Path, package: str,
                                               entry: list[str]) -> None:
    folder = tmp_path / "with space"
    folder.mkdir()
    (folder / "my flow.py").write_text(FLAKY.format(package=package))
    failed = _run([*entry, "my flow.py", "run"], folder)
    assert failed.returncode == 1
    hint = _hint(failed.stderr)
    expected = "python -m flowdeck.engines.as_metaflow" if package == "metaflow" else "python"
    assert hint == f"{expected} 'my flow.py' resume"
    (folder / "fixed").touch()
    argv = shlex.split(hint)
    resumed = _run([sys.executable, *argv[1:]], folder)  # this interpreter for `python`
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed to the end" in resumed.stdout


def test_flowdeck_run_quotes_the_file_it_says_to_resume(tmp_path: Path) -> None:
    folder = tmp_path / "with space"
    folder.mkdir()
    (folder / "my flow.py").write_text(FLAKY.format(package="flowdeck"))
    failed = _run([sys.executable, "-m", "flowdeck_desktop", "run", "my flow.py"], folder)
    assert failed.returncode != 0
    found = re.search(r"Resume it, reusing what finished: (.+)", failed.stdout + failed.stderr)
    assert found, failed.stdout + failed.stderr
    argv = shlex.split(found.group(1))
    assert argv[:2] == ["flowdeck", "resume"] and Path(argv[2]) == folder / "my flow.py"


def test_a_run_that_failed_in_start_says_to_run_again(tmp_path: Path) -> None:
    """A failure in `start` leaves a resume nothing to reuse, and a resume keeps the run's
    parameter values, which may be the cause: both entries said to resume, and resume
    failed the same way every time."""
    shutil.copy(FLOWS / "misbehaving.py", tmp_path / "count.py")  # `scalar`: fails in start
    failed = _run([sys.executable, "count.py", "run", "--mode", "scalar"], tmp_path)
    assert failed.returncode == 1
    assert ("Fix it, then run the flow again (`python count.py run --mode scalar`, with other "
            "parameter values if they were the cause)") in failed.stderr
    assert "continue with" not in failed.stderr
    headless = _run([sys.executable, "-m", "flowdeck_desktop", "run", "count.py", "--mode",
                     "scalar"], tmp_path)
    told = headless.stdout + headless.stderr
    assert "Run it again once fixed" in told, told
    assert re.search(r"flowdeck run \S*count.py --mode scalar", told), told
    assert "flowdeck resume" not in told


# -- runs whose store and executor were chosen on the command line ---------------------------

SCALED = """from flowdeck import FlowSpec, Parameter, step
import os


class ScaledFlow(FlowSpec):
    mode = Parameter("mode", default="ok")

    @step
    def start(self):
        if self.mode == "fail-start":
            raise ValueError("bad mode")
        self.next(self.middle)

    @step
    def middle(self):
        if not os.path.exists({fixed!r}):
            raise ValueError("not fixed yet")
        self.next(self.end)

    @step
    def end(self):
        print("resumed to the end")


if __name__ == "__main__":
    ScaledFlow()
"""


@pytest.fixture(scope="module")
def scale_out() -> Iterator[tuple[str, str, dict[str, str]]]:
    """A real S3 endpoint (moto's server) with a bucket, a Dask cluster of two workers;
    yields the bucket's URL, the scheduler's address and the environment that reaches
    the endpoint (the workers run in this process's)."""
    with s3_server("hints") as endpoint:
        env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "NO_PROXY": "127.0.0.1,localhost"}
        before = {name: os.environ.get(name) for name in env}
        os.environ.update(env)  # the workers are started now, with it
        cluster = local_cluster(2)
        try:
            yield "s3://hints", str(cluster.scheduler_address), env
        finally:
            cluster.close()
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _scaled(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    flow = folder / "scaled flow.py"
    flow.write_text(SCALED.format(fixed=str(folder / "fixed")))
    return flow


def _pasted(hint: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The hint run as the user pastes it into a shell (this interpreter for `python`,
    `python -m flowdeck_desktop` for `flowdeck`)."""
    argv = shlex.split(hint)
    entry = [sys.executable] if argv[0] == "python" else [sys.executable, "-m",
                                                          "flowdeck_desktop"]
    return subprocess.run([*entry, *argv[1:]], cwd=folder, env=child_env(**env),
                          capture_output=True, text=True, timeout=300)


def test_the_resume_hint_carries_the_store_and_executor_it_ran_with(
        tmp_path: Path, scale_out: tuple[str, str, dict[str, str]]) -> None:
    """`--datastore`, `--executor` and `--scheduler` were left out of the hint: the resume
    it printed looked in the local store and said there was no run (the run was in S3)."""
    bucket, scheduler, env = scale_out
    folder = tmp_path / "project"
    flow = _scaled(folder)
    url = f"{bucket}/script"
    failed = subprocess.run([sys.executable, flow.name, "run", "--datastore", url, "--executor",
                             "dask", "--scheduler", scheduler], cwd=folder, env=child_env(**env),
                            capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1, failed.stderr
    hint = _hint(failed.stderr)
    assert shlex.split(hint) == ["python", flow.name, "resume", "--datastore", url,
                                 "--executor", "dask", "--scheduler", scheduler]
    bare = _pasted(f"python {shlex.quote(flow.name)} resume", folder, env)
    assert bare.returncode == 2
    assert f"no earlier run to resume in {folder / '.flowdeck'}" in bare.stderr
    assert "--datastore s3://BUCKET/PREFIX" in bare.stderr  # how to name another store
    (folder / "fixed").touch()
    resumed = _pasted(hint, folder, env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed to the end" in resumed.stdout
    assert "(on tcp://" in resumed.stdout  # on the workers, not forked here


def test_flowdeck_runs_hints_carry_the_store_executor_and_parameters(
        tmp_path: Path, scale_out: tuple[str, str, dict[str, str]]) -> None:
    """`flowdeck run`'s "Resume it" and "Run it again" named the file alone; and the
    script's "run the flow again" too: pasted, they ran here, in the local store."""
    bucket, scheduler, env = scale_out
    folder = tmp_path / "project"
    flow = _scaled(folder)
    url = f"{bucket}/headless"
    where = ["--datastore", url, "--executor", "dask", "--scheduler", scheduler]
    failed = _pasted(shlex.join(["flowdeck", "run", flow.name, *where]), folder, env)
    found = re.search(r"Resume it, reusing what finished: (.+)", failed.stdout)
    assert found, failed.stdout + failed.stderr
    assert shlex.split(found.group(1)) == ["flowdeck", "resume", str(flow), *where]
    (folder / "fixed").touch()
    resumed = _pasted(found.group(1), folder, env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed to the end" in resumed.stdout

    again = _pasted(shlex.join(["flowdeck", "run", flow.name, *where, "--mode", "fail-start"]),
                    folder, env)
    found = re.search(r"Run it again once fixed \([^)]*\): (.+)", again.stdout)
    assert found, again.stdout + again.stderr
    assert shlex.split(found.group(1)) == ["flowdeck", "run", str(flow), *where,
                                           "--mode", "fail-start"]
    script = _pasted(shlex.join(["python", flow.name, "run", *where, "--mode", "fail-start"]),
                     folder, env)
    found = re.search(r"run the flow again \(`([^`]+)`", script.stderr)
    assert found, script.stderr
    assert shlex.split(found.group(1)) == ["python", flow.name, "run", *where,
                                           "--mode", "fail-start"]
