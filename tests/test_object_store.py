"""Artifacts and records in an object store: real flow processes against a real S3
endpoint on localhost (moto's server), read back with the client from `s3://`.

The endpoint is given to every process as users give theirs: `AWS_ENDPOINT_URL`
(botocore's variable, which s3fs honours; `FSSPEC_S3_ENDPOINT_URL` works too). Wrong
keys are refused as S3 refuses them once moto is told to check keys
(`INITIAL_NO_AUTH_ACTION_COUNT`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FLOWS, child_env, run_flow
from scaleout_servers import dask_worker_command, local_cluster, s3_server

FLOW = FLOWS / "object_store_flow.py"
BUCKET = "flowdeck-tests"


def test_a_local_run_never_imports_fsspec(tmp_path: Path) -> None:
    """The core loads fsspec only for an object-store root (needs no s3 extra)."""
    flow = tmp_path / "flow.py"
    shutil.copy(FLOW, flow)
    done = run_flow(flow, "run", env=child_env(FLOWDECK_DATASTORE=""))
    assert done.returncode == 0, done.stderr
    probe = ("import sys; from flowdeck import Flow, namespace; namespace(None); "
             "import flowdeck.store.objectstore, flowdeck.engine.launch; "
             "run = Flow('ObjectStoreFlow').latest_run; "
             "print(run.data.fsspec_loaded, run.data.total, 'fsspec' in sys.modules, "
             "'s3fs' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=child_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "5", "False", "False"]


# -- the S3 endpoint ---------------------------------------------------------------------

class S3:
    """The moto server: its URL, a good user's keys, and an s3fs client for checks."""

    def __init__(self, endpoint: str, key: str, secret: str):
        self.endpoint = endpoint
        self.key = key
        self.secret = secret
        import s3fs
        self.fs = s3fs.S3FileSystem(key=key, secret=secret, endpoint_url=endpoint,
                                    skip_instance_cache=True)

    def env(self, **extra: str) -> dict[str, str]:
        """A flow process's environment: this endpoint, the good keys, no proxy."""
        return child_env(**{"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.key,
                            "AWS_SECRET_ACCESS_KEY": self.secret,
                            "AWS_DEFAULT_REGION": "us-east-1",
                            "NO_PROXY": "127.0.0.1,localhost", **extra})

    def keys(self, prefix: str) -> list[str]:
        self.fs.invalidate_cache()
        return sorted(self.fs.find(f"{BUCKET}/{prefix}"))


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    with s3_server(BUCKET) as endpoint:
        yield S3(endpoint, "testing", "testing")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder holding the flow file."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(FLOW, folder / "flow.py")
    return folder


@pytest.fixture
def url() -> str:
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/runs"


@pytest.fixture
def client(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The client of this process, reading the endpoint with its own (empty) cache and
    from a folder that holds no store: whatever it reads comes from the object store."""
    for name, value in s3.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "reader-cache"))
    monkeypatch.delenv("FLOWDECK_DATASTORE", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    import flowdeck
    flowdeck.namespace(None)
    yield flowdeck
    flowdeck.namespace(flowdeck.default_namespace())


def _run(project: Path, s3: S3, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_flow(project / "flow.py", *args, env=s3.env(**env), timeout=180)


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr


# -- runs ----------------------------------------------------------------------------------

def test_linear_foreach_join_round_trip(s3: S3, project: Path, url: str, client: Any) -> None:
    done = _run(project, s3, "run", "--datastore", url, "--n", "4")
    assert done.returncode == 0, done.stderr
    prefix = url.removeprefix(f"s3://{BUCKET}/")
    keys = s3.keys(prefix)
    assert any("/blobs/" in k for k in keys)
    assert sum(k.endswith("/attempt-0.json") for k in keys) == 1 + 4 + 1 + 1
    assert any(k.endswith("/run.json") for k in keys) and any(k.endswith("/events.jsonl")
                                                              for k in keys)
    # The working copy beside the flow holds records and logs, never a blob.
    local = project / ".flowdeck" / "datastores"
    assert local.is_dir() and not list(local.rglob("blobs"))

    runs = client.Flow("ObjectStoreFlow", root=url).runs()
    assert len(runs) == 1 and runs[0].successful
    run = runs[0]
    assert run.data.total == 0 + 1 + 4 + 9
    assert run.data.fsspec_loaded  # the s3 run loaded it (a local one does not)
    squares = sorted(t.data.sq for t in run["square"].tasks())
    assert squares == [0, 1, 4, 9]
    task = run["square"].tasks()[0]
    assert task.data.big == bytes([7]) * (1 << 20)
    assert "square" in task.stdout
    assert client.Run(run.pathspec, root=url).data.total == 14


def test_a_damaged_blob_in_the_object_store_is_named_by_its_url(s3: S3, project: Path, url: str,
                                                                  client: Any) -> None:
    """The message names the blob where it lives: `s3://bucket/...`, not a path that
    folded the URL's `//` (`s3:/bucket/...`, as a pathlib.Path of the URL did)."""
    done = _run(project, s3, "run", "--datastore", url, "--n", "2")
    assert done.returncode == 0, done.stderr
    for key in s3.keys(url.removeprefix(f"s3://{BUCKET}/")):
        if "/blobs/" in key:
            s3.fs.pipe(key, b"not a blob")
    from flowdeck.store.blobs import BlobDamagedError
    with pytest.raises(BlobDamagedError) as caught:
        _ = client.Flow("ObjectStoreFlow", root=url).latest_run.data.total
    assert f"Artifact blob {url.removesuffix('/runs')}/" in str(caught.value)
    assert "is not a Flowdeck artifact blob" in str(caught.value)


def test_dask_workers_write_to_the_object_store(s3: S3, project: Path, url: str,
                                                client: Any) -> None:
    """Tasks on Dask workers (a LocalCluster the run starts) put their blobs and records
    into the object store, as forked local workers do."""
    pytest.importorskip("distributed", reason="the dask extra is not installed (pip install "
                        "'flowdeck[dask]'); .ci/run installs it")
    done = _run(project, s3, "run", "--datastore", url, "--executor", "dask", "--n", "3")
    assert done.returncode == 0, done.stderr
    assert not list((project / ".flowdeck").rglob("blobs"))
    run = client.Flow("ObjectStoreFlow", root=url).runs()[0]
    assert run.successful and run.data.total == 5
    assert sorted(t.data.sq for t in run["square"].tasks()) == [0, 1, 4]


def test_metaflow_options_and_environment(s3: S3, project: Path, url: str,
                                          client: Any) -> None:
    """Metaflow's `--datastore s3 --datastore-root URL` (before the command) and
    $FLOWDECK_DATASTORE give the same store."""
    done = _run(project, s3, "--datastore", "s3", "--datastore-root", url, "run", "--n", "2")
    assert done.returncode == 0, done.stderr
    env = s3.env(FLOWDECK_DATASTORE=url, FSSPEC_S3_ENDPOINT_URL=s3.endpoint)
    del env["AWS_ENDPOINT_URL"]  # fsspec's own variable gives the endpoint just as well
    done = run_flow(project / "flow.py", "run", "--n", "3", env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    totals = sorted(r.data.total for r in client.Flow("ObjectStoreFlow", root=url).runs())
    assert totals == [1, 5]
    missing = _run(project, s3, "--datastore", "s3", "run")
    assert missing.returncode != 0 and "--datastore-root" in missing.stderr
    _no_traceback(missing)


def test_resume_from_the_object_store(s3: S3, project: Path, url: str, client: Any) -> None:
    failed = _run(project, s3, "run", "--datastore", url, "--max-workers", "1",
                  OBJECT_STORE_FLOW_FAIL="1")
    assert failed.returncode != 0
    origin = client.Flow("ObjectStoreFlow", root=url).runs()[0]
    assert origin.status == "failed"
    # Resume on "another machine": the working copy of the first run is gone.
    shutil.rmtree(project / ".flowdeck")
    resumed = _run(project, s3, "resume", "--datastore", url, "--origin-run-id", origin.id)
    assert resumed.returncode == 0, resumed.stderr
    runs = client.Flow("ObjectStoreFlow", root=url).runs()
    assert len(runs) == 2
    latest = runs[0]
    assert latest.successful and latest.origin_run_id == origin.id
    assert latest.data.total == 5
    assert latest["start"].task.status == "reused"  # its record and blobs came from s3
    assert latest["start"].task.origin_pathspec == f"ObjectStoreFlow/{origin.id}/start/1"
    assert "Not reusing" not in resumed.stderr


def _stored(s3: S3, url: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Every key under the store's prefix, and every attempt record there."""
    keys = s3.keys(url.removeprefix(f"s3://{BUCKET}/"))
    records = [json.loads(s3.fs.cat_file(k)) for k in keys
               if "/attempt-" in k and k.endswith(".json")]
    return keys, records


def _big_digest(tmp: Path) -> str:
    from flowdeck.store.blobs import BlobStore
    sys.path.insert(0, str(FLOWS))
    try:
        from object_store_flow import BIG
    finally:
        sys.path.remove(str(FLOWS))
    return BlobStore(tmp).encode("big", BIG).sha


def test_a_killed_task_leaves_no_artifact(s3: S3, project: Path, url: str, client: Any,
                                          tmp_path: Path) -> None:
    """A task killed between its blob upload and its record: its blob is in the store,
    but no record of it names an artifact; the orchestrator records the death."""
    killed = _run(project, s3, "run", "--datastore", url, "--max-workers", "1",
                  OBJECT_STORE_FLOW_KILL="1")
    assert killed.returncode != 0
    keys, records = _stored(s3, url)
    big = _big_digest(tmp_path)
    assert any(k.endswith(f"/blobs/{big[:2]}/{big}") for k in keys)  # uploaded ...
    dead = [r for r in records if r["step"] == "square" and r["status"] != "succeeded"]
    assert len(dead) == 1 and not dead[0].get("artifacts")  # ... yet no artifact of it
    assert "SIGKILL" in dead[0]["error"]["message"]

    run = client.Flow("ObjectStoreFlow", root=url).runs()[0]
    assert run.status == "failed"
    task = next(t for t in run["square"].tasks() if not t.successful)
    assert "big" not in task and "sq" not in task


def test_a_task_killed_with_its_run_has_no_record(s3: S3, project: Path, url: str,
                                                  client: Any, tmp_path: Path) -> None:
    """Killed with the orchestrator, between its blob upload and its record: nothing in
    the store says the task ran; the run reads as crashed and resume completes it."""
    killed = _run(project, s3, "run", "--datastore", url, "--max-workers", "1",
                  OBJECT_STORE_FLOW_KILL_RUN="1")
    assert killed.returncode != 0
    keys, records = _stored(s3, url)
    big = _big_digest(tmp_path)
    assert any(k.endswith(f"/blobs/{big[:2]}/{big}") for k in keys)
    squares = [r for r in records if r["step"] == "square"]
    assert [r["status"] for r in squares] == ["succeeded"]  # item 0 only: item 1 has none

    run = client.Flow("ObjectStoreFlow", root=url).runs()[0]
    assert run.status == "crashed" and not run.successful
    assert [t.data.sq for t in run["square"].tasks()] == [0]
    with pytest.raises(KeyError, match="has no step 'join'"):  # the client's ClientError
        run["join"]

    resumed = _run(project, s3, "resume", "--datastore", url)
    assert resumed.returncode == 0, resumed.stderr
    latest = client.Flow("ObjectStoreFlow", root=url).runs()[0]
    assert latest.successful and latest.data.total == 5


# -- errors ----------------------------------------------------------------------------------

def test_a_missing_bucket_is_named(s3: S3, project: Path, client: Any) -> None:
    done = _run(project, s3, "run", "--datastore", "s3://no-such-bucket/x")
    assert done.returncode != 0
    assert "s3://no-such-bucket/x" in done.stderr
    assert "bucket `no-such-bucket` does not exist" in done.stderr
    assert "write the store marker" in done.stderr
    _no_traceback(done)
    from flowdeck.store.objectstore import ObjectStoreError
    with pytest.raises(ObjectStoreError, match="bucket `no-such-bucket` does not exist"):
        client.Flow("ObjectStoreFlow", root="s3://no-such-bucket/x")  # not "no runs"


def test_bad_credentials_are_named(s3: S3, project: Path, url: str, client: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    good = _run(project, s3, "run", "--datastore", url)
    assert good.returncode == 0, good.stderr
    # moto checks keys once its allowance of unchecked requests is spent (its server does
    # not check listing signatures right, so only this test turns checking on).
    import moto.settings
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    wrong = {"AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG0", "AWS_SECRET_ACCESS_KEY": "wrong"}
    done = run_flow(project / "flow.py", "run", "--datastore", url,
                    env={**s3.env(), **wrong}, timeout=180)
    assert done.returncode != 0
    assert url in done.stderr and "access denied" in done.stderr
    assert "AWS_ACCESS_KEY_ID" in done.stderr
    _no_traceback(done)
    for name, value in wrong.items():  # the reader says the same, naming what it did
        monkeypatch.setenv(name, value)
    from flowdeck.store.objectstore import ObjectStoreError
    with pytest.raises(ObjectStoreError) as caught:
        client.Flow("ObjectStoreFlow", root=url)
    assert url in str(caught.value) and "list the runs of ObjectStoreFlow" in str(caught.value)


def test_a_task_that_cannot_reach_the_store_fails_naming_it(s3: S3, project: Path,
                                                            url: str) -> None:
    """The run started (the store took its first writes), then a task cannot reach it: the
    task fails with the URL and the operation (its first blob), without a traceback, and
    so does the run."""
    done = _run(project, s3, "run", "--datastore", url, OBJECT_STORE_FLOW_LOSE_STORE="1")
    assert done.returncode != 0
    failure = next(line for line in done.stderr.splitlines() if "Run " in line
                   and " failed: " in line)
    assert " blob " in failure and f"{url}/blobs/" in failure, failure
    assert "cannot be reached" in failure and "AWS_ENDPOINT_URL" in failure
    _no_traceback(done)


def test_an_unreachable_endpoint_is_named(s3: S3, project: Path, url: str) -> None:
    done = _run(project, s3, "run", "--datastore", url, AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert done.returncode != 0
    assert url in done.stderr and "cannot be reached" in done.stderr
    assert "AWS_ENDPOINT_URL" in done.stderr
    _no_traceback(done)


def test_throttling_and_missing_credentials_are_explained() -> None:
    """What s3fs raises once its retries are spent, as a user reads it (the exceptions are
    botocore's and s3fs's own; no endpoint throttles on demand)."""
    botocore = pytest.importorskip("botocore.exceptions", reason="the s3 extra is not "
                                   "installed (pip install 'flowdeck[s3]')")
    from flowdeck.store.objectstore import ObjectStoreError, _explain
    slow = OSError("An error occurred (SlowDown) when calling the PutObject operation: "
                   "Please reduce your request rate.")
    reason, advice = _explain(slow, "s3://b/p/blobs/ab/ab12")
    assert "kept refusing after fsspec's retries" in reason and "--max-workers" in advice
    reason, advice = _explain(botocore.NoCredentialsError(), "s3://b/p")
    assert reason == "no credentials were found" and "AWS_ACCESS_KEY_ID" in advice
    error = ObjectStoreError("s3://b/p/x", "write blob x to", reason, advice)
    assert str(error).startswith("Cannot write blob x to s3://b/p/x: no credentials")


# -- Dask workers on machines that share no folder with the orchestrator --------------------

FAR_FLOW = '''
import os

from flowdeck import FlowSpec, card, step

FLOW_FILE = os.path.abspath(__file__)  # the orchestrator's path, shipped with the class


class FarFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.square, foreach="items")

    @card
    @step
    def square(self):
        self.sq = self.input * self.input
        self.saw_project = os.path.exists(FLOW_FILE)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.saw = [i.saw_project for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    FarFlow()
'''


def _can_hide_folders() -> str | None:
    """Why mount namespaces are unavailable here (None: they work)."""
    if shutil.which("unshare") is None:
        return "util-linux `unshare` is not installed"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True, text=True, timeout=30)
    return None if probe.returncode == 0 else f"unshare -m failed: {probe.stderr.strip()}"


@pytest.fixture
def far_workers(s3: S3, project: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Dask scheduler here and two `dask worker` processes that see an empty folder where
    the project is (each in a mount namespace with a tmpfs over it), as workers on other
    machines would; they reach the object store. Yields the scheduler's address and the
    workers' temporary folder."""
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed "
                                      "(pip install 'flowdeck[dask]'); .ci/run installs it")
    why = _can_hide_folders()
    if why is not None:
        pytest.skip(f"needs a mount namespace to hide the project from the workers: {why}")
    scheduler = local_cluster(workers=0)
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    env = s3.env(TMPDIR=str(worker_tmp))
    hide = 'mount -t tmpfs none "$1" && shift && exec "$@"'
    workers = [subprocess.Popen(
        ["unshare", "-m", "sh", "-c", hide, "sh", str(project),
         *dask_worker_command(scheduler.scheduler_address)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    client = distributed.Client(scheduler, set_as_default=False)
    try:
        client.wait_for_workers(2, timeout=120)
        yield str(scheduler.scheduler_address), worker_tmp
    finally:
        client.close()
        for worker in workers:
            worker.kill()
            worker.wait(timeout=60)
        scheduler.close()


def test_dask_workers_that_share_no_folder_write_to_the_object_store(
        s3: S3, project: Path, url: str, client: Any, far_workers: tuple[str, Path]) -> None:
    """Workers that cannot see the orchestrator's folder run every task: blobs and records
    go to the object store, each record comes back with its task's end into the working
    copy, and the run reads back from S3. A folder store on them is refused by name."""
    address, worker_tmp = far_workers
    (project / "far.py").write_text(FAR_FLOW)
    done = run_flow(project / "far.py", "run", "--datastore", url, "--executor", "dask",
                    "--scheduler", address, env=s3.env(), timeout=300)
    assert done.returncode == 0, done.stderr
    _no_traceback(done)
    assert "total 14" in done.stdout
    run = client.Flow("FarFlow", root=url).runs()[0]
    assert run.successful and run.data.total == 14
    assert run["join"].task.data.saw == [False, False, False]  # the project was not there
    local = project / ".flowdeck" / "datastores"
    assert len(list(local.rglob("attempt-0.json"))) == 1 + 3 + 1 + 1  # shipped back
    assert not list(worker_tmp.rglob("attempt-*.json"))  # taken out of the scratch folder
    from flowdeck.cards import get_cards
    for task in run["square"].tasks():  # the cards too, read back from the object store
        assert "sq" in get_cards(task)[0].get()
    events = [json.loads(line) for line in next(local.rglob("events.jsonl")).read_text()
              .splitlines()]
    ran_on = {e.get("worker") for e in events if e.get("type") == "task_started"}
    assert ran_on and ran_on <= {f"tcp://127.0.0.1:{p}" for p in _worker_ports(address)}

    refused = run_flow(project / "far.py", "run", "--executor", "dask", "--scheduler", address,
                       env=s3.env(FLOWDECK_DATASTORE=""), timeout=300)
    assert refused.returncode != 0
    assert "cannot reach the store folder" in refused.stderr
    assert "--datastore s3://" in refused.stderr
    _no_traceback(refused)


def _worker_ports(address: str) -> set[int]:
    import distributed
    with distributed.Client(address, set_as_default=False, timeout=30) as probe:
        return {int(w.rsplit(":", 1)[1]) for w in probe.scheduler_info()["workers"]}


def test_an_unchanged_value_keeps_its_older_name_in_the_object_store(
        s3: S3, url: str, client: Any, tmp_path: Path) -> None:
    """A large artifact an older Flowdeck (or a Python without blake3) named by the BLAKE2
    tree is, read and not changed, still that blob: the task keeps its reference (an object
    store's blob is compared by name, not fetched), instead of storing it again."""
    np = pytest.importorskip("numpy")
    from flowdeck.store.blobs import LEAF_SIZE, BlobRef, BlobStore, _byte_view, _tree_digest
    store = BlobStore(tmp_path / "copy", datastore=url)
    value = np.arange(LEAF_SIZE // 8 + 999, dtype=np.float64)
    blob = store.encode("big", value)
    older = _tree_digest([_byte_view(c) for c in blob.chunks])
    store.backend.write(store.path(older), blob.chunks)
    ref = BlobRef(older, blob.size, blob.type)
    assert len(blob.sha) == 64 and store.holds(ref, blob)
    assert not store.holds(ref, store.encode("big", value + 1))
    assert np.array_equal(store.get(older), value)


# -- where the store options go ----------------------------------------------------------------

def _advised(stderr: str) -> list[list[str]]:
    """The commands an error says to run, as argv lists."""
    import re
    import shlex
    return [shlex.split(c) for c in re.findall(r"`(python [^`]+)`", stderr)]


def _as_advised(project: Path, s3: S3, argv: list[str], url: str,
                ) -> subprocess.CompletedProcess[str]:
    """An advised command run exactly as said (this interpreter for `python`), with the
    advice's placeholder URL replaced by the test's."""
    assert argv[0] == "python" and argv[1] == "flow.py", argv
    words = [url if word == "s3://BUCKET/PREFIX" else word for word in argv[2:]]
    return _run(project, s3, *words)


def test_datastore_s3_without_its_url_advises_commands_that_work(
        s3: S3, project: Path, url: str, client: Any) -> None:
    """`run --datastore s3` said "add --datastore-root s3://BUCKET/PREFIX"; added after
    `run`, as the user did, it was refused ("no option --datastore-root"): Metaflow
    takes it only before the command. Each command the advice names runs."""
    missing = _run(project, s3, "run", "--datastore", "s3", "--n", "1")
    assert missing.returncode == 2
    _no_traceback(missing)
    advised = _advised(missing.stderr)
    assert len(advised) == 2, missing.stderr
    for argv in advised:
        done = _as_advised(project, s3, argv, url)
        assert done.returncode == 0, (argv, done.stderr)
    misplaced = _run(project, s3, "run", "--datastore", "s3", "--datastore-root", url,
                     "--n", "1")
    assert misplaced.returncode == 2
    assert "--datastore-root goes before the command `run`" in misplaced.stderr
    [argv] = _advised(misplaced.stderr)
    assert argv == ["python", "flow.py", "--datastore-root", url, "run", "--datastore", "s3",
                    "--n", "1"]
    done = _as_advised(project, s3, argv, url)
    assert done.returncode == 0, done.stderr
    assert len(client.Flow("ObjectStoreFlow", root=url).runs()) == 3


def test_a_folder_given_to_datastore_is_advised_to_datastore_root(
        s3: S3, project: Path, tmp_path: Path) -> None:
    folder = tmp_path / "runs here"
    folder.mkdir()
    refused = _run(project, s3, "run", "--datastore", str(folder))
    assert refused.returncode == 2
    _no_traceback(refused)
    [argv] = _advised(refused.stderr)
    assert argv == ["python", "flow.py", "--datastore-root", str(folder), "run"]
    done = _as_advised(project, s3, argv, "")
    assert done.returncode == 0, done.stderr
    assert (folder / "ObjectStoreFlow" / "runs").is_dir()


@pytest.mark.parametrize("bad, said", [
    ("s3://", "it names no bucket"),
    ("s3:///prefix", "it names no bucket"),
    ("ftp://x/p", "ftp:// is no object store Flowdeck writes to"),
])
def test_a_malformed_store_url_is_refused_before_anything_is_written(
        s3: S3, project: Path, bad: str, said: str) -> None:
    """`--datastore s3://` went to S3 and came back as botocore's "ParamValidationError:
    Invalid length for parameter Key"; `--datastore ftp://x/p` was taken, then failed with
    advice about $AWS_ENDPOINT_URL."""
    headless = [sys.executable, "-m", "flowdeck_desktop", "run", "flow.py", "--datastore", bad]
    for done in (_run(project, s3, "run", "--datastore", bad),
                 _run(project, s3, "run", FLOWDECK_DATASTORE=bad),
                 subprocess.run(headless, cwd=project, env=s3.env(), capture_output=True,
                                text=True, timeout=180)):
        assert done.returncode == 2, done.stderr
        assert said in done.stderr and "s3://BUCKET/PREFIX" in done.stderr, done.stderr
        assert "ParamValidationError" not in done.stderr and "AWS_ENDPOINT_URL" not in \
            done.stderr
        _no_traceback(done)
    assert not (project / ".flowdeck" / "datastores").exists()


def test_metaflow_lists_the_flows_in_an_object_store(s3: S3, project: Path, url: str,
                                                     client: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`Metaflow(root='s3://...').flows` was [] and its roots `[PosixPath('s3:/...')]` (the
    URL made a path); so with $FLOWDECK_DATASTORE, while `Flow(name)` read the runs."""
    done = _run(project, s3, "run", "--datastore", url, "--n", "1")
    assert done.returncode == 0, done.stderr
    given = client.Metaflow(root=url)
    assert [flow.id for flow in given.flows] == ["ObjectStoreFlow"]
    assert all("s3:" not in str(root) for root in given.roots)
    assert given.flows[0].latest_run.data.total == 0
    monkeypatch.setenv("FLOWDECK_DATASTORE", url)
    assert [flow.id for flow in client.Metaflow().flows] == ["ObjectStoreFlow"]
    assert client.Metaflow(root=f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}").flows == []
    from flowdeck.store.objectstore import ObjectStoreError
    with pytest.raises(ObjectStoreError, match="bucket `no-such-bucket` does not exist"):
        list(client.Metaflow(root="s3://no-such-bucket/x"))  # not "no flows"


def test_a_worker_that_cannot_reach_the_store_is_named_once_with_its_endpoint(
        s3: S3, project: Path, url: str) -> None:
    """A `dask worker` started without $AWS_ENDPOINT_URL, while this machine's endpoint
    works: the failure said "Check ... ($AWS_ENDPOINT_URL ...)" as if of this machine,
    twice (its record, then its blob), as "step `start` raised ObjectStoreError"."""
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed "
                                      "(pip install 'flowdeck[dask]'); .ci/run installs it")
    scheduler = local_cluster(workers=0)
    env = s3.env()
    del env["AWS_ENDPOINT_URL"]
    worker = subprocess.Popen(dask_worker_command(scheduler.scheduler_address), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with distributed.Client(scheduler, set_as_default=False) as probe:
            probe.wait_for_workers(1, timeout=120)
            [address] = probe.scheduler_info()["workers"]
        done = run_flow(project / "flow.py", "run", "--datastore", url, "--executor", "dask",
                        "--scheduler", scheduler.scheduler_address, env=s3.env(), timeout=300)
    finally:
        worker.kill()
        worker.wait(timeout=60)
        scheduler.close()
    assert done.returncode != 0
    _no_traceback(done)
    failure = next(line for line in done.stderr.splitlines() if line.startswith("Run "))
    assert "step `start` (task 1) could not use the store: " in failure, failure
    assert f"Worker {address} could not write blob" in failure, failure
    assert "the worker used AWS's own" in failure and "$AWS_ENDPOINT_URL" in failure
    assert "every worker, in the environment `dask worker` starts in" in failure
    assert "ObjectStoreError" not in done.stderr
    assert "attempt record" not in done.stderr  # the same store's failure, said once


ZYGOTE_PROBE = '''
import os

from flowdeck import FlowSpec, step


class ZygoteProbe(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.probe, foreach="items")

    @step
    def probe(self):
        zygote = os.getppid()  # the flow's zygote on its Dask worker forked this task
        with open(f"/proc/{zygote}/maps") as maps:
            self.client_in_zygote = "/aiohttp/" in maps.read()
        self.zygote_threads = len(os.listdir(f"/proc/{zygote}/task"))
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = [(i.client_in_zygote, i.zygote_threads) for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ZygoteProbe()
'''


def test_a_dask_workers_tasks_inherit_the_object_stores_client_modules(
        s3: S3, tmp_path: Path, url: str, client: Any) -> None:
    """Each task on a Dask worker imported s3fs (aiobotocore, aiohttp) itself: 0.36 s of a
    trivial task's 0.5-0.9 s (bench/README.md). The zygote that forks them imports it
    once, before its first fork, and starts nothing of it (no loop thread, no
    connection: those do not survive a fork), so it stays single-threaded."""
    pytest.importorskip("distributed", reason="the dask extra is not installed (pip install "
                        "'flowdeck[dask]'); .ci/run installs it")
    path = tmp_path / "probe.py"
    path.write_text(ZYGOTE_PROBE)
    done = run_flow(path, "run", "--datastore", url, "--executor", "dask", env=s3.env(),
                    timeout=180)
    assert done.returncode == 0, done.stderr
    run = client.Flow("ZygoteProbe", root=url).latest_run
    assert run.successful and run["join"].task.data.seen == [(True, 1)] * 3
