"""A store on object storage: a real S3 server (moto's server mode) on 127.0.0.1.

The real 33TWL/33TWM mosaic is written to ``s3://…`` and to local disk by the same call and
must be identical (pixels, manifest, scene table, overviews), whether reopened with
``open_store`` or with plain xarray; ``info``, ``serve`` (tiles over HTTP) and ``chips`` work on
the S3 store; a killed run on S3 resumes into an identical store; an unknown scheme is a clear
error and never a local folder.
"""

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
import xarray as xr
from click.testing import CliRunner

import s2cube
from s2cube.cli import main
from s2cube.grid import GlobalGrid
from s2cube.store import StoreURLError, is_store, read_manifest, store_location

VARS = ("red", "green", "blue", "nir", "date", "scene", "clear_count")
REAL_GRID = GlobalGrid(resolution=Fraction(1, 800), cell_size=Fraction(1, 10), chunk_size=40)
REAL_SMALL_BBOX = (15.92, 46.02, 16.08, 46.18)  # 2×2 cells of 80×80 px
RECORD_KEYS = ("n_composited", "n_nodata", "scenes_used", "date_min", "date_max", "bounds")


def _mosaic(catalog, store, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return s2cube.mosaic(
            str(catalog),
            store=store,
            bbox=REAL_SMALL_BBOX,
            start="2023-08-01",
            end="2023-08-31",
            grid=REAL_GRID,
            **kw,
        )


@pytest.fixture(scope="module")
def pair(real_catalog, s3_server, tmp_path_factory):
    """The same real mosaic on local disk and on S3 (explicit storage_options)."""
    import uuid

    import s3fs

    bucket = f"s2cube-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**s3_server).mkdir(bucket)
    url = f"s3://{bucket}/mosaic.zarr"
    local = tmp_path_factory.mktemp("local") / "mosaic.zarr"
    rep_local = _mosaic(real_catalog, local)
    rep_s3 = _mosaic(real_catalog, url, storage_options=s3_server)
    assert rep_s3.store == url and len(rep_s3.written) == len(rep_local.written) == 4
    return local, url, s3_server


def _same_manifest(a, b) -> None:
    ma, mb = read_manifest(a), read_manifest(b)
    assert sorted(ma) == sorted(mb) and ma
    for name in ma:
        for key in RECORD_KEYS:
            assert ma[name].get(key) == mb[name].get(key), (name, key)


def test_mosaic_on_s3_equals_local_disk(pair):
    local, url, opts = pair
    assert is_store(url) and not Path("s3:").exists()
    _same_manifest(local, url)
    assert s2cube.scene_table(url).equals(s2cube.scene_table(local))
    assert s2cube.scene_params(url) == s2cube.scene_params(local)
    a = s2cube.open_store(local, bbox=REAL_SMALL_BBOX).load()
    b = s2cube.open_store(url, bbox=REAL_SMALL_BBOX, storage_options=opts).load()
    assert b.rio.crs.to_epsg() == 4326 and float((b.scene >= 0).mean()) > 0.5
    for v in VARS:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
    # plain xarray + the storage options: the fast recipe (no dask, subset, load)
    window = REAL_GRID.window_of_bbox(REAL_SMALL_BBOX, pixels="centres")
    plain = xr.open_zarr(url, storage_options=opts, decode_coords="all", chunks=None)
    plain = plain.isel(latitude=window.rows, longitude=window.cols).load()
    for v in VARS:
        np.testing.assert_array_equal(plain[v].values, a[v].values, err_msg=v)
    scenes = xr.open_zarr(url, group="scenes", storage_options=opts, consolidated=False)
    assert list(scenes["id"].values) == list(s2cube.scene_table(local)["id"])
    # overviews were built on S3 too, identical
    from s2cube.overviews import open_level, overview_status

    assert set(overview_status(url).values()) == {"ok"}
    for level in (1, 3):
        w = window.zoom_out(2**level)
        la = open_level(local, level).isel(latitude=w.rows, longitude=w.cols)
        lb = open_level(url, level).isel(latitude=w.rows, longitude=w.cols)
        assert int(la.red.max()) > 0
        for v in ("red", "scene"):
            np.testing.assert_array_equal(la[v].values, lb[v].values, err_msg=f"{v}@{level}")


def test_info_and_chips_on_s3(pair, tmp_path):
    local, url, opts = pair
    runner = CliRunner()
    res = runner.invoke(
        main, ["info", url, "--json", "--storage-option", f"endpoint_url={opts['endpoint_url']}"]
    )
    assert res.exit_code == 0, res.output
    import json

    info = json.loads(res.output)
    assert info["path"] == url and info["cells"] == sorted(read_manifest(local))
    assert info["scenes"] == s2cube.store_info(local)["scenes"] == 10
    # chips of one cell, from S3 and from disk: the same GeoTIFFs
    import rasterio

    from s2cube.chips import make_chips

    cell = sorted(read_manifest(local))[0]
    res = runner.invoke(
        main, ["chips", url, "--cell", cell, "--size", "32", "--out", str(tmp_path / "s3")]
    )
    assert res.exit_code == 0, res.output
    make_chips(local, cell=cell, size=32, out=tmp_path / "local")
    tifs = sorted(p.name for p in (tmp_path / "s3").glob("*.tif"))
    assert tifs and tifs == sorted(p.name for p in (tmp_path / "local").glob("*.tif"))
    for name in tifs:
        with (
            rasterio.open(tmp_path / "s3" / name) as x,
            rasterio.open(tmp_path / "local" / name) as y,
        ):
            np.testing.assert_array_equal(x.read(), y.read())
            assert x.transform == y.transform
    # the COG export reads the S3 store through the same location (and its options)
    args = ["--bbox", *map(str, REAL_SMALL_BBOX), "--level", "1"]
    endpoint = ["--storage-option", f"endpoint_url={opts['endpoint_url']}"]
    res = runner.invoke(main, ["export", url, str(tmp_path / "s3.tif"), *args, *endpoint])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["export", str(local), str(tmp_path / "local.tif"), *args])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "s3.tif") as x, rasterio.open(tmp_path / "local.tif") as y:
        assert x.read().any()
        np.testing.assert_array_equal(x.read(), y.read())
        assert x.transform == y.transform and x.crs == y.crs


def _serve(store: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-m", "s2cube.cli", "serve", store, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_serve_tiles_from_s3_over_http(pair):
    """``s2cube serve s3://…`` (credentials from the environment) serves the same tiles."""
    import socket

    import morecantile
    import requests

    local, url, _ = pair
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    procs = [_serve(url, ports[0]), _serve(str(local), ports[1])]
    try:
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        deadline = time.monotonic() + 60
        for base, proc in zip(bases, procs, strict=True):
            while True:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                try:
                    if requests.get(f"{base}/healthz", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        tms = morecantile.tms.get("WebMercatorQuad")
        paths = [
            f"/tiles/{layer}/{t.z}/{t.x}/{t.y}.png"
            for z in (9, 11)
            for t in [tms.tile(16.0, 46.1, z)]
            for layer in ("true-color", "provenance")
        ]
        paths.append("/api/point?lon=16.0&lat=46.1")
        for path in paths:
            got = [requests.get(base + path, timeout=60) for base in bases]
            assert all(r.status_code == 200 for r in got), (path, [r.text[:200] for r in got])
            assert got[0].content == got[1].content, path
        assert len(got[0].content) > 20
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


GRID = GlobalGrid(resolution=Fraction(1, 4000), cell_size=Fraction(1, 20), chunk_size=100)


@pytest.mark.slow
def test_killed_run_on_s3_resumes_to_an_identical_store(sample_catalog, s3_bucket, tmp_path):
    from s2cube.testing import SAMPLE_BBOX, SAMPLE_DATES

    reference = tmp_path / "ref.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s2cube.mosaic(
            sample_catalog,
            store=reference,
            bbox=SAMPLE_BBOX,
            start=SAMPLE_DATES[0],
            end=SAMPLE_DATES[1],
            grid=GRID,
            execution=s2cube.ExecutionOptions(overviews=False),
        )
    url = f"{s3_bucket}/m.zarr"
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
        url,
        "--resolution",
        "1/4000",
        "--cell-size",
        "1/20",
        "--chunk-size",
        "100",
        "--workers",
        "0",
        "--no-overviews",
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    loc = store_location(url)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len([n for n in loc.list("s2cube_manifest") if n.startswith("r")]) >= 2:
            os.killpg(proc.pid, signal.SIGKILL)  # the run, mid-write
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    total = len(read_manifest(reference))
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    partial = read_manifest(url)
    assert 2 <= len(partial) < total, f"killed too late ({len(partial)}/{total} cells)"
    s2cube.open_store(url, bbox=SAMPLE_BBOX).red.load()  # the partial store reads
    # the dead run's lease (its pid is gone on this host) does not block the rerun
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{len(partial)} already finished" in res.stdout
    _same_manifest(reference, url)
    assert s2cube.scene_table(reference).equals(s2cube.scene_table(url))
    a = s2cube.open_store(reference, bbox=SAMPLE_BBOX).load()
    b = s2cube.open_store(url, bbox=SAMPLE_BBOX).load()
    for v in VARS:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def test_unknown_or_unavailable_scheme_is_a_clear_error(real_catalog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreURLError, match=r"'foo://bucket/m.zarr'.*unknown URL scheme 'foo'"):
        s2cube.mosaic(str(real_catalog), store="foo://bucket/m.zarr", bbox=REAL_SMALL_BBOX)
    with pytest.raises(StoreURLError, match="s2cube\\[s3\\]"):
        s2cube.open_store("foo://bucket/m.zarr")
    runner = CliRunner()
    for args in (
        ["info", "foo://bucket/m.zarr"],
        ["mosaic", "--catalog", str(real_catalog), "--bbox", "15.9", "46", "16", "46.1"]
        + ["--store", "foo://bucket/m.zarr", "--workers", "0"],
    ):
        res = runner.invoke(main, args)
        assert res.exit_code == 2, res.output
        assert "unknown URL scheme 'foo'" in res.output and "foo://bucket/m.zarr" in res.output
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        res = runner.invoke(main, ["info", "gs://bucket/m.zarr"])
        assert res.exit_code == 2 and "pip install 's2cube[gcs]'" in res.output, res.output
    res = runner.invoke(main, ["info", "s3://b/m.zarr", "--storage-option", "novalue"])
    assert res.exit_code == 2 and "key=value" in res.output
    assert list(tmp_path.iterdir()) == []  # never a local folder named after a URL
