"""Stores for the serve tests built from the cells of another store: two-step writes and a
super-resolution product exactly per the s2cube contract (``STORE/superres/x<scale>``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_cell(store: Path, cell: str) -> Any:
    """A finished cell of ``store`` as :func:`s2cube.store.write_cell` takes it (decoded dates)."""
    import numpy as np
    import xarray as xr
    import zarr

    from s2cube.grid import Cell
    from s2cube.store import DATE_EPOCH, store_grid

    grid = store_grid(store)
    rows, cols = grid.cell_region(Cell.from_name(cell))
    g = zarr.open_group(str(store), mode="r")
    dims = ("latitude", "longitude")
    data = {v: np.asarray(g[v][rows, cols]) for v in (*PIXEL_VARS, "date")}
    days = data.pop("date").astype("int64")
    date = np.where(
        days > 0, np.datetime64(DATE_EPOCH, "D") + days, np.datetime64("NaT", "D")
    ).astype("datetime64[ns]")
    return xr.Dataset(
        {**{k: (dims, v) for k, v in data.items()}, "date": (dims, date)},
        coords={
            "latitude": grid.latitudes(rows.start, rows.stop),
            "longitude": grid.longitudes(cols.start, cols.stop),
        },
    )


PIXEL_VARS = ("red", "green", "blue", "nir", "scene", "clear_count", "fill")
#: two well-covered neighbouring cells of ``real_store`` (0.5° cells at 1/1000°)
CELL_A, CELL_B = "r0087c0391", "r0087c0392"


def upsample_cell(ds: Any, grid: Any, cell: str, scale: int, *, texture: bool = True) -> Any:
    """``ds`` (a cell of the parent) nearest-upsampled ``scale`` times onto ``grid``; with
    ``texture``, reflectance gets a ±20 % checkerboard of single output pixels, detail only a
    layer served at its own resolution can show."""
    import numpy as np
    import xarray as xr

    from s2cube.grid import Cell

    rows, cols = grid.cell_region(Cell.from_name(cell))
    up = {v: np.repeat(np.repeat(ds[v].values, scale, 0), scale, 1) for v in ds.data_vars}
    if texture:
        n = up["red"].shape[0]
        checker = np.where((np.add.outer(np.arange(n), np.arange(n)) % 2) == 0, 1.2, 0.8)
        for band in ("red", "green", "blue", "nir"):
            has = up[band] > 0
            up[band] = np.where(has, np.clip(up[band] * checker, 1, 65535), 0).astype("uint16")
    dims = ("latitude", "longitude")
    return xr.Dataset(
        {k: (dims, v) for k, v in up.items()},
        coords={
            "latitude": grid.latitudes(rows.start, rows.stop),
            "longitude": grid.longitudes(cols.start, cols.stop),
        },
    )


def write_superres(parent: Path, scale: int, cells: tuple[str, ...]) -> Path:
    """A super-resolution product of ``parent`` exactly per the s2cube contract: a complete
    store at ``parent/superres/x<scale>`` (``create_store``, ``write_cell``, its own scene
    table and overviews) on the parent's grid ``scale`` times finer, with the root attribute
    ``s2cube_superres``.  Its pixels are the parent's, upsampled (see :func:`upsample_cell`)."""
    import shutil
    from fractions import Fraction

    import zarr

    from s2cube.grid import Cell, GlobalGrid
    from s2cube.overviews import build_overviews
    from s2cube.store import create_store, store_grid, write_cell

    pgrid = store_grid(parent)
    grid = GlobalGrid(
        resolution=Fraction(pgrid.resolution) / scale,
        cell_size=pgrid.cell_size,
        chunk_size=pgrid.chunk_size,
    )
    sr = parent / "superres" / f"x{scale}"
    create_store(sr, grid=grid)
    shutil.rmtree(sr / "scenes", ignore_errors=True)
    shutil.copytree(parent / "scenes", sr / "scenes")  # the same scenes, the same indices
    for cell in cells:
        write_cell(
            sr, Cell.from_name(cell), upsample_cell(read_cell(parent, cell), grid, cell, scale)
        )
    build_overviews(sr)
    group = zarr.open_group(str(sr), mode="r+", zarr_format=3)
    group.attrs["s2cube_superres"] = {
        "scale": scale,
        "parent_resolution": str(pgrid.resolution),
        "model": "test fixture: nearest upsampling + checkerboard",
    }
    return sr
