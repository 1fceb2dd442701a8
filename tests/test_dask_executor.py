"""Tasks on a real Dask cluster (`--executor dask`): a LocalCluster of two worker processes
on 127.0.0.1, flows run as real `python flow.py run --executor dask` processes.

The engine's own semantic tests (tests/test_runtime.py) run again here with
$FLOWDECK_EXECUTOR=dask and the cluster's address in $FLOWDECK_DASK_SCHEDULER, so both
executors answer to the same assertions; the tests below add what only a cluster has
(lost workers, an unreachable scheduler, version skew, shipping code to the workers).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_cancel_wakes_the_step as wakes
import test_runtime as semantics
import test_worker_exit as worker_exit
from conftest import FLOWS, child_env, process_alive, run_flow, stored_runs, wait_for
from scaleout_servers import dask_cluster, dask_worker_command, local_cluster

from flowdeck import Flow
from flowdeck.store.events import read_events

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

DASK_FLOWS = FLOWS / "dask"


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """Two single-threaded worker processes (with nannies, which restart a killed one)."""
    with dask_cluster() as client:
        yield client


@pytest.fixture
def on_dask(cluster, monkeypatch: pytest.MonkeyPatch) -> object:
    """Every flow process this test starts runs its tasks on the cluster."""
    cluster.wait_for_workers(2, timeout=60)
    monkeypatch.setenv("FLOWDECK_EXECUTOR", "dask")
    monkeypatch.setenv("FLOWDECK_DASK_SCHEDULER", cluster.scheduler.address)
    return cluster


# -- the engine's semantics, on Dask ----------------------------------------------------------

def test_parameters_foreach_and_events(on_dask, flow_file) -> None:
    semantics.test_readme_flow_runs_with_plain_python(flow_file)
    semantics.test_parameters_from_the_command_line(flow_file)


def test_branches_nested_foreach_merge_retry_catch_current(on_dask, flow_file) -> None:
    semantics.test_branches_nested_foreach_merge_retry_catch(flow_file)


def test_the_scripts_classes_stay_themselves_on_the_workers(on_dask, tmp_path: Path) -> None:
    semantics.test_the_scripts_classes_stay_themselves_from_task_to_task(tmp_path)


def test_failure_traceback_names_the_line_then_resume(on_dask, flow_file) -> None:
    semantics.test_failure_short_traceback_then_resume_reuses_finished_tasks(flow_file)


def test_timeout_kills_the_remote_task_after_its_retries(on_dask, flow_file) -> None:
    semantics.test_timeout_fails_the_step_after_its_retries(flow_file)


def test_a_step_that_ignores_its_timeout_is_killed_on_the_worker(on_dask, flow_file) -> None:
    path = flow_file("dask/dask_stubborn.py")
    result = run_flow(path, timeout=120)
    assert result.returncode == 1
    assert "ignoring the timeout" in result.stdout
    assert "ran past its @timeout and was killed" in result.stderr
    run = Flow("StubbornFlow", root=path.parent / ".flowdeck").latest_run
    assert run["stubborn"].task.exception["type"] == "ProcessExit"


def test_max_workers_bounds_tasks_in_flight(on_dask, flow_file) -> None:
    semantics.test_parallel_workers_overlap_and_respect_the_limit(flow_file)


@pytest.mark.parametrize("mode, message", [("exit", "called sys.exit(3)"),
                                           ("crash", "exited with code 7")])
def test_misbehaving_steps(on_dask, flow_file, mode: str, message: str) -> None:
    semantics.test_misbehaving_steps_fail_with_a_clear_message(flow_file, mode, message)


def test_ctrl_c_cancels_the_tasks_on_the_workers(on_dask, flow_file) -> None:
    """As test_runtime's cancel test, but a remote task has no local pid to look at: what
    the step started (a helper process on this machine) must be gone."""
    path = flow_file("sleepy.py")
    proc = semantics._start_sleepy(path)
    wait_for(lambda: semantics._both_napping(path), "both naps to start",
             lambda: proc.poll() is None)
    run = Flow("SleepyFlow", root=path.parent / ".flowdeck").latest_run
    wait_for(lambda: semantics._has_printed(run, "nap_a"), "nap_a's first line",
             lambda: proc.poll() is None)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT
    assert "cancelled" in err and "Traceback" not in err
    events = semantics.assert_complete_stream(run, "cancelled")
    cancelled = {e["step"] for e in events if e["type"] == "task_finished"
                 and e["status"] == "cancelled"}
    assert cancelled == {"nap_a", "nap_b"}
    assert run["start"].task.data.payload == list(range(1000))
    helper = int(out.split("napping with helper")[1].split()[0])
    wait_for(lambda: not process_alive(helper), "the step's helper process to end")


def test_a_cancel_reaches_a_remote_step_whose_interrupt_was_only_noted(on_dask,
                                                                       tmp_path: Path) -> None:
    wakes.cancel_an_asleep_step(tmp_path, child_env())


# -- what only a cluster has -------------------------------------------------------------------

def test_tasks_name_their_worker_and_current_is_set(on_dask, flow_file) -> None:
    path = flow_file("branches.py")
    result = run_flow(path, "run", "--size", "2")
    assert result.returncode == 0, result.stderr
    run = Flow("BranchFlow", root=path.parent / ".flowdeck").latest_run
    workers = set(on_dask.nthreads())
    started = [e for e in read_events(run.dir / "events.jsonl") if e["type"] == "task_started"
               and not e["reused"]]
    assert started and all(e["worker"] in workers for e in started)
    assert run["right"].task.data.attempts == 1  # current.retry_count on the worker


LOAD_COUNTING_FLOW = """
import os

from flowdeck import FlowSpec, step

LOADS = {loads!r}


class LoadCounter:
    \"\"\"Appends the loading process's pid to LOADS each time it is unpickled.\"\"\"

    def __getstate__(self):
        return {{"n": 1}}

    def __setstate__(self, state):
        with open(LOADS, "a") as handle:
            handle.write(f"{{os.getpid()}}\\n")


COUNTER = LoadCounter()  # a global of a step: it travels with the flow class


class CountedFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(8))
        self.next(self.probe, foreach="items")

    @step
    def probe(self):
        assert isinstance(COUNTER, LoadCounter)
        self.parent = os.getppid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.parents = sorted({{i.parent for i in inputs}})
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CountedFlow()
"""


def test_a_worker_loads_the_flow_class_once_per_run(on_dask, tmp_path: Path) -> None:
    """The flow class (and so every module its file imports) is loaded once per worker
    by the flow's zygote there, which forks each attempt; not once per attempt."""
    loads = tmp_path / "loads.txt"
    path = tmp_path / "counted.py"
    path.write_text(LOAD_COUNTING_FLOW.format(loads=str(loads)))
    done = run_flow(path, "run", timeout=180)
    assert done.returncode == 0, done.stderr
    run = Flow("CountedFlow", root=tmp_path / ".flowdeck").latest_run
    assert len(run["probe"].tasks()) == 8
    loaders = loads.read_text().split()
    assert 1 <= len(loaders) <= 2, loaders  # one per worker that ran a task, of 11
    assert set(run.data.parents) <= {int(pid) for pid in loaders}  # forked by the loaders


def test_a_task_ends_as_a_python_process_ends(on_dask, tmp_path: Path) -> None:
    """A Dask attempt, forked by its worker's zygote, ends as a local one does: its
    threads, exit handlers and temporary folders (test_worker_exit)."""
    path = tmp_path / "exitflow.py"
    path.write_text(textwrap.dedent(worker_exit.FLOW_WITHOUT_MODULE_FILE))
    worker_exit.check_task_endings(run_flow(path, "run", timeout=180), tmp_path,
                                   module_file=False)


def test_a_global_that_cannot_travel_is_named_and_the_run_fails(on_dask, tmp_path: Path) -> None:
    """A step using a module-level open file: the class cannot be pickled for the workers.
    The run ends "failed" (never left "running") with the global's name, its line and
    what to do; no traceback."""
    path = tmp_path / "exitflow.py"
    path.write_text(textwrap.dedent(worker_exit.FLOW))
    result = run_flow(path, "run", timeout=180)
    assert result.returncode == 1
    lines = {text.split(" = ")[0]: i for i, text in enumerate(path.read_text().splitlines(), 1)
             if text.startswith(("LOG = ", "FILES = "))}
    assert (f"the module-level `FILES` (line {lines['FILES']}), `LOG` (line {lines['LOG']}) "
            "they use cannot be pickled") in result.stderr
    assert "make an open file, a lock or a connection inside the step" in result.stderr
    assert "Traceback" not in result.stderr
    run = Flow("ExitFlow", root=tmp_path / ".flowdeck").latest_run
    assert run.status == "failed"
    # Reached through a helper function of the module: the helper's global is named.
    helper = tmp_path / "helper.py"
    helper.write_text(HELPER_WITH_A_LOCK)
    result = run_flow(helper, "run", timeout=180)
    assert result.returncode == 1
    assert "the module-level `LOCK` (line 5) it uses cannot be pickled" in result.stderr


HELPER_WITH_A_LOCK = """import threading
from flowdeck import FlowSpec, step


LOCK = threading.Lock()


def locked_add(a, b):
    with LOCK:
        return a + b


class HelperFlow(FlowSpec):
    @step
    def start(self):
        self.x = locked_add(1, 2)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    HelperFlow()
"""


def test_project_modules_travel_and_a_missing_one_is_named(on_dask, tmp_path: Path) -> None:
    for name in ("dask_imports.py", "dask_helper.py"):
        shutil.copy(DASK_FLOWS / name, tmp_path / name)
    path = tmp_path / "dask_imports.py"
    shipped = run_flow(path, "run", "--word", "hi")
    assert shipped.returncode == 0, shipped.stderr
    assert "shout HI!" in shipped.stdout
    elsewhere = tmp_path.parent / f"{tmp_path.name}-site"  # on the orchestrator's path only
    elsewhere.mkdir()
    (elsewhere / "only_on_this_machine.py").write_text("VALUE = 1\n")
    env = child_env(DASK_TEST_ONLY_HERE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(elsewhere), env["PYTHONPATH"]])
    missing = run_flow(path, env=env)
    assert missing.returncode == 1
    assert "cannot import module `only_on_this_machine`" in missing.stderr
    assert "Worker tcp://127.0.0.1:" in missing.stderr and "Traceback" not in missing.stderr


STEP_IMPORT = '''
from flowdeck import FlowSpec, step


class StepImport(FlowSpec):
    @step
    def start(self):
        import step_helper  # beside the flow file, imported by the step only
        self.value = step_helper.VALUE
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    StepImport()
'''


def test_a_module_a_step_imports_that_the_worker_lacks_is_said_with_the_fix(
        on_dask, tmp_path: Path) -> None:
    """Modules beside the flow file travel only when the flow file imports them: a step's
    own import failed on the workers with a bare ModuleNotFoundError."""
    (tmp_path / "step_import.py").write_text(STEP_IMPORT)
    (tmp_path / "step_helper.py").write_text("VALUE = 1\n")
    result = run_flow(tmp_path / "step_import.py")
    assert result.returncode == 1
    assert "cannot import module `step_helper`" in result.stderr
    assert "import it at the top of the flow file" in result.stderr


OUTLIVING = '''
import time

from flowdeck import FlowSpec, step


class Outliving(FlowSpec):
    @step
    def start(self):
        open("started", "w").close()
        try:
            time.sleep(600)
        finally:
            open("cleaned", "w").close()
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Outliving()
'''


@pytest.mark.parametrize("how", ["failed", "killed"])
def test_an_attempt_whose_run_has_ended_stops_on_its_worker(on_dask, tmp_path: Path,
                                                             how: str) -> None:
    """An orchestrator that lost its scheduler fails the run, and one killed is gone: the
    step ran on and recorded its success in a run that failed (or crashed). The worker
    looks at the run's record: ended or crashed, the attempt gets SIGINT (`finally:` runs)."""
    (tmp_path / "outliving.py").write_text(OUTLIVING)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "outliving.py")], cwd=tmp_path,
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        wait_for(lambda: (tmp_path / "started").exists(), "the step to start",
                 lambda: proc.poll() is None)
        run = Flow("Outliving", root=tmp_path / ".flowdeck").latest_run
        if how == "failed":  # run.json as the orchestrator leaves it when it fails the run
            record = run.dir / "run.json"
            record.write_text(json.dumps(json.loads(record.read_text()) | {"status": "failed"}))
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        wait_for(lambda: (tmp_path / "cleaned").exists(), "the step's clean-up",
                 lambda: how == "killed" or proc.poll() is None)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    attempt = run.dir / "start" / "1" / "attempt-0.json"
    wait_for(attempt.exists, "the attempt's record")
    assert json.loads(attempt.read_text())["status"] == "failed"


def test_log_lines_arrive_while_the_task_runs(on_dask, flow_file) -> None:
    path = flow_file("dask/dask_hold.py")
    hold = path.parent / "hold"
    hold.touch()
    proc = subprocess.Popen([sys.executable, str(path)], cwd=path.parent, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def nap_log() -> str:
            runs = stored_runs("HoldFlow", path.parent / ".flowdeck")
            if not runs:
                return ""
            log = runs[0].dir / "nap" / "2" / "attempt-0.out"
            return log.read_text() if log.exists() else ""
        wait_for(lambda: "napping 0" in nap_log(), "the task's first line in its log",
                 lambda: proc.poll() is None)
        run = Flow("HoldFlow", root=path.parent / ".flowdeck").latest_run
        finished = [e for e in read_events(run.dir / "events.jsonl")
                    if e["type"] == "task_finished" and e["task_id"] == "2"]
        assert finished == []  # the line came while the task still ran
    finally:
        hold.unlink()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "values [0, 10]" in out


@pytest.mark.parametrize("retry", [False, True], ids=["no-retry", "retry"])
def test_a_killed_worker_loses_the_attempt(on_dask, flow_file, retry: bool) -> None:
    """SIGKILL the worker running a task: the attempt fails with "worker lost" naming the
    worker; with @retry (here `--with retry:times=1`) it runs again on a worker and the run
    succeeds, without it the run fails and `resume` completes it."""
    path = flow_file("dask/dask_hold.py")
    hold = path.parent / "hold"
    hold.touch()
    extra = ["--with", "retry:times=1"] if retry else []
    proc = subprocess.Popen([sys.executable, str(path), *extra, "run"], cwd=path.parent,
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    root = path.parent / ".flowdeck"

    def napping_worker() -> int | None:
        runs = stored_runs("HoldFlow", root)
        log = runs[0].dir / "nap" / "2" / "attempt-0.out" if runs else None
        text = log.read_text() if log is not None and log.exists() else ""
        return int(text.split("on worker")[1].split()[0]) if "on worker" in text else None
    wait_for(lambda: napping_worker() is not None, "the held task to start",
             lambda: proc.poll() is None)
    pids = {a: p for a, p in on_dask.run(os.getpid, on_error="return").items()
            if isinstance(p, int)}
    victim = napping_worker()
    assert victim in pids.values()
    address = next(a for a, p in pids.items() if p == victim)
    log = Flow("HoldFlow", root=root).latest_run.dir / "nap" / "2" / "attempt-0.out"
    task_pid = int(log.read_text().split(" as ")[1].split()[0])
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not process_alive(victim), "the worker to die")
    wait_for(lambda: not process_alive(task_pid), "the task's process to die with its worker")
    if retry:  # the held task runs again; let that attempt finish
        run = Flow("HoldFlow", root=root).latest_run
        wait_for(lambda: (run.dir / "nap" / "2" / "attempt-1.out").exists(),
                 "the retry to start", lambda: proc.poll() is None)
        hold.unlink()
    out, err = proc.communicate(timeout=120)  # the run ends: it never hangs
    hold.unlink(missing_ok=True)
    assert f"worker lost: Dask worker {address}" in out + err
    run = Flow("HoldFlow", root=root).latest_run
    assert run["start"].task.data.items == [0, 1]  # finished artifacts stay readable
    events = read_events(run.dir / "events.jsonl")
    lost = [e for e in events if e["type"] == "task_finished" and e["task_id"] == "2"]
    assert lost[0]["status"] == "failed" and "worker lost" in lost[0]["error"]["message"]
    if retry:
        assert proc.returncode == 0, err
        assert lost[0]["will_retry"] and lost[1]["status"] == "succeeded"
        assert run.successful and run.data.values == [0, 10]
        return
    assert proc.returncode == 1
    assert run.status == "failed"
    assert lost[0]["error"]["type"] == "ProcessExit"  # as a crash: @catch would get its turn
    on_dask.wait_for_workers(2, timeout=60)  # the nanny brings the worker back
    resumed = run_flow(path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    again = Flow("HoldFlow", root=root).latest_run
    assert again.successful and again.data.values == [0, 10]
    assert again.origin_run_id == run.id


def test_without_an_address_a_local_cluster_runs_the_tasks(flow_file) -> None:
    path = flow_file("train.py")
    env = child_env()
    env.pop("FLOWDECK_DASK_SCHEDULER", None)
    result = run_flow(path, "run", "--executor", "dask", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr  # the cluster's own chatter stays off the terminal
    run = Flow("TrainFlow", root=path.parent / ".flowdeck").latest_run
    assert run.successful and run.data.best == 0.01
    started = [e for e in read_events(run.dir / "events.jsonl") if e["type"] == "task_started"]
    assert all(e["worker"].startswith("tcp://127.0.0.1:") for e in started)


def test_a_worker_whose_temporary_folder_is_deep_runs_the_tasks(flow_file,
                                                              tmp_path: Path) -> None:
    """multiprocessing's fork server, which starts the worker's zygotes, listens on a Unix
    socket under $TMPDIR; a socket path holds ~100 bytes. A worker with a deep $TMPDIR
    (a scratch folder per job) failed every task with "AF_UNIX path too long", reported
    as a lost worker; it now runs them (its fork server's folder is a short one)."""
    deep = tmp_path / ("scratch-" + "d" * 50) / ("job-" + "e" * 50)
    deep.mkdir(parents=True)
    scheduler = local_cluster(workers=0)
    worker = subprocess.Popen(
        dask_worker_command(scheduler.scheduler_address), env=child_env(TMPDIR=str(deep)), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    client = distributed.Client(scheduler, set_as_default=False)
    try:
        client.wait_for_workers(1, timeout=120)
        path = flow_file("train.py")
        result = run_flow(path, "run", "--executor", "dask", "--scheduler",
                          scheduler.scheduler_address, timeout=120)
    finally:
        client.close()
        worker.terminate()
        worker.wait(timeout=60)
        scheduler.close()
    assert len(str(deep)) > 100
    assert result.returncode == 0, result.stderr
    assert "AF_UNIX" not in result.stderr
    run = Flow("TrainFlow", root=path.parent / ".flowdeck").latest_run
    assert run.successful and run.data.best == 0.01


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_an_unreachable_scheduler_is_refused_and_records_no_run(flow_file) -> None:
    path = flow_file("train.py")
    address = f"tcp://127.0.0.1:{_free_port()}"
    result = run_flow(path, "run", "--executor", "dask", "--scheduler", address, timeout=120)
    assert result.returncode == 2
    assert f"Cannot reach the Dask scheduler at {address}" in result.stderr
    assert "--scheduler" in result.stderr and "Traceback" not in result.stderr
    runs = path.parent / ".flowdeck" / "TrainFlow" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


class _NotAScheduler:
    """A TCP service on 127.0.0.1 that is not Dask: it greets with a text banner (as SSH
    does) or says nothing at all (as a web server waiting for its request)."""

    def __init__(self, banner: bytes) -> None:
        import threading
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.banner = banner
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.held.append(conn)
            if self.banner:
                conn.sendall(self.banner)

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.mark.parametrize("banner", [b"SSH-2.0-OpenSSH_9.6p1 Debian\r\n", b""],
                         ids=["banner", "silent"])
def test_a_port_where_no_scheduler_listens_is_refused_in_one_line(flow_file,
                                                                  banner: bytes) -> None:
    """A dashboard's port, a web server, an SSH port: the run waited for ever on a silent
    one, crashed with a 69-line traceback on a banner, and printed a traceback 10 s after
    its refusal (the half-made Client closing itself)."""
    service = _NotAScheduler(banner)
    try:
        result = run_flow(flow_file("train.py"), "run", "--executor", "dask", "--scheduler",
                          service.address, timeout=120)
    finally:
        service.close()
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: Cannot reach the Dask scheduler at "
                                    f"{service.address} (")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("address", ["127.0.0.1", "http://127.0.0.1:8786"])
def test_a_malformed_scheduler_address_is_refused_in_one_line(flow_file, address: str) -> None:
    result = run_flow(flow_file("train.py"), "run", "--executor", "dask", "--scheduler",
                      address, timeout=120)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "tcp://HOST:PORT" in result.stderr


def _train_on_a_worker_that_first_runs(preload: str, flow_file,
                                       tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """train.py run on a cluster of one worker that ran `preload` (Python) as it started."""
    (tmp_path / "preload.py").write_text(preload)
    cluster = local_cluster(workers=1, preload=[str(tmp_path / "preload.py")])
    try:
        return run_flow(flow_file("train.py"), "run", "--executor", "dask", "--scheduler",
                        cluster.scheduler_address, timeout=120)
    finally:
        cluster.close()


def test_workers_with_another_flowdeck_are_refused(flow_file, tmp_path: Path) -> None:
    import flowdeck
    result = _train_on_a_worker_that_first_runs(
        "import flowdeck\nflowdeck.__version__ = '0.0.1-skewed'\n", flow_file, tmp_path)
    assert result.returncode == 2
    assert "runs flowdeck 0.0.1-skewed" in result.stderr
    assert f"the orchestrator runs flowdeck {flowdeck.__version__}" in result.stderr


def test_a_worker_that_raises_is_named_as_failing_not_as_lost(flow_file,
                                                              tmp_path: Path) -> None:
    """A worker out of file descriptors (every `os.pipe` fails, as at its fd limit) is
    alive: the attempt's error says the worker could not run the task and why, not that
    it went away."""
    result = _train_on_a_worker_that_first_runs(
        "import errno, os\n"
        "def _no_fds():\n"
        "    raise OSError(errno.EMFILE, 'Too many open files')\n"
        "os.pipe = _no_fds\n", flow_file, tmp_path)
    assert result.returncode == 1
    assert "worker failed: Dask worker tcp://127.0.0.1:" in result.stderr
    assert "could not run the task (OSError: [Errno 24] Too many open files)" in result.stderr
    assert "went away" not in result.stderr and "Traceback" not in result.stderr


def test_importing_flowdeck_and_a_local_run_load_no_dask(tmp_path: Path) -> None:
    flow = tmp_path / "plain.py"
    flow.write_text(
        "import sys\nfrom flowdeck import FlowSpec, step\n\n\n"
        "class PlainFlow(FlowSpec):\n    @step\n    def start(self):\n"
        "        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n\n\n"
        "if __name__ == '__main__':\n    PlainFlow().run()\n"
        "    print('loaded', [m for m in sys.modules if m.split('.')[0] in "
        "('dask', 'distributed')])\n")
    result = subprocess.run([sys.executable, str(flow)], cwd=tmp_path, env=child_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "loaded []" in result.stdout
    code = ("import sys, flowdeck, flowdeck.engine.launch, flowdeck.engine.runtime\n"
            "print([m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')])")
    imported = subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]", imported.stderr


def test_the_clients_log_lines_stay_off_the_users_terminal() -> None:
    """distributed's import sets its logger to INFO on stderr; a run's process shows none
    of its lines (an INFO line with a traceback once ended a cancelled run's output; its
    errors repeated, with tracebacks, what the run says of a scheduler gone), unless the
    user configured distributed's logging."""
    import logging

    import dask

    from flowdeck.engine.executors.dask import quiet_client_logs
    logger = logging.getLogger("distributed")
    before = logger.level
    try:
        logger.setLevel(logging.INFO)  # what `import distributed` leaves
        quiet_client_logs()
        assert not logging.getLogger("distributed.batched").isEnabledFor(logging.INFO)
        assert not logging.getLogger("distributed.client").isEnabledFor(logging.ERROR)
        logger.setLevel(logging.DEBUG)
        with dask.config.set({"distributed.logging": {"distributed": "debug"}}):
            quiet_client_logs()
        assert logger.level == logging.DEBUG  # the user's own choice stays
    finally:
        logger.setLevel(before)


def test_a_scheduler_killed_mid_run_is_said_in_flowdecks_words_only(flow_file,
                                                                    tmp_path: Path) -> None:
    """kill -9 the scheduler while tasks run: they fail as cancelled by the scheduler, and
    the output has that and nothing of Dask's own ("distributed.client - ERROR - Failed to
    reconnect to scheduler", CancelledError tracebacks of the client's close)."""
    path = flow_file("dask/dask_hold.py")
    (path.parent / "hold").touch()
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                                  "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], env=child_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = tmp_path / "out"
    proc: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: _listening(port), "the scheduler to listen",
                 lambda: scheduler.poll() is None)
        with _worker_of(address):
            proc = _run_on(path, address, out)
            wait_for(lambda: "napping 0" in out.read_text(), "the held task to start",
                     lambda: proc is not None and proc.poll() is None)
            scheduler.kill()
            assert proc.wait(timeout=120) == 1, out.read_text()
    finally:
        scheduler.kill()
        scheduler.wait()
        if proc is not None and proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert f"The Dask scheduler at {address} cancelled the task" in text
    assert "Traceback" not in text and "distributed." not in text, text


GROUP_STOPPED = '''
import os
import subprocess
import time

from flowdeck import FlowSpec, step


class GroupStopped(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        child = subprocess.Popen(["sleep", "1000"])
        with open(f"started-{self.input}", "w") as mark:
            mark.write(str(child.pid))
        try:
            time.sleep(600)
        finally:
            open(f"cleaned-{self.input}", "w").close()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GroupStopped()
'''


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_sent_to_the_runs_group_reaches_the_steps_on_a_local_cluster(
        tmp_path: Path, sig: int) -> None:
    """A terminal's Ctrl+C goes to the whole foreground group: the LocalCluster's workers
    were in it and died at once, so a step's `finally:` did not run and its `sleep` child
    lived on. Its workers now leave the group; the run stops its steps itself."""
    path = tmp_path / "stopped.py"
    path.write_text(GROUP_STOPPED)
    env = child_env()
    env.pop("FLOWDECK_DASK_SCHEDULER", None)
    proc = subprocess.Popen([sys.executable, str(path), "run", "--executor", "dask"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    started = [tmp_path / f"started-{i}" for i in (0, 1)]
    wait_for(lambda: all(p.exists() and p.read_text() for p in started),
             "both steps to start their child", lambda: proc.poll() is None)
    children = [int(p.read_text()) for p in started]
    os.killpg(proc.pid, sig)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert (tmp_path / "cleaned-0").exists() and (tmp_path / "cleaned-1").exists(), err
    for pid in children:
        wait_for(lambda pid=pid: not process_alive(pid), f"the step's child {pid} to end")
    assert Flow("GroupStopped", root=tmp_path / ".flowdeck").latest_run.status == "cancelled"


def test_a_worker_that_cannot_see_the_orchestrators_processes_trusts_only_the_record(
        tmp_path: Path) -> None:
    """A worker in a pid namespace of its own (a container on the same host, same host
    name) saw no orchestrator pid and stopped a healthy run: only a worker that sees the
    orchestrator's processes applies the crash rule; the others go by the status word."""
    from flowdeck.engine.executors.dask_worker import RunWatch
    from flowdeck.store.records import hostname
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = tmp_path / "run.json"
    record.write_text(json.dumps({"flow": "F", "run_id": "1796453000000-abcdef",
                                  "status": "running", "pid": gone.pid, "host": hostname(),
                                  "start": 0.0}))
    assert RunWatch(str(record), sees_orchestrator=True)._run_ended()  # crashed: it is gone
    assert not RunWatch(str(record), sees_orchestrator=False)._run_ended()
    record.write_text(record.read_text().replace('"running"', '"failed"'))
    assert RunWatch(str(record), sees_orchestrator=False)._run_ended()


# -- a cluster without workers ------------------------------------------------------------------

WAITS_FOR_A_WORKER = "has no worker now; the tasks wait there until one joins"


@contextlib.contextmanager
def _scheduler_alone() -> Iterator[str]:
    """A real scheduler with no worker (an adaptive cluster at 0); yields its address."""
    alone = local_cluster(workers=0)
    try:
        yield str(alone.scheduler_address)
    finally:
        alone.close()


@contextlib.contextmanager
def _worker_of(address: str) -> Iterator[subprocess.Popen[bytes]]:
    """A `dask worker` process of its own for `address`, killed and reaped at the end."""
    worker = subprocess.Popen(dask_worker_command(address), env=child_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield worker
    finally:
        worker.kill()
        worker.wait()


def _run_on(path: Path, address: str, out: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(out, "wb") as sink:
        return subprocess.Popen([sys.executable, str(path), *args, "run", "--executor", "dask",
                                 "--scheduler", address, "--max-workers", "2"],
                                cwd=path.parent, env=child_env(), stdout=sink,
                                stderr=subprocess.STDOUT)


def test_tasks_wait_for_a_worker_to_join_and_the_run_says_so(flow_file, tmp_path: Path) -> None:
    """docs/scale-out.md: "with no worker yet, tasks wait in the scheduler until one comes".
    The run crashed instead (ValueError: Only use allow_other_workers= if using workers=)
    the moment it submitted its first task; now it says what it waits for, and runs once a
    worker joins."""
    path = flow_file("dask/dask_hold.py")
    out = tmp_path / "out"
    with _scheduler_alone() as address:
        proc = _run_on(path, address, out)
        try:
            wait_for(lambda: WAITS_FOR_A_WORKER in out.read_text(), "the run to say it waits",
                     lambda: proc.poll() is None)
            assert f"dask worker {address}" in out.read_text()  # what to do about it
            with _worker_of(address):
                assert proc.wait(timeout=120) == 0, out.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in out.read_text()
    run = Flow("HoldFlow", root=path.parent / ".flowdeck").latest_run
    assert run.successful and run.data.values == [0, 10]


def test_a_run_waiting_for_a_worker_can_be_cancelled(flow_file, tmp_path: Path) -> None:
    path = flow_file("dask/dask_hold.py")
    out = tmp_path / "out"
    with _scheduler_alone() as address:
        proc = _run_on(path, address, out)
        try:
            wait_for(lambda: WAITS_FOR_A_WORKER in out.read_text(), "the run to say it waits",
                     lambda: proc.poll() is None)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=120) == 130, out.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in out.read_text()
    assert Flow("HoldFlow", root=path.parent / ".flowdeck").latest_run.status == "cancelled"


def test_a_retry_after_every_worker_died_waits_for_a_new_one(flow_file, tmp_path: Path) -> None:
    """The only worker is killed mid-task: the attempt is lost, and its @retry, which
    crashed the run as above (no worker left to pick), waits for the next worker."""
    path = flow_file("dask/dask_hold.py")
    hold = path.parent / "hold"
    hold.touch()
    out = tmp_path / "out"
    root = path.parent / ".flowdeck"
    with _scheduler_alone() as address:
        proc = _run_on(path, address, out, "--with", "retry:times=1")
        try:
            with _worker_of(address) as first:
                wait_for(lambda: "napping 0" in out.read_text(), "the held task to start",
                         lambda: proc.poll() is None)
                first.kill()
            wait_for(lambda: "worker lost" in out.read_text(), "the attempt to be lost",
                     lambda: proc.poll() is None)
            wait_for(lambda: WAITS_FOR_A_WORKER in out.read_text(), "the retry to wait",
                     lambda: proc.poll() is None)
            hold.unlink()
            with _worker_of(address):
                assert proc.wait(timeout=120) == 0, out.read_text()
        finally:
            hold.unlink(missing_ok=True)
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in out.read_text()
    run = Flow("HoldFlow", root=root).latest_run
    assert run.successful and run.data.values == [0, 10]


def _on_scheduler(client, key: str) -> tuple[str, set[str] | None] | None:
    """The scheduler's state of task `key` and the workers it is restricted to."""
    def look(key: str, dask_scheduler) -> tuple[str, set[str] | None] | None:
        ts = dask_scheduler.tasks.get(key)
        return None if ts is None else (ts.state, ts.worker_restrictions)
    return client.run_on_scheduler(look, key)


def _state(client, key: str) -> str | None:
    found = _on_scheduler(client, key)
    return None if found is None else found[0]


@pytest.mark.parametrize("left", ["before-the-submit", "before-the-task-started"])
def test_a_task_sent_to_a_worker_that_left_runs_on_the_next_to_join(left: str) -> None:
    """Second review: a run hung when both workers left at once. A retry went, as every
    attempt goes (`_placement`), to the worker the orchestrator chose, which had left;
    the scheduler, with no worker, kept it waiting still restricted to the gone one, and
    Dask never gives such a task to a worker that joins. The orchestrator's unpin, sent
    when it heard that the worker left, reached the scheduler before the task's own
    submission, failed (KeyError) and was swallowed. Here the scheduler has no worker and
    the task names one it does not have: gone before the submit (that race, made
    certain), or gone after it, before the task started (its one thread busy). The worker
    that joins next must run it."""
    from flowdeck.engine.executors.dask import DaskExecutor, _placement
    with _scheduler_alone() as address:
        executor = DaskExecutor(scheduler=address)
        client = executor.client
        try:
            executor.open(None)
            if left == "before-the-submit":
                gone = "tcp://127.0.0.1:9"  # a worker the scheduler does not have
                future = client.submit(sum, [1, 2], key="pinned-attempt", pure=False,
                                       **_placement(gone))
            else:
                with _worker_of(address) as first:
                    client.wait_for_workers(1, timeout=60)
                    gone = next(iter(client.nthreads()))
                    holder = client.submit(time.sleep, 3600, key="holds-its-thread",
                                           pure=False, workers=[gone])  # (never elsewhere)
                    wait_for(lambda: _state(client, "holds-its-thread") == "processing",
                             "the worker's thread to be taken")
                    future = client.submit(sum, [1, 2], key="pinned-attempt", pure=False,
                                           **_placement(gone))
                    wait_for(lambda: _state(client, "pinned-attempt") == "processing",
                             "the task to be sent to that worker")
                    first.kill()
                    del holder  # (held until the worker went: released, it frees the thread)
                wait_for(lambda: not client.nthreads(), "the scheduler to drop the worker")
            wait_for(lambda: _on_scheduler(client, "pinned-attempt") == ("no-worker", {gone}),
                     "the task to wait, restricted to the gone worker")
            with _worker_of(address):
                try:
                    assert future.result(timeout=60) == 3
                except TimeoutError:
                    pytest.fail("the task never ran on the worker that joined: "
                                f"{_on_scheduler(client, 'pinned-attempt')}")
        finally:
            executor.close(set())
        with distributed.Client(address, set_as_default=False) as other:  # nothing left
            wait_for(lambda: not [name for name in other.run_on_scheduler(_plugins)
                                  if name.startswith("flowdeck")],
                     "the run's scheduler plugin to leave with its client")


def _plugins(dask_scheduler) -> list[str]:
    return list(dask_scheduler.plugins)
