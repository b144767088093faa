"""``s2cube export``: COGs of a real store that GDAL and rasterio read, with the store's exact
grid and pixels, valid COG layout, and clean errors (exit status 2) for bad arguments.

The store is made by ``s2cube.mosaic`` from the real two-tile fixture: two adjacent cells at
1/800° with their overview pyramid, so an export that crosses the cell edge is checked too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

import s2cube
from s2cube.cli import main
from s2cube.export import export_cells, export_cog, export_window
from s2cube.grid import GlobalGrid
from s2cube.overviews import open_level, pyramid
from s2cube.render import tone_curve
from s2cube.store import open_store

GRID = GlobalGrid(resolution=Fraction(1, 800), cell_size=Fraction(1, 2), chunk_size=100)
#: two cells, 15.5..16.5 E x 46.0..46.5 N
CELLS_BBOX = (15.55, 46.05, 16.45, 46.45)
#: crosses the edge between the two cells (16.0 E), not aligned to any pixel edge
BBOX = (15.8003, 46.1502, 16.2004, 46.4001)


@pytest.fixture(scope="module")
def real_store(real_catalog, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("export") / "m.zarr"
    s2cube.mosaic(real_catalog, store=store, bbox=CELLS_BBOX, grid=GRID)
    assert len(s2cube.read_manifest(store)) == 2
    return store


def _store_pixels(store: Path, level: int, bbox, bands) -> tuple[np.ndarray, Affine]:
    """The store's pixels for the export, read with the public readers (not s2cube.export)."""
    if level == 0:
        ds = open_store(store, bbox=bbox, chunks=False)
    else:
        w = export_window(GRID, bbox, level)
        ds = open_level(store, level).isel(latitude=w.rows, longitude=w.cols)
    return np.stack([ds[b].values for b in bands]), ds.rio.transform(recalc=True)


def _cog_layout_ok(path: Path) -> None:
    from rio_cogeo.cogeo import cog_validate

    valid, errors, _warnings = cog_validate(str(path), strict=True)
    assert valid and not errors, errors
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


@pytest.mark.parametrize("level", [0, 1, 3])
def test_cog_has_the_store_grid_and_pixels(real_store, tmp_path, level):
    out = tmp_path / f"l{level}.tif"
    # level 3 (1/100°, a coarse level): the two whole cells, so the COG has an overview
    bbox, blocksize = (BBOX, 128) if level < 3 else (CELLS_BBOX, 64)
    res = export_cog(real_store, out, bbox=bbox, level=level, blocksize=blocksize)
    want, store_transform = _store_pixels(real_store, level, bbox, ("red", "green", "blue", "nir"))
    assert (want > 0).mean() > 0.5  # real composite pixels, not an empty region
    # the exact transform: the level's pixels of the grid, from the grid's fractions
    res_deg = Fraction(1, 800) * 2**level
    w = export_window(GRID, bbox, level)
    exact = Affine(float(res_deg), 0, float(-180 + w.col0 * res_deg), 0, -float(res_deg),
                   float(90 - w.row0 * res_deg))  # fmt: skip
    with rasterio.open(out) as src:
        assert src.driver == "GTiff" and src.crs.to_epsg() == 4326
        assert src.count == 4 and src.dtypes == ("uint16",) * 4
        assert src.descriptions == ("red", "green", "blue", "nir")
        assert src.nodatavals == (0, 0, 0, 0)
        assert src.transform == exact
        assert src.transform.almost_equals(store_transform, precision=1e-12)
        assert src.is_tiled and src.block_shapes[0] == (blocksize, blocksize)
        overviews = src.overviews(1)
        assert overviews, "no internal overviews"
        assert src.compression.name.lower() == "deflate"
        np.testing.assert_array_equal(src.read(), want)
        # the overviews average valid pixels only: no nodata bleeds into them
        ov = src.read(1, out_shape=(src.height // 2, src.width // 2))
        assert (ov > 0).mean() >= (want[0] > 0).mean() - 0.05
    assert (res.shape, res.level, res.overviews) == (want.shape[1:], level, len(overviews))
    _cog_layout_ok(out)


def test_gdalinfo_reads_the_cog(real_store, tmp_path):
    gdalinfo = shutil.which("gdalinfo")
    if gdalinfo is None:
        pytest.skip("gdalinfo is not installed (apt-get install gdal-bin); rasterio checks ran")
    out = tmp_path / "m.tif"
    export_cog(real_store, out, bbox=BBOX, level=1, blocksize=128, compress="zstd")
    info = json.loads(
        subprocess.run(
            [gdalinfo, "-json", str(out)], check=True, capture_output=True, text=True
        ).stdout
    )
    w = export_window(GRID, BBOX, 1)
    assert info["size"] == [w.width, w.height]
    np.testing.assert_allclose(info["geoTransform"], w.geotransform, rtol=0, atol=1e-12)
    assert 'ID["EPSG",4326]' in info["coordinateSystem"]["wkt"]
    assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"
    assert info["metadata"]["IMAGE_STRUCTURE"]["COMPRESSION"] == "ZSTD"
    assert [b["description"] for b in info["bands"]] == ["red", "green", "blue", "nir"]
    for band in info["bands"]:
        assert band["noDataValue"] == 0 and band["overviews"]
        assert band["block"] == [128, 128]


def test_rendered_is_the_tone_curve_with_alpha(real_store, tmp_path):
    out = tmp_path / "tc.tif"
    export_cog(real_store, out, bbox=BBOX, level=1, rendered=True, blocksize=128)
    rgb, _ = _store_pixels(real_store, 1, BBOX, ("red", "green", "blue"))
    valid = (rgb > 0).all(axis=0)
    with rasterio.open(out) as src:
        assert src.count == 4 and src.dtypes[0] == "uint8" and src.nodata is None
        assert src.colorinterp[3].name == "alpha"
        got = src.read()
    np.testing.assert_array_equal(got[3], np.where(valid, 255, 0))
    np.testing.assert_array_equal(got[:3], np.where(valid, tone_curve(rgb), 0))
    _cog_layout_ok(out)


def test_per_cell_set_tiles_the_single_export(real_store, tmp_path):
    single = tmp_path / "one.tif"
    export_cog(real_store, single, bbox=BBOX, bands=["nir", "red"], blocksize=128)
    results = export_cells(real_store, tmp_path / "cells", bbox=BBOX, bands=["nir", "red"])
    assert sorted(r.path.name for r in results) == sorted(
        f"{c.name}.tif" for c in GRID.cells_in_bbox(CELLS_BBOX)
    )
    with rasterio.open(single) as src:
        whole, origin = src.read(), src.transform
    widths = 0
    for r in results:
        with rasterio.open(r.path) as src:
            col, row = ~origin * (src.transform.c, src.transform.f)
            col, row = round(col), round(row)
            assert src.transform == origin * Affine.translation(col, row)
            part = whole[:, row : row + src.height, col : col + src.width]
            np.testing.assert_array_equal(src.read(), part)
            widths += src.width
            assert src.descriptions == ("nir", "red")
    assert widths == whole.shape[2]  # the tiles do not overlap and cover the export


def test_cli_writes_a_cog(real_store, tmp_path):
    out = tmp_path / "cli.tif"
    args = ["export", str(real_store), "--bbox", *map(str, BBOX), "--level", "1"]
    res = CliRunner().invoke(main, [*args, "--bands", "nir,red", str(out)])
    assert res.exit_code == 0, res.output
    assert "overview" in res.output and str(out) in res.output
    with rasterio.open(out) as src:
        assert src.descriptions == ("nir", "red") and src.overviews(1) == []  # 160 px < 512
    again = CliRunner().invoke(main, [*args, "--overwrite", "--blocksize", "64", str(out)])
    assert again.exit_code == 0, again.output
    with rasterio.open(out) as src:
        assert src.count == 4 and src.overviews(1)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bbox", "0", "0", "1", "1"], "touches none of the store's 2 finished cell(s)"),
        (["--bbox", "15.9", "46.1", "15.9", "46.2"], "west (15.9) must be smaller"),
        (["--level", "13"], "--level 13 is not a level of this store"),
        (["--level", "-1"], "--level -1 is not a level"),
        (["--bands", "red,swir"], "band 'swir' is not in this store"),
        (["--rendered", "--bands", "nir"], "--rendered writes the red/green/blue"),
        (["--per-cell", "DIR", "--level", "3"], "--per-cell needs a level"),
        (["--format", "png"], "'png' is not 'cog'"),
        (["--blocksize", "100"], "multiple of 16"),
    ],
)
def test_cli_errors_exit_2_and_write_nothing(real_store, tmp_path, extra, message):
    out = tmp_path / "bad.tif"
    extra = [str(tmp_path / "cells") if e == "DIR" else e for e in extra]
    base = ["export", str(real_store), "--bbox", *map(str, BBOX)]
    res = CliRunner().invoke(main, [*base, *extra, str(out)])
    assert res.exit_code == 2, res.output
    assert message in res.output, res.output
    assert not out.exists() and not (tmp_path / "cells").exists()
    assert not list(tmp_path.glob(".*.tif"))


def test_cli_refuses_an_existing_output(real_store, tmp_path):
    out = tmp_path / "exists.tif"
    out.write_bytes(b"keep me")
    res = CliRunner().invoke(main, ["export", str(real_store), "--bbox", *map(str, BBOX), str(out)])
    assert res.exit_code == 2 and "exists; pass --overwrite" in res.output, res.output
    assert out.read_bytes() == b"keep me"
    none = CliRunner().invoke(main, ["export", str(real_store), "--bbox", *map(str, BBOX)])
    assert none.exit_code == 2 and "name an output" in none.output


def test_levels_without_overviews_are_refused(real_catalog, tmp_path):
    store = tmp_path / "no-ov.zarr"
    s2cube.mosaic(
        real_catalog,
        store=store,
        bbox=GRID.cell_bounds(GRID.cell_of(15.9, 46.1)),
        grid=GRID,
        execution=s2cube.ExecutionOptions(overviews=False),
    )
    assert len(pyramid(GRID)) == 13
    with pytest.raises(s2cube.errors.StoreError, match="overviews"):
        export_cog(store, tmp_path / "x.tif", bbox=BBOX, level=2)
    assert not (tmp_path / "x.tif").exists()
