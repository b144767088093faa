"""The survey stops once the block plans are full, and the composite does not change.

Candidates are looked at in priority order, in rounds; a cell stops when every pixel an
unsurveyed candidate may cover (its footprint, from metadata) is already clear in a surveyed
look.  Unsurveyed candidates are planned conservatively (data, never clear), so the pixels equal
a composite that surveyed everything and read every candidate.
"""

from __future__ import annotations

from fractions import Fraction

import dask
import numpy as np
import pytest

import s2cube
from s2cube import planner
from s2cube.config import ExecutionOptions, MosaicConfig
from s2cube.grid import GlobalGrid
from s2cube.mask import CLEAR, CLOUD, NODATA
from s2cube.plan import (
    CoarseLook,
    _sample_positions,
    coarse_window,
    footprint_look,
    footprint_mask,
    read_coarse_look,
    survey_complete,
)

VARS = ("red", "green", "blue", "nir", "scene", "date")


def _look(codes, bands=None):
    codes = np.asarray(codes, "uint8")
    if bands is None:
        bands = np.full((4, *codes.shape), 1000, "uint16")
    return CoarseLook("x", codes, bands)


@pytest.mark.parametrize("n,k", [(30, 7), (40, 25), (2500, 2000), (90_000, 2000)])
def test_sample_positions_draw_what_sampling_the_values_drew(n, k):
    """The survey's samples are the ones random.sample took from the index list (stores
    keep their harmonization samples): both set-based and pool-based draws."""
    import random

    idx = np.sort(np.random.default_rng(n).choice(10 * n, n, replace=False))
    for seed in range(3):
        want = np.array(sorted(random.Random(f"{seed}-c").sample(list(idx), k)))
        got = idx[_sample_positions(random.Random(f"{seed}-c"), n, k)]
        np.testing.assert_array_equal(got, want)


def test_survey_complete_needs_every_remaining_pixel_clear():
    remaining = np.array([[True, True], [False, True]])
    a = _look([[CLEAR, CLOUD], [NODATA, CLOUD]])
    b = _look([[CLOUD, CLEAR], [CLOUD, CLOUD]])
    assert not survey_complete([a], remaining, haze_threshold=None)
    assert not survey_complete([a, b], remaining, haze_threshold=None)
    c = _look([[CLOUD, CLOUD], [CLOUD, CLEAR]])
    assert survey_complete([a, b, c], remaining, haze_threshold=None)
    assert survey_complete([], np.zeros((2, 2), bool), haze_threshold=None)


def test_hazy_looks_do_not_count_as_cover():
    remaining = np.ones((1, 2), bool)
    bands = np.zeros((4, 1, 2), "uint16")
    bands[0] = 3000  # blue far above red: HOT ≫ 0
    bands[1:] = 500
    hazy = _look([[CLEAR, CLEAR]], bands)
    assert survey_complete([hazy], remaining, haze_threshold=None)
    assert not survey_complete([hazy], remaining, haze_threshold=0.05)


def test_footprint_looks_cover_the_data_a_look_finds(sample_catalog):
    items = s2cube.search(sample_catalog)
    grid = GlobalGrid(resolution=Fraction(1, 2000), cell_size=Fraction(1, 10))
    for cell in (grid.cell_of(12.0, 46.05), grid.cell_of(11.85, 46.0)):
        window = coarse_window(grid, cell, 4, 5)
        for it in items[:6]:
            look = read_coarse_look(it, window, factor=5, bands=None)
            fp = footprint_mask(it, window)
            assert not ((look.codes != NODATA) & ~fp).any(), it.id
            placeholder = footprint_look(it, window)
            assert not (placeholder.codes == CLEAR).any()
            assert ((placeholder.codes != NODATA) == fp).all()


def _run(items, grid, cells, config, plan, monkeypatch, batch):
    monkeypatch.setattr(planner, "SURVEY_BATCH", batch)
    surveyed = []
    orig = planner._survey_task

    def spy(cands, *args):
        surveyed.append((len(args[-1]) if args[-1] is not None else len(cands), len(cands)))
        return orig(cands, *args)

    monkeypatch.setattr(planner, "_survey_task", spy)
    run = planner.plan_cells(
        items, cells, grid=grid, config=config, execution=ExecutionOptions(block=40, plan=plan)
    )
    (out,) = dask.compute({n: pc.dataset for n, pc in run.cells.items()}, scheduler="threads")
    return out, surveyed


@pytest.mark.parametrize("harmonize", ["none", "linear"])
def test_early_stop_changes_no_selection(sample_catalog, monkeypatch, harmonize):
    """Stopped survey + planned reads == full survey + every candidate read.

    With harmonization off the two runs must agree on every pixel; with it on, the transfers
    are fitted on fewer scenes, so they agree on which scene each pixel comes from."""
    items = s2cube.search(sample_catalog)
    grid = GlobalGrid(resolution=Fraction(1, 2000), cell_size=Fraction(1, 10))
    cells = [grid.cell_of(12.0, 46.05), grid.cell_of(11.85, 46.05)]
    cfg = MosaicConfig(harmonize=harmonize, haze_threshold=None)
    stopped, surveyed = _run(items, grid, cells, cfg, True, monkeypatch, batch=2)
    full, surveyed_all = _run(items, grid, cells, cfg, False, monkeypatch, batch=1000)
    assert all(n == total for n, total in surveyed_all)
    assert any(n < total for n, total in surveyed), surveyed  # the survey did stop early
    assert stopped.keys() == full.keys()
    for name in stopped:
        names = VARS if harmonize == "none" else ("scene", "date")
        for v in names:
            np.testing.assert_array_equal(
                stopped[name][v].values, full[name][v].values, err_msg=f"{name} {v}"
            )
