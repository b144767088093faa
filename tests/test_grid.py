from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from s2cube.errors import InputError
from s2cube.grid import DEFAULT_GRID, Cell, GlobalGrid, validate_bbox


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
