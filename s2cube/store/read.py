"""Reading a store: the lazy xarray view of its pixels and a summary of its state.

This module owns :func:`open_store` (the store, or a cell or bbox subset of it, as a lazy
``xarray.Dataset`` with its CRS and dates decoded) and :func:`store_info` (grid, cells done,
coverage, dates and scenes, from the metadata and the manifest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import xarray as xr

from ..grid import Cell, GlobalGrid, Window
from .cells import read_manifest
from .layout import _require_store, store_metadata
from .location import StoreLike
from .scenes import scene_count
from .verify import checksum_state, damaged_cells

__all__ = ["open_store", "store_info"]


def open_store(
    path: StoreLike,
    *,
    bbox: Sequence[float] | None = None,
    cell: Cell | str | None = None,
    chunks: dict[str, int] | bool | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Open a store lazily with xarray (CRS decoded, dates as datetime64).

    Parameters
    ----------
    path
        The store: a local path or an fsspec URL (``s3://bucket/m.zarr``).
    bbox
        Optional lon/lat subset ``(west, south, east, north)``: the pixels whose centres lie
        inside it, edges included (``GlobalGrid.window_of_bbox(bbox, pixels="centres")``).
    cell
        Optional cell (or cell name) subset; with ``bbox`` too, the pixels in both.
    chunks
        Dask chunks of the result; ``False`` for no dask.  Default: square blocks of whole
        store chunks that tile the cells (at most 128 MiB of decoded dates, ~2000-3000 px),
        aligned with the store's chunks also for a subset, so every dask chunk reads whole
        store chunks, whatever the extent (one tile or the globe).
    storage_options
        fsspec options for a URL (credentials, endpoint).

    Examples
    --------
    >>> ds = s2cube.open_store("mosaic.zarr", bbox=(15.5, 46.0, 16.0, 46.5))  # doctest: +SKIP
    >>> ds.rio.crs  # doctest: +SKIP
    CRS.from_epsg(4326)
    """
    import rioxarray  # noqa: F401  (registers .rio)

    p = _require_store(path, storage_options)
    meta = store_metadata(p)
    # open without dask first: a global store has millions of chunks, and a dask graph over
    # all of them makes every later subset crawl; subset lazily, then chunk what is left
    ds = xr.open_zarr(p.zarr_store(read_only=True), decode_coords="all", chunks=None, zarr_format=3)
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
        chunks = aligned_chunks(window, dask_edge(grid))  # type: ignore[assignment]
    if chunks is not False:
        ds = ds.chunk(chunks)
    ds = ds.rio.write_crs("EPSG:4326", grid_mapping_name="spatial_ref")
    ds.attrs["scenes"] = scene_count(p)
    return ds


#: largest dask chunk :func:`open_store` makes, in bytes of its widest variable (datetime64)
MAX_CHUNK_BYTES = 128 * 2**20


def dask_edge(grid: GlobalGrid) -> int:
    """Edge (px) of :func:`open_store`'s default dask chunks (see :func:`block_edge`)."""
    return block_edge(grid.chunk_size, grid.cell_pixels)


def block_edge(chunk: int, shard: int | None) -> int:
    """Edge of square dask blocks over a ``chunk``-px chunked, ``shard``-px sharded array.

    A block holds at most :data:`MAX_CHUNK_BYTES` of datetime64 (~4096 px): whole shards when
    shards are smaller, else whole chunks that divide a shard, so no block reads a chunk twice
    and none straddles a shard boundary needlessly.
    """
    limit = max(1, int((MAX_CHUNK_BYTES / 8) ** 0.5))
    unit = shard or chunk
    if unit <= limit:
        return unit * (limit // unit)
    per_shard = unit // chunk
    best = 1
    for k in range(1, per_shard + 1):
        if per_shard % k == 0 and k * chunk <= limit:
            best = k
    return best * chunk


def aligned_chunks(window: Window, edge: int) -> dict[str, tuple[int, ...]]:
    """Dask chunks of ``window`` whose boundaries fall on multiples of ``edge`` (global px)."""
    return {
        "latitude": _aligned(window.row0, window.height, edge),
        "longitude": _aligned(window.col0, window.width, edge),
    }


def _aligned(start: int, size: int, edge: int) -> tuple[int, ...]:
    """Chunk sizes over ``[start, start + size)`` whose boundaries fall on multiples of ``edge``."""
    out: list[int] = []
    pos, stop = start, start + size
    while pos < stop:
        nxt = min((pos // edge + 1) * edge, stop)
        out.append(nxt - pos)
        pos = nxt
    return tuple(out) or (0,)


def store_info(path: StoreLike, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Summary of a store: grid, cells done, coverage, dates, scenes."""
    loc = _require_store(path, storage_options)
    meta = store_metadata(loc)
    manifest = read_manifest(loc)
    n_pix = sum(r["n_pixels"] for r in manifest.values())
    n_comp = sum(r["n_composited"] for r in manifest.values())
    dmins = [r["date_min"] for r in manifest.values() if r.get("date_min")]
    dmaxs = [r["date_max"] for r in manifest.values() if r.get("date_max")]
    return {
        "path": loc.url,
        "grid": meta["grid"],
        "bands": meta["bands"],
        "cells_done": len(manifest),
        "cells": sorted(manifest),
        "pixels": n_pix,
        "composited_fraction": (n_comp / n_pix) if n_pix else 0.0,
        "date_min": min(dmins) if dmins else None,
        "date_max": max(dmaxs) if dmaxs else None,
        "scenes": scene_count(loc),
        "metrics": {k: r.get("metrics") for k, r in manifest.items() if r.get("metrics")},
        "fill": fill_shares(manifest.values()),
        "fill_cells": {k: r["fill"] for k, r in manifest.items() if r.get("fill")},
        "rendering": meta.get("rendering"),
        # "all": every chunk carries a crc32c checksum (a corrupt chunk raises on read);
        # "none": a store from before checksums (only the shard index is checked)
        "checksums": checksum_state(loc),
        # finished cells whose record or shards fail the cheap check (0-byte or missing
        # shard...): `s2cube verify` says more, a rerun recomputes them
        "damaged": damaged_cells(loc),
    }


def fill_shares(records: Iterable[Mapping[str, Any]]) -> dict[str, float] | None:
    """Share of each ``fill`` code (observed in period, donor, inpainted, none) over the pixels
    of the cells whose records count them; None when no record does (stores from before)."""
    totals: dict[str, int] = {}
    for rec in records:
        for name, n in (rec.get("fill") or {}).items():
            totals[name] = totals.get(name, 0) + int(n)
    n_all = sum(totals.values())
    return {k: v / n_all for k, v in totals.items()} if n_all else None
