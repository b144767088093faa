"""The global Zarr v3 store: template, shards per cell, manifest, reopen with xarray/rioxarray."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from s2cube.errors import InputError, StoreError
from s2cube.grid import Cell, GlobalGrid
from s2cube.store import (
    create_store,
    is_store,
    open_store,
    read_manifest,
    store_info,
    store_metadata,
    write_cell,
)

GRID = GlobalGrid(resolution=Fraction(1, 200), cell_size=Fraction(1, 4), chunk_size=25)


def _cell_dataset(grid: GlobalGrid, cell: Cell, seed: int = 0) -> xr.Dataset:
    rows, cols = grid.cell_region(cell)
    n = grid.cell_pixels
    rng = np.random.default_rng(seed)
    scene = rng.integers(-1, 3, size=(n, n)).astype("int32")
    dates = pd.to_datetime(["2023-08-10", "2023-08-13", "2023-08-15"]).values
    date = np.where(scene >= 0, dates[np.clip(scene, 0, None)], np.datetime64("NaT"))
    ds = xr.Dataset(
        coords={
            "latitude": grid.latitudes(rows.start, rows.stop),
            "longitude": grid.longitudes(cols.start, cols.stop),
        }
    )
    dims = ("latitude", "longitude")
    for band in ("red", "green", "blue", "nir"):
        ds[band] = (dims, np.where(scene >= 0, rng.integers(1, 10000, (n, n)), 0).astype("uint16"))
    ds["date"] = (dims, date.astype("datetime64[ns]"))
    ds["scene"] = (dims, scene)
    ds["clear_count"] = (dims, (scene + 1).astype("uint16"))
    return ds


def test_template_writes_no_data_chunks(tmp_path):
    store = create_store(tmp_path / "m.zarr", grid=GRID)
    assert is_store(store)
    files = [p for p in store.rglob("*") if p.is_file()]
    data_chunks = [
        p
        for p in files
        if p.parts[-3] in ("red", "nir", "date", "scene")
        and p.parent.name == "c"
        or "/red/c/" in str(p)
    ]
    assert data_chunks == []
    meta = store_metadata(store)
    assert meta["grid"]["resolution"] == "1/200" and meta["bands"] == [
        "red",
        "green",
        "blue",
        "nir",
    ]
    arr = json.loads((store / "red" / "zarr.json").read_text())
    codecs = arr["codecs"]
    assert codecs[0]["name"] == "sharding_indexed"
    assert arr["chunk_grid"]["configuration"]["chunk_shape"] == [50, 50]  # shard = cell
    assert codecs[0]["configuration"]["chunk_shape"] == [25, 25]
    # idempotent with the same grid, refused with another
    assert create_store(store, grid=GRID) == store
    with pytest.raises(StoreError, match="differ"):
        create_store(store, grid=GlobalGrid(resolution=Fraction(1, 100), cell_size=1))


def test_write_cell_round_trip_and_crs(tmp_path):
    store = create_store(tmp_path / "m.zarr", grid=GRID)
    cell = GRID.cell_of(15.9, 46.1)
    ds = _cell_dataset(GRID, cell)
    rec = write_cell(store, cell, ds)
    assert rec["n_composited"] == int((ds.scene >= 0).sum())
    assert rec["date_min"] == "2023-08-10" and rec["date_max"] == "2023-08-15"
    # one shard file per variable for this cell, nothing else
    shard_files = sorted(p.relative_to(store).as_posix() for p in store.glob("*/c/*/*"))
    assert shard_files == [
        f"{v}/c/{cell.row}/{cell.col}"
        for v in sorted(["blue", "clear_count", "date", "fill", "green", "nir", "red", "scene"])
    ]
    assert list(read_manifest(store)) == [cell.name]

    raw = xr.open_zarr(store, decode_coords="all")
    import rioxarray  # noqa: F401

    assert raw.rio.crs.to_epsg() == 4326
    assert "spatial_ref" in raw.coords
    assert raw.red.dtype == np.uint16 and raw.scene.dtype == np.int32
    assert (
        raw.red.encoding.get("grid_mapping") == "spatial_ref"
        or raw.red.attrs.get("grid_mapping") == "spatial_ref"
    )
    sub = open_store(store, cell=cell)
    assert sub.rio.crs.to_epsg() == 4326
    w, s, e, n = GRID.cell_bounds(cell)
    assert sub.rio.bounds() == pytest.approx((w, s, e, n))
    for v in ("red", "green", "blue", "nir", "scene", "clear_count"):
        np.testing.assert_array_equal(sub[v].values, ds[v].values)
    np.testing.assert_array_equal(
        sub.date.values.astype("datetime64[D]"), ds.date.values.astype("datetime64[D]")
    )
    assert np.isnat(sub.date.values).sum() == int((ds.scene < 0).sum())
    # untouched cells read as nodata
    other = open_store(store, cell=Cell(cell.row, cell.col + 1))
    assert int(other.red.max()) == 0 and int(other.scene.min()) == -1
    info = store_info(store)
    assert info["cells_done"] == 1 and 0 < info["composited_fraction"] < 1


def test_write_cell_rejects_misaligned_data(tmp_path):
    store = create_store(tmp_path / "m.zarr", grid=GRID)
    cell = GRID.cell_of(15.9, 46.1)
    ds = _cell_dataset(GRID, cell)
    with pytest.raises(InputError, match="crop the halo"):
        write_cell(store, cell, ds.isel(latitude=slice(1, None)))
    with pytest.raises(InputError, match="not aligned"):
        write_cell(store, Cell(cell.row, cell.col + 1), ds)
    assert read_manifest(store) == {}


def test_not_a_store(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(StoreError, match="not an s2cube store"):
        open_store(tmp_path / "junk")
    with pytest.raises(StoreError, match="refusing"):
        create_store(tmp_path / "junk", grid=GRID)
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "missing.zarr")
    assert (tmp_path / "junk" / "file.txt").read_text() == "x"
