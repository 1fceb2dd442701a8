"""Real servers for the scale-out tests (issue 12), started once per test module: a Dask
LocalCluster of two worker processes and an S3 endpoint (moto's server) on localhost.

Each is skipped, with the reason shown, only where its extra is not installed;
`.ci/run` installs them, so CI never skips them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def local_cluster(workers: int = 2, **extra: Any) -> Any:
    """A Dask LocalCluster of single-threaded worker processes (with nannies, which restart
    a killed one) on 127.0.0.1, no dashboard, its logs quiet; `extra`: LocalCluster's
    other arguments (a worker `preload`)."""
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed "
                                      "(pip install 'flowdeck[dask]'); .ci/run installs it")
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None,
                                    silence_logs=logging.ERROR,
                                    scheduler_kwargs={"dashboard": False,
                                                      "dashboard_address": ":0"}, **extra)



def dask_worker_command(address: str) -> list[str]:
    """A `dask worker` process of its own for the scheduler at `address`: one thread, no
    nanny, no dashboard, on 127.0.0.1 (a test starts it with the environment it studies)."""
    return [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
            "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]

@contextmanager
def dask_cluster(workers: int = 2) -> Iterator[Any]:
    """A `distributed.Client` of a `local_cluster`, its workers up."""
    import distributed
    local = local_cluster(workers)
    client = distributed.Client(local, set_as_default=False)
    try:
        client.wait_for_workers(workers, timeout=60)
        yield client
    finally:
        client.close()
        local.close()


@contextmanager
def s3_server(bucket: str, key: str = "testing", secret: str = "testing") -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 with `bucket` made; yields its endpoint URL."""
    pytest.importorskip("s3fs", reason="the s3 extra is not installed (pip install "
                        "'flowdeck[s3]'); .ci/run installs it")
    server_module = pytest.importorskip("moto.server", reason="moto[server] is not "
                                        "installed; .ci/run installs it")
    import boto3
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id=key, aws_secret_access_key=secret
                     ).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
