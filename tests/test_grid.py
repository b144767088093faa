from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s2cube.errors import InputError
from s2cube.grid import DEFAULT_GRID, Cell, GlobalGrid, Window, validate_bbox


def test_default_grid_is_worldcover():
    g = DEFAULT_GRID
    assert g.resolution == Fraction(1, 12000)
    assert g.cell_shape == (12000, 12000)
    assert g.shape == (2_160_000, 4_320_000)
    assert g.n_cells == (180, 360)
    assert 12000 % g.chunk_size == 0
    assert g.transform == (-180.0, 1 / 12000, 0.0, 90.0, 0.0, -1 / 12000)


def test_float_resolution_recovers_exact_fraction():
    assert GlobalGrid(resolution=1 / 12000).resolution == Fraction(1, 12000)
    assert GlobalGrid(resolution=0.001, cell_size=0.5).cell_pixels == 500


def test_cell_of_and_bounds_round_trip():
    g = GlobalGrid(resolution=Fraction(1, 1000), cell_size=Fraction(1, 2))
    cell = g.cell_of(15.9, 46.1)
    assert cell == Cell(87, 391)
    w, s, e, n = g.cell_bounds(cell)
    assert (w, s, e, n) == (15.5, 46.0, 16.0, 46.5)
    assert w <= 15.9 < e and s <= 46.1 < n
    rows, cols = g.cell_region(cell)
    lat = g.latitudes(rows.start, rows.stop)
    lon = g.longitudes(cols.start, cols.stop)
    assert lat[0] == pytest.approx(46.5 - 0.0005) and lat[-1] == pytest.approx(46.0 + 0.0005)
    assert lon[0] == pytest.approx(15.5 + 0.0005) and lon[-1] == pytest.approx(16.0 - 0.0005)
    assert Cell.from_name(cell.name) == cell


def test_halo_grows_bounds_and_region():
    g = GlobalGrid(resolution=Fraction(1, 100), cell_size=1)
    cell = Cell(40, 190)
    rows, cols = g.cell_region(cell, halo=3)
    assert rows.stop - rows.start == 106
    w, s, e, n = g.cell_bounds(cell, halo=3)
    assert e - w == pytest.approx(1.06)


def test_cells_in_bbox_cover_the_bbox_exactly():
    g = GlobalGrid(resolution=Fraction(1, 100), cell_size=Fraction(1, 4))
    cells = g.cells_in_bbox((15.3, 45.9, 16.6, 46.9))
    rows = {c.row for c in cells}
    cols = {c.col for c in cells}
    assert len(cells) == len(rows) * len(cols)
    assert len(cols) == 6 and len(rows) == 5  # 15.25..16.75, 45.75..47.0
    # a bbox on a cell edge does not pull in the neighbour
    assert g.cells_in_bbox((15.0, 46.0, 15.25, 46.25)) == [g.cell_of(15.1, 46.1)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"resolution": 0.001, "cell_size": 0.0015}, "whole number of pixels"),
        ({"resolution": 0.01, "cell_size": 0.7}, "does not divide 180"),
        ({"resolution": -1}, "must be > 0"),
    ],
)
def test_bad_grid_parameters(kwargs, match):
    with pytest.raises(InputError, match=match):
        GlobalGrid(**kwargs)


@pytest.mark.parametrize(
    "bbox, match",
    [
        ((10, 40, 200, 50), "longitudes must lie within"),
        ((10, -95, 20, 50), "latitudes must lie within"),
        ((20, 40, 10, 50), "west .* must be smaller than east"),
        ((10, 50, 20, 40), "south .* must be smaller than north"),
        ((10, 40, 20), "must be 4 numbers"),
    ],
)
def test_validate_bbox_errors(bbox, match):
    with pytest.raises(InputError, match=match):
        validate_bbox(bbox)


def test_coordinates_are_pixel_centres():
    g = GlobalGrid(resolution=Fraction(1, 10), cell_size=1)
    assert np.allclose(g.latitudes(0, 2), [89.95, 89.85])
    assert np.allclose(g.longitudes(0, 2), [-179.95, -179.85])


# --------------------------------------------------------------------------- Window
GRIDS = [
    GlobalGrid(resolution=Fraction(1, 10), cell_size=Fraction(1)),
    GlobalGrid(resolution=Fraction(1, 400), cell_size=Fraction(1, 2), chunk_size=50),
    GlobalGrid(resolution=Fraction(1, 1000), cell_size=Fraction(1, 2)),
    DEFAULT_GRID,
]


@st.composite
def windows(draw: st.DrawFn, factor: int | None = None) -> Window:
    """A window anywhere on (or hanging over) the globe of one of GRIDS, at a zoom level."""
    grid = draw(st.sampled_from(GRIDS))
    f = factor if factor is not None else draw(st.sampled_from([1, 1, 2, 3, 4, 8]))
    n_lat, n_lon = -(-grid.shape[0] // f), -(-grid.shape[1] // f)
    row0 = draw(st.integers(-40, n_lat + 40))
    col0 = draw(st.integers(-40, n_lon + 40))
    return Window(grid, row0, col0, draw(st.integers(0, 300)), draw(st.integers(0, 300)), f)


def _contains(outer: Window, inner: Window) -> bool:
    return (
        outer.row0 <= inner.row0
        and outer.col0 <= inner.col0
        and inner.row0 + inner.height <= outer.row0 + outer.height
        and inner.col0 + inner.width <= outer.col0 + outer.width
    )


@settings(max_examples=200, deadline=None)
@given(windows(), st.sampled_from([1, 2, 3, 5, 16]))
def test_zoom_out_then_in_contains_the_original(w: Window, f: int) -> None:
    back = w.zoom_out(f).zoom_in(f)
    assert back.factor == w.factor and _contains(back, w)
    # the coarse window is the smallest one: it overhangs by less than one coarse pixel
    assert w.row0 - back.row0 < f and w.col0 - back.col0 < f
    assert (back.row0 + back.height) - (w.row0 + w.height) < f
    assert (back.col0 + back.width) - (w.col0 + w.width) < f
    # zooming in is exact, so in-then-out is the identity
    assert w.zoom_in(1) == w and w.zoom_out(1) == w
    fine = Window(w.grid, w.row0, w.col0, w.height, w.width, w.factor * f)
    assert fine.zoom_in(f).zoom_out(f) == fine
    assert fine.zoom_in(f).bounds == fine.bounds


@settings(max_examples=200, deadline=None)
@given(windows(), st.integers(-20, 20))
def test_pad_grows_bounds_by_whole_pixels(w: Window, n: int) -> None:
    p = w.pad(n)
    assert p.shape == (max(w.height + 2 * n, 0), max(w.width + 2 * n, 0))
    if w.height + 2 * n >= 0 and w.width + 2 * n >= 0:
        r = w.resolution
        west, south, east, north = (Fraction(v) for v in w.bounds)
        expect = (west - n * r, south - n * r, east + n * r, north + n * r)
        assert p.bounds == pytest.approx(tuple(float(v) for v in expect), abs=1e-12)
        assert p.pad(-n) == w


@settings(max_examples=200, deadline=None)
@given(windows(), st.data())
def test_sub_window_coordinates_are_the_parents(w: Window, data: st.DataObject) -> None:
    r0 = data.draw(st.integers(0, w.height))
    r1 = data.draw(st.integers(r0, w.height))
    c0 = data.draw(st.integers(0, w.width))
    c1 = data.draw(st.integers(c0, w.width))
    sub = w[r0:r1, c0:c1]
    assert sub.shape == (r1 - r0, c1 - c0) and sub.offset_in(w) == (r0, c0)
    # bit-identical: a sub-window's coordinates are its parent's, not recomputed differently
    np.testing.assert_array_equal(sub.latitudes(), w.latitudes()[r0:r1])
    np.testing.assert_array_equal(sub.longitudes(), w.longitudes()[c0:c1])
    west, south, east, north = sub.bounds
    half = float(w.resolution) / 2
    if sub.height:
        assert sub.latitudes()[0] == pytest.approx(north - half, abs=1e-9)
        assert sub.latitudes()[-1] == pytest.approx(south + half, abs=1e-9)
    if sub.width:
        assert sub.longitudes()[0] == pytest.approx(west + half, abs=1e-9)
        assert sub.longitudes()[-1] == pytest.approx(east - half, abs=1e-9)
    # every pixel centre falls back into its own pixel
    k = min(sub.height, sub.width)
    rows, cols = sub.index_of(sub.longitudes()[:k], sub.latitudes()[:k])
    np.testing.assert_array_equal(rows, np.arange(k))
    np.testing.assert_array_equal(cols, np.arange(k))
    # and in the parent, at the sub-window's offset
    rows, cols = w.index_of(sub.longitudes()[:k], sub.latitudes()[:k])
    np.testing.assert_array_equal(rows, r0 + np.arange(k))
    np.testing.assert_array_equal(cols, c0 + np.arange(k))


@settings(max_examples=50, deadline=None)
@given(windows())
def test_geobox_and_transform_agree_with_the_window(w: Window) -> None:
    gbox = w.geobox
    assert tuple(gbox.shape) == w.shape
    assert gbox.affine == w.transform
    assert w.transform.to_gdal() == w.geotransform
    assert gbox.crs.epsg == 4326
    if w.height and w.width:
        # the transform maps pixel corners to the window's bounds
        west, south, east, north = w.bounds
        assert w.transform * (0, 0) == pytest.approx((west, north))
        assert w.transform * (w.width, w.height) == pytest.approx((east, south))


@st.composite
def bboxes(draw: st.DrawFn) -> tuple[float, float, float, float]:
    west = draw(st.floats(-180, 179.9))
    south = draw(st.floats(-90, 89.9))
    east = min(west + draw(st.floats(1e-6, 2)), 180.0)
    north = min(south + draw(st.floats(1e-6, 2)), 90.0)
    return (west, south, east, north)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(GRIDS), bboxes())
def test_window_of_bbox_covers_the_bbox_tightly(grid: GlobalGrid, bbox) -> None:
    w = grid.window_of_bbox(bbox)
    assert w.factor == 1 and w.clip() == w and w.height >= 1 and w.width >= 1
    west, south, east, north = w.bounds
    eps = 1e-9
    assert west <= bbox[0] + eps and east >= bbox[2] - eps
    assert south <= bbox[1] + eps and north >= bbox[3] - eps
    # tight: each edge pixel overlaps the bbox
    r = float(grid.resolution)
    assert west + r > bbox[0] - eps and east - r < bbox[2] + eps
    assert north - r < bbox[3] + eps and south + r > bbox[1] - eps


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(GRIDS), bboxes())
def test_window_of_bbox_centres_is_the_label_selection(grid: GlobalGrid, bbox) -> None:
    """``pixels="centres"`` picks what ``ds.sel(latitude=slice(n, s), longitude=slice(w, e))``
    picks on the pixel-centre coordinates (open_store's bbox subset)."""
    west, south, east, north = bbox
    w = grid.window_of_bbox(bbox, pixels="centres")
    cover = grid.window_of_bbox(bbox)
    assert _contains(cover, w)
    lat, lon = cover.latitudes(), cover.longitudes()
    # ties (a centre within float error of an edge) are decided exactly by the window
    assume(np.abs(lat - south).min() > 1e-9 and np.abs(lat - north).min() > 1e-9)
    assume(np.abs(lon - west).min() > 1e-9 and np.abs(lon - east).min() > 1e-9)
    rows = np.flatnonzero((lat >= south) & (lat <= north))
    cols = np.flatnonzero((lon >= west) & (lon <= east))
    assert w.height == rows.size and w.width == cols.size
    if rows.size:
        assert w.row0 == cover.row0 + rows[0]
    if cols.size:
        assert w.col0 == cover.col0 + cols[0]


@settings(max_examples=200, deadline=None)
@given(windows(), windows())
def test_clip_intersection_union(a: Window, b: Window) -> None:
    c = a.clip()
    n_lat, n_lon = a.level_shape
    assert c.row0 >= 0 and c.col0 >= 0
    assert c.row0 + c.height <= max(n_lat, c.row0) and c.col0 + c.width <= max(n_lon, c.col0)
    assert c.clip() == c
    if c.height and c.width:
        assert _contains(a, c)
    globe = Window(a.grid, 0, 0, n_lat, n_lon, a.factor)
    if _contains(globe, a):
        assert c == a
    if a.grid != b.grid or a.factor != b.factor:
        with pytest.raises(InputError, match="different grids or levels"):
            a.union(b)
        return
    u = a.union(b)
    assert _contains(u, a) and _contains(u, b)
    i = a.intersection(b)
    assert i == b.intersection(a)
    if i.height and i.width:
        assert _contains(a, i) and _contains(b, i)


@settings(max_examples=100, deadline=None)
@given(windows(), st.integers(1, 64), st.integers(1, 64))
def test_align_snaps_edges_outwards(w: Window, rows: int, cols: int) -> None:
    a = w.align(rows, cols)
    assert _contains(a, w)
    assert a.row0 % rows == 0 and (a.row0 + a.height) % rows == 0
    assert a.col0 % cols == 0 and (a.col0 + a.width) % cols == 0
    assert w.row0 - a.row0 < rows and w.col0 - a.col0 < cols


def test_grid_methods_are_the_cell_window() -> None:
    g = GlobalGrid(resolution=Fraction(1, 1000), cell_size=Fraction(1, 2))
    cell = Cell(87, 391)
    w = g.cell_window(cell, halo=3)
    assert g.cell_region(cell, halo=3) == (w.rows, w.cols)
    assert g.cell_bounds(cell, halo=3) == w.bounds
    assert g.cell_window(cell).bounds == (15.5, 46.0, 16.0, 46.5)
    assert g.transform == g.window().geotransform
    # the coordinates the store was written with (bit-identical to the original formula)
    rows = np.arange(w.row0, w.row0 + w.height, dtype="float64")
    np.testing.assert_array_equal(
        g.latitudes(w.row0, w.row0 + w.height), 90.0 - (rows + 0.5) * 0.001
    )
    np.testing.assert_array_equal(w.latitudes(), g.latitudes(w.rows.start, w.rows.stop))
    np.testing.assert_array_equal(w.longitudes(), g.longitudes(w.cols.start, w.cols.stop))
    assert g.latitudes(5, 3).size == 0


def test_zoomed_globe_matches_repeated_halving() -> None:
    g = GlobalGrid(resolution=Fraction(1, 12000))
    shape = g.shape
    for k in range(1, 16):
        shape = (-(-shape[0] // 2), -(-shape[1] // 2))
        assert g.window(2**k).shape == shape
        assert g.window(2**k).resolution == g.resolution * 2**k


def test_window_errors() -> None:
    g = GlobalGrid(resolution=Fraction(1, 10), cell_size=Fraction(1))
    w = g.cell_window(Cell(0, 0))
    with pytest.raises(InputError, match="must be >= 0 pixels"):
        Window(g, 0, 0, -1, 3)
    with pytest.raises(InputError, match="must divide"):
        w.zoom_out(2).zoom_in(4)
    with pytest.raises(InputError, match="step"):
        w[::2, :]
    with pytest.raises(InputError, match="different grids or levels"):
        w.offset_in(w.zoom_out(2))
    with pytest.raises(InputError, match="'cover' or 'centres'"):
        g.window_of_bbox((0, 0, 1, 1), pixels="middle")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="west"):
        g.window_of_bbox((1, 0, 0, 1))


def test_cell_window_halo_hangs_over_the_pole() -> None:
    g = GlobalGrid(resolution=Fraction(1, 10), cell_size=Fraction(1))
    w = g.cell_window(Cell(0, 0), halo=2)
    assert (w.row0, w.col0, w.shape) == (-2, -2, (14, 14))
    assert w.bounds == pytest.approx((-180.2, 88.8, -178.8, 90.2))
    assert w.clip() == Window(g, 0, 0, 12, 12)
    assert w.clip().offset_in(w) == (2, 2)
