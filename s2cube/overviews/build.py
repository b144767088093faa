"""Overview builds and reads: per-cell levels in the cell's task, coarse levels in the driver.

Two kinds of level keep the rule "one writer per shard":

* **per-cell levels** (a cell is still a whole number of chunks of at least ``min_chunk`` px):
  sharded by cell like level 0.  :func:`build_cell_overviews` writes them for one cell; it only
  reads and writes that cell's shards, so it can run in the cell's task on any worker.
* **coarse levels** (a chunk covers several cells): not sharded, one file per chunk, rebuilt
  whole from the level below.  :func:`build_coarse_overviews` rebuilds the chunks that touch a
  set of cells; it must run once, in the driver, after every cell of the run is finished,
  because one coarse chunk aggregates many cells.

:func:`build_overviews` does both, for the cells whose overviews are missing or older than the
cell's manifest record (so a rerun that rewrote a cell refreshes exactly its overviews).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError
from ..grid import Cell, GlobalGrid, Window
from ..store import _atomic_write_json, _require_store, read_manifest
from ..store.layout import FILL_VAR
from ..store.location import StoreLike, StoreLocation
from .kernels import PROVENANCE_VARS, downsample_cell
from .levels import OVERVIEW_GROUP, Level
from .template import _require_template, _store_levels, has_overviews, prepare_overviews

__all__ = [
    "build_cell_overviews",
    "build_coarse_overviews",
    "build_overviews",
    "overview_status",
    "open_level",
]

BUILT_DIR = "s2cube_built"


def _read(group: Any, names: Iterable[str], window: Window) -> dict[str, np.ndarray]:
    return {n: np.asarray(group[n][window.rows, window.cols]) for n in names}


def _write(group: Any, arrays: dict[str, np.ndarray], window: Window) -> None:
    for n, a in arrays.items():
        group[n][window.rows, window.cols] = a


def _built_key(name: str) -> str:
    """The key of a cell's build record inside the store."""
    return f"{OVERVIEW_GROUP}/{BUILT_DIR}/{name}.json"


def _built_records(p: StoreLocation) -> dict[str, dict[str, Any]]:
    """Every cell's build record (one listing, then concurrent reads on object storage)."""
    names = [n for n in p.list(f"{OVERVIEW_GROUP}/{BUILT_DIR}") if n.endswith(".json")]
    out: dict[str, dict[str, Any]] = {}
    for key, data in p.get_many([_built_key(n[: -len(".json")]) for n in names]).items():
        try:
            out[key.rsplit("/", 1)[-1][: -len(".json")]] = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # a torn record is no record
    return out


def _as_cell(cell: Cell | str) -> Cell:
    return Cell.from_name(cell) if isinstance(cell, str) else cell


def build_cell_overviews(store: StoreLike, cell: Cell | str) -> list[int]:
    """Write the per-cell overview levels of one finished cell; return the levels written.

    Reads the cell at level k-1 and writes it at level k for every per-cell level, touching
    only this cell's shards: safe to run in the cell's task, in parallel with other cells.
    Coarse levels are left to :func:`build_coarse_overviews` (driver, after all cells).

    Parameters
    ----------
    store
        A store with an overview template (:func:`~s2cube.overviews.prepare_overviews`).
    cell
        A finished cell (or its name).

    Examples
    --------
    >>> build_cell_overviews("mosaic.zarr", "r0043c0195")  # doctest: +SKIP
    [1, 2, 3, 4, 5]
    """
    import zarr

    p = _require_store(store)
    _require_template(p)
    c = _as_cell(cell)
    _, bands, levels = _store_levels(p)
    root = zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    names = [*bands, *PROVENANCE_VARS, *([FILL_VAR] if FILL_VAR in root else [])]
    written: list[int] = []
    for lv in levels[1:]:
        if not lv.per_cell:
            break
        # zarr types a group member as array-or-group; these paths are groups of arrays
        src: Any = root[levels[lv.index - 1].path] if lv.index > 1 else root
        dst: Any = root[lv.path]
        window = lv.cell_window(c)
        out = {n: np.empty(window.shape, dtype=dst[n].dtype) for n in names}
        step = lv.chunk  # output rows per strip: bounds memory to 2 chunk-rows of the source
        for r in range(0, window.height, step):
            strip = window[r : r + step, :]
            part = downsample_cell(_read(src, names, strip.zoom_in(2)), bands)
            for n in names:
                out[n][r : r + step] = part[n]
        _write(dst, out, window)
        written.append(lv.index)
    manifest = read_manifest(p).get(c.name, {})
    record = {
        "cell": c.name,
        "levels": written,
        "coarse": False,
        "source_finished": manifest.get("finished"),
        "built": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    _atomic_write_json(p, _built_key(c.name), record)
    return written


def build_coarse(
    root: Any,
    grid: GlobalGrid,
    levels: list[Level],
    cells: Iterable[Cell],
    names: list[str],
    step: Any,
) -> dict[int, int]:
    """Rebuild the shared coarse-level chunks touching ``cells``, finest level first: each
    chunk is ``step`` (the arrays of ``names`` over the 2×2 finer pixels → their downsampled
    arrays) of the level below; returns ``{level: chunks}``.  The mosaic's variables and the
    land-cover product both build their coarse levels through it."""
    cell_list = list(cells)
    done: dict[int, int] = {}
    for lv in levels[1:]:
        if lv.per_cell:
            continue
        prev = levels[lv.index - 1]
        src: Any = root[prev.path] if prev.index else root
        dst: Any = root[lv.path]
        chunks = sorted(_coarse_chunks(grid, lv, cell_list))
        for i, j in chunks:
            window = lv.chunk_window(i, j)
            # the source block may hang over the globe's edge of the finer level: clip it
            # and let the kernel pad odd edges with nodata
            part = step(_read(src, names, window.zoom_in(2).clip()))
            _write(dst, {n: part[n][: window.height, : window.width] for n in names}, window)
        done[lv.index] = len(chunks)
    return done


def _coarse_chunks(grid: GlobalGrid, lv: Level, cells: Iterable[Cell]) -> set[tuple[int, int]]:
    """Chunk indices ``(i, j)`` of a level that hold any pixel of ``cells``."""
    out: set[tuple[int, int]] = set()
    for c in cells:
        w = grid.cell_window(c).zoom_out(lv.factor).align(lv.chunk, lv.chunk)
        i0, j0 = w.row0 // lv.chunk, w.col0 // lv.chunk
        for i in range(i0, i0 + w.height // lv.chunk):
            for j in range(j0, j0 + w.width // lv.chunk):
                out.add((i, j))
    return out


def build_coarse_overviews(
    store: StoreLike, cells: Iterable[Cell | str] | None = None
) -> dict[int, int]:
    """Rebuild the coarse-level chunks that touch ``cells`` (default: all finished cells).

    **Driver only, after every cell of the run is finished** (and its per-cell overviews are
    built): a coarse chunk aggregates several cells, so it must have a single writer and must
    see all of them.  Each chunk is recomputed whole from the level below, so reruns stay
    consistent.

    Parameters
    ----------
    store
        A store with an overview template.
    cells
        Cells (or names) whose coarse chunks to rebuild; default: every finished cell.

    Returns
    -------
    dict
        ``{level: chunks written}``.

    Examples
    --------
    >>> build_coarse_overviews("mosaic.zarr")  # doctest: +SKIP
    {6: 1, 7: 1, 8: 1}
    """
    import zarr

    p = _require_store(store)
    _require_template(p)
    grid, bands, levels = _store_levels(p)
    cell_list = [_as_cell(c) for c in (read_manifest(p) if cells is None else cells)]
    root = zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    names = [*bands, *PROVENANCE_VARS, *([FILL_VAR] if FILL_VAR in root else [])]
    done = build_coarse(root, grid, levels, cell_list, names, lambda a: downsample_cell(a, bands))
    built = _built_records(p)
    for c in cell_list:
        rec = built.get(c.name)
        if rec is not None:
            rec["coarse"] = True
            _atomic_write_json(p, _built_key(c.name), rec)
    return done


def overview_status(store: StoreLike) -> dict[str, str]:
    """The overview state of every finished cell.

    Returns
    -------
    dict
        ``{cell name: state}`` with state ``"ok"``, ``"stale"`` (cell rewritten since),
        ``"no-coarse"`` (per-cell levels built, coarse levels not yet) or ``"missing"``.

    Examples
    --------
    >>> overview_status("mosaic.zarr")  # doctest: +SKIP
    {'r0043c0195': 'ok'}
    """
    p = _require_store(store)
    out: dict[str, str] = {}
    records = _built_records(p) if has_overviews(p) else {}
    for name, rec in read_manifest(p).items():
        built = records.get(name)
        if built is None:
            out[name] = "missing"
            continue
        if built.get("source_finished") != rec.get("finished"):
            out[name] = "stale"
        elif not built.get("coarse"):
            out[name] = "no-coarse"
        else:
            out[name] = "ok"
    return out


def build_overviews(
    store: StoreLike,
    cells: Iterable[Cell | str] | None = None,
    *,
    force: bool = False,
    coarse: bool = True,
) -> dict[str, Any]:
    """Build or refresh overviews: per-cell levels for each cell, then the coarse levels.

    Parameters
    ----------
    store
        The store.
    cells
        Cells to (re)build.  Default: the finished cells whose overviews are missing or stale.
    force
        With ``cells=None``, rebuild every finished cell.
    coarse
        Also rebuild the coarse levels over the cells (driver-side step; pass ``False`` when
        calling this per cell in a worker, and call :func:`build_coarse_overviews` once at the end).

    Returns
    -------
    dict
        ``{"cells": [...], "coarse_chunks": {level: n}}``.

    Examples
    --------
    >>> build_overviews("mosaic.zarr")  # doctest: +SKIP
    {'cells': ['r0043c0195'], 'coarse_chunks': {6: 1, 7: 1, ...}}
    """
    p = _require_store(store)
    prepare_overviews(p)
    if cells is None:
        status = overview_status(p)
        todo = [c for c, s in status.items() if force or s in ("missing", "stale")]
        coarse_cells = [c for c, s in status.items() if force or s != "ok"]
    else:
        todo = [c.name if isinstance(c, Cell) else str(c) for c in cells]
        done = read_manifest(p)
        unknown = [c for c in todo if c not in done]
        if unknown:
            raise InputError(
                f"cells {unknown} are not finished in {str(p)!r} (no manifest record); "
                "overviews are built from finished cells only"
            )
        coarse_cells = todo
    for name in todo:
        build_cell_overviews(p, name)
    chunks = build_coarse_overviews(p, coarse_cells) if coarse and coarse_cells else {}
    return {"cells": todo, "coarse_chunks": chunks}


def open_level(store: StoreLike, level: int) -> xr.Dataset:
    """Open one pyramid level lazily with xarray (level 0 is :func:`s2cube.open_store`).

    Examples
    --------
    >>> ds = open_level("mosaic.zarr", 3)  # doctest: +SKIP
    >>> float(ds.longitude[1] - ds.longitude[0]) * 12000  # doctest: +SKIP
    8.0
    """
    import rioxarray  # noqa: F401

    from ..store import open_store

    p = _require_store(store)
    _, _, levels = _store_levels(p)
    if not isinstance(level, int | np.integer) or not 0 <= level < len(levels):
        raise InputError(f"level={level!r} must be an integer in 0..{len(levels) - 1}")
    if level == 0:
        return open_store(p)
    _require_template(p)
    from ..store.read import aligned_chunks, block_edge

    lv = levels[level]
    # no dask at open (a level of a global store has millions of chunks), then blocks of
    # whole chunks (at most ~128 MiB each), as open_store does
    ds = xr.open_zarr(
        p.zarr_store(read_only=True),
        group=lv.path,
        decode_coords="all",
        consolidated=False,
        zarr_format=3,
        chunks=None,
    )
    ds = ds.chunk(aligned_chunks(lv.window, block_edge(lv.chunk, lv.cell_pixels)))
    return ds.rio.write_crs("EPSG:4326", grid_mapping_name="spatial_ref")
