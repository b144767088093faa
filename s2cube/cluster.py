"""Make or connect to a Dask cluster: local CPU, local GPU (dask-cuda) or remote.

:func:`get_client` is the one client factory of s2cube (the driver, the CLI and the tools ask
it): a given client, a scheduler address, a new local cluster, or the active default client.
:func:`make_cluster` builds the local clusters.

GPU workers get the ``{"GPU": 1}`` resource that :func:`s2cube.models.predict` annotates its
tasks with when ``device="cuda"``. dask-cuda is imported only when a GPU cluster is requested
(it does not import on CPU-only machines).
"""

from __future__ import annotations

from typing import Any

from s2cube.errors import InputError, MissingDependencyError, S2CubeError

__all__ = ["CONNECT_TIMEOUT", "connect", "cuda_available", "get_client", "make_cluster"]

#: How long :func:`get_client` waits for a scheduler address to answer (a dask duration):
#: long enough for a scheduler on another machine, short enough that a typo fails fast.
CONNECT_TIMEOUT = "10s"


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


def get_client(
    address: str | None = None,
    *,
    client: Any = None,
    local: bool = False,
    gpu: bool | None = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    dashboard_address: str | None = ":0",
) -> Any | None:
    """The dask client to run on: given, connected, started locally, or the active default.

    In order of precedence:

    1. ``client`` when given (returned as is);
    2. a new ``distributed.Client`` connected to the scheduler at ``address``;
    3. with ``local=True``, a ``Client`` on a new local cluster from :func:`make_cluster`
       (the caller closes both: ``client.close(); client.cluster.close()``);
    4. otherwise the active default ``distributed`` client, or ``None`` when there is none
       (then dask's local threaded scheduler runs the work).

    Parameters
    ----------
    address : str, optional
        A running scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    client : distributed.Client, optional
        A client the caller already holds.
    local : bool, default False
        Start a local cluster (ignored when ``client`` is given).
    gpu, n_workers, threads_per_worker, dashboard_address
        Options of the new local cluster (see :func:`make_cluster`); ``dashboard_address=":0"``
        picks a free port, so two runs on one machine do not collide.  Without ``local`` they are
        not used.

    Returns
    -------
    distributed.Client or None

    Raises
    ------
    InputError
        If ``address`` is malformed or no scheduler answers there within
        :data:`CONNECT_TIMEOUT`, or if ``address`` is combined with ``local=True`` or with
        local-cluster options (an existing scheduler has its own workers).

    Examples
    --------
    >>> get_client() is None  # no default client: dask's local scheduler
    True
    >>> client = get_client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> client = get_client(local=True, n_workers=2)  # doctest: +SKIP
    """
    if client is not None:
        return client
    if address is not None:
        # validated before any connection: an option that would be dropped is a mistake
        if local:
            raise InputError(
                f"local=True starts a new cluster, but a scheduler address {address!r} was given "
                "too; pass one of them"
            )
        options = {"gpu": gpu, "n_workers": n_workers, "threads_per_worker": threads_per_worker}
        given = sorted(k for k, v in options.items() if v is not None)
        if given:
            raise InputError(
                f"{', '.join(given)} apply to a new local cluster only; an existing scheduler at "
                f"{address!r} has its own workers. Drop them or leave the address out"
            )
        return _connect(address)
    if local:
        from distributed import Client

        cluster = make_cluster(
            gpu=gpu,
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            dashboard_address=dashboard_address,
        )
        try:
            return Client(cluster)
        except BaseException:
            cluster.close()
            raise
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:  # no client in this process
        return None


def _connect(address: str) -> Any:
    """A client on the scheduler at ``address``; an unreachable one is an :class:`InputError`."""
    from distributed import Client
    from distributed.comm import get_address_host_port, parse_address

    # checked before Client(): a Client that fails on a malformed address stays registered as
    # the default client (distributed 2026.8), and every later compute would wait on it
    try:
        scheme, _ = parse_address(address)
        if scheme in ("tcp", "tls", "ws", "wss"):
            get_address_host_port(address)
    except ValueError as exc:
        raise InputError(
            f"{address!r} is not a dask scheduler address ({exc}); pass one such as "
            "'tcp://10.0.0.5:8786' (what `dask scheduler` prints) or leave the address out to "
            "run on a local cluster"
        ) from exc
    try:
        return Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, ValueError) as exc:  # OSError: nobody answered within the timeout
        raise InputError(
            f"cannot connect to the dask scheduler at {address!r}: {exc}; start one with "
            "`dask scheduler` (and workers with `dask worker ADDRESS`) or leave the address "
            "out to run on a local cluster"
        ) from exc


def connect(address: str | None = None, *, gpu: bool | None = None, **kwargs: Any) -> Any:
    """A ``distributed.Client``: to ``address`` (a scheduler such as ``tcp://host:8786``), or
    to a new local cluster from :func:`make_cluster` when ``address`` is ``None``.

    The address case is :func:`get_client` (an unreachable scheduler is an
    :class:`~s2cube.errors.InputError`); ``**kwargs`` go to :func:`make_cluster`.

    Examples
    --------
    >>> client = connect()  # doctest: +SKIP
    >>> client = connect("tcp://scheduler:8786")  # doctest: +SKIP
    """
    if address is not None:
        if gpu is not None or kwargs:
            raise InputError(
                "gpu/cluster options apply to a new local cluster only; an existing scheduler "
                f"at {address!r} has its own workers. Drop them or pass address=None"
            )
        return get_client(address)
    from distributed import Client

    # not get_client(local=True): connect passes any LocalCluster option (processes, ...) on
    cluster = make_cluster(gpu=gpu, **kwargs)
    return Client(cluster)
