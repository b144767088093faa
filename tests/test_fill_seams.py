"""Filling holes on cell edges: each cell is filled with a halo of its neighbours' observed
pixels (``donors.fill_task``), so a hole across a cell edge is one component with one fit,
the same in both cells, and the store equals one fill over the whole region.

A controlled store: 3 × 3 cells of 40 px, a smooth synthetic surface, holes (discs) across
the cell edges and corners, and two donor dates that see the surface through their own gain
and offset, one of them with a cloud over part of the holes.
"""

from __future__ import annotations

from fractions import Fraction

import dask
import numpy as np
import pytest
import xarray as xr

from s2cube.composite.engine import empty_composite
from s2cube.config import MosaicConfig
from s2cube.donors import fill_waves, stored_window
from s2cube.execute import FillJob
from s2cube.fill import fill_window
from s2cube.fill.kernels import hole_components
from s2cube.grid import Cell, GlobalGrid
from s2cube.store import create_store, read_manifest, write_cell

GRID = GlobalGrid(resolution=Fraction(1, 4000), cell_size=Fraction(1, 100), chunk_size=40)
CENTRE = Cell(4400, 19210)
CELLS = [Cell(CENTRE.row + i, CENTRE.col + j) for i in (-1, 0, 1) for j in (-1, 0, 1)]
BANDS = ["red", "green", "blue", "nir"]
N = GRID.cell_pixels  # 40
HALO = N  # what fill_jobs gives a grid of 40-px cells: min(FILL_HALO, cell_pixels)
SPEC = MosaicConfig().for_grid(GRID).spec
MARGIN = HALO + SPEC.mask_halo  # donors around the region, as fill_jobs loads them
PERIOD = ("2023-08-10", "2023-08-14")
DONOR_DATES = np.array(["2023-08-06", "2023-08-17"], "datetime64[ns]")


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _scene(seed):
    """(truth (band, y, x) over the region + margin, hole mask over the region)."""
    rng = np.random.default_rng(seed)
    size = 3 * N + 2 * MARGIN
    yy, xx = np.mgrid[:size, :size] / size
    truth = np.stack(
        [
            1500 + 900 * np.sin(2 * np.pi * (f * xx + g * yy) + p) + rng.normal(0, 40, (size, size))
            for f, g, p in rng.uniform(0.5, 2.0, (4, 3))
        ]
    )
    truth[3] += 1500  # a brighter NIR
    hole = np.zeros((3 * N, 3 * N), bool)
    # discs across the cell edges and on a corner, each within reach of the halo, and one on
    # the run's east edge (its ring would reach the cells beyond)
    for cy, cx, r in [(N, 0.5 * N, 6), (1.6 * N, 2 * N, 8), (2 * N, 2 * N, 9), (0.4 * N, N, 5),
                      (N + 3, 2 * N - 2, 4), (2.5 * N, N + 1, 7),
                      (1.5 * N, 3 * N - 4, 6)]:  # fmt: skip
        hole |= _disc(hole.shape, (cy, cx), r)
    return np.clip(truth, 1, 10000).astype("uint16"), hole


def _write_pending(store, truth, hole):
    create_store(store, grid=GRID, bands=BANDS)
    region = truth[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
    for k, cell in enumerate(CELLS):
        i, j = divmod(k, 3)
        ds = empty_composite(GRID.cell_window(cell), BANDS)
        sl = (slice(i * N, (i + 1) * N), slice(j * N, (j + 1) * N))
        seen = ~hole[sl]
        for b, band in enumerate(BANDS):
            ds[band].values[:] = np.where(seen, region[b][sl], 0)
        day = np.datetime64("2023-08-12", "ns")
        ds["date"].values[:] = np.where(seen, day, np.datetime64("NaT"))
        ds["scene"].values[:] = np.where(seen, 0, -1)
        ds["clear_count"].values[:] = seen.astype("uint16")
        write_cell(store, cell, ds, record={"fill_pending": True})


def _donors(truth, hole):
    """Two donor dates over the region + margin: their own gain/offset, donor 0 cloudy over
    the middle of two holes (SCL 9 cloud; clear 4 elsewhere)."""
    rng = np.random.default_rng(1)
    size = truth.shape[-1]
    out = np.zeros((2, len(BANDS) + 1, size, size), "uint16")
    for d, (gain, offset) in enumerate([(1.08, -60.0), (0.93, 90.0)]):
        noisy = truth * gain + offset + rng.normal(0, 15, truth.shape)
        out[d, :4] = np.clip(noisy, 1, 10000).astype("uint16")
        out[d, 4] = 4
    out[0, 4][_disc((size, size), (MARGIN + 2 * N, MARGIN + 2 * N), 6)] = 9
    out[0, 4][_disc((size, size), (MARGIN + N, MARGIN + N // 2), 3)] = 9
    return xr.DataArray(
        out,
        dims=("time", "band", "y", "x"),
        coords={"time": DONOR_DATES, "band": [*BANDS, "scl"], "id": ("time", ["d0", "d1"])},
    )


def _job(cell, domain, block=4096):
    return FillJob(
        spec=SPEC,
        halo=SPEC.mask_halo,
        period=PERIOD,
        max_periods=1,
        inpaint="telea",
        scene_index={"d0": 1, "d1": 2},
        window=GRID.cell_window(cell),
        fill_halo=HALO,
        domain=tuple(domain),
        block=block,
    )


def _cube_for(donors, k):
    """The donor cube of cell ``k`` (row-major in the 3 × 3 block) with its halo + context."""
    i, j = divmod(k, 3)
    size = N + 2 * MARGIN
    return donors.isel(y=slice(i * N, i * N + size), x=slice(j * N, j * N + size))


KW = dict(spec=SPEC, mask_halo=SPEC.mask_halo, period=PERIOD, max_periods=1,
          inpaint_method="telea", scene_index={"d0": 1, "d1": 2})  # fmt: skip


def _whole(store, donors):
    """One fill over the whole 3 × 3 region (the store as it is: read before filling)."""
    region = GRID.cell_window(CENTRE).pad(N)
    ds, domain = stored_window(store, region, [c.name for c in CELLS])
    assert domain.all()
    cube = donors.isel(y=slice(HALO, -HALO), x=slice(HALO, -HALO))
    return fill_window(ds, cube, halo=0, domain=domain, **KW)


def _store_vars(store):
    import s2cube

    window = GRID.cell_window(CENTRE).pad(N)
    ds = s2cube.open_store(store, bbox=window.bounds).load()
    return {v: ds[v].values for v in [*BANDS, "date", "scene", "fill"]}


def _write_outside(store, truth):
    """Cells east of the block, from another run: observed everywhere, with other values."""
    for i in range(3):
        cell = Cell(CENTRE.row - 1 + i, CENTRE.col + 2)
        ds = empty_composite(GRID.cell_window(cell), BANDS)
        for b, band in enumerate(BANDS):
            ds[band].values[:] = 9000 - b * 1000
        ds["date"].values[:] = np.datetime64("2023-08-12", "ns")
        ds["scene"].values[:] = 0
        ds["clear_count"].values[:] = 1
        write_cell(store, cell, ds, record={})


@pytest.mark.parametrize(
    ("seed", "block", "outside"),
    [(0, 4096, False), (1, 4096, False), (0, 16, False), (0, 4096, True)],
)
def test_cell_edges_are_filled_as_one_window(tmp_path, seed, block, outside):
    """``block`` 16: each 40-px cell is filled in 3 × 3 blocks of 13–14 px, each with the same
    halo; the blocks meet as the cells do.  ``outside``: cells east of the run hold another
    run's pixels (bright, observed); the run's fill does not see them."""
    truth, hole = _scene(seed)
    donors = _donors(truth, hole)
    store = tmp_path / "m.zarr"
    _write_pending(store, truth, hole)
    if outside:
        _write_outside(store, truth)
    names = [c.name for c in CELLS]
    # the reference: one fill over the whole 3 × 3 region, read before any cell is filled
    whole = _whole(store, donors)
    # the store: every cell filled by its own task, in the four waves
    fills = {c.name: _job(c, names, block) for c in CELLS}
    cubes = {c.name: _cube_for(donors, k) for k, c in enumerate(CELLS)}
    waves = fill_waves(store, CELLS, fills, overviews=False, donors=cubes)
    assert sum(len(w) for w in waves) == 9
    for wave in waves:  # no two neighbours in one wave
        rows = [(c.row, c.col) for c, _ in wave]
        for a in rows:
            for b in rows:
                assert a == b or max(abs(a[0] - b[0]), abs(a[1] - b[1])) > 1
        dask.compute(*[t for _, t in wave])
    got = _store_vars(store)
    assert not any("fill_pending" in r for r in read_manifest(store).values())
    # holes cross the cell edges, and donors filled them (both dates, both fits)
    labels, n = hole_components(hole)
    rows, cols = np.nonzero(labels)
    assert n >= 5 and len({(r // N, c // N) for r, c in zip(rows, cols, strict=True)}) >= 6
    code = got["fill"]
    assert (code[hole] == 2).mean() > 0.8 and set(np.unique(code[hole])) <= {2, 3}
    assert set(np.unique(got["scene"][code == 2])) == {1, 2}
    for v in [*BANDS, "date", "scene", "fill"]:
        np.testing.assert_array_equal(got[v], whole[v].values, err_msg=v)
    # the fills are good: the donors' fitted pixels are close to the hidden surface
    region_truth = truth[:, MARGIN:-MARGIN, MARGIN:-MARGIN].astype(float)
    err = np.stack([got[b] for b in BANDS]).astype(float) - region_truth
    rmse = float(np.sqrt(np.mean(err[:, code == 2] ** 2)) / 10000)
    assert rmse < 0.005


def test_cells_filled_alone_disagree_on_their_edges(tmp_path):
    """Why the halo: each cell filled alone (``halo=0``, its own pixels only, as before) cuts a
    hole on its edge into pieces fitted apart, and the pieces differ from one fill over the
    region (so the test above would see a seam)."""
    truth, hole = _scene(0)
    donors = _donors(truth, hole)
    store = tmp_path / "m.zarr"
    _write_pending(store, truth, hole)
    whole = _whole(store, donors)
    differ = 0
    for k, cell in enumerate(CELLS):
        i, j = divmod(k, 3)
        sl = (slice(i * N, (i + 1) * N), slice(j * N, (j + 1) * N))
        alone, inside = stored_window(store, GRID.cell_window(cell), [cell.name])
        cube = _cube_for(donors, k).isel(y=slice(HALO, -HALO), x=slice(HALO, -HALO))
        out = fill_window(alone, cube, halo=0, domain=inside, **KW)
        differ += int((out["red"].values != whole["red"].values[sl]).sum())
    assert differ > 0
