"""The survey reads SCL at its own resolution, and its coarse codes stay conservative.

A coarse pixel the native survey calls CLEAR must be clear at every grid pixel of the
composite's mask (nearest sample of the same SCL on the grid, then dilated on the grid), and
one it calls NODATA must be nodata at every grid pixel.  Checked two ways: against a numpy
oracle of the composite's sampling on random geometries (no GDAL), and against the
grid-resolution survey (``native=False``, GDAL's warp) on the real fixture and the synthetic
catalog.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import s2cube
from s2cube.grid import GlobalGrid
from s2cube.mask import CLEAR, CLOUD, NODATA, SHADOW, SNOW, dilate_mask
from s2cube.plan import coarse_window, native_codes, read_coarse_look, reduce_codes

# SCL classes: 0 nodata, 3 shadow, 4 vegetation (clear), 9 cloud high, 11 snow
SCL_OF = {NODATA: 0, SHADOW: 3, CLEAR: 4, CLOUD: 9, SNOW: 11}


def _random_scl(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    scl = np.full(shape, 4, "uint8")
    for value, n in ((9, 12), (3, 8), (11, 3), (0, 2)):
        for _ in range(n):
            r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            k = int(rng.integers(1, 6))
            scl[max(r - k, 0) : r + k, max(c - k, 0) : c + k] = value
    return scl


def _oracle(scl, affine, shape, factor, cloud, shadow):
    """The composite's view: grid pixel centres → source pixel (floor) → codes, dilated on
    the grid, reduced to coarse pixels (CLEAR only if all clear)."""
    from s2cube.mask import scl_to_mask

    gh, gw = shape[0] * factor, shape[1] * factor
    gy, gx = np.mgrid[0:gh, 0:gw] + 0.5
    r = affine[0] + affine[1] * gy + affine[2] * gx
    c = affine[3] + affine[4] * gy + affine[5] * gx
    ri, ci = np.floor(r).astype(int), np.floor(c).astype(int)
    inside = (ri >= 0) & (ri < scl.shape[0]) & (ci >= 0) & (ci < scl.shape[1])
    sampled = np.zeros((gh, gw), "uint8")
    sampled[inside] = scl[ri[inside], ci[inside]]
    fine = dilate_mask(scl_to_mask(sampled)[None], cloud=cloud, shadow=shadow)[0]
    return reduce_codes(fine, factor)


@pytest.mark.parametrize("seed", range(6))
def test_native_codes_are_conservative_against_the_grids_sampling(seed):
    rng = np.random.default_rng(seed)
    scl = _random_scl(rng, (160, 160))
    factor = int(rng.choice([2, 4, 8]))
    # grid pixel in source pixels: finer or coarser than the source, slightly rotated
    size = float(rng.choice([0.3, 0.47, 1.0, 1.7]))
    angle = float(rng.uniform(-0.05, 0.05))
    cloud, shadow = int(rng.integers(0, 4)), int(rng.integers(0, 3))
    affine = (
        float(rng.uniform(-3, 3)),
        size * np.cos(angle),
        size * np.sin(angle),
        float(rng.uniform(-3, 3)),
        -size * np.sin(angle),
        size * np.cos(angle),
    )
    shape = (int(150 / (size * factor)), int(150 / (size * factor)))
    ey, ex = np.mgrid[0 : shape[0] + 1, 0 : shape[1] + 1] * float(factor)
    rows = affine[0] + affine[1] * ey + affine[2] * ex
    cols = affine[3] + affine[4] * ey + affine[5] * ex
    # the read window: the lattice's box plus a margin, as read_native cuts it
    pad = 12
    r0, c0 = int(np.floor(rows.min())) - pad, int(np.floor(cols.min())) - pad
    window = np.zeros((int(np.ceil(rows.max())) + pad - r0, int(np.ceil(cols.max())) + pad - c0))
    window = window.astype("uint8")
    a0, b0 = max(r0, 0), max(c0, 0)
    a1, b1 = min(r0 + window.shape[0], 160), min(c0 + window.shape[1], 160)
    window[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = scl[a0:a1, b0:b1]

    got = native_codes(
        window,
        rows - r0,
        cols - c0,
        factor=factor,
        cloud_dilation=cloud,
        shadow_dilation=shadow,
    )
    want = _oracle(scl, affine, shape, factor, cloud, shadow)
    assert got.shape == want.shape
    assert not ((got == CLEAR) & (want != CLEAR)).any(), "a coarse pixel called clear is not"
    assert not ((got == NODATA) & (want != NODATA)).any(), "a coarse pixel called empty is not"
    # and it is not trivially conservative
    assert (want == CLEAR).sum() > 0
    assert (got == CLEAR).sum() >= 0.5 * (want == CLEAR).sum()


def test_native_codes_of_an_empty_read_are_nodata():
    rows = cols = np.zeros((3, 4))
    out = native_codes(np.zeros((0, 0), "uint8"), rows, cols, factor=2)
    assert out.shape == (2, 3) and (out == NODATA).all()


CASES = [
    # the real fixture's 120 m SCL on a finer and a coarser grid; the 60 m synthetic SCL
    ("real", Fraction(1, 1000), Fraction(1, 2), (15.9, 46.1), 2, 2, 2),
    ("real", Fraction(1, 2000), Fraction(1, 2), (15.9, 46.1), 8, 3, 1),
    ("sample", Fraction(1, 2000), Fraction(1, 10), (12.0, 46.05), 5, 2, 2),
    ("sample", Fraction(1, 1000), Fraction(1, 10), (11.95, 46.05), 4, 0, 0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-f{c[4]}")
def test_native_survey_is_conservative_against_the_grid_survey(case, request):
    name, res, size, lonlat, factor, cloud, shadow = case
    catalog = request.getfixturevalue("real_catalog" if name == "real" else "sample_catalog")
    items = s2cube.search(catalog)
    grid = GlobalGrid(resolution=res, cell_size=size)
    window = coarse_window(grid, grid.cell_of(*lonlat), 4, factor)
    counts = np.zeros(2, int)
    for it in items[:8]:
        args = dict(factor=factor, cloud_dilation=cloud, shadow_dilation=shadow, bands=None)
        ref = read_coarse_look(it, window, native=False, **args).codes
        got = read_coarse_look(it, window, native=True, **args).codes
        assert not ((got == CLEAR) & (ref != CLEAR)).any(), it.id
        assert not ((got == NODATA) & (ref != NODATA)).any(), it.id
        counts += [(ref == CLEAR).sum(), (got == CLEAR).sum()]
    assert counts[0] > 0
    # measured 0.92-0.98 of the grid survey's clear coarse pixels; a far lower share would
    # lengthen plans for nothing
    assert counts[1] >= 0.75 * counts[0], counts
