"""Warp once per geometry: the nearest gather equals GDAL's warp pixel for pixel.

:mod:`s2cube.reader.gather` serves every scene of a source grid from one output → source
mapping (GDAL's own, computed by warping index rasters).  These tests read the same cubes and
planning looks twice, through the gather and through GDAL's warp per scene and band
(``GATHER = False``), and demand identical arrays: every band, SCL (uint8 sources), windows
across tile edges, several chunkings, the block-wise warps of the lazy stacks and the
whole-target warps of the planning looks.
"""

from __future__ import annotations

from fractions import Fraction

import dask
import numpy as np
import pytest

from s2cube.cube import load
from s2cube.grid import GlobalGrid
from s2cube.plan import coarse_window, read_coarse_look
from s2cube.reader import cache, gather, stacks, warp
from s2cube.search import search


def _both(monkeypatch, module, fn):
    out = {}
    for on in (False, True):
        monkeypatch.setattr(module, "GATHER", on)
        gather.clear_cache()
        with dask.config.set(scheduler="threads"):
            out[on] = fn()
    return out[False], out[True]


@pytest.mark.parametrize("chunks", [None, 96])
def test_gathered_cube_equals_gdal_warp_real(real_catalog, monkeypatch, chunks):
    items = search(real_catalog)
    grid = GlobalGrid(resolution=Fraction(1, 1000), cell_size=Fraction(1, 4))
    cell = grid.cell_of(15.9, 46.1)
    ref, got = _both(
        monkeypatch,
        stacks,
        lambda: load(items, cell, grid=grid, halo=5, chunksize=chunks).values,
    )
    assert ref.shape == got.shape and (ref > 0).mean() > 0.3
    np.testing.assert_array_equal(got, ref)


def test_gathered_cube_equals_gdal_warp_synthetic(sample_catalog, monkeypatch):
    # 60 m tiles of two UTM zones onto a 1/2000° grid (finer than the source along latitude)
    items = search(sample_catalog)
    grid = GlobalGrid(resolution=Fraction(1, 2000), cell_size=Fraction(1, 10))
    cell = grid.cell_of(12.0, 46.05)
    ref, got = _both(
        monkeypatch,
        stacks,
        lambda: load(items, cell, grid=grid, halo=3, chunksize=70).values,
    )
    assert (ref > 0).mean() > 0.3
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("factor", [1, 5])
def test_gathered_planning_looks_equal_gdal_warp(sample_catalog, monkeypatch, factor):
    items = search(sample_catalog)
    grid = GlobalGrid(resolution=Fraction(1, 2000), cell_size=Fraction(1, 10))
    cell = grid.cell_of(12.0, 46.05)
    window = coarse_window(grid, cell, 4, factor)

    def looks():
        return [
            read_coarse_look(it, window, factor=factor, cloud_dilation=2, shadow_dilation=1)
            for it in items
        ]

    ref, got = _both(monkeypatch, warp, looks)
    assert any((lk.codes != 0).any() for lk in ref)
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_array_equal(b.codes, a.codes)
        np.testing.assert_array_equal(b.bands, a.bands)


def test_gather_map_shares_one_mapping_per_grid(sample_catalog, monkeypatch):
    """Scenes of one tile reuse one mapping: a second scene computes nothing new."""
    items = [it for it in search(sample_catalog) if "32T" in it.id][:3]
    grid = GlobalGrid(resolution=Fraction(1, 2000), cell_size=Fraction(1, 10))
    cell = grid.cell_of(11.95, 46.05)
    monkeypatch.setattr(stacks, "GATHER", True)
    gather.clear_cache()
    misses0 = next(gather._MAPS.misses)
    with dask.config.set(scheduler="sync"):
        load(items, cell, grid=grid, bands=["red"]).compute()
    computed = next(gather._MAPS.misses) - misses0 - 1
    # one map per source grid (the 60 m band grid and SCL's) and read chunk, not per scene
    assert 1 <= computed <= 2


def test_gather_map_apply_puts_nodata_where_nothing_maps():
    gm = gather.GatherMap((10, 20, 2, 3), np.array([[0, 5, 6], [6, 2, 1]], dtype="int32"))
    src = np.arange(1, 7, dtype="uint16").reshape(2, 3)
    np.testing.assert_array_equal(gm.apply(src, fill=0), [[1, 6, 0], [0, 3, 2]])


def _tiny_tif(path: str, value: int) -> None:
    """An 8×8 uint16 GeoTIFF (UTM 33N, nodata 0) holding ``value`` everywhere."""
    import rasterio
    from rasterio.transform import from_origin

    profile = dict(
        driver="GTiff", width=8, height=8, count=1, dtype="uint16", nodata=0, crs="EPSG:32633"
    )
    profile["transform"] = from_origin(500000, 5100000, 10, 10)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 8, 8), value, "uint16"))


def _read00(path):
    from s2cube.reader import gdal_env

    with cache.checkout(path, gdal_env()) as ds:
        return int(ds.read(1)[0, 0])


def test_checkout_sees_a_rewritten_file(tmp_path):
    """Datasets are kept open for reuse, but a file rewritten in place is read afresh."""
    import os

    path = str(tmp_path / "a.tif")
    _tiny_tif(path, 7)
    assert _read00(path) == 7
    _tiny_tif(path, 9)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert _read00(path) == 9


def test_checkout_shares_datasets_across_threads_one_user_at_a_time(tmp_path):
    """A returned dataset serves the next read of the file on any thread; two reads at the
    same moment get two datasets; clear_cache closes them all (a timed run starts cold)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from s2cube.reader import gdal_env

    path = str(tmp_path / "a.tif")
    _tiny_tif(path, 7)
    gather.clear_cache()
    opened = cache._DATASETS.opened
    with cache.checkout(path, gdal_env()) as first:
        pass
    with ThreadPoolExecutor(1) as pool:  # another thread gets the same dataset back
        assert pool.submit(lambda: cache.checkout(path, gdal_env()).__enter__()).result() is first
    assert cache._DATASETS.opened == opened + 1  # the file was opened once for both reads
    gather.clear_cache()  # the one above was never returned: it stays out of the pool
    with cache.checkout(path, gdal_env()) as first:
        pass
    # two threads inside checkout at once never share a dataset
    both = threading.Barrier(2)
    held: list = []

    def hold():
        with cache.checkout(path, gdal_env()) as ds:
            held.append(ds)
            both.wait(timeout=10)
            return int(ds.read(1)[0, 0])

    with ThreadPoolExecutor(2) as pool:
        assert [f.result() for f in [pool.submit(hold), pool.submit(hold)]] == [7, 7]
    assert held[0] is not held[1] and first in held
    gather.clear_cache()
    assert first.closed and held[0].closed and held[1].closed
    assert _read00(path) == 7


def test_checkout_closes_a_dataset_whose_read_raised_and_is_bounded(tmp_path, monkeypatch):
    """A dataset whose read failed is closed, not reused; at most OPEN_DATASETS idle ones are
    kept (least recently returned closed first); one returned after clear_cache is closed."""
    from s2cube.reader import gdal_env

    paths = [str(tmp_path / f"{i}.tif") for i in range(3)]
    for i, p in enumerate(paths):
        _tiny_tif(p, i + 1)
    gather.clear_cache()
    with pytest.raises(RuntimeError), cache.checkout(paths[0], gdal_env()) as bad:
        raise RuntimeError("read failed")
    assert bad.closed
    with cache.checkout(paths[0], gdal_env()) as ds:
        assert ds is not bad and int(ds.read(1)[0, 0]) == 1
    monkeypatch.setattr(cache._DATASETS, "limit", 2)
    kept = []
    for p in paths:
        with cache.checkout(p, gdal_env()) as ds:
            kept.append(ds)
    assert [d.closed for d in kept] == [True, False, False]
    with cache.checkout(paths[1], gdal_env()) as ds:
        assert ds is kept[1]
        gather.clear_cache()
    assert ds.closed and kept[2].closed


def test_to_map_in_place_equals_the_direct_formula(monkeypatch):
    """The strip-wise, in-place index of `_to_map` (bounded memory for large looks) equals the
    direct formula, for strips smaller than the array and with holes and an empty map."""
    from s2cube.reader import gather as g

    def direct(rows1, cols1):
        valid = (rows1 > 0) & (cols1 > 0)
        r, c = rows1[valid] - 1, cols1[valid] - 1
        r0, c0 = int(r.min()), int(c.min())
        h, w = int(r.max()) + 1 - r0, int(c.max()) + 1 - c0
        index = np.full(rows1.shape, h * w, dtype="int32")
        index[valid] = (r - r0) * w + (c - c0)
        return (r0, c0, h, w), index

    monkeypatch.setattr(g, "_STRIP", 7)
    rng = np.random.default_rng(0)
    for trial in range(5):
        rows1 = rng.integers(0, 900, (50, 61)).astype("int32") + 40 * trial
        cols1 = rng.integers(0, 700, (50, 61)).astype("int32")
        rows1[rng.random((50, 61)) < 0.2] = 0
        cols1[rng.random((50, 61)) < 0.1] = 0
        want_window, want = direct(rows1.copy(), cols1.copy())
        got = g._to_map(rows1.copy(), cols1)
        assert got.window == want_window
        np.testing.assert_array_equal(got.index, want)
    empty = g._to_map(np.zeros((9, 4), "int32"), np.ones((9, 4), "int32"))
    assert empty.empty and empty.index.shape == (9, 4)


@pytest.mark.parametrize("dtype", ["uint16", "uint8"])
def test_block_maps_warp_every_digit_in_one_pass(monkeypatch, dtype):
    """The block-wise maps warp all index digits as the bands of one raster; GDAL warps each
    512×128 VRT block on its own, so the mapping equals one warp per digit exactly.  A real
    Sentinel-2 tile geometry (10980² px at 10 m, UTM 33N) on the 1/12000° grid, windows of
    several sizes across VRT block edges (uint8: two digits per axis)."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from s2cube.reader import gdal_env

    grid = gather.SourceGrid(
        CRS.from_epsg(32633).to_wkt(), tuple(from_origin(499980, 5200020, 10, 10))[:6], 10980, 10980
    )
    transform = from_origin(-180, 90, 1 / 12000, 1 / 12000)
    env = gdal_env()
    r, c = int((90 - 46.6) * 12000), int((180 + 15.3) * 12000)
    windows = [(r, c, 128, 512), (r + 77, c + 301, 300, 700), (r + 1000, c + 2000, 513, 129)]
    orig = gather._warp_index

    def maps(together):
        monkeypatch.setattr(
            gather, "_warp_index", lambda *a, **k: orig(*a, **{**k, "together": together})
        )
        gather.clear_cache()
        return [
            gather.gather_map(
                grid,
                crs="EPSG:4326",
                transform=transform,
                width=360 * 12000,
                height=180 * 12000,
                window=win,
                env=env,
                dtype=dtype,
            )
            for win in windows
        ]

    for a, b in zip(maps(False), maps(True), strict=True):
        assert a.window == b.window
        assert (a.index < a.window[2] * a.window[3]).mean() > 0.99
        np.testing.assert_array_equal(b.index, a.index)


# --- the shared tile cache (read_window) -------------------------------------------------


def _tiled_tif(path: str, shape=(300, 340), block=64, seed=0, bands=2) -> np.ndarray:
    """A tiled uint16 GeoTIFF (edge tiles partial) of random values; returns its pixels."""
    import rasterio
    from rasterio.transform import from_origin

    data = np.random.default_rng(seed).integers(1, 10000, (bands, *shape), dtype="uint16")
    profile = dict(
        driver="GTiff", width=shape[1], height=shape[0], count=bands, dtype="uint16", nodata=0,
        crs="EPSG:32633", tiled=True, blockxsize=block, blockysize=block, compress="deflate",
        transform=from_origin(500000, 5100000, 10, 10),
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return data


class _CountingReads:
    """Wraps a dataset; counts its reads (and fails the first ``fail`` of them)."""

    def __init__(self, ds, fail: int = 0) -> None:
        self.ds, self.reads, self.fail = ds, 0, fail
        self.name, self.height, self.width = ds.name, ds.height, ds.width
        self.block_shapes, self.dtypes = ds.block_shapes, ds.dtypes

    def read(self, band, window):
        self.reads += 1
        if self.fail:
            self.fail -= 1
            raise OSError("injected read failure")
        return self.ds.read(band, window=window)


def test_read_window_equals_a_plain_read(tmp_path):
    """Any window, across tile edges and the partial edge tiles, either band: the same array
    as GDAL's own window read, whether its tiles come from GDAL or from the cache."""
    import rasterio

    path = str(tmp_path / "t.tif")
    data = _tiled_tif(path)
    rng = np.random.default_rng(1)
    gather.clear_cache()
    hits0 = next(cache._TILES.hits)
    with rasterio.open(path) as ds:
        for _ in range(60):
            r0, c0 = int(rng.integers(0, 299)), int(rng.integers(0, 339))
            h, w = int(rng.integers(1, 301 - r0)), int(rng.integers(1, 341 - c0))
            band = int(rng.integers(1, 3))
            got = cache.read_window(ds, band, r0, c0, h, w)
            np.testing.assert_array_equal(got, data[band - 1, r0 : r0 + h, c0 : c0 + w])
        assert next(cache._TILES.hits) - hits0 - 1 > 0  # the cache served some of them


def test_read_window_decodes_each_tile_once_across_threads(tmp_path):
    """Eight threads reading overlapping windows at once: every tile is read from the file
    once, whoever asks first; the others wait for it (the refetch this cache removes)."""
    import threading

    import rasterio

    path = str(tmp_path / "t.tif")
    data = _tiled_tif(path, bands=1)
    gather.clear_cache()
    misses0 = next(cache._TILES.misses)
    with rasterio.open(path) as raw:
        ds = _CountingReads(raw)
        lock = threading.Lock()  # one GDAL dataset: its own reads must not overlap
        plain = ds.read

        def serialised(band, window):
            with lock:
                return plain(band, window)

        ds.read = serialised  # type: ignore[method-assign]
        go = threading.Barrier(8)
        out: dict[int, np.ndarray] = {}

        def work(i: int) -> None:
            go.wait()
            out[i] = cache.read_window(ds, 1, 10 + 7 * i, 20 + 5 * i, 200, 250)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    distinct = set()
    for i in range(8):
        r0, c0 = 10 + 7 * i, 20 + 5 * i
        np.testing.assert_array_equal(out[i], data[0, r0 : r0 + 200, c0 : c0 + 250])
        for ty in range(r0 // 64, (r0 + 199) // 64 + 1):
            distinct |= {(ty, tx) for tx in range(c0 // 64, (c0 + 249) // 64 + 1)}
    assert len(cache._TILES.items) == len(distinct)
    assert next(cache._TILES.misses) - misses0 - 1 == len(distinct)  # each tile made once
    assert ds.reads <= len(distinct)  # one read may make several tiles


def test_read_window_failure_caches_nothing_and_retries(tmp_path):
    """A failed read leaves no entry and no claim behind: the retry reads the file again."""
    import rasterio

    path = str(tmp_path / "t.tif")
    data = _tiled_tif(path, bands=1)
    gather.clear_cache()
    with rasterio.open(path) as raw:
        ds = _CountingReads(raw, fail=1)
        with pytest.raises(OSError, match="injected"):
            cache.read_window(ds, 1, 0, 0, 100, 100)
        assert not cache._TILES.items and not cache._TILES.pending
        again = cache.read_window(ds, 1, 0, 0, 100, 100)
        np.testing.assert_array_equal(again, data[0, :100, :100])


def test_read_window_cache_is_bounded_and_sees_rewritten_files(tmp_path, monkeypatch):
    import os

    import rasterio

    path = str(tmp_path / "t.tif")
    _tiled_tif(path, bands=1, seed=0)
    gather.clear_cache()
    monkeypatch.setenv("S2CUBE_TILE_CACHE_MIB", str(3 * 64 * 64 * 2 / 2**20))  # three tiles
    with rasterio.open(path) as ds:
        cache.read_window(ds, 1, 0, 0, 300, 340)
    assert 3 <= len(cache._TILES.items) < 30 and cache._TILES.size <= 3 * 64 * 64 * 2
    # rewritten in place (same size): the new pixels, not the cached tiles
    new = _tiled_tif(path, bands=1, seed=5)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with rasterio.open(path) as ds:
        corner = cache.read_window(ds, 1, 236, 276, 64, 64)
    np.testing.assert_array_equal(corner, new[0, 236:, 276:])


def test_tile_cache_setting_is_checked(tmp_path, monkeypatch):
    import rasterio

    from s2cube.errors import InputError

    path = str(tmp_path / "t.tif")
    data = _tiled_tif(path, bands=1)
    gather.clear_cache()
    with rasterio.open(path) as ds:
        monkeypatch.setenv("S2CUBE_TILE_CACHE_MIB", "0")  # off: plain reads, nothing kept
        np.testing.assert_array_equal(cache.read_window(ds, 1, 5, 5, 90, 90), data[0, 5:95, 5:95])
        assert not cache._TILES.items
        monkeypatch.setenv("S2CUBE_TILE_CACHE_MIB", "lots")
        with pytest.raises(InputError, match="S2CUBE_TILE_CACHE_MIB='lots'.*MiB >= 0"):
            cache.read_window(ds, 1, 5, 5, 90, 90)
