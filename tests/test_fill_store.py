"""Hole filling wired into the store: donors from adjacent periods, inpainting, the ``fill``
variable, provenance (date, scene, fill) in the store, ``s2cube info``, overviews and the tile
server; the recorded rendering; an interrupted fill run resumes into an identical store.

The period is 2023-08-18..20 of the sample catalog (08-18 mostly cloudy, 08-20 ~35 % cloud), so
the composite has holes; with ``fill_periods=1`` donors come from 08-15..17 (the clear date) and
08-21..23.  The inpainting store takes donors from 08-21..23 only (``fill_direction="forward"``),
so some holes are left for Telea.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest

import s2cube
from s2cube.config import MosaicConfig
from s2cube.errors import InputError
from s2cube.grid import GlobalGrid
from s2cube.store import read_manifest, store_metadata

GRID = GlobalGrid(resolution=Fraction(1, 4000), cell_size=Fraction(1, 20), chunk_size=100)
BBOX = (11.92, 46.02, 12.08, 46.08)  # 8 cells of 200 px
PERIOD = ("2023-08-18", "2023-08-20")
VARS = ("red", "green", "blue", "nir", "date", "scene", "clear_count", "fill")
TELEA = MosaicConfig(fill_periods=1, fill_direction="forward", inpaint="telea")


def _mosaic(catalog, store, config, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return s2cube.mosaic(
            catalog,
            store=store,
            bbox=BBOX,
            start=PERIOD[0],
            end=PERIOD[1],
            grid=GRID,
            config=config,
            **kw,
        )


@pytest.fixture(scope="module")
def stores(sample_catalog, tmp_path_factory):
    root = tmp_path_factory.mktemp("fill")
    configs = {
        "plain": MosaicConfig(),
        "donors": MosaicConfig(fill_periods=1),
        "telea": TELEA,
    }
    out = {}
    for name, config in configs.items():
        report = _mosaic(sample_catalog, root / f"{name}.zarr", config)
        assert len(report.written) == len(report.cells) == 8
        out[name] = root / f"{name}.zarr"
    return out


def _load(store):
    return s2cube.open_store(store, bbox=BBOX).load()


def test_donors_fill_holes_with_real_provenance(stores):
    plain, donors, telea = (_load(stores[k]) for k in ("plain", "donors", "telea"))
    hole0 = (plain.red.values == 0).mean()
    hole1 = (donors.red.values == 0).mean()
    hole2 = (telea.red.values == 0).mean()
    print(f"holes: period {hole0:.4f}, after donors {hole1:.4f}, after Telea {hole2:.4f}")
    assert hole0 > 0.1  # the period is cloudy: a real test of filling
    assert hole1 < hole0 / 5
    assert hole2 == 0.0
    # forward donors only: they leave holes for Telea
    assert (telea.fill.values == 3).mean() > 0.01
    # without filling, fill only says observed (1) or none (0), exactly where data is
    assert set(np.unique(plain.fill.values)) == {0, 1}
    np.testing.assert_array_equal(plain.fill.values == 1, plain.red.values > 0)
    # observed pixels are untouched by filling; clear_count never changes
    observed = plain.fill.values == 1
    for ds in (donors, telea):
        np.testing.assert_array_equal(ds.fill.values[observed], 1)
        for v in ("red", "green", "blue", "nir", "date", "scene"):
            np.testing.assert_array_equal(ds[v].values[observed], plain[v].values[observed], v)
        np.testing.assert_array_equal(ds.clear_count.values, plain.clear_count.values)
    # every filled pixel is flagged: a donor (2) with its real date outside the period and
    # a registered scene of that date, or inpainted (3) with no date and no scene
    filled = (plain.red.values == 0) & (telea.red.values > 0)
    assert filled.any()
    codes = telea.fill.values[filled]
    assert set(np.unique(codes)) == {2, 3}
    by_donor = telea.fill.values == 2
    start, end = (np.datetime64(d, "D") for d in PERIOD)
    dates = donors.date.values[donors.fill.values == 2].astype("datetime64[D]")
    assert ((dates < start) | (dates > end)).all()
    assert (dates < start).any() and (dates > end).any()  # back and forward
    dates = telea.date.values[by_donor].astype("datetime64[D]")
    assert (dates > end).all()
    table = s2cube.scene_table(stores["telea"])
    scenes = telea.scene.values[by_donor]
    assert (scenes >= 0).all()
    scene_dates = table["datetime"].values.astype("datetime64[D]")[scenes]
    np.testing.assert_array_equal(scene_dates, dates)
    inpainted = telea.fill.values == 3
    assert inpainted.any()
    assert np.isnat(telea.date.values[inpainted]).all()
    assert (telea.scene.values[inpainted] == -1).all()
    assert (telea.clear_count.values[inpainted] == 0).all()
    # donor scenes are registered after the period's: the period's indices do not move
    plain_table = s2cube.scene_table(stores["plain"])
    assert table.iloc[: len(plain_table)]["id"].tolist() == plain_table["id"].tolist()
    assert len(table) > len(plain_table)


def test_records_info_and_overviews_report_fill(stores):
    from click.testing import CliRunner

    from s2cube.cli import main

    info = s2cube.store_info(stores["telea"])
    shares = info["fill"]
    assert shares["donor_from_other_period"] > 0.1 and shares["inpainted"] > 0
    assert sum(shares.values()) == pytest.approx(1.0)
    assert s2cube.store_info(stores["plain"])["fill"]["donor_from_other_period"] == 0
    for rec in read_manifest(stores["telea"]).values():
        assert rec["config"] == TELEA.to_record()
        assert "fill_pending" not in rec
        assert sum(rec["fill"].values()) == rec["n_pixels"]
        assert rec["fill_stats"]["holes_after"] == 0.0
    out = CliRunner().invoke(main, ["info", str(stores["telea"])]).output
    assert "% donor" in out and "% inpainted" in out
    # overview level 1: fill travels with the provenance child (codes, never averaged)
    import xarray as xr

    lv1 = xr.open_zarr(stores["telea"], group="overviews/1", zarr_format=3, chunks=None)
    w, s_, e, n = BBOX  # a window of the global level, lazily (never the whole level)
    lv1 = lv1.sel(latitude=slice(n, s_), longitude=slice(w, e)).load()
    full = _load(stores["telea"])
    assert set(np.unique(lv1.fill.values)) <= {0, 1, 2, 3}
    sub = lv1.sel(latitude=full.latitude[1::2], longitude=full.longitude[1::2], method="nearest")
    has_scene = sub.scene.values >= 0
    table = s2cube.scene_table(stores["telea"])
    dates = table["datetime"].values.astype("datetime64[D]")[sub.scene.values[has_scene]]
    start, end = (np.datetime64(d, "D") for d in PERIOD)
    outside = (dates < start) | (dates > end)
    np.testing.assert_array_equal(sub.fill.values[has_scene] == 2, outside)
    assert (sub.fill.values[~has_scene & (sub.red.values > 0)] == 3).all()


def test_rendering_recorded_and_served(stores, tmp_path):
    import shutil

    from s2cube import render
    from s2cube.serve.layers import tone_curve_for
    from s2cube.serve.tiles import TileSource
    from s2cube.store import _write_metadata

    meta = store_metadata(stores["telea"])
    assert meta["rendering"] == render.rendering_attrs()
    src = TileSource(stores["telea"])
    assert src.tone_curve is render.tone_curve
    lon, lat = 11.99, 46.05
    point = src.point(lon, lat)
    assert point["fill"] in (1, 2, 3) and point["fill_meaning"] in (
        "observed_in_period",
        "donor_from_other_period",
        "inpainted",
    )
    z = 13  # the Web Mercator tile holding (lon, lat)
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * 2**z)
    tile = src.tile("true-color", "WebMercatorQuad", z, x, y)
    # a store made before the rendering was recorded keeps the curve it was served with (v1)
    old = tmp_path / "old.zarr"
    shutil.copytree(stores["telea"], old)
    _write_metadata(old, {k: v for k, v in meta.items() if k != "rendering"})
    old_src = TileSource(old)
    assert old_src.tone_curve is render.tone_curve_v1
    old_tile = old_src.tile("true-color", "WebMercatorQuad", z, x, y)
    assert (tile[..., 3] > 0).any()
    np.testing.assert_array_equal(tile[..., 3], old_tile[..., 3])
    assert not np.array_equal(tile, old_tile)
    with pytest.raises(ValueError, match="version 9"):
        tone_curve_for({"tone_curve_version": 9})


def test_interrupted_fill_run_resumes_to_an_identical_store(sample_catalog, stores, tmp_path):
    """Killed while compositing (cells recorded ``fill_pending``, the rest not written) or
    while filling (some cells filled, the rest pending): the rerun gives the same store."""
    ref = stores["telea"]

    class Killed(Exception):
        pass

    def check_identical(store):
        assert s2cube.scene_table(store).equals(s2cube.scene_table(ref))
        a, b = _load(store), _load(ref)
        for v in VARS:
            np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
        ra, rb = read_manifest(store), read_manifest(ref)
        assert sorted(ra) == sorted(rb)
        for name in ra:
            assert "fill_pending" not in ra[name]
            for key in ("n_composited", "scenes_used", "date_min", "date_max", "fill", "content"):
                assert ra[name][key] == rb[name][key], (name, key)
            assert ra[name]["fill_stats"] == rb[name]["fill_stats"], name

    # killed while compositing: three cells composited (fill pending), none filled
    store = tmp_path / "a.zarr"

    def kill_after_three(cell, record):
        if len(read_manifest(store)) >= 3:
            raise Killed(cell)

    with pytest.raises(Killed):
        _mosaic(sample_catalog, store, TELEA, progress=kill_after_three)
    manifest = read_manifest(store)
    assert len(manifest) == 3 and all(r["fill_pending"] for r in manifest.values())
    report = _mosaic(sample_catalog, store, TELEA)
    assert not report.skipped and len(report.written) == 8  # the three pending are filled
    check_identical(store)
    # a finished run is skipped whole
    again = _mosaic(sample_catalog, store, TELEA)
    assert len(again.skipped) == 8 and not again.written

    # killed while filling: every cell composited, three filled (their neighbours read the
    # pending cells' observed pixels, and the rerun reads the filled cells' observed pixels)
    store = tmp_path / "b.zarr"
    filled: list[str] = []

    def kill_after_three_fills(cell, record):
        if "fill_stats" in record:
            filled.append(cell)
            if len(filled) == 3:
                raise Killed(cell)

    with pytest.raises(Killed):
        _mosaic(sample_catalog, store, TELEA, progress=kill_after_three_fills)
    manifest = read_manifest(store)
    assert len(manifest) == 8
    assert sum("fill_pending" not in r for r in manifest.values()) == 3
    report = _mosaic(sample_catalog, store, TELEA)
    assert len(report.skipped) == 3 and len(report.written) == 5
    check_identical(store)


def test_fill_options_are_checked(sample_catalog, tmp_path):
    for bad in ({"fill_periods": -1}, {"fill_direction": "sideways"}, {"inpaint": "magic"}):
        with pytest.raises(InputError):
            MosaicConfig(**bad)
    assert not MosaicConfig().fills_holes
    assert MosaicConfig(inpaint="biharmonic").fills_holes
    with pytest.raises(InputError, match="start and end"):
        s2cube.mosaic(
            sample_catalog,
            store=tmp_path / "a.zarr",
            bbox=BBOX,
            grid=GRID,
            config=MosaicConfig(fill_periods=1),
        )
    assert not (tmp_path / "a.zarr").exists()
    with pytest.raises(InputError, match="list of items"):
        s2cube.mosaic(
            [],
            store=tmp_path / "b.zarr",
            bbox=BBOX,
            start=PERIOD[0],
            end=PERIOD[1],
            grid=GRID,
            config=MosaicConfig(fill_periods=1),
        )


# a strip east of 12.14°E near the zone-33 tile's south edge: the 08-18 scene (orbit B) is cut
# by its slanted swath edge there, so the period 08-18..19 reaches the two western cells only
# (and sees them cloudy), and no scene of the period reaches the three eastern ones at all
WEDGE_GRID = GlobalGrid(resolution=Fraction(1, 4000), cell_size=Fraction(1, 100), chunk_size=40)
WEDGE_BBOX = (12.142, 45.982, 12.188, 45.988)
WEDGE_PERIOD = ("2023-08-18", "2023-08-19")


def test_cells_the_period_never_saw_are_filled_from_donors(sample_catalog, tmp_path):
    """The tropics case: a period with no clear pixel (or no scene) in a cell.  Nothing around
    the hole to fit a donor to, so donors come unfitted, nearest period first, each pixel with
    its real date and scene; without filling these cells stay empty."""
    from s2cube.cube import load
    from s2cube.grid import Cell
    from s2cube.search import find_items

    def run(store, config):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return s2cube.mosaic(
                sample_catalog,
                store=store,
                bbox=WEDGE_BBOX,
                start=WEDGE_PERIOD[0],
                end=WEDGE_PERIOD[1],
                grid=WEDGE_GRID,
                config=config,
            )

    plain = run(tmp_path / "plain.zarr", MosaicConfig())
    assert len(plain.cells) == 5 and len(plain.empty) == 3  # no scene of the period there
    ds0 = s2cube.open_store(tmp_path / "plain.zarr", bbox=WEDGE_BBOX).load()
    assert (ds0.fill.values == 0).all()  # the period saw nothing clear anywhere
    filled = run(tmp_path / "fill.zarr", MosaicConfig(fill_periods=2))
    assert sorted(filled.written) == sorted(filled.cells) and not filled.empty
    store = tmp_path / "fill.zarr"
    ds = s2cube.open_store(store, bbox=WEDGE_BBOX).load()
    assert (ds.fill.values == 2).all() and (ds.red.values > 0).all()
    assert (ds.clear_count.values == 0).all()  # donors are never observations of the period
    # nearest period first: the 08-20 scene (one period away) wherever it is clear, the clear
    # 08-15 scene (two periods away) elsewhere; nothing from the period itself
    days = set(np.unique(ds.date.values.astype("datetime64[D]")).astype(str))
    assert days == {"2023-08-20", "2023-08-15"}
    # nothing observed to fit to: the nearest donor's pixels are exactly its own, read
    # independently; the next donor's are its own through one gain/offset per band (fitted to
    # what the first filled around them, so the two meet without a step)
    table = s2cube.scene_table(store)
    found = find_items(
        sample_catalog, bbox=WEDGE_BBOX, start=None, end=None, max_cloud=None, bands=VARS[:4]
    )
    items = {it.id: it for it in found}
    manifest = read_manifest(store)
    assert sum(r["fill_stats"]["donor_fits_chained"] for r in manifest.values()) >= 1
    for name, rec in manifest.items():
        assert rec["fill_stats"]["holes_before"] == 1.0
        assert rec["fill_stats"]["holes_after"] == 0.0
        assert rec["fill_stats"]["donor_fits_unfitted"] >= 1
        cell = Cell.from_name(name)
        cds = s2cube.open_store(store, bbox=WEDGE_GRID.cell_window(cell).bounds).load()
        assert cds.sizes == {"latitude": 40, "longitude": 40}
        chained = 0
        for scene in np.unique(cds.scene.values[cds.scene.values >= 0]):
            item = items[table["id"].iloc[scene]]
            raw = load([item], cell, grid=WEDGE_GRID, bands=["red", "nir"]).isel(time=0).load()
            where = cds.scene.values == scene
            nearest = str(item.datetime.date()) == "2023-08-20"
            for band in ("red", "nir"):
                got, own = cds[band].values[where], raw.sel(band=band).values[where]
                if nearest:
                    np.testing.assert_array_equal(got, own, (name, band))
                    continue
                gain, offset = np.polyfit(own.astype(float), got.astype(float), 1)
                assert np.abs(gain * own + offset - got).max() <= 1.0, (name, band)
                chained += int(not np.array_equal(got, own))
        assert chained <= 2 * rec["fill_stats"]["donor_fits_chained"], name
    # without any donor either, the empty period is the search's clear error
    with pytest.raises(s2cube.EmptySearchError, match="no usable Sentinel-2 item"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s2cube.mosaic(
                sample_catalog,
                store=tmp_path / "none.zarr",
                bbox=(12.172, 45.982, 12.188, 45.988),
                start="2023-09-20",
                end="2023-09-21",
                grid=WEDGE_GRID,
                config=MosaicConfig(fill_periods=1),
            )


def test_fill_reads_the_donors_of_each_block(sample_catalog):
    """A cell is filled in blocks, each reading only the donors over it (with the halos): the
    same pixels as the cell's whole donor cube, sliced."""
    from s2cube.config import ExecutionOptions
    from s2cube.cube import load
    from s2cube.donors import _block_donors, _blocks, fill_jobs, find_donors
    from s2cube.search import find_items

    items = find_items(
        sample_catalog, bbox=BBOX, start=PERIOD[0], end=PERIOD[1], max_cloud=None, bands=VARS[:4]
    )
    config = MosaicConfig(fill_periods=1)
    donors = find_donors(
        sample_catalog, config, items, bbox=BBOX, start=PERIOD[0], end=PERIOD[1], max_cloud=None
    )
    cell = GRID.cells_in_bbox(BBOX)[5]
    index = {it.id: i for i, it in enumerate(donors)}
    job = fill_jobs([cell.name], donors, GRID, config, ExecutionOptions(), index, *PERIOD)[
        cell.name
    ]
    assert job.donors and job.fill_halo == GRID.cell_pixels
    pad = job.fill_halo + job.halo
    whole = load(list(job.donors), cell, grid=GRID, halo=pad).load()
    window = GRID.cell_window(cell)
    blocks = _blocks(window.shape, 64)
    assert len(blocks) == 16
    for rows, cols in blocks[:3] + blocks[-2:]:
        cube = _block_donors(job, window[rows, cols], None, window)
        h, w = cube.shape[-2:]
        ids = list(whole.id.values)
        at = [ids.index(i) for i in cube.id.values]  # the donors touching this block
        assert 1 <= len(at) <= len(ids)
        want = whole.isel(
            time=at,
            latitude=slice(rows.start, rows.start + h),
            longitude=slice(cols.start, cols.start + w),
        )
        np.testing.assert_array_equal(cube.values, want.values)
        # a slice of a given cube is the same
        given = _block_donors(job, window[rows, cols], whole, window)
        np.testing.assert_array_equal(given.isel(time=at).values, cube.values)
