"""Small synthetic stores written through ``write_cell`` (no pipeline), for fast tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from s2cube.grid import Cell, GlobalGrid
from s2cube.store import create_store, write_cell


def synthetic_cell(grid: GlobalGrid, cell: Cell, seed: int = 0, *, hole: bool = True) -> xr.Dataset:
    """A cell with textured reflectance, a nodata hole, dates and scenes (dates as datetime64)."""
    rng = np.random.default_rng([seed, cell.row, cell.col])
    rows, cols = grid.cell_region(cell)
    n = grid.cell_pixels
    yy, xx = np.mgrid[0:n, 0:n]
    base = 300 + 40 * ((yy // 7 + xx // 5) % 9) + rng.integers(0, 60, (n, n))
    valid = np.ones((n, n), bool)
    if hole:
        valid[n // 4 : n // 2, n // 3 : n // 2] = False
    bands = {}
    for k, name in enumerate(("red", "green", "blue", "nir")):
        bands[name] = np.where(valid, base + 150 * k, 0).astype("uint16")
    scene = np.where(valid, (xx * 3 // n) + 3 * seed, -1).astype("int32")
    days = np.where(valid, 3000 + scene * 5, 0)
    date = np.where(valid, np.datetime64("2015-01-01", "D") + days, np.datetime64("NaT"))
    clear = np.where(valid, 1 + (yy % 4), 0).astype("uint16")
    coords = {
        "latitude": grid.latitudes(rows.start, rows.stop),
        "longitude": grid.longitudes(cols.start, cols.stop),
    }
    dims = ("latitude", "longitude")
    return xr.Dataset(
        {
            **{k: (dims, v) for k, v in bands.items()},
            "date": (dims, date.astype("datetime64[ns]")),
            "scene": (dims, scene),
            "clear_count": (dims, clear),
        },
        coords=coords,
    )


def make_synthetic_store(path: Path, grid: GlobalGrid, cells: list[Cell], seed: int = 0) -> Path:
    create_store(path, grid=grid)
    for c in cells:
        write_cell(path, c, synthetic_cell(grid, c, seed))
    return path
