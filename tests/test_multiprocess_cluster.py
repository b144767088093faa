"""``s2cube mosaic --scheduler`` on a real multi-process cluster: one ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1, started in a working directory of their own.

On the real 120 m fixture: a relative ``--store`` reaches the workers as an absolute path, a
worker killed mid-run (SIGKILL) costs nothing, and the store equals a run without a cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from realdata import REAL_CATALOG

import s2cube
from s2cube.grid import GlobalGrid
from s2cube.store import read_manifest

pytestmark = pytest.mark.skipif(not REAL_CATALOG.exists(), reason=f"{REAL_CATALOG} is absent")

BBOX = (15.9, 46.0, 16.2, 46.3)  # 3 × 3 cells where both tiles overlap
GRID = GlobalGrid(resolution=Fraction(1, 800), cell_size=Fraction(1, 10), chunk_size=80)
GRID_FLAGS = ["--resolution", "1/800", "--cell-size", "1/10", "--chunk-size", "80"]
VARS = ("red", "green", "blue", "nir", "date", "scene", "clear_count")
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


class Cluster:
    def __init__(self, address: str, workers: list[subprocess.Popen[bytes]], cwd: Path):
        self.address, self.workers, self.cwd = address, workers, cwd


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """``dask scheduler`` + two ``dask worker`` (no nanny: a killed worker stays dead)."""
    cwd = tmp_path / "workers-cwd"
    cwd.mkdir()
    scheduler_file = tmp_path / "scheduler.json"
    dask_cli = [sys.executable, "-m", "dask"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": cwd, "env": ENV}
    procs = [
        subprocess.Popen(
            [*dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
            + ["--scheduler-file", str(scheduler_file)],
            **quiet,  # type: ignore[call-overload]
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert procs[0].poll() is None, "dask scheduler exited"
            assert time.monotonic() < deadline, "dask scheduler did not start within 60 s"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = [
            subprocess.Popen(
                [*dask_cli, "worker", address, "--nthreads", "1", "--no-dashboard"]
                + ["--no-nanny", "--host", "127.0.0.1", "--name", f"w{i}"],
                **quiet,  # type: ignore[call-overload]
            )
            for i in range(2)
        ]
        procs += workers
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield Cluster(address, workers, cwd)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same mosaic without any cluster (dask's threads in this process)."""
    store = tmp_path_factory.mktemp("ref") / "ref.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = s2cube.mosaic(
            str(REAL_CATALOG), store=store, bbox=BBOX, grid=GRID, start="2023-08-01",
            end="2023-08-31",
        )  # fmt: skip
    assert len(report.written) >= 6
    return store


def assert_same_store(a: Path, b: Path) -> None:
    assert sorted(read_manifest(a)) == sorted(read_manifest(b))
    assert s2cube.scene_table(a).equals(s2cube.scene_table(b))
    da_, db_ = (s2cube.open_store(p, bbox=BBOX).load() for p in (a, b))
    for v in VARS:
        np.testing.assert_array_equal(da_[v].values, db_[v].values, err_msg=v)
    assert (da_.red > 0).mean() > 0.5  # real pixels, not two empty stores


def test_relative_store_and_a_killed_worker(cluster: Cluster, reference: Path, tmp_path: Path):
    driver_cwd = tmp_path / "driver-cwd"
    driver_cwd.mkdir()
    args = [
        sys.executable, "-m", "s2cube.cli", "mosaic", "--catalog", str(REAL_CATALOG),
        "--bbox", *map(str, BBOX), "--start", "2023-08-01", "--end", "2023-08-31",
        "--store", "rel.zarr", *GRID_FLAGS, "--scheduler", cluster.address,
    ]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=driver_cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    manifest = driver_cwd / "rel.zarr" / "s2cube_manifest"
    killed_after = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_dir() and len(list(manifest.glob("r*c*.json"))) >= 1:
            victim = cluster.workers[0]
            victim.send_signal(signal.SIGKILL)  # mid-run: cells are still to be written
            victim.wait(10)
            killed_after = len(list(manifest.glob("r*c*.json")))
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=240)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, err.decode()[-3000:]
    assert killed_after is not None, "the run ended before a worker could be killed"
    total = len(read_manifest(reference))
    assert killed_after < total, f"killed too late ({killed_after}/{total} cells)"
    assert cluster.workers[0].returncode == -signal.SIGKILL
    assert cluster.workers[1].poll() is None  # the survivor finished the run
    # progress from the first second, the dashboard link, and the store where the user is
    text = err.decode()
    assert "connecting to tcp://127.0.0.1" in text and "dask dashboard: http" in text
    assert f"{total} cell(s) written" in out.decode()
    assert not (cluster.cwd / "rel.zarr").exists()  # the workers got the absolute path
    assert_same_store(driver_cwd / "rel.zarr", reference)
    # the finished store, described with units
    info = subprocess.run(
        [sys.executable, "-m", "s2cube.cli", "info", "rel.zarr"],
        cwd=driver_cwd, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert "1/800° per pixel (≈139 m at the equator)" in info.stdout
    assert f"cells done   {total} " in info.stdout
    assert "2023-08-" in info.stdout
    lines = {line.split()[0]: line for line in info.stdout.splitlines() if line.startswith("  ")}
    assert "%" in lines["read_fraction"] and "plan savings" in lines["read_fraction"]
    assert "invisible seams" in lines["seam"]
    print(f"multi-process run: {seconds:.1f} s, worker killed after {killed_after}/{total} cells")


def test_filled_mosaic_on_the_cluster_equals_a_local_run(cluster: Cluster, tmp_path: Path):
    """Hole filling on the cluster: the composite step, then the four fill waves (each fill
    task reads its block's donors on its worker's threads and its neighbours' observed pixels
    from the store); the store equals the same run in this process."""
    from s2cube.config import MosaicConfig

    config = MosaicConfig(fill_periods=1, inpaint="telea")
    kw = dict(bbox=BBOX, grid=GRID, start="2023-08-10", end="2023-08-14", config=config)
    stores = {}
    for name, scheduler in (("local", None), ("cluster", cluster.address)):
        stores[name] = tmp_path / f"{name}.zarr"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = s2cube.mosaic(str(REAL_CATALOG), store=stores[name], scheduler=scheduler, **kw)
        assert len(report.written) == 9
    assert_same_store(stores["cluster"], stores["local"])
    a, b = (s2cube.open_store(stores[k], bbox=BBOX).load() for k in ("cluster", "local"))
    np.testing.assert_array_equal(a.fill.values, b.fill.values)
    assert (a.fill.values == 2).any()  # donors did fill holes (0.27 % of the pixels)
    manifest = read_manifest(stores["cluster"])
    assert not any("fill_pending" in r for r in manifest.values())


def test_bad_scheduler_address_fails_fast_with_exit_2(tmp_path: Path):
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "s2cube.cli", "mosaic", "--catalog", str(REAL_CATALOG),
         "--bbox", *map(str, BBOX), "--store", "m.zarr", *GRID_FLAGS,
         "--scheduler", "127.0.0.1:8786x", "--no-progress"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr[-2000:]
    assert "is not a dask scheduler address" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "m.zarr").exists()  # nothing written
    assert time.monotonic() - t0 < 60
