"""Shared fixtures: real data in ../shared/data, the synthetic sample catalog, a local STAC API."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from realdata import REAL_BBOX, REAL_CATALOG, REPO, SHARED_DATA  # noqa: F401

warnings.filterwarnings("ignore", category=PendingDeprecationWarning)


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("DASK_DISTRIBUTED__WORKER__DAEMON", "False")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (expected ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_catalog(shared_data: Path) -> Path:
    if not REAL_CATALOG.exists():
        pytest.skip(f"{REAL_CATALOG} is missing")
    return REAL_CATALOG


@pytest.fixture(scope="session")
def sample_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in synthetic catalog (generated once per test run)."""
    from s2cube.testing import make_sample_catalog

    return make_sample_catalog(tmp_path_factory.mktemp("sample"), seed=0)


@pytest.fixture(scope="session")
def stac_api(real_catalog: Path) -> Iterator[str]:
    """A real STAC API (stac-fastapi-pgstac + PostgreSQL/PostGIS) on 127.0.0.1, real items.

    The server lives in ``tests/support`` (test infrastructure, not shipped in the wheel).
    """
    from support.stac_api import serve_catalog

    try:
        server = serve_catalog(real_catalog)
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"local STAC API unavailable: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """A real S3 server (moto's server mode, as s3fs's own tests use) on 127.0.0.1.

    Its endpoint and credentials go into the environment (``AWS_ENDPOINT_URL``...), so the
    package, subprocesses and plain xarray reach it as they would reach AWS; the returned
    mapping is the same as explicit fsspec ``storage_options``.
    """
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    # fsspec caches filesystems by their arguments: one made from the environment before
    # (another server, another endpoint) must not serve these tests
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        yield {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_bucket(s3_server: dict[str, str]) -> str:
    """A new, empty bucket on the local S3 server: ``s3://<name>``."""
    import uuid

    import s3fs

    name = f"s2cube-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**s3_server).mkdir(name)
    return f"s3://{name}"
