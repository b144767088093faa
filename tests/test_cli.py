"""The ``s2cube`` command as a user runs it: real subprocesses, exit codes, nothing written
on errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from realdata import REAL_BBOX


def run(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "s2cube.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


GRID_ARGS = ("--resolution", "1/400", "--cell-size", "1/2", "--chunk-size", "50")


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--start", "2023-08-31", "--end", "2023-08-01"), "reversed"),
        (("--bbox", "15", "45", "190", "46"), "longitudes must lie within"),
        (("--bbox", "15", "-95", "16", "46"), "latitudes must lie within"),
        (("--bands", "red,ultraviolet"), "unknown band"),
        (("--start", "2019-01-01", "--end", "2019-01-31"), "no usable Sentinel-2 item"),
        (("--priority", "median"), "choose 'recent'"),
    ],
)
def test_bad_mosaic_arguments_exit_2_and_write_nothing(tmp_path, real_catalog, extra, message):
    store = tmp_path / "m.zarr"
    args = [
        "mosaic",
        "--catalog",
        str(real_catalog),
        "--bbox",
        *map(str, REAL_BBOX),
        "--store",
        str(store),
        "--workers",
        "1",
        *GRID_ARGS,
    ]
    # later options override earlier ones (click keeps the last)
    res = run(*args, *extra)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert not store.exists()


def test_unreachable_catalog(tmp_path):
    store = tmp_path / "m.zarr"
    res = run(
        "mosaic",
        "--catalog",
        "http://127.0.0.1:9/stac",
        "--bbox",
        *map(str, REAL_BBOX),
        "--store",
        str(store),
        "--workers",
        "1",
        *GRID_ARGS,
    )
    assert res.returncode == 2 and "cannot reach STAC API" in res.stderr
    assert not store.exists()


def test_store_path_that_is_not_a_store(tmp_path, real_catalog):
    junk = tmp_path / "notes"
    junk.mkdir()
    (junk / "todo.txt").write_text("keep me")
    res = run(
        "mosaic",
        "--catalog",
        str(real_catalog),
        "--bbox",
        *map(str, REAL_BBOX),
        "--store",
        str(junk),
        "--workers",
        "1",
        *GRID_ARGS,
    )
    assert res.returncode == 2 and "not an s2cube store" in res.stderr
    assert sorted(p.name for p in junk.iterdir()) == ["todo.txt"]
    res = run("info", str(junk))
    assert res.returncode == 2 and "not an s2cube store" in res.stderr


def test_search_and_mosaic_and_info(tmp_path, real_catalog):
    res = run("search", "--catalog", str(real_catalog), "--max-cloud", "5")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("5 item(s)") and "boa_offset_to_remove=0" in res.stdout
    res = run("search", "--catalog", str(real_catalog), "--mgrs", "33TWM", "--json")
    assert len(json.loads(res.stdout)["features"]) == 5

    store = tmp_path / "m.zarr"
    res = run(
        "mosaic",
        "--catalog",
        str(real_catalog),
        "--bbox",
        "15.6",
        "45.8",
        "16.4",
        "46.2",
        "--start",
        "2023-08-01",
        "--end",
        "2023-08-31",
        "--store",
        str(store),
        "--workers",
        "2",
        "--threads",
        "1",
        *GRID_ARGS,
    )
    assert res.returncode == 0, res.stderr
    assert "dask dashboard: http://" in res.stderr
    assert "cell(s) written" in res.stdout
    res = run("info", str(store))
    assert res.returncode == 0, res.stderr
    assert "cells done   4" in res.stdout and "2023-08-" in res.stdout
    info = json.loads(run("info", str(store), "--json").stdout)
    assert info["cells_done"] == 4 and info["scenes"] == 10
