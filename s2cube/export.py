"""Export a region of a store as Cloud-Optimized GeoTIFFs (for GDAL, QGIS and every COG reader).

This module owns :func:`export_cog` (one COG of a bbox at one pyramid level) and
:func:`export_cells` (one COG per finished cell, the tiled set).  Pixels come from the store
through :func:`s2cube.store.open_store` (level 0) and :func:`s2cube.overviews.open_level`
(overview levels), never by reading the Zarr arrays directly; the georeferencing is the
level's :class:`~s2cube.window.Window` of the store's grid, so the GeoTIFF's transform is the
store's exactly (computed from the grid's fractions, not from float coordinates).

What is written: EPSG:4326, tiled (``blocksize`` px), DEFLATE or ZSTD with the horizontal
predictor, internal overviews (GDAL ``AVERAGE``, which skips nodata like the store's own
pyramid) and the COG layout (IFDs first, overviews before full resolution).  Reflectance is
uint16 with nodata 0 and a scale of 1e-4 per band; ``rendered=True`` writes the 8-bit true
colour of :func:`s2cube.render.tone_curve` as RGBA (alpha 0 where any of red/green/blue is
missing), the same picture the quick-looks and the tile server show.

The region is read in strips of whole tile rows into a temporary tiled GeoTIFF beside the
output, then copied by GDAL's COG driver; the output appears only when complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, StoreError
from .grid import Cell, GlobalGrid, validate_bbox
from .window import Window

__all__ = ["DEFAULT_BANDS", "ExportResult", "export_cells", "export_cog", "export_window"]

DEFAULT_BANDS = ("red", "green", "blue", "nir")
COMPRESSIONS = ("deflate", "zstd")
#: memory bound of one strip read from the store (bytes)
STRIP_BYTES = 256 * 2**20


@dataclass(frozen=True)
class ExportResult:
    """One written COG: where, what, its geometry and its cost."""

    path: Path
    level: int
    bands: tuple[str, ...]
    window: Window
    overviews: int
    nbytes: int
    seconds: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.window.shape


def export_window(grid: GlobalGrid, bbox: Sequence[float], level: int) -> Window:
    """The pixels of pyramid ``level`` that an export of ``bbox`` covers.

    Level 0: the pixels whose centres lie in the bbox, as :func:`s2cube.open_store` selects
    them.  Level ``k``: the level pixels covering those (``zoom_out(2**k)``), on the globe.

    Examples
    --------
    >>> grid = GlobalGrid(resolution="1/800", cell_size="1/2", chunk_size=100)
    >>> w = export_window(grid, (15.5, 46.0, 16.0, 46.5), 1)
    >>> w.shape, w.bounds
    ((200, 200), (15.5, 46.0, 16.0, 46.5))
    """
    full = grid.window_of_bbox(bbox, pixels="centres")
    if full.height == 0 or full.width == 0:
        raise InputError(
            f"--bbox {tuple(bbox)} contains no pixel centre of the store's grid "
            f"({grid.resolution}° pixels); use a larger bbox"
        )
    factor = 2**level
    return full.zoom_out(factor).intersection(grid.window(factor))


def _check_request(
    store: Any, bbox: Sequence[float], level: int, bands: Sequence[str] | None, rendered: bool
) -> tuple[GlobalGrid, list[Any], tuple[str, ...], Window]:
    """Validate everything before a byte is written; return grid, levels, bands, window."""
    from .overviews import has_overviews, overview_status, pyramid
    from .store import read_manifest, store_metadata

    bbox = validate_bbox(bbox)
    meta = store_metadata(store)
    grid = GlobalGrid.from_dict(meta["grid"])
    levels = pyramid(grid)
    if isinstance(level, bool) or not isinstance(level, int | np.integer):
        raise InputError(f"--level {level!r} must be an integer in 0..{len(levels) - 1}")
    if not 0 <= level < len(levels):
        raise InputError(
            f"--level {level} is not a level of this store: its pyramid has levels "
            f"0..{len(levels) - 1} (0: full resolution {grid.resolution}°, each next level "
            "halves it); pick one of those"
        )
    stored = tuple(meta["bands"])
    if rendered:
        if bands is not None and tuple(bands) != ("red", "green", "blue"):
            raise InputError(
                f"--rendered writes the red/green/blue true colour; --bands {','.join(bands)} "
                "cannot be combined with it (leave --bands out)"
            )
        chosen: tuple[str, ...] = ("red", "green", "blue")
    else:
        chosen = tuple(bands) if bands is not None else DEFAULT_BANDS
    if not chosen:
        raise InputError("--bands is empty; name at least one of " + ", ".join(stored))
    for b in chosen:
        if b not in stored:
            raise InputError(
                f"band {b!r} is not in this store; its bands are {', '.join(stored)} "
                "(choose --bands from those, comma-separated)"
            )
    if len(set(chosen)) != len(chosen):
        raise InputError(f"--bands {','.join(chosen)} names a band twice")
    window = export_window(grid, bbox, level)
    full = grid.window_of_bbox(bbox, pixels="centres")
    done = [Cell.from_name(name) for name in read_manifest(store)]
    touched = [c for c in done if _nonempty(grid.cell_window(c).intersection(full))]
    if not touched:
        extent = ""
        if done:
            union = grid.cell_window(done[0])
            for c in done[1:]:
                union = union.union(grid.cell_window(c))
            extent = f" (they lie within W S E N {' '.join(f'{v:g}' for v in union.bounds)})"
        raise InputError(
            f"--bbox {' '.join(f'{v:g}' for v in bbox)} touches none of the store's "
            f"{len(done)} finished cell(s){extent}; choose a bbox inside the finished area"
            + ("" if done else " (run `s2cube mosaic` first)")
        )
    if level > 0:
        if not has_overviews(store):
            raise StoreError(
                f"store {str(store)!r} has no overviews, so --level {level} does not exist "
                "yet; build them with `s2cube overviews STORE`, or export --level 0"
            )
        status = overview_status(store)
        need = "ok" if not levels[level].per_cell else ("ok", "no-coarse")
        stale = [c.name for c in touched if status.get(c.name) not in need]
        if stale:
            raise StoreError(
                f"--level {level}: the overviews of cell(s) {', '.join(sorted(stale))} are "
                "missing or out of date; rebuild them with `s2cube overviews STORE`, or "
                "export --level 0"
            )
    return grid, levels, chosen, window


def _nonempty(window: Window) -> bool:
    return window.height > 0 and window.width > 0


def _level_dataset(store: Any, level: int, window: Window) -> Any:
    """The export's pixels as a lazy dataset (through the store's own readers)."""
    from .overviews import open_level
    from .store import open_store

    # level 0 without dask (a global store has millions of chunks); subset, read in strips
    ds = open_store(store, chunks=False) if level == 0 else open_level(store, level)
    ds = ds.isel(latitude=window.rows, longitude=window.cols)
    if (ds.sizes["latitude"], ds.sizes["longitude"]) != window.shape:
        raise StoreError(  # the store's readers and the grid disagree: a bug, not user input
            f"level {level} read {dict(ds.sizes)} but the grid says {window.shape}"
        )
    return ds


def _strip(ds: Any, bands: Sequence[str], rows: slice, rendered: bool) -> np.ndarray:
    part = ds[list(bands)].isel(latitude=rows)
    arrays = [np.asarray(part[b].values) for b in bands]
    if not rendered:
        return np.stack(arrays)
    from .render import stack_rgba, tone_curve

    r, g, b = arrays
    rgba = stack_rgba(tone_curve(r), tone_curve(g), tone_curve(b), (r > 0) & (g > 0) & (b > 0))
    return np.moveaxis(rgba, -1, 0)


def _write(
    ds: Any,
    out: Path,
    *,
    window: Window,
    bands: tuple[str, ...],
    rendered: bool,
    compress: str,
    blocksize: int,
    tags: dict[str, str],
) -> int:
    """Stream ``ds`` into a tiled GeoTIFF, copy it to a COG at ``out``; return its overviews."""
    import rasterio
    import rasterio.shutil
    from rasterio.enums import ColorInterp

    h, w = window.shape
    count = 4 if rendered else len(bands)
    dtype = "uint8" if rendered else "uint16"
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": count,
        "dtype": dtype,
        "crs": "EPSG:4326",
        "transform": window.transform,
        "tiled": True,
        "blockxsize": blocksize,
        "blockysize": blocksize,
        "compress": "zstd",
        "zstd_level": 1,
        "bigtiff": "if_safer",
    }
    if rendered:
        profile.update(photometric="RGB", alpha="YES")
    else:
        profile["nodata"] = 0
    per_row = w * count * np.dtype(dtype).itemsize
    step = max(blocksize, STRIP_BYTES // max(per_row, 1) // blocksize * blocksize)
    tmp = out.with_name(f".{out.name}.part.tif")
    staged = out.with_name(f".{out.name}.cog.tif")
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            if rendered:
                dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue] + [
                    ColorInterp.alpha
                ]
                names = ["red", "green", "blue", "alpha"]
            else:
                dst.scales = [1e-4] * count
                names = list(bands)
            for i, name in enumerate(names, start=1):
                dst.set_band_description(i, name)
            dst.update_tags(**tags)
            for r0 in range(0, h, step):
                rows = slice(r0, min(h, r0 + step))
                block = _strip(ds, bands, rows, rendered)
                dst.write(block, window=((rows.start, rows.stop), (0, w)))
        options: dict[str, Any] = {
            "COMPRESS": compress.upper(),
            "PREDICTOR": "YES",
            "BLOCKSIZE": blocksize,
            "OVERVIEWS": "AUTO",
            "OVERVIEW_RESAMPLING": "AVERAGE",
            "BIGTIFF": "IF_SAFER",
            "NUM_THREADS": "ALL_CPUS",
        }
        rasterio.shutil.copy(str(tmp), str(staged), driver="COG", **options)
        with rasterio.open(staged) as src:
            overviews = len(src.overviews(1))
        os.replace(staged, out)
    finally:
        for p in (tmp, staged):
            if p.exists():
                p.unlink()
    return overviews


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise InputError(
            f"{str(out)!r} exists; pass --overwrite to replace it, or choose another path"
        )
    if out.exists() and out.is_dir():
        raise InputError(f"{str(out)!r} is a directory; name a .tif file")


def _one(
    store: Any,
    out: Path,
    *,
    grid: GlobalGrid,
    window: Window,
    level: int,
    bands: tuple[str, ...],
    rendered: bool,
    compress: str,
    blocksize: int,
) -> ExportResult:
    t0 = time.perf_counter()
    ds = _level_dataset(store, level, window)
    out.parent.mkdir(parents=True, exist_ok=True)
    tags = {
        "s2cube_store": str(store),
        "s2cube_level": str(level),
        "s2cube_resolution": str(window.resolution),
        "s2cube_bands": ",".join(bands),
        "s2cube_values": "8-bit tone curve (s2cube.render)" if rendered else "reflectance x 1e4",
    }
    overviews = _write(
        ds,
        out,
        window=window,
        bands=bands,
        rendered=rendered,
        compress=compress,
        blocksize=blocksize,
        tags=tags,
    )
    return ExportResult(
        out, level, bands, window, overviews, out.stat().st_size, time.perf_counter() - t0
    )


def _check_options(compress: str, blocksize: int) -> None:
    if compress not in COMPRESSIONS:
        raise InputError(f"compress={compress!r} must be one of {', '.join(COMPRESSIONS)}")
    if not isinstance(blocksize, int) or blocksize < 64 or blocksize % 16:
        raise InputError(
            f"blocksize={blocksize!r} must be a multiple of 16 and >= 64 (COG tiles; 512 is usual)"
        )


def export_cog(
    store: Any,
    out: str | os.PathLike[str],
    *,
    bbox: Sequence[float],
    level: int = 0,
    bands: Sequence[str] | None = None,
    rendered: bool = False,
    overwrite: bool = False,
    compress: str = "deflate",
    blocksize: int = 512,
    check_only: bool = False,
) -> ExportResult | None:
    """Write the store's pixels inside ``bbox`` at pyramid ``level`` as one COG.

    Parameters
    ----------
    store
        An s2cube store.
    out
        The GeoTIFF to write (parent directories are created).
    bbox
        Lon/lat ``(west, south, east, north)``; it must touch a finished cell.
    level
        Pyramid level (0: full resolution; see :func:`s2cube.overviews.pyramid`).
    bands
        Reflectance bands (default red, green, blue, nir), written in this order.
    rendered
        Write the 8-bit true colour (RGBA) of the global tone curve instead of reflectance.
    overwrite
        Replace ``out`` if it exists (otherwise that is an error).
    compress, blocksize
        COG compression (``deflate`` or ``zstd``) and tile edge in pixels.
    check_only
        Validate every argument and return ``None`` without writing.

    Raises
    ------
    InputError
        Bad bbox (outside the finished cells or smaller than a pixel), level, band, or an
        existing ``out`` without ``overwrite``; nothing is written then.
    StoreError
        ``level > 0`` on a store whose overviews are missing or stale.

    Examples
    --------
    >>> res = export_cog("mosaic.zarr", "m.tif", bbox=(15.5, 46, 16, 46.5))  # doctest: +SKIP
    >>> res.shape, res.overviews  # doctest: +SKIP
    ((6000, 6000), 4)
    """
    _check_options(compress, blocksize)
    grid, _, chosen, window = _check_request(store, bbox, level, bands, rendered)
    path = Path(out)
    _check_out(path, overwrite)
    if check_only:
        return None
    return _one(
        store,
        path,
        grid=grid,
        window=window,
        level=level,
        bands=chosen,
        rendered=rendered,
        compress=compress,
        blocksize=blocksize,
    )


def export_cells(
    store: Any,
    out_dir: str | os.PathLike[str],
    *,
    bbox: Sequence[float],
    level: int = 0,
    bands: Sequence[str] | None = None,
    rendered: bool = False,
    overwrite: bool = False,
    compress: str = "deflate",
    blocksize: int = 512,
    check_only: bool = False,
) -> list[ExportResult]:
    """One COG per finished cell touching ``bbox`` (``OUT_DIR/<cell>.tif``), cropped to it.

    Tiles of the set never overlap: ``level`` must be a per-cell level of the pyramid (a
    cell maps onto whole pixels of it).  Arguments and errors as :func:`export_cog`; every
    file is checked before the first is written (``check_only``: checked, nothing written).
    """
    from .store import read_manifest

    _check_options(compress, blocksize)
    grid, levels, chosen, window = _check_request(store, bbox, level, bands, rendered)
    if not levels[level].per_cell:
        last = max(lv.index for lv in levels if lv.per_cell)
        raise InputError(
            f"--per-cell needs a level whose pixels tile the cells exactly (0..{last}); "
            f"level {level} is coarser: export it as one COG (leave out --per-cell)"
        )
    factor = 2**level
    jobs: list[tuple[Cell, Window, Path]] = []
    for name in sorted(read_manifest(store)):
        cell = Cell.from_name(name)
        part = grid.cell_window(cell).zoom_out(factor).intersection(window)
        if _nonempty(part):
            jobs.append((cell, part, Path(out_dir) / f"{cell.name}.tif"))
    for _, _, path in jobs:
        _check_out(path, overwrite)
    if check_only:
        return []
    results = []
    for _cell, part, path in jobs:
        results.append(
            _one(
                store,
                path,
                grid=grid,
                window=part,
                level=level,
                bands=chosen,
                rendered=rendered,
                compress=compress,
                blocksize=blocksize,
            )
        )
    return results
