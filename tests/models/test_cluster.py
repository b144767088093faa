"""Cluster construction and the one client factory: CPU machines never import dask_cuda."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import s2cube.cluster as cluster_mod
from s2cube.cluster import connect, cuda_available, get_client, make_cluster
from s2cube.errors import InputError, S2CubeError


@pytest.mark.skipif(cuda_available(), reason="checks the CPU fallback")
def test_cpu_machine_gets_a_local_cluster() -> None:
    from distributed import LocalCluster

    with make_cluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        assert type(cluster) is LocalCluster
    assert "dask_cuda" not in sys.modules
    with pytest.raises(S2CubeError, match="no CUDA GPU"):
        make_cluster(gpu=True)
    assert "dask_cuda" not in sys.modules


def test_connect_runs_work_and_validates() -> None:
    client = connect(
        gpu=False, n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    )
    try:
        assert client.submit(sum, [1, 2]).result() == 3
    finally:
        client.close()
        client.cluster.close()
    with pytest.raises(InputError, match="existing scheduler"):
        connect("tcp://127.0.0.1:1", gpu=True)
    with pytest.raises(InputError, match="n_workers"):
        make_cluster(gpu=False, n_workers=0)


@pytest.mark.gpu
def test_gpu_cluster_has_gpu_resource() -> None:
    pytest.importorskip("dask_cuda")
    from distributed import Client

    with make_cluster(gpu=True, n_workers=1) as cluster, Client(cluster) as client:
        info = client.scheduler_info()["workers"]
        assert all(w["resources"].get("GPU") == 1 for w in info.values())


# --------------------------------------------------------------------------- get_client


@pytest.fixture
def no_default_client() -> None:
    from distributed import default_client

    with pytest.raises(ValueError):
        default_client()  # these tests are about the state without one


def test_get_client_passes_a_given_client_through() -> None:
    given = object()
    assert get_client(client=given) is given
    # a held client wins over an address or local (nothing is connected or started)
    assert get_client("tcp://127.0.0.1:1", client=given, local=True) is given


def test_get_client_without_a_client_is_none(no_default_client: None) -> None:
    assert get_client() is None  # dask's local threaded scheduler runs the work


def test_get_client_returns_the_active_default_client(no_default_client: None) -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        assert get_client() is client


def test_get_client_unreachable_scheduler_is_an_input_error(
    monkeypatch: pytest.MonkeyPatch, no_default_client: None
) -> None:
    from dask.utils import parse_timedelta

    assert parse_timedelta(cluster_mod.CONNECT_TIMEOUT) <= 10  # a typo must fail fast
    monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT", "2s")
    address = f"tcp://127.0.0.1:{_free_port()}"  # nobody listens there
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"dask scheduler") as info:
        get_client(address)
    assert time.monotonic() - t0 < 30
    assert address in str(info.value)
    assert "leave the address out" in str(info.value)
    with pytest.raises(InputError, match="'not-an-address' is not a dask scheduler address"):
        get_client("not-an-address")
    assert get_client() is None  # a failed connection leaves no default client behind


def test_get_client_validates_before_connecting() -> None:
    # no scheduler listens on port 1: these must fail on the arguments, not on the connection
    with pytest.raises(InputError, match="pass one of them"):
        get_client("tcp://127.0.0.1:1", local=True)
    with pytest.raises(InputError, match="n_workers apply to a new local cluster only"):
        get_client("tcp://127.0.0.1:1", n_workers=2)


def test_get_client_local_starts_a_cluster(no_default_client: None) -> None:
    client = get_client(local=True, gpu=False, n_workers=1, threads_per_worker=1)
    try:
        assert client.submit(sum, [1, 2]).result() == 3
        assert len(client.scheduler_info()["workers"]) == 1
    finally:
        client.close()
        client.cluster.close()


@pytest.fixture
def scheduler_address(tmp_path: Path) -> Iterator[str]:
    """A real ``dask scheduler`` and one ``dask worker``, as separate processes on 127.0.0.1."""
    scheduler_file = tmp_path / "scheduler.json"
    dask_cli = [sys.executable, "-m", "dask"]
    procs = [
        subprocess.Popen(
            [*dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
            + ["--scheduler-file", str(scheduler_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert procs[0].poll() is None, "dask scheduler exited"
            assert time.monotonic() < deadline, "dask scheduler did not start within 60 s"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(
            subprocess.Popen(
                [*dask_cli, "worker", address, "--nthreads", "1", "--no-dashboard"]
                + ["--no-nanny", "--host", "127.0.0.1"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def test_get_client_connects_to_a_running_scheduler(scheduler_address: str) -> None:
    client = get_client(scheduler_address)
    try:
        client.wait_for_workers(1, timeout=60)
        assert client.scheduler.address == scheduler_address
        assert client.submit(sum, [1, 2]).result() == 3
    finally:
        client.close()
    again = connect(scheduler_address)  # connect(address) is get_client(address)
    try:
        assert again.submit(pow, 2, 5).result() == 32
    finally:
        again.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
