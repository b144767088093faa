"""The lazy cube: exact grid, georeferencing against the source rasters, one reflectance scale."""

from __future__ import annotations

from fractions import Fraction

import dask.array as da
import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from s2cube.cube import load, remove_boa_offset
from s2cube.errors import InputError
from s2cube.grid import GlobalGrid
from s2cube.search import search

GRID = GlobalGrid(resolution=Fraction(1, 1000), cell_size=Fraction(1, 2), chunk_size=125)


def test_remove_boa_offset_kernel():
    dn = np.array([0, 1, 999, 1000, 1001, 5000], dtype="uint16")
    assert remove_boa_offset(dn, 1000).tolist() == [0, 1, 1, 1, 1, 4000]
    assert remove_boa_offset(dn, 0).tolist() == dn.tolist()


def test_cube_matches_the_source_rasters(real_catalog):
    items = search(real_catalog)
    cell = GRID.cell_of(15.9, 46.1)
    cube = load(items, cell, grid=GRID, halo=2)
    assert cube.dims == ("time", "band", "latitude", "longitude")
    assert cube.shape == (10, 5, 504, 504)
    assert isinstance(cube.data, da.Array)
    assert cube.band.values.tolist() == ["red", "green", "blue", "nir", "scl"]
    assert cube.dtype == np.uint16
    assert cube.rio.crs.to_epsg() == 4326 if hasattr(cube, "rio") else True
    rows, cols = GRID.cell_region(cell, halo=2)
    np.testing.assert_allclose(cube.latitude.values, GRID.latitudes(rows.start, rows.stop))
    np.testing.assert_allclose(cube.longitude.values, GRID.longitudes(cols.start, cols.stop))
    # sample pixel centres: nearest resampling must give exactly the source pixel
    rng = np.random.default_rng(1)
    iy = rng.integers(0, 504, 60)
    ix = rng.integers(0, 504, 60)
    values = cube.isel(time=[0, 3]).values
    to_utm = Transformer.from_crs(4326, 32633, always_xy=True)
    for k, t in enumerate([0, 3]):
        item = {i.id: i for i in items}[str(cube.id.values[t])]
        for bidx, band in ((0, "red"), (4, "scl")):
            with rasterio.open(item.assets[band].href) as src:
                arr = src.read(1)
                x, y = to_utm.transform(cube.longitude.values[ix], cube.latitude.values[iy])
                r, c = rasterio.transform.rowcol(src.transform, x, y)
            r, c = np.asarray(r), np.asarray(c)
            got = values[k, bidx, iy, ix]
            inside = (r >= 0) & (r < arr.shape[0]) & (c >= 0) & (c < arr.shape[1])
            exact = np.where(
                inside, arr[np.clip(r, 0, arr.shape[0] - 1), np.clip(c, 0, arr.shape[1] - 1)], 0
            )
            # GDAL's warper approximates the transform (error threshold 0.125 px), so a pixel
            # centre right at a source pixel edge may take the neighbour: most must be exact and
            # every one must come from the 3×3 neighbourhood of the true source pixel
            assert (got == exact).mean() >= 0.9, (item.id, band, (got == exact).mean())
            for g, rr, cc, ok in zip(got, r, c, inside, strict=True):
                if not ok:
                    continue
                hood = arr[max(rr - 1, 0) : rr + 2, max(cc - 1, 0) : cc + 2]
                assert g in hood, (item.id, band, g, hood)


def test_load_rejects_bad_arguments(real_catalog):
    items = search(real_catalog)
    cell = GRID.cell_of(15.9, 46.1)
    with pytest.raises(InputError, match="unknown band"):
        load(items, cell, grid=GRID, bands=("red", "infrared"))
    with pytest.raises(InputError, match="resampling"):
        load(items, cell, grid=GRID, resampling="lanczos9")
    with pytest.raises(InputError, match="no item touches"):
        load(items, GRID.cell_of(100.0, 10.0), grid=GRID)


def test_offset_removed_exactly_where_the_provider_did_not(sample_catalog):
    """The sample catalog mixes baselines: 03.01, 05.09 (offset removed) and 05.10 (kept)."""
    from s2cube.testing import SAMPLE_BBOX

    items = search(sample_catalog)
    offsets = {i.id: i.properties["s2cube:boa_offset"] for i in items}
    assert set(offsets.values()) == {0, 1000}
    grid = GlobalGrid(resolution=Fraction(1, 2000), cell_size=Fraction(1, 10), chunk_size=100)
    w, s, e, n = SAMPLE_BBOX
    cell = grid.cell_of((w + e) / 2, (s + n) / 2)
    with_offset = [i for i in items if offsets[i.id] == 1000]
    cube = load(with_offset, cell, grid=grid)
    raw = load([i.clone() for i in with_offset], cell, grid=grid)  # normalised again: same
    assert np.array_equal(cube.values, raw.values)
    # compare with the raw file values read without the correction, warped as load() warps:
    # on the global VRT block lattice (the window is aligned to it, then cropped)
    import stackstac

    from s2cube.cube import VRT_ALIGN
    from s2cube.reader import gdal_env

    window = grid.cell_window(cell)
    aligned = window.align(*VRT_ALIGN)
    dy, dx = window.offset_in(aligned)
    plain = stackstac.stack(
        [i for i in with_offset],
        assets=["red"],
        epsg=4326,
        resolution=float(grid.resolution),
        bounds=aligned.bounds,
        snap_bounds=False,
        rescale=False,
        gdal_env=gdal_env(),
        fill_value=np.uint16(0),
        dtype="uint16",
        sortby_date=False,
    ).values[:, 0, dy : dy + window.height, dx : dx + window.width]
    got = cube.sel(band="red").values
    valid = plain > 0
    assert valid.any()
    np.testing.assert_array_equal(got[valid], np.maximum(plain[valid].astype(int) - 1000, 1))
    assert (got[~valid] == 0).all()
