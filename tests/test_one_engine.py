"""One compositing engine: ``s2cube.composite`` on a cell's cube returns the pixels
``s2cube.mosaic`` writes for that cell (the notebook path and the store path are one)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import s2cube
from s2cube.config import ExecutionOptions, MosaicConfig
from s2cube.grid import GlobalGrid

GRID = GlobalGrid(resolution=Fraction(1, 800), cell_size=Fraction(1, 2), chunk_size=100)
CELL = GRID.cell_of(15.9, 46.1)


BBOX = GRID.cell_bounds(CELL)


@pytest.fixture(scope="module")
def real_items(real_catalog):
    """The same items ``s2cube.mosaic`` finds for the cell."""
    return s2cube.search(real_catalog, bbox=BBOX)


def _store_and_notebook(real_catalog, real_items, tmp_path, config, execution):
    store = tmp_path / "m.zarr"
    s2cube.mosaic(
        real_catalog, store=store, bbox=BBOX, grid=GRID, config=config, execution=execution
    )
    assert len(s2cube.read_manifest(store)) == 1
    stored = s2cube.open_store(store, cell=CELL, chunks=False).load()
    # the notebook path: load the cell with the config's halo, composite, crop the halo
    cube = s2cube.load(real_items, CELL, grid=GRID, halo=config.halo)
    index = s2cube.store.scene_indices(store)
    ds = s2cube.composite(
        cube, config=config, scene_params=s2cube.scene_params(store), scene_index=index
    )
    h = config.halo
    ds = ds.isel(latitude=slice(h, -h), longitude=slice(h, -h)).compute()
    return stored, ds


@pytest.mark.parametrize(
    "config",
    [
        MosaicConfig(),  # harmonize linear, feather, haze demotion: the store's defaults
        MosaicConfig(harmonize="histogram", blend="multiband", blend_width=6, priority="cloud"),
    ],
    ids=["linear-feather", "histogram-multiband"],
)
def test_composite_equals_what_mosaic_writes(real_catalog, real_items, tmp_path, config):
    stored, ds = _store_and_notebook(
        real_catalog, real_items, tmp_path, config, ExecutionOptions(overviews=False, plan=False)
    )
    assert (stored["scene"].values >= 0).mean() > 0.5  # a real cell, not an empty one
    # harmonization did something: the stored pixels are not the raw observations
    assert len(np.unique(stored["scene"].values)) >= 3
    for v in ("red", "green", "blue", "nir", "scene", "clear_count"):
        np.testing.assert_array_equal(ds[v].values, stored[v].values, err_msg=v)
    days = ds["date"].values.astype("datetime64[D]")
    np.testing.assert_array_equal(days, stored["date"].values.astype("datetime64[D]"))


def test_planned_store_equals_composite_of_every_candidate(real_catalog, real_items, tmp_path):
    """With planning on, the store reads fewer scenes but holds the same pixels (clear_count
    then counts the usable observations among the scenes read, at most the full count)."""
    config = MosaicConfig()
    stored, ds = _store_and_notebook(
        real_catalog, real_items, tmp_path, config, ExecutionOptions(overviews=False, block=100)
    )
    for v in ("red", "green", "blue", "nir", "scene"):
        np.testing.assert_array_equal(ds[v].values, stored[v].values, err_msg=v)
    assert (stored["clear_count"].values <= ds["clear_count"].values).all()
