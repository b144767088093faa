"""Multiscale overviews of a store: the pyramid layout, its kernels, per-cell and coarse builds.

Layout (inside the store, next to the full-resolution arrays)::

    STORE/                          attrs["multiscales"]: the pyramid (zarr-conventions multiscales
      red, green, ... (level 0)     v0.1, as used by GeoZarr); level 0 is the root group itself
      overviews/1/red, ...          level k: pixel size = resolution × 2**k, same variables,
      overviews/2/...               latitude/longitude pixel-centre coordinates and spatial_ref
      overviews/s2cube_built/<cell>.json   which cell's overviews were built from which cell write

Every level halves the previous one (2×2 blocks).  Reflectance is the mean of the valid (non-zero)
children, so nodata never darkens an edge; ``date``, ``scene`` and ``clear_count`` are taken
together from one child (the first valid one in the order NW, NE, SW, SE), so provenance stays a
real observation and the three never disagree.

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
Reads stay bounded at every zoom: a 256-px tile needs at most 2×2 level-pixels per tile pixel,
which is at most 3×3 chunks of any level.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .errors import InputError, StoreError
from .grid import Cell, GlobalGrid
from .store import DATE_EPOCH, _atomic_write_json, _require_store, read_manifest, store_metadata

__all__ = [
    "Level",
    "pyramid",
    "downsample_reflectance",
    "first_valid_child",
    "take_child",
    "prepare_overviews",
    "build_cell_overviews",
    "build_coarse_overviews",
    "build_overviews",
    "overview_status",
    "open_level",
    "has_overviews",
    "OVERVIEW_GROUP",
]

OVERVIEW_GROUP = "overviews"
BUILT_DIR = "s2cube_built"
PROVENANCE_VARS = ("date", "scene", "clear_count")
MULTISCALES_SCHEMA = (
    "https://raw.githubusercontent.com/zarr-conventions/multiscales/refs/tags/v0.1/schema.json"
)
MULTISCALES_SPEC = "https://github.com/zarr-conventions/multiscales/blob/v0.1/README.md"


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Level:
    """One level of the pyramid (level 0 is the store itself).

    ``factor`` full-resolution pixels make one pixel of this level along each axis.
    ``cell_pixels`` is set on per-cell levels (sharded by cell), ``None`` on coarse levels.
    """

    index: int
    shape: tuple[int, int]
    chunk: int
    resolution: Fraction
    cell_pixels: int | None

    @property
    def factor(self) -> int:
        return 2**self.index

    @property
    def per_cell(self) -> bool:
        return self.cell_pixels is not None

    @property
    def path(self) -> str:
        """Group path inside the store ("" for level 0)."""
        return "" if self.index == 0 else f"{OVERVIEW_GROUP}/{self.index}"

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        r = float(self.resolution)
        return (-180.0, r, 0.0, 90.0, 0.0, -r)

    def latitudes(self) -> np.ndarray:
        return 90.0 - (np.arange(self.shape[0], dtype="float64") + 0.5) * float(self.resolution)

    def longitudes(self) -> np.ndarray:
        return -180.0 + (np.arange(self.shape[1], dtype="float64") + 0.5) * float(self.resolution)

    def cell_region(self, grid: GlobalGrid, cell: Cell) -> tuple[slice, slice]:
        """Pixel slices of a cell at this level (per-cell levels only)."""
        if self.cell_pixels is None:
            raise InputError(
                f"level {self.index} is a coarse level; cells do not map to its shards"
            )
        n = self.cell_pixels
        grid._check_cell(cell)
        return (slice(cell.row * n, (cell.row + 1) * n), slice(cell.col * n, (cell.col + 1) * n))


def _largest_divisor_at_most(n: int, limit: int) -> int:
    best = 1
    for d in range(1, math.isqrt(n) + 1):
        if n % d == 0:
            for c in (d, n // d):
                if best < c <= limit:
                    best = c
    return best


def pyramid(grid: GlobalGrid, *, min_chunk: int = 128, max_levels: int = 24) -> list[Level]:
    """The overview levels of a grid, level 0 (the store) first, down to one chunk for the globe.

    Parameters
    ----------
    grid
        The store's grid.
    min_chunk
        Smallest chunk edge (px) a per-cell level may have; below it, levels become coarse
        (chunks of ``grid.chunk_size`` spanning several cells, built by the driver).
    max_levels
        Safety cap on the number of levels.

    Examples
    --------
    >>> [(lv.index, lv.chunk, lv.per_cell) for lv in pyramid(GlobalGrid())][:7]
    [(0, 600, True), (1, 600, True), (2, 600, True), (3, 500, True), (4, 375, True), (5, 375, True), (6, 600, False)]
    """
    levels = [Level(0, grid.shape, grid.chunk_size, grid.resolution, grid.cell_pixels)]
    min_chunk = min(min_chunk, grid.chunk_size)
    per_cell = True
    while len(levels) < max_levels:
        prev = levels[-1]
        if prev.shape[0] <= prev.chunk and prev.shape[1] <= prev.chunk:
            break
        k = prev.index + 1
        f = 2**k
        shape = (-(-prev.shape[0] // 2), -(-prev.shape[1] // 2))
        cell_px: int | None = None
        chunk = grid.chunk_size
        if per_cell and grid.cell_pixels % f == 0:
            cp = grid.cell_pixels // f
            c = _largest_divisor_at_most(cp, grid.chunk_size)
            if c >= min_chunk:
                cell_px, chunk = cp, c
        per_cell = cell_px is not None
        levels.append(Level(k, shape, chunk, grid.resolution * f, cell_px))
    return levels


# --------------------------------------------------------------------------- kernels
def _blocks(a: np.ndarray, fill: Any) -> np.ndarray:
    """(h, w) → (ceil(h/2), ceil(w/2), 4) children in the order NW, NE, SW, SE."""
    h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)), constant_values=fill)
    h2, w2 = a.shape[0] // 2, a.shape[1] // 2
    return a.reshape(h2, 2, w2, 2).transpose(0, 2, 1, 3).reshape(h2, w2, 4)


def downsample_reflectance(a: np.ndarray) -> np.ndarray:
    """2×2 mean of the valid (non-zero) children of a uint16 reflectance array (nodata 0).

    Odd edges are padded with nodata.  A block without a valid child stays 0.

    >>> downsample_reflectance(np.array([[0, 4], [6, 0]], dtype="uint16"))
    array([[5]], dtype=uint16)
    """
    b = _blocks(np.asarray(a), 0)
    n = np.count_nonzero(b, axis=-1)
    s = b.sum(axis=-1, dtype="uint32")
    out = np.zeros(n.shape, dtype="uint16")
    ok = n > 0
    out[ok] = ((s[ok] + n[ok] // 2) // n[ok]).astype("uint16")
    return out


def first_valid_child(valid: np.ndarray) -> np.ndarray:
    """Index (0..3, NW NE SW SE) of the first valid child of each 2×2 block (0 if none)."""
    return np.argmax(_blocks(np.asarray(valid, dtype=bool), False), axis=-1).astype("uint8")


def take_child(a: np.ndarray, child: np.ndarray, fill: Any) -> np.ndarray:
    """The child ``child`` of each 2×2 block of ``a`` (nearest-style, keeps real values)."""
    b = _blocks(np.asarray(a), fill)
    return np.take_along_axis(b, child[..., None].astype("intp"), axis=-1)[..., 0]


def downsample_cell(arrays: dict[str, np.ndarray], bands: Sequence[str]) -> dict[str, np.ndarray]:
    """One pyramid step for stored (encoded) arrays: bands by mean, provenance by first valid."""
    out: dict[str, np.ndarray] = {b: downsample_reflectance(arrays[b]) for b in bands}
    child = first_valid_child(arrays["scene"] >= 0)
    out["scene"] = take_child(arrays["scene"], child, np.int32(-1))
    out["date"] = take_child(arrays["date"], child, np.uint16(0))
    out["clear_count"] = take_child(arrays["clear_count"], child, np.uint16(0))
    # a block with no valid child has none of its provenance either
    none = out["scene"] < 0
    out["date"][none] = 0
    out["clear_count"][none] = 0
    return out


# --------------------------------------------------------------------------- template
def _multiscales(levels: Sequence[Level]) -> dict[str, Any]:
    layout: list[dict[str, Any]] = []
    for lv in levels:
        entry: dict[str, Any] = {
            "asset": lv.path or ".",
            "transform": {"scale": [float(lv.factor)] * 2, "translation": [0.0, 0.0]},
            "proj:transform": list(lv.transform),
            "proj:shape": list(lv.shape),
            "s2cube:chunk": lv.chunk,
            "s2cube:per_cell": lv.per_cell,
        }
        if lv.index:
            entry["derived_from"] = levels[lv.index - 1].path or "."
            entry["transform"]["scale"] = [2.0, 2.0]
            entry["resampling_method"] = "average"
        layout.append(entry)
    return {
        "layout": layout,
        "resampling_method": "average",
        "s2cube:notes": (
            "asset '.' is the store's root group (full resolution). Reflectance: mean of valid "
            "(non-zero) children; date/scene/clear_count: first valid child (NW, NE, SW, SE)."
        ),
    }


def _level_template(lv: Level, bands: Sequence[str]) -> tuple[xr.Dataset, dict[str, Any]]:
    import dask.array as da
    import zarr

    from .cube import _spatial_ref

    dims = ("latitude", "longitude")
    comp = [zarr.codecs.ZstdCodec(level=3)]
    chunks = (lv.chunk, lv.chunk)
    shard = {"shards": (lv.cell_pixels, lv.cell_pixels)} if lv.cell_pixels else {}
    big = lv.shape
    data_vars: dict[str, Any] = {}
    enc: dict[str, Any] = {}
    for b in bands:
        data_vars[b] = (dims, da.zeros(big, dtype="uint16", chunks=big),
                        {"long_name": f"{b} surface reflectance (overview level {lv.index})",
                         "units": "1e-4", "nodata": 0, "grid_mapping": "spatial_ref"})  # fmt: skip
        enc[b] = {"chunks": chunks, "compressors": comp, "dtype": "uint16",
                  "fill_value": np.uint16(0), **shard}  # fmt: skip
    data_vars["date"] = (dims, da.zeros(big, dtype="uint16", chunks=big),
                         {"long_name": "acquisition date", "grid_mapping": "spatial_ref",
                          "units": f"days since {DATE_EPOCH}", "calendar": "proleptic_gregorian"})  # fmt: skip
    enc["date"] = {"chunks": chunks, "compressors": comp, "_FillValue": np.uint16(0), **shard}
    data_vars["scene"] = (dims, da.zeros(big, dtype="int32", chunks=big),
                          {"long_name": "index of the source scene", "nodata": -1,
                           "grid_mapping": "spatial_ref"})  # fmt: skip
    enc["scene"] = {"chunks": chunks, "compressors": comp, "dtype": "int32",
                    "fill_value": np.int32(-1), **shard}  # fmt: skip
    data_vars["clear_count"] = (dims, da.zeros(big, dtype="uint16", chunks=big),
                                {"long_name": "number of clear observations",
                                 "grid_mapping": "spatial_ref"})  # fmt: skip
    enc["clear_count"] = {"chunks": chunks, "compressors": comp, "dtype": "uint16",
                          "fill_value": np.uint16(0), **shard}  # fmt: skip
    ds = xr.Dataset(
        data_vars,
        coords={
            "latitude": ("latitude", lv.latitudes(), {"standard_name": "latitude",
                         "units": "degrees_north", "axis": "Y"}),
            "longitude": ("longitude", lv.longitudes(), {"standard_name": "longitude",
                          "units": "degrees_east", "axis": "X"}),
            "spatial_ref": _spatial_ref(),
        },
    )  # fmt: skip
    ds["spatial_ref"].attrs["GeoTransform"] = " ".join(str(v) for v in lv.transform)
    ds.attrs["s2cube_overview"] = {"level": lv.index, "factor": lv.factor,
                                   "resolution": str(lv.resolution)}  # fmt: skip
    enc["latitude"] = {"chunks": (min(lv.shape[0], 2**20),)}
    enc["longitude"] = {"chunks": (min(lv.shape[1], 2**20),)}
    return ds, enc


def _store_levels(path: Path) -> tuple[GlobalGrid, list[str], list[Level]]:
    meta = store_metadata(path)
    grid = GlobalGrid.from_dict(meta["grid"])
    return grid, list(meta["bands"]), pyramid(grid)


def has_overviews(store: str | os.PathLike[str]) -> bool:
    """True if the store has an overview template (:func:`prepare_overviews` ran)."""
    p = Path(store)
    try:
        attrs = json.loads((p / "zarr.json").read_text()).get("attributes", {})
    except (OSError, json.JSONDecodeError):
        return False
    return "multiscales" in attrs and (p / OVERVIEW_GROUP / "zarr.json").is_file()


def prepare_overviews(store: str | os.PathLike[str]) -> list[Level]:
    """Create the overview template (metadata and coordinates only) once; idempotent.

    Driver only: it writes the root ``multiscales`` attribute.  Call it before cell tasks that
    run :func:`build_cell_overviews`, so workers never race to create the template.
    """
    import zarr

    p = _require_store(store)
    grid, bands, levels = _store_levels(p)
    had_consolidated = "consolidated_metadata" in json.loads((p / "zarr.json").read_text())
    root = zarr.open_group(str(p), mode="r+", zarr_format=3, use_consolidated=False)
    if OVERVIEW_GROUP not in root:
        root.create_group(OVERVIEW_GROUP, attributes={
            "description": "s2cube overview levels; see the root attribute 'multiscales'"})  # fmt: skip
    created = False
    for lv in levels[1:]:
        if (p / lv.path / "zarr.json").is_file():
            continue
        ds, enc = _level_template(lv, bands)
        ds.to_zarr(str(p), group=lv.path, mode="w-", compute=False, zarr_format=3,
                   encoding=enc, consolidated=False)  # fmt: skip
        created = True
    root = zarr.open_group(str(p), mode="r+", zarr_format=3, use_consolidated=False)
    multiscales = json.loads(json.dumps(_multiscales(levels)))
    if root.attrs.get("multiscales") != multiscales:
        conventions = [c for c in root.attrs.get("zarr_conventions", [])
                       if c.get("schema_url") != MULTISCALES_SCHEMA]  # fmt: skip
        conventions.append({"schema_url": MULTISCALES_SCHEMA, "spec_url": MULTISCALES_SPEC,
                            "name": "multiscales"})  # fmt: skip
        root.attrs.update({"multiscales": multiscales, "zarr_conventions": conventions})
        created = True
    if created and had_consolidated:
        # the store consolidates its (never-changing) array metadata at the root: add the
        # overview levels to it, or readers that trust it would not see them
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(str(p), zarr_format=3)
    return levels


def _require_template(p: Path) -> None:
    if not has_overviews(p):
        raise StoreError(
            f"store {str(p)!r} has no overview template; call "
            "s2cube.overviews.prepare_overviews(store) in the driver first (or build_overviews)"
        )


# --------------------------------------------------------------------------- builds
def _read(group: Any, names: Iterable[str], rows: slice, cols: slice) -> dict[str, np.ndarray]:
    return {n: np.asarray(group[n][rows, cols]) for n in names}


def _built_dir(p: Path) -> Path:
    return p / OVERVIEW_GROUP / BUILT_DIR


def build_cell_overviews(store: str | os.PathLike[str], cell: Cell | str) -> list[int]:
    """Write the per-cell overview levels of one finished cell; return the levels written.

    Reads the cell at level k-1 and writes it at level k for every per-cell level, touching
    only this cell's shards: safe to run in the cell's task, in parallel with other cells.
    Coarse levels are left to :func:`build_coarse_overviews` (driver, after all cells).

    Examples
    --------
    >>> build_cell_overviews("mosaic.zarr", "r0043c0195")  # doctest: +SKIP
    [1, 2, 3, 4, 5]
    """
    import zarr

    p = _require_store(store)
    _require_template(p)
    c = Cell.from_name(cell) if isinstance(cell, str) else cell
    grid, bands, levels = _store_levels(p)
    names = [*bands, *PROVENANCE_VARS]
    root = zarr.open_group(str(p), mode="r+", zarr_format=3, use_consolidated=False)
    written: list[int] = []
    for lv in levels[1:]:
        if not lv.per_cell:
            break
        src = root[levels[lv.index - 1].path] if lv.index > 1 else root
        dst = root[lv.path]
        rows, cols = lv.cell_region(grid, c)
        out = {n: np.empty((lv.cell_pixels, lv.cell_pixels), dtype=dst[n].dtype) for n in names}
        step = lv.chunk  # output rows per strip: bounds memory to 2 chunk-rows of the source
        for r in range(0, lv.cell_pixels or 0, step):
            srows = slice(2 * (rows.start + r), 2 * (rows.start + r + step))
            scols = slice(2 * cols.start, 2 * cols.stop)
            part = downsample_cell(_read(src, names, srows, scols), bands)
            for n in names:
                out[n][r : r + step] = part[n]
        for n in names:
            dst[n][rows, cols] = out[n]
        written.append(lv.index)
    manifest = read_manifest(p).get(c.name, {})
    _atomic_write_json(_built_dir(p) / f"{c.name}.json", {
        "cell": c.name, "levels": written, "coarse": False,
        "source_finished": manifest.get("finished"),
        "built": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    })  # fmt: skip
    return written


def _coarse_chunks(grid: GlobalGrid, lv: Level, cells: Iterable[Cell]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for c in cells:
        rows, cols = grid.cell_region(c)
        r0, r1 = rows.start // lv.factor, -(-rows.stop // lv.factor)
        c0, c1 = cols.start // lv.factor, -(-cols.stop // lv.factor)
        for i in range(r0 // lv.chunk, (r1 - 1) // lv.chunk + 1):
            for j in range(c0 // lv.chunk, (c1 - 1) // lv.chunk + 1):
                out.add((i, j))
    return out


def build_coarse_overviews(
    store: str | os.PathLike[str], cells: Iterable[Cell | str] | None = None
) -> dict[int, int]:
    """Rebuild the coarse-level chunks that touch ``cells`` (default: all finished cells).

    **Driver only, after every cell of the run is finished** (and its per-cell overviews are
    built): a coarse chunk aggregates several cells, so it must have a single writer and must
    see all of them.  Each chunk is recomputed whole from the level below, so reruns stay
    consistent.  Returns ``{level: chunks written}``.
    """
    import zarr

    p = _require_store(store)
    _require_template(p)
    grid, bands, levels = _store_levels(p)
    names = [*bands, *PROVENANCE_VARS]
    cell_list = [Cell.from_name(c) if isinstance(c, str) else c
                 for c in (read_manifest(p) if cells is None else cells)]  # fmt: skip
    root = zarr.open_group(str(p), mode="r+", zarr_format=3, use_consolidated=False)
    done: dict[int, int] = {}
    for lv in levels[1:]:
        if lv.per_cell:
            continue
        prev = levels[lv.index - 1]
        src = root[prev.path] if prev.index else root
        dst = root[lv.path]
        chunks = sorted(_coarse_chunks(grid, lv, cell_list))
        for i, j in chunks:
            rows = slice(i * lv.chunk, min((i + 1) * lv.chunk, lv.shape[0]))
            cols = slice(j * lv.chunk, min((j + 1) * lv.chunk, lv.shape[1]))
            srows = slice(2 * rows.start, min(2 * rows.stop, prev.shape[0]))
            scols = slice(2 * cols.start, min(2 * cols.stop, prev.shape[1]))
            part = downsample_cell(_read(src, names, srows, scols), bands)
            h, w = rows.stop - rows.start, cols.stop - cols.start
            for n in names:
                dst[n][rows, cols] = part[n][:h, :w]
        done[lv.index] = len(chunks)
    for c in cell_list:
        f = _built_dir(p) / f"{c.name}.json"
        if f.is_file():
            rec = json.loads(f.read_text())
            rec["coarse"] = True
            _atomic_write_json(f, rec)
    return done


def overview_status(store: str | os.PathLike[str]) -> dict[str, str]:
    """For every finished cell: ``"ok"``, ``"stale"`` (cell rewritten since), ``"no-coarse"``
    (per-cell levels built, coarse levels not yet) or ``"missing"``."""
    p = _require_store(store)
    out: dict[str, str] = {}
    for name, rec in read_manifest(p).items():
        f = _built_dir(p) / f"{name}.json"
        if not has_overviews(p) or not f.is_file():
            out[name] = "missing"
            continue
        try:
            built = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
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
    store: str | os.PathLike[str],
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


# --------------------------------------------------------------------------- open
def open_level(store: str | os.PathLike[str], level: int) -> xr.Dataset:
    """Open one pyramid level lazily with xarray (level 0 is :func:`s2cube.open_store`).

    >>> ds = open_level("mosaic.zarr", 3)  # doctest: +SKIP
    >>> float(ds.longitude[1] - ds.longitude[0]) * 12000  # doctest: +SKIP
    8.0
    """
    import rioxarray  # noqa: F401

    from .store import open_store

    p = _require_store(store)
    _, _, levels = _store_levels(p)
    if not isinstance(level, int | np.integer) or not 0 <= level < len(levels):
        raise InputError(f"level={level!r} must be an integer in 0..{len(levels) - 1}")
    if level == 0:
        return open_store(p)
    _require_template(p)
    ds = xr.open_zarr(str(p), group=levels[level].path, decode_coords="all",
                      consolidated=False, zarr_format=3)  # fmt: skip
    return ds.rio.write_crs("EPSG:4326", grid_mapping_name="spatial_ref")
