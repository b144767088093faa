"""Failures partway: a killed worker or a killed run never corrupts the store, and a rerun
finishes it into a store identical to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import s2cube
from s2cube.grid import GlobalGrid
from s2cube.store import read_manifest

GRID = GlobalGrid(resolution=Fraction(1, 4000), cell_size=Fraction(1, 20), chunk_size=100)
VARS = ("red", "green", "blue", "nir", "date", "scene", "clear_count")


@pytest.fixture(scope="module")
def reference(sample_catalog, tmp_path_factory):
    from s2cube.testing import SAMPLE_BBOX, SAMPLE_DATES

    store = tmp_path_factory.mktemp("ref") / "ref.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = s2cube.mosaic(
            sample_catalog,
            store=store,
            bbox=SAMPLE_BBOX,
            start=SAMPLE_DATES[0],
            end=SAMPLE_DATES[1],
            grid=GRID,
        )
    assert len(report.written) == len(report.cells) >= 10
    return store


def assert_same_store(a: Path, b: Path) -> None:
    from s2cube.testing import SAMPLE_BBOX

    assert sorted(read_manifest(a)) == sorted(read_manifest(b))
    assert s2cube.scene_table(a).equals(s2cube.scene_table(b))
    da_, db_ = (s2cube.open_store(p, bbox=SAMPLE_BBOX).load() for p in (a, b))
    for v in VARS:
        np.testing.assert_array_equal(da_[v].values, db_[v].values, err_msg=v)
    for rec_a, rec_b in zip(read_manifest(a).values(), read_manifest(b).values(), strict=True):
        for key in ("n_composited", "n_nodata", "scenes_used", "date_min", "date_max"):
            assert rec_a[key] == rec_b[key], key


def test_killed_worker_is_recovered(sample_catalog, reference, tmp_path):
    from distributed import Client, LocalCluster

    from s2cube.testing import SAMPLE_BBOX, SAMPLE_DATES

    store = tmp_path / "m.zarr"
    killed: list[int] = []
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = client.run(os.getpid)

        def kill_one_worker(cell: str, record: dict) -> None:
            if not killed:
                pid = next(iter(pids.values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = s2cube.mosaic(
                sample_catalog,
                store=store,
                bbox=SAMPLE_BBOX,
                start=SAMPLE_DATES[0],
                end=SAMPLE_DATES[1],
                grid=GRID,
                client=client,
                progress=kill_one_worker,
            )
    assert killed
    assert len(report.written) + len(report.empty) == len(report.cells)
    assert_same_store(store, reference)


def test_killed_run_resumes_to_an_identical_store(sample_catalog, reference, tmp_path):
    from s2cube.testing import SAMPLE_BBOX, SAMPLE_DATES

    store = tmp_path / "m.zarr"
    args = [
        sys.executable,
        "-m",
        "s2cube.cli",
        "mosaic",
        "--catalog",
        str(sample_catalog),
        "--bbox",
        *map(str, SAMPLE_BBOX),
        "--start",
        SAMPLE_DATES[0],
        "--end",
        SAMPLE_DATES[1],
        "--store",
        str(store),
        "--resolution",
        "1/4000",
        "--cell-size",
        "1/20",
        "--chunk-size",
        "100",
        "--workers",
        "1",
        "--threads",
        "1",
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    manifest = store / "s2cube_manifest"
    deadline = time.monotonic() + 240
    n_done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        n_done = len(list(manifest.glob("r*c*.json"))) if manifest.is_dir() else 0
        if n_done >= 2:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-run
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    total = len(read_manifest(reference))
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    partial = read_manifest(store)
    assert 2 <= len(partial) < total, f"killed too late ({len(partial)}/{total} cells)"
    # the partial store is a valid store that opens and reads
    s2cube.open_store(store, bbox=SAMPLE_BBOX).red.load()

    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{len(partial)} already finished" in res.stdout
    assert_same_store(store, reference)
