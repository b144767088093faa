"""End to end on real Sentinel-2 data over real HTTP.

The 10 real Earth Search items of 33TWL/33TWM (120 m, five dates) are served by a real STAC API
(stac-fastapi-pgstac on PostgreSQL/PostGIS, 127.0.0.1), searched with pystac-client, composited
on a coarse grid, written into a store and reopened; the composite is then checked against the
source rasters themselves.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from pyproj import Transformer
from realdata import REAL_BBOX

import s2cube
from s2cube.grid import GlobalGrid
from s2cube.mask import CLEAR, SNOW, scl_to_mask

GRID = GlobalGrid(resolution=Fraction(1, 800), cell_size=Fraction(1, 2), chunk_size=100)


REAL_CONFIG = s2cube.MosaicConfig(
    cloud_dilation=0, shadow_dilation=0, blend="none", harmonize="none"
)


@pytest.fixture(scope="module")
def real_store(stac_api, tmp_path_factory):
    store = tmp_path_factory.mktemp("real") / "mosaic.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = s2cube.mosaic(
            stac_api,
            store=store,
            bbox=REAL_BBOX,
            start="2023-08-01",
            end="2023-08-31",
            grid=GRID,
            config=REAL_CONFIG,
            execution=s2cube.ExecutionOptions(overviews=False),
        )
    return store, report


def test_search_over_http_matches_the_static_catalog(stac_api, real_catalog):
    over_http = s2cube.search(stac_api, bbox=REAL_BBOX, start="2023-08-01", end="2023-08-31")
    local = s2cube.search(real_catalog)
    assert [i.id for i in over_http] == [i.id for i in local]
    assert all(Path(i.assets["red"].href).exists() for i in over_http)
    cloudy_cut = s2cube.search(
        stac_api, bbox=REAL_BBOX, start="2023-08-01", end="2023-08-31", max_cloud=5
    )
    assert {i.id for i in cloudy_cut} == {
        i.id for i in local if i.properties["eo:cloud_cover"] <= 5
    }


def test_store_reopens_with_crs_and_provenance(real_store):
    store, report = real_store
    assert len(report.written) >= 6 and not report.skipped
    ds = xr.open_zarr(store, decode_coords="all", chunks=None)
    import rioxarray  # noqa: F401

    assert ds.rio.crs.to_epsg() == 4326
    for v in ("red", "green", "blue", "nir", "date", "scene", "clear_count"):
        assert v in ds
    assert ds.red.dtype == np.uint16 and np.issubdtype(ds.date.dtype, np.datetime64)
    sub = s2cube.open_store(store, bbox=REAL_BBOX).load()
    assert sub.rio.crs.to_epsg() == 4326
    assert float((sub.scene >= 0).mean()) > 0.5
    table = s2cube.scene_table(store)
    assert len(table) == 10
    # provenance: the stored date is the chosen scene's acquisition date
    valid = sub.scene.values >= 0
    chosen = (
        table.loc[sub.scene.values[valid], "datetime"].dt.tz_localize(None).dt.normalize().values
    )
    np.testing.assert_array_equal(
        sub.date.values[valid].astype("datetime64[D]"), chosen.astype("datetime64[D]")
    )
    assert np.isnat(sub.date.values[~valid]).all()


def _sample_source(
    href: str, lon: np.ndarray, lat: np.ndarray, epsg: int, hood: int = 0
) -> np.ndarray:
    """Source pixel values at lon/lat; with ``hood=1`` the (n, 9) 3×3 neighbourhoods."""
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
    x, y = to_utm.transform(lon, lat)
    with rasterio.open(href) as src:
        arr = src.read(1)
        r, c = rasterio.transform.rowcol(src.transform, x, y)
    r, c = np.asarray(r), np.asarray(c)
    padded = np.pad(arr, hood + 1)
    out = []
    for dr in range(-hood, hood + 1):
        for dc in range(-hood, hood + 1):
            rr = np.clip(r + dr + hood + 1, 0, padded.shape[0] - 1)
            cc = np.clip(c + dc + hood + 1, 0, padded.shape[1] - 1)
            out.append(padded[rr, cc])
    return out[len(out) // 2] if hood == 0 else np.stack(out, axis=1)


def test_pixels_and_georeferencing_match_the_source_rasters(real_store, real_catalog):
    store, _ = real_store
    sub = s2cube.open_store(store, bbox=REAL_BBOX).load()
    table = s2cube.scene_table(store)
    items = {i.id: i for i in s2cube.search(real_catalog)}
    lat2d, lon2d = np.meshgrid(sub.latitude.values, sub.longitude.values, indexing="ij")
    rng = np.random.default_rng(0)
    valid = np.argwhere(sub.scene.values >= 0)
    picks = valid[rng.choice(len(valid), size=3000, replace=False)]
    scenes = sub.scene.values[picks[:, 0], picks[:, 1]]
    exact = near = 0
    for band in ("red", "nir"):
        for s in np.unique(scenes):
            sel = picks[scenes == s]
            item = items[table.loc[s, "id"]]
            args = (
                item.assets[band].href,
                lon2d[sel[:, 0], sel[:, 1]],
                lat2d[sel[:, 0], sel[:, 1]],
                item.properties["proj:epsg"],
            )
            got = sub[band].values[sel[:, 0], sel[:, 1]]
            exact += int((got == _sample_source(*args)).sum())
            near += int((got[:, None] == _sample_source(*args, hood=1)).any(axis=1).sum())
    # nearest resampling through GDAL's approximate warper (error threshold 0.125 px): most pixels
    # are the exact source pixel, and every one is within one source pixel (120 m) of it; a
    # georeferencing error (a shift, a flipped axis, a wrong CRS) fails both
    assert exact / (2 * len(picks)) > 0.9
    assert near == 2 * len(picks)


def test_no_pixel_from_a_cloudy_observation_when_a_clear_one_exists(real_store, real_catalog):
    store, _ = real_store
    sub = s2cube.open_store(store, bbox=REAL_BBOX).load()
    table = s2cube.scene_table(store)
    items = s2cube.search(real_catalog)
    lat2d, lon2d = np.meshgrid(sub.latitude.values, sub.longitude.values, indexing="ij")
    lon_f, lat_f = lon2d.ravel(), lat2d.ravel()
    # the SCL code of every observation at every composite pixel, read from the source files
    codes = np.stack(
        [
            scl_to_mask(
                _sample_source(i.assets["scl"].href, lon_f, lat_f, i.properties["proj:epsg"])
            )
            for i in items
        ]
    )
    index = {row["id"]: k for k, row in enumerate(table.reset_index().to_dict("records"))}
    order = [index[i.id] for i in items]
    chosen = sub.scene.values.ravel()
    has_clear = (codes == CLEAR).any(axis=0)
    ok = chosen >= 0
    pos = {scene_idx: k for k, scene_idx in enumerate(order)}
    chosen_code = np.array([codes[pos[s], p] if s >= 0 else 0 for p, s in enumerate(chosen)])
    # every composited pixel comes from a clear (or snow) observation ...
    bad = ok & ~np.isin(chosen_code, [CLEAR, SNOW])
    assert bad.mean() < 0.002, bad.mean()  # GDAL approximate-warp ties at SCL class edges
    # ... and every pixel with a clear observation is composited
    missed = has_clear & ~ok
    assert missed.mean() < 0.002, missed.mean()
    # most recent clear observation first
    dates = pd.to_datetime(table["datetime"]).dt.tz_localize(None).values
    obs_dates = dates[order]
    ns = obs_dates.astype("datetime64[ns]").astype("int64")
    newest_clear = np.where(codes == CLEAR, ns[:, None], np.iinfo("int64").min).max(axis=0)
    chosen_ns = dates.astype("datetime64[ns]").astype("int64")[np.clip(chosen, 0, None)]
    agree = (chosen_ns == newest_clear)[has_clear & ok].mean()
    assert agree > 0.99


def test_tile_overlap_is_continuous(real_store):
    """33TWL and 33TWM overlap by ~81 rows near 46.0°N: no gap and no step there."""
    store, _ = real_store
    sub = s2cube.open_store(store, bbox=(15.3, 45.6, 16.4, 46.4)).load()
    red = sub.red.values.astype("float64")
    lat = sub.latitude.values
    # the overlap band of the two tiles (UTM y 5090220..5100000 at ~16°E ≈ 45.95..46.04°N)
    band = (lat > 45.96) & (lat < 46.03)
    valid = red > 0
    assert valid[band].mean() >= valid[~band].mean() - 0.02
    # row-to-row differences across the overlap are like the interior's
    rows = np.where(valid.all(axis=1, keepdims=False) | (valid.mean(axis=1) > 0.9))[0]
    diffs = np.nanmean(
        np.where(valid[1:] & valid[:-1], np.abs(np.diff(red, axis=0)), np.nan), axis=1
    )
    inside = diffs[np.where(band[1:])[0]]
    outside = diffs[np.where(~band[1:])[0]]
    assert np.nanmedian(inside) < 1.5 * np.nanmedian(outside)
    assert len(rows) > 0


def test_rerun_skips_finished_cells(real_store, stac_api):
    store, first = real_store
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = s2cube.mosaic(
            stac_api, store=store, bbox=REAL_BBOX, start="2023-08-01", end="2023-08-31",
            grid=GRID, config=REAL_CONFIG, execution=s2cube.ExecutionOptions(overviews=False),
        )  # fmt: skip
    # every recorded cell is skipped; cells no item reaches have no record and cost nothing
    assert not again.written
    assert sorted(again.skipped) == sorted(s2cube.store.read_manifest(store))
    assert sorted([*again.skipped, *again.empty]) == sorted(first.cells)
