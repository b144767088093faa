"""Cluster construction: CPU machines never import dask_cuda."""

from __future__ import annotations

import sys

import pytest

from s2cube.cluster import connect, cuda_available, make_cluster
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
