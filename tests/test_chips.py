"""Chips: windows and edge rules, a full 10980 px Sentinel-2-sized image (1849 chips), store
regions, label chips, and the index."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "serve"))
from synthetic import make_synthetic_store  # noqa: E402

from s2cube.chips import chip_windows, make_chips  # noqa: E402
from s2cube.errors import InputError  # noqa: E402
from s2cube.grid import Cell, GlobalGrid  # noqa: E402


def test_edge_rules() -> None:
    assert len(chip_windows(10980, 10980, 256, edge="pad")) == 1849  # seed 000: 43 × 43
    assert len(chip_windows(10980, 10980, 256, edge="drop")) == 42 * 42
    shift = chip_windows(10980, 10980, 256, edge="shift")
    assert len(shift) == 1849 and max(w.row_off for w in shift) == 10980 - 256
    assert all(w.inside_height == w.height == 256 for w in shift)
    part = chip_windows(10980, 10980, 256, edge="partial")
    assert {w.width for w in part} == {256, 10980 - 42 * 256}
    pad = chip_windows(600, 300, 256)
    assert [(w.row_off, w.col_off) for w in pad][:3] == [(0, 0), (0, 256), (256, 0)]
    with pytest.raises(InputError, match="edge"):
        chip_windows(10, 10, 4, edge="wrap")


@pytest.fixture(scope="module")
def s2_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size 10980 × 10980 px Sentinel-2 tile image (10 m, UTM 33N) with a nodata edge."""
    import rasterio
    from rasterio.transform import from_origin

    n = 10980
    rows = (np.arange(n, dtype="uint16") // 7)[:, None]
    cols = (np.arange(n, dtype="uint16") // 5)[None, :]
    a = ((rows + cols) % 4000 + 1).astype("uint16")
    a[:, :300] = 0  # a swath edge
    path = tmp_path_factory.mktemp("s2") / "T33TWM_B04_10m.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=n,
        height=n,
        count=1,
        dtype="uint16",
        crs="EPSG:32633",
        transform=from_origin(499980, 5200020, 10, 10),
        nodata=0,
        tiled=True,
        compress="deflate",
    ) as dst:
        dst.write(a, 1)
    return path


@pytest.mark.slow
def test_full_sentinel2_image_gives_1849_chips(s2_image: Path, tmp_path: Path) -> None:
    import rasterio
    from rasterio.windows import Window

    df = make_chips(s2_image, size=256, out=tmp_path / "chips", index="parquet")
    assert len(df) == 1849 == len(list((tmp_path / "chips").glob("tile_*.tif")))
    assert "tile_7936_8448" in set(df["name"])  # the seed's example name
    with rasterio.open(s2_image) as src:
        whole = src.read(1)
        for rec in df.itertuples():
            with rasterio.open(tmp_path / "chips" / rec.path) as chip:
                assert chip.crs == src.crs and chip.shape == (256, 256)
                want_t = src.window_transform(Window(rec.col_off, rec.row_off, 256, 256))
                assert chip.transform.almost_equals(want_t)
                got = chip.read(1)
            ref = whole[rec.row_off : rec.row_off + 256, rec.col_off : rec.col_off + 256]
            h, w = ref.shape
            np.testing.assert_array_equal(got[:h, :w], ref)
            assert (got[h:] == 0).all() and (got[:, w:] == 0).all()  # padding is nodata
            assert rec.valid_fraction == pytest.approx(np.count_nonzero(ref) / 256**2)
    last = df.set_index("name").loc["tile_10752_10752"]
    assert last.valid_fraction == pytest.approx((10980 - 10752) ** 2 / 256**2)
    import pyarrow.parquet as pq

    meta = pq.read_schema(tmp_path / "chips" / "chips.parquet").metadata
    assert b"geo" in meta and b"Polygon" in meta[b"geo"]


def test_store_region_chips_and_labels(tmp_path: Path) -> None:
    import pandas as pd
    import rasterio

    import s2cube

    grid = GlobalGrid(resolution=Fraction(1, 400), cell_size=Fraction(1, 2), chunk_size=50)
    store = make_synthetic_store(tmp_path / "s.zarr", grid, [Cell(87, 391)])
    # an aligned label raster covering the cell, with a class per 10 px stripe
    ds = s2cube.open_store(store, cell="r0087c0391")
    west, north = float(ds.longitude[0]) - 1 / 800, float(ds.latitude[0]) + 1 / 800
    from rasterio.transform import from_origin

    lab = (np.arange(200)[:, None] // 10 % 6 + np.zeros((1, 200), int)).astype("uint8")
    lab_path = tmp_path / "labels.tif"
    with rasterio.open(
        lab_path,
        "w",
        driver="GTiff",
        width=200,
        height=200,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(west, north, 1 / 400, 1 / 400),
        nodata=255,
    ) as dst:
        dst.write(lab, 1)
    df = make_chips(store, cell="r0087c0391", size=64, out=tmp_path / "c", labels=lab_path)
    assert len(df) == 16  # 200 px at 64: 4 × 4 with padding
    assert Path(df.attrs["path"]).name == "chips.csv"
    assert pd.read_csv(df.attrs["path"]).shape[0] == 16
    red = ds["red"].values
    for rec in df.itertuples():
        with rasterio.open(tmp_path / "c" / rec.path) as chip:
            assert chip.count == 4 and chip.crs.to_epsg() == 4326
            assert chip.descriptions[0] == "red"
            data = chip.read()
            # georeferencing: the chip's first pixel centre is the store's coordinate
            x, y = chip.transform * (0.5, 0.5)
            assert x == pytest.approx(float(ds.longitude[rec.col_off]))
            assert y == pytest.approx(float(ds.latitude[rec.row_off]))
        ref = red[rec.row_off : rec.row_off + 64, rec.col_off : rec.col_off + 64]
        np.testing.assert_array_equal(data[0, : ref.shape[0], : ref.shape[1]], ref)
        with rasterio.open(tmp_path / "c" / rec.label_path) as lchip:
            lref = lab[rec.row_off : rec.row_off + 64, rec.col_off : rec.col_off + 64]
            np.testing.assert_array_equal(lchip.read(1)[: lref.shape[0], : lref.shape[1]], lref)
    # a bbox region gives the same pixels as the cell when it covers the cell
    b = grid.cell_bounds(Cell(87, 391))
    df2 = make_chips(store, bbox=b, size=64, out=tmp_path / "b", edge="drop")
    assert len(df2) == 9 and set(df2["name"]) <= set(df["name"])


def test_errors(tmp_path: Path) -> None:
    grid = GlobalGrid(resolution=Fraction(1, 400), cell_size=Fraction(1, 2), chunk_size=50)
    store = make_synthetic_store(tmp_path / "s.zarr", grid, [Cell(87, 391)])
    with pytest.raises(InputError, match="exactly one of cell"):
        make_chips(store, out=tmp_path / "x")
    with pytest.raises(InputError, match="not one"):
        make_chips(tmp_path / "nothing.tif", out=tmp_path / "x", cell="r0087c0391")
    with pytest.raises(InputError, match="does not exist"):
        make_chips(tmp_path / "nothing.tif", out=tmp_path / "x")
    with pytest.raises(InputError, match="index"):
        make_chips(store, cell="r0087c0391", out=tmp_path / "x", index="xlsx")
