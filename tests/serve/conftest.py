"""Fixtures for the serve tests: a store made by the real pipeline, with overviews, and a live
server on a free loopback port (one per test module, in a thread)."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CATALOG = DATA / "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m" / "catalog.json"
BBOX = (15.3, 45.9, 16.6, 46.9)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn in a daemon thread; ``url`` is its base URL."""

    def __init__(self, app: object) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real 33TWL/33TWM catalog mosaicked by the pipeline (1/1000°, 0.5° cells) + overviews."""
    if not CATALOG.is_file():
        pytest.skip(f"real test data missing: {CATALOG}")
    import s2cube
    from s2cube.grid import GlobalGrid
    from s2cube.overviews import build_overviews

    store = tmp_path_factory.mktemp("real") / "mosaic.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s2cube.mosaic(
            str(CATALOG),
            store=str(store),
            bbox=BBOX,
            grid=GlobalGrid(resolution=1 / 1000, cell_size=0.5),
        )
    build_overviews(store)
    return store


@pytest.fixture(scope="module")
def live(real_store: Path) -> Iterator[LiveServer]:
    from s2cube.serve import create_app

    with LiveServer(create_app(real_store)) as srv:
        yield srv


@pytest.fixture(scope="session")
def sr_store(real_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``real_store`` with a ×4 super-resolution product of two of its cells."""
    import shutil

    store = tmp_path_factory.mktemp("sr") / "mosaic.zarr"
    shutil.copytree(real_store, store)
    from serve_stores import CELL_A, CELL_B, write_superres

    write_superres(store, 4, (CELL_A, CELL_B))
    return store


@pytest.fixture(scope="module")
def live_sr(sr_store: Path) -> Iterator[LiveServer]:
    from s2cube.serve import create_app

    with LiveServer(create_app(sr_store)) as srv:
        yield srv
