"""Make or connect to a Dask cluster: local CPU, local GPU (dask-cuda) or remote.

GPU workers get the ``{"GPU": 1}`` resource that :func:`s2cube.models.predict` annotates its
tasks with when ``device="cuda"``. dask-cuda is imported only when a GPU cluster is requested
(it does not import on CPU-only machines).
"""

from __future__ import annotations

from typing import Any

from s2cube.errors import InputError, MissingDependencyError, S2CubeError

__all__ = ["connect", "cuda_available", "make_cluster"]


def cuda_available() -> bool:
    """Whether this process sees a CUDA GPU (False when torch is not installed)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _resolve_gpu(gpu: bool | None) -> bool:
    import dask

    if gpu is None:
        gpu = dask.config.get("s2cube.cluster.gpu", None)
    if gpu is None:
        return cuda_available()
    if gpu and not cuda_available():
        raise S2CubeError(
            "gpu=True but no CUDA GPU is visible (torch.cuda.is_available() is False); "
            "run without --gpu or on a machine with an NVIDIA GPU and CUDA torch"
        )
    return bool(gpu)


def make_cluster(
    *,
    gpu: bool | None = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    **kwargs: Any,
) -> Any:
    """A local cluster: ``LocalCUDACluster`` (one worker per GPU) or ``LocalCluster``.

    Parameters
    ----------
    gpu:
        ``True`` for GPU workers, ``False`` for CPU, ``None`` (default) for GPU when CUDA is
        visible (``s2cube.cluster.gpu`` in dask config overrides).
    n_workers, threads_per_worker:
        Passed on (for GPU clusters ``n_workers`` defaults to the number of GPUs and
        ``threads_per_worker`` to 2: enough to overlap reads with inference).
    **kwargs:
        Passed on to the cluster class (e.g. ``dashboard_address``, ``processes``).

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(make_cluster(gpu=False, n_workers=1))  # doctest: +SKIP
    """
    if n_workers is not None and n_workers < 1:
        raise InputError(f"n_workers={n_workers}; expected a positive number or None")
    if threads_per_worker is not None and threads_per_worker < 1:
        raise InputError(f"threads_per_worker={threads_per_worker}; expected >= 1 or None")
    if _resolve_gpu(gpu):
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as exc:
            raise MissingDependencyError(
                f"a GPU cluster needs dask-cuda, which failed to import ({exc}); install it "
                "with: pip install 's2cube[gpu]' (it also needs cuda-bindings)"
            ) from exc
        resources = {"GPU": 1, **kwargs.pop("resources", {})}
        return LocalCUDACluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker or 2,
            resources=resources,
            **kwargs,
        )
    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, **kwargs)


def connect(address: str | None = None, *, gpu: bool | None = None, **kwargs: Any) -> Any:
    """A ``distributed.Client``: to ``address`` (a scheduler such as ``tcp://host:8786``), or
    to a new local cluster from :func:`make_cluster` when ``address`` is ``None``.

    Examples
    --------
    >>> client = connect()  # doctest: +SKIP
    >>> client = connect("tcp://scheduler:8786")  # doctest: +SKIP
    """
    from distributed import Client

    if address is not None:
        if gpu is not None or kwargs:
            raise InputError(
                "gpu/cluster options apply to a new local cluster only; an existing scheduler "
                f"at {address!r} has its own workers. Drop them or pass address=None"
            )
        return Client(address)
    cluster = make_cluster(gpu=gpu, **kwargs)
    client = Client(cluster)
    return client
