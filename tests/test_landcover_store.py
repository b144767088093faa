"""Land cover into the store: Dynamic World on the nine-band synthetic catalog through the CLI,
reopened with xarray; resume, lease, overviews (mode of the classes) and exact pruning.

The sample is synthetic (60 m pixels, red edge derived from red/nir), on a 1/2000° grid
(~39 × 56 m): Dynamic World is far off its 10 m L1C training data here, so the class shares
this prints show the pipeline runs, not that the classes are right.
"""

from __future__ import annotations

import json
import warnings
from fractions import Fraction

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

pytest.importorskip("torch")

from s2cube.cli import main  # noqa: E402
from s2cube.grid import GlobalGrid  # noqa: E402
from s2cube.landcover.kernels import LANDCOVER_CLASSES  # noqa: E402
from s2cube.store.landcover import LANDCOVER_VARS, read_landcover_manifest  # noqa: E402

GRID = GlobalGrid(resolution=Fraction(1, 2000), cell_size=Fraction(1, 20), chunk_size=50)
BBOX = (12.005, 46.005, 12.045, 46.045)  # one cell of 100 px
ARGS = ["--resolution", "1/2000", "--cell-size", "1/20", "--chunk-size", "50", "--window", "64"]
ARGS += ["--chunk", "32", "--cell-halo", "8", "--dilation", "1"]


@pytest.fixture(scope="module")
def catalog9(tmp_path_factory):
    from s2cube.testing import make_sample_catalog

    return make_sample_catalog(tmp_path_factory.mktemp("sample9"), rededge=True, n_dates=4)


@pytest.fixture(scope="module")
def lc_store(catalog9, tmp_path_factory):
    store = tmp_path_factory.mktemp("lc") / "lc.zarr"
    bbox = [str(v) for v in BBOX]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = CliRunner().invoke(
            main, ["landcover", str(store), "-c", str(catalog9), "--bbox", *bbox, *ARGS, "--json"]
        )
    assert res.exit_code == 0, res.output
    return store, json.loads(res.output[res.output.index("{") :])


def test_catalog_has_the_nine_bands(catalog9):
    import pystac

    item = next(pystac.Catalog.from_file(str(catalog9)).get_items(recursive=True))
    for band in ("rededge1", "rededge2", "rededge3", "swir16", "swir22", "nir"):
        assert band in item.assets
    import rasterio

    item.make_asset_hrefs_absolute()
    with rasterio.open(item.assets["red"].href) as r, rasterio.open(item.assets["nir"].href) as n:
        red, nir = r.read(1).astype(float), n.read(1).astype(float)
    with rasterio.open(item.assets["rededge2"].href) as e:
        re2 = e.read(1).astype(float)
    ok = (red > 0) & (nir > 0)
    np.testing.assert_allclose(re2[ok], np.rint(red[ok] + 0.7 * (nir[ok] - red[ok])), atol=0.5)


def test_cli_writes_landcover_into_the_store(lc_store):
    store, report = lc_store
    shares = report["class_shares"]
    print("class shares (synthetic, 1/2000 deg):", {k: round(v, 4) for k, v in shares.items()})
    assert report["written"] and set(shares) == set(LANDCOVER_CLASSES)
    assert abs(sum(shares.values()) - 1) < 1e-9
    ds = xr.open_zarr(store, decode_coords="all", chunks=None)
    for v in LANDCOVER_VARS:
        assert ds[v].dtype == np.uint8
    win = GRID.cell_window(GRID.cells_in_bbox(BBOX)[0])
    sub = ds.isel(latitude=win.rows, longitude=win.cols).load()
    cls, conf, n = (sub[v].values for v in LANDCOVER_VARS)
    assert set(np.unique(cls)) <= set(range(len(LANDCOVER_CLASSES) + 1))
    assert (cls > 0).mean() > 0.9  # four dates, one clear: nearly every pixel has a clear date
    assert ((conf > 0) == (cls > 0)).all() and conf.max() <= 100
    assert ((n > 0) == (cls > 0)).all() and n.max() <= 8  # 4 dates × 2 tiles at most
    assert ds.landcover.attrs["flag_meanings"] == " ".join(LANDCOVER_CLASSES)
    rec = read_landcover_manifest(store)[win_name(win)]
    assert sum(rec["classes"].values()) == cls.size
    assert rec["date_blocks_run"] <= rec["date_blocks_total"]


def win_name(win):
    return GRID.cells_in_bbox(BBOX)[0].name


def test_overviews_take_the_mode(lc_store):
    from s2cube.overviews import open_level
    from s2cube.overviews.kernels import downsample_classes

    store, _ = lc_store
    win = GRID.cell_window(GRID.cells_in_bbox(BBOX)[0])
    full = xr.open_zarr(store, chunks=None).isel(latitude=win.rows, longitude=win.cols)
    arrays = [full[v].values for v in LANDCOVER_VARS]
    lv1 = open_level(store, 1)
    w1 = win.zoom_out(2)
    got = [lv1[v].isel(latitude=w1.rows, longitude=w1.cols).values for v in LANDCOVER_VARS]
    for a, b in zip(downsample_classes(*arrays), got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_rerun_resumes_and_a_held_lease_refuses(lc_store, catalog9):
    from s2cube.landcover.run import LandcoverOptions, landcover_store
    from s2cube.store import Lease, LeaseError

    store, _ = lc_store
    win = GRID.cell_window(GRID.cells_in_bbox(BBOX)[0])

    def cell_map():
        ds = xr.open_zarr(store, chunks=None)
        return ds.landcover.isel(latitude=win.rows, longitude=win.cols).values

    before = cell_map()
    opts = LandcoverOptions(window=64, chunk=32, cell_halo=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = landcover_store(store, catalog9, bbox=BBOX, options=opts)
    assert rep.skipped == rep.cells and not rep.written
    np.testing.assert_array_equal(cell_map(), before)
    other = Lease(store).acquire()
    try:
        with pytest.raises(LeaseError):
            landcover_store(store, catalog9, bbox=BBOX, options=opts, overwrite=True)
    finally:
        other.release()


def test_pruned_cell_equals_the_unpruned_wrapper(catalog9):
    """Skipping blocks without a clear pixel in reach changes no fused pixel."""
    import s2cube
    from s2cube.cube import load
    from s2cube.landcover.run import LandcoverOptions, cell_landcover, clear_of, plan_looks
    from s2cube.mask import CLEAR, CLOUD
    from s2cube.models import load_model
    from s2cube.search import search

    bands = ("blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "swir16", "swir22")
    cell = GRID.cells_in_bbox(BBOX)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = search(str(catalog9), bbox=BBOX, bands=bands)
        cube = load(items, cell, grid=GRID, bands=bands, halo=8, chunksize=24)
        opts = LandcoverOptions(window=32, overlap=8, chunk=24, cell_halo=8, halo=31)
        clear = clear_of(cube, 1)
        looks = np.asarray(plan_looks(clear).compute())
        model = load_model("dynamicworld")
        pruned = cell_landcover(cube, clear, looks, model, opts).compute()
        codes = xr.DataArray(np.where(clear.compute(), CLEAR, CLOUD), dims=("time", *cube.dims[2:]))
        ref = s2cube.landcover(cube, codes, window=32, overlap=8, halo=31)
        ref = ref.compute()
    print(f"date blocks run: {int(looks.sum())} of {looks.size}")
    assert looks.sum() < looks.size  # the cloudy date has blocks without a clear pixel
    np.testing.assert_array_equal(pruned[0].astype("uint8"), ref.landcover.values)
    np.testing.assert_allclose(pruned[1], ref.confidence.values, atol=1e-5)
    np.testing.assert_array_equal(pruned[2].astype("uint8"), ref.n_dates.values)


def test_wmts_landcover_layer_in_the_palette(lc_store):
    """The served land-cover tile shows each stored class in the store's palette."""
    import morecantile

    from s2cube.landcover.kernels import LANDCOVER_COLORS
    from s2cube.serve.tiles import TileSource
    from s2cube.serve.wmts import capabilities_xml

    store, _ = lc_store
    src = TileSource(store)
    assert "landcover" in src.layer_ids()
    info = src.info()
    assert {v["name"]: v["color"] for v in info["landcover"].values()} == {
        c: LANDCOVER_COLORS[c] for c in LANDCOVER_CLASSES
    }
    assert "<ows:Identifier>landcover</ows:Identifier>" in capabilities_xml(src, "http://x")
    lon, lat = (BBOX[0] + BBOX[2]) / 2, (BBOX[1] + BBOX[3]) / 2
    z = src.maxzoom("WorldCRS84Quad")
    t = morecantile.tms.get("WorldCRS84Quad").tile(lon, lat, z)
    rgba = src.tile("landcover", "WorldCRS84Quad", z, t.x, t.y)
    cls = src.read("landcover", "WorldCRS84Quad", z, t.x, t.y)["landcover"]
    assert (cls > 0).any()
    for code, (name, color) in src.landcover_palette().items():
        hit = cls == code
        if hit.any():
            rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
            assert (rgba[hit][:, :3] == rgb).all() and (rgba[hit][:, 3] == 255).all(), name
    assert (rgba[cls == 0][:, 3] == 0).all()
