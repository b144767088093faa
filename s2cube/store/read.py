"""Reading a store: the lazy xarray view of its pixels and a summary of its state.

This module owns :func:`open_store` (the store, or a cell or bbox subset of it, as a lazy
``xarray.Dataset`` with its CRS and dates decoded) and :func:`store_info` (grid, cells done,
coverage, dates and scenes, from the metadata and the manifest).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from ..grid import Cell, GlobalGrid
from .cells import read_manifest
from .layout import _require_store, store_metadata

__all__ = ["open_store", "store_info"]


def open_store(
    path: str | os.PathLike[str],
    *,
    bbox: Sequence[float] | None = None,
    cell: Cell | str | None = None,
    chunks: dict[str, int] | bool | None = None,
) -> xr.Dataset:
    """Open a store lazily with xarray (CRS decoded, dates as datetime64).

    Parameters
    ----------
    path
        The store.
    bbox
        Optional lon/lat subset ``(west, south, east, north)``: the pixels whose centres lie
        inside it, edges included (``GlobalGrid.window_of_bbox(bbox, pixels="centres")``).
    cell
        Optional cell (or cell name) subset; with ``bbox`` too, the pixels in both.
    chunks
        Dask chunks of the result (default: ~2048 px multiples of the store's chunks for a
        subset, one chunk per cell for the whole globe); ``False`` for no dask.

    Examples
    --------
    >>> ds = s2cube.open_store("mosaic.zarr", bbox=(15.5, 46.0, 16.0, 46.5))  # doctest: +SKIP
    >>> ds.rio.crs  # doctest: +SKIP
    CRS.from_epsg(4326)
    """
    import rioxarray  # noqa: F401  (registers .rio)

    p = _require_store(path)
    meta = store_metadata(p)
    # open without dask first: a global store has millions of chunks, and a dask graph over
    # all of them makes every later subset crawl; subset lazily, then chunk what is left
    ds = xr.open_zarr(str(p), decode_coords="all", chunks=None, zarr_format=3)
    grid = GlobalGrid.from_dict(meta["grid"])
    window = grid.window()
    if cell is not None:
        window = window.intersection(
            grid.cell_window(Cell.from_name(cell) if isinstance(cell, str) else cell)
        )
    if bbox is not None:
        # the pixels whose centres lie in the bbox, as a label selection on the coordinates
        # would pick, but computed exactly on the grid instead of on float coordinates
        window = window.intersection(grid.window_of_bbox(bbox, pixels="centres"))
    if cell is not None or bbox is not None:
        ds = ds.isel(latitude=window.rows, longitude=window.cols)
    if chunks is None:
        subset = cell is not None or bbox is not None
        edge = grid.chunk_size * max(1, 2048 // grid.chunk_size) if subset else grid.cell_pixels
        chunks = {"latitude": edge, "longitude": edge}
    if chunks is not False:
        ds = ds.chunk(chunks)
    ds = ds.rio.write_crs("EPSG:4326", grid_mapping_name="spatial_ref")
    ds.attrs["scenes"] = len(meta.get("scenes", []))
    return ds


def store_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summary of a store: grid, cells done, coverage, dates, scenes."""
    meta = store_metadata(path)
    manifest = read_manifest(path)
    n_pix = sum(r["n_pixels"] for r in manifest.values())
    n_comp = sum(r["n_composited"] for r in manifest.values())
    dmins = [r["date_min"] for r in manifest.values() if r.get("date_min")]
    dmaxs = [r["date_max"] for r in manifest.values() if r.get("date_max")]
    return {
        "path": str(Path(path)),
        "grid": meta["grid"],
        "bands": meta["bands"],
        "cells_done": len(manifest),
        "cells": sorted(manifest),
        "pixels": n_pix,
        "composited_fraction": (n_comp / n_pix) if n_pix else 0.0,
        "date_min": min(dmins) if dmins else None,
        "date_max": max(dmaxs) if dmaxs else None,
        "scenes": len(meta.get("scenes", [])),
        "metrics": {k: r.get("metrics") for k, r in manifest.items() if r.get("metrics")},
    }
