"""Lazy Sentinel-2 cubes on the global grid (stackstac + dask).

:func:`load` turns normalised STAC items into a lazy ``(time, band, latitude, longitude)``
uint16 cube covering one cell of the :class:`~s2cube.grid.GlobalGrid` (plus a halo), with:

* the grid's exact pixel-centre coordinates (EPSG:4326, north-up);
* SCL always resampled with nearest (its classes must never be averaged);
* one reflectance scale: the +1000 DN offset of processing baseline ≥ 04.00 removed where
  the provider did not remove it (per item, from :func:`s2cube.search.boa_offset`);
* a slim set of per-scene coordinates (``id``, ``eo:cloud_cover``, ``mgrs_tile``...).

Only items whose footprint touches the cell are stacked, so a cell's graph reads nothing else.
The reads themselves (GDAL environment, failed-read policy) belong to :mod:`s2cube.reader`;
this module is the xarray wrapper: exact grid coordinates, one reflectance scale, padding
past the globe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pystac
import xarray as xr

from . import reader
from .config import check_bands
from .errors import InputError
from .grid import DEFAULT_GRID, Cell, GlobalGrid, Window
from .items import ASSET_ALIASES, normalize_items

__all__ = ["load", "load_window", "remove_boa_offset", "items_touching", "DEFAULT_BANDS"]

DEFAULT_BANDS = ("red", "green", "blue", "nir")
READ_CHUNK = 2048
#: (rows, cols) alignment of warped reads: GDAL's default warped-VRT block is 512×128 px
VRT_ALIGN = (128, 512)
_SCENE_COORDS = ("id", "eo:cloud_cover", "s2cube:mgrs_tile", "s2cube:boa_offset", "s2cube:epsg")


# --------------------------------------------------------------------------- kernels
def remove_boa_offset(dn: np.ndarray, offset: np.ndarray | int) -> np.ndarray:
    """Subtract a per-scene DN offset from uint16 reflectance, keeping 0 as nodata.

    ``offset`` broadcasts against ``dn`` (e.g. shape ``(time, 1, 1, 1)``).  Valid pixels at or
    below the offset (reflectance ≤ 0 after correction) become 1, the smallest valid DN, so
    that they are not mistaken for nodata.
    """
    offset = np.asarray(offset, dtype="int32")
    dn = np.asarray(dn)
    if dn.dtype == np.uint16 and offset.size and 0 <= offset.min() and offset.max() < 65535:
        # the same in uint16, without int32 temporaries (×3 faster on a read chunk)
        off = offset.astype("uint16")
        out16 = np.maximum(dn, off + np.uint16(1))
        out16 -= off
        out16[dn == 0] = 0
        return out16
    out = dn.astype("int32") - offset
    out = np.where(dn == 0, 0, np.maximum(out, 1))
    return out.astype("uint16")


# --------------------------------------------------------------------------- helpers
def items_touching(
    items: Sequence[pystac.Item], bounds: tuple[float, float, float, float]
) -> list[pystac.Item]:
    """The items whose footprint (or bbox) intersects lon/lat ``bounds``."""
    from shapely.geometry import box, shape

    area = box(*bounds)
    kept = []
    for it in items:
        if it.geometry is not None:
            hit = shape(it.geometry).intersects(area)
        elif it.bbox is not None:
            hit = box(*it.bbox[:2], *it.bbox[-2:]).intersects(area)
        else:
            hit = True
        if hit:
            kept.append(it)
    return kept


def _check_bands(bands: Sequence[str]) -> tuple[str, ...]:
    """Bands a cube can load: any known asset but ``scl`` (always loaded as the last band)."""
    return check_bands(bands, allowed=[k for k in ASSET_ALIASES if k != "scl"])


def load(
    items: Sequence[pystac.Item | dict[str, Any]],
    cell: Cell,
    *,
    grid: GlobalGrid = DEFAULT_GRID,
    bands: Sequence[str] = DEFAULT_BANDS,
    halo: int = 0,
    chunksize: int | None = None,
    resampling: str = "nearest",
    strict: bool = False,
) -> xr.DataArray:
    """Build the lazy ``(time, band, latitude, longitude)`` cube of one cell.

    Parameters
    ----------
    items
        STAC items (normalised or not; they are normalised on a copy).  The time axis keeps
        their order, so pass them in priority order.
    cell
        The cell to load; see :meth:`GlobalGrid.cells_in_bbox`.
    grid
        The global grid (resolution, cell size).
    bands
        Reflectance bands (canonical names); ``scl`` is always appended as the last band.
    halo
        Extra pixels on every side (for dilation and blending across cell edges).
    chunksize
        Spatial dask chunk edge in pixels (default: the whole halo'd cell up to 2048 px).
    resampling
        Resampling of the reflectance bands (``nearest`` default).  SCL always uses nearest.
    strict
        Raise on read errors instead of turning known transient errors into nodata (with a
        :class:`~s2cube.reader.ReadFailureWarning` naming the asset).

    Returns
    -------
    xarray.DataArray
        uint16, nodata 0, ``band`` = ``[*bands, "scl"]``, with ``id``/``eo:cloud_cover``/
        ``mgrs_tile`` coordinates along ``time`` and a ``spatial_ref`` (EPSG:4326) coordinate.

    Examples
    --------
    >>> cube = s2cube.load(items, grid.cell_of(15.9, 46.1), grid=grid)  # doctest: +SKIP
    """
    if halo < 0:
        raise InputError(f"halo={halo} must be >= 0 pixels")
    stack = load_window(
        items,
        grid.cell_window(cell, halo=halo),
        bands=bands,
        chunksize=chunksize,
        resampling=resampling,
        strict=strict,
        what=str(cell),
        # read on the global VRT block lattice, as the compositing engine reads: the cube's
        # pixels are the ones the store is built from
        align=VRT_ALIGN,
    )
    stack.attrs["cell"] = cell.name
    stack.attrs["halo"] = halo
    return stack


def _as_window(rows: slice | Window, cols: slice | None, grid: GlobalGrid | None) -> Window:
    if isinstance(rows, Window):
        if cols is not None:
            raise InputError("pass a Window alone, or rows and cols slices; not a Window and cols")
        if grid is not None and grid != rows.grid:
            raise InputError(f"grid={grid} differs from the window's grid {rows.grid}; drop grid=")
        if rows.factor != 1:
            raise InputError(
                f"the window is at zoom-out factor {rows.factor}; cubes are loaded at the grid's "
                "resolution: pass window.zoom_in(window.factor)"
            )
        return rows
    if cols is None:
        raise InputError("load_window needs cols= (a slice of global columns) beside rows")
    return Window(
        grid or DEFAULT_GRID, rows.start, cols.start, rows.stop - rows.start, cols.stop - cols.start
    )


def load_window(
    items: Sequence[pystac.Item | dict[str, Any]],
    rows: slice | Window,
    cols: slice | None = None,
    *,
    grid: GlobalGrid | None = None,
    bands: Sequence[str] = DEFAULT_BANDS,
    chunksize: int | tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    resampling: str = "nearest",
    strict: bool = False,
    what: str = "window",
    align: tuple[int, int] | None = None,
) -> xr.DataArray:
    """Like :func:`load` for any window of the global grid (may extend past the globe).

    The window is a :class:`~s2cube.grid.Window` (``load_window(items, w)``), or global pixel
    ``rows``/``cols`` slices of ``grid`` (default :data:`~s2cube.grid.DEFAULT_GRID`).

    ``align=(rows, cols)`` makes the warped read itself cover a window whose edges are multiples
    of ``rows``/``cols`` global pixels (the result is still cropped to the window).  With
    :data:`VRT_ALIGN`, GDAL's warped-VRT blocks (512×128) then fall on one global tiling, and
    its approximate transformer (per block row) gives every global pixel the same value
    whichever window read it: cells, halos and fallbacks agree exactly.

    Examples
    --------
    >>> cube = load_window(items, grid.cell_window(cell).pad(16), align=VRT_ALIGN)  # doctest: +SKIP
    """
    window = _as_window(rows, cols, grid)
    if align is not None:
        outer = window.align(*align)
        top, left = window.offset_in(outer)
        if isinstance(chunksize, tuple):
            bottom = outer.height - top - window.height
            right = outer.width - left - window.width
            inner: Any = (
                tuple(c for c in (top, *chunksize[0], bottom) if c > 0),
                tuple(c for c in (left, *chunksize[1], right) if c > 0),
            )
        else:
            inner = chunksize
        full = load_window(
            items,
            outer,
            bands=bands,
            chunksize=inner,
            resampling=resampling,
            strict=strict,
            what=what,
        )
        return full.isel(
            latitude=slice(top, top + window.height),
            longitude=slice(left, left + window.width),
        )

    bands = _check_bands(bands)
    if resampling not in reader.RESAMPLING:
        raise InputError(f"resampling={resampling!r}; choose one of {reader.RESAMPLING}")
    # read chunks are decoupled from the store's (small, tile-serving) chunks: fewer, larger
    # reads keep the graph small (tasks = scenes × bands × chunks); 2048 px × 10 scenes × 5
    # bands of uint16 is ~400 MB per chunk column at most
    if isinstance(chunksize, tuple):
        # explicit (row chunks, col chunks), e.g. aligned to processing blocks and their halos
        chunks: Any = (tuple(chunksize[0]), tuple(chunksize[1]))
    else:
        chunks = int(chunksize or min(max(window.height, window.width), READ_CHUNK))
    done = all(isinstance(it, pystac.Item) and "s2cube:boa_offset" in it.properties for it in items)
    normed = list(items) if done else normalize_items(items, bands=(*bands, "scl"))
    bounds = reader.request_bounds(window)
    touching = items_touching(normed, bounds)  # type: ignore[arg-type]
    if not touching:
        raise InputError(f"no item touches {what} ({bounds}); nothing to load")

    read = dict(chunks=chunks, strict=strict)
    if resampling == "nearest":
        stack = _slim(reader.stack(touching, window, assets=[*bands, "scl"], **read))
    else:
        # SCL classes must never be averaged: one more stack, always nearest
        refl = reader.stack(touching, window, assets=list(bands), resampling=resampling, **read)
        scl = reader.stack(touching, window, assets=["scl"], **read)
        stack = xr.concat(
            [_slim(refl), _slim(scl)], dim="band", coords="minimal", compat="override"
        )
    stack = _on_grid(stack, window, what)
    stack = _one_reflectance_scale(stack, touching, n_bands=len(bands))
    return _pad_to(stack, window)


def _slim(stack: xr.DataArray) -> xr.DataArray:
    """Only the per-scene coordinates a cube keeps (the per-band ones differ between stacks)."""
    keep = (*_SCENE_COORDS, "time", "band", "x", "y")
    return stack.drop_vars([c for c in stack.coords if c not in keep])


def _on_grid(stack: xr.DataArray, window: Window, what: str) -> xr.DataArray:
    """Rename to latitude/longitude and put the grid's exact pixel centres in."""
    on_globe = window.clip()
    # stackstac's coordinates are computed in float and drift by ulps: check, then replace
    lat, lon = on_globe.latitudes(), on_globe.longitudes()
    tol = float(window.resolution) / 100
    if not (
        stack.sizes["y"] == lat.size
        and stack.sizes["x"] == lon.size
        and np.allclose(stack.y.values, lat, atol=tol)
        and np.allclose(stack.x.values, lon, atol=tol)
    ):
        raise RuntimeError(
            f"stackstac grid does not match the global grid for {what}: y "
            f"{stack.y.values[[0, -1]]} vs {lat[[0, -1]]}, x {stack.x.values[[0, -1]]} vs "
            f"{lon[[0, -1]]}"
        )
    stack = stack.rename({"y": "latitude", "x": "longitude"}).assign_coords(
        latitude=lat, longitude=lon
    )
    if "s2cube:mgrs_tile" in stack.coords:
        stack = stack.rename({"s2cube:mgrs_tile": "mgrs_tile"})
    return stack


def _one_reflectance_scale(
    stack: xr.DataArray, items: Sequence[pystac.Item], *, n_bands: int
) -> xr.DataArray:
    """Remove each item's BOA offset from its reflectance bands (never from SCL, the last)."""
    offsets = np.array([it.properties.get("s2cube:boa_offset", 0) for it in items], dtype="int32")
    if not offsets.any():
        return stack
    per_band = np.zeros((len(items), n_bands + 1), dtype="int32")
    per_band[:, :n_bands] = offsets[:, None]
    return xr.apply_ufunc(
        remove_boa_offset,
        stack,
        xr.DataArray(per_band, dims=("time", "band")),
        dask="parallelized",
        output_dtypes=["uint16"],
        keep_attrs=True,
    ).transpose("time", "band", "latitude", "longitude")


def _pad_to(stack: xr.DataArray, window: Window) -> xr.DataArray:
    """Pad with nodata where the window runs past the globe; set the cube's attributes."""
    on_globe = window.clip()
    top, left = on_globe.offset_in(window)
    pad_y = (top, window.height - top - on_globe.height)
    pad_x = (left, window.width - left - on_globe.width)
    if any(pad_y + pad_x):
        stack = stack.pad(latitude=pad_y, longitude=pad_x, constant_values=0)
        stack = stack.assign_coords(latitude=window.latitudes(), longitude=window.longitudes())
    stack = stack.assign_coords(spatial_ref=_spatial_ref())
    stack.attrs = {
        "grid": str(window.grid.to_dict()),
        "nodata": 0,
        "crs": "EPSG:4326",
        "grid_mapping": "spatial_ref",
    }
    stack.name = "reflectance"
    return stack


def _spatial_ref() -> xr.DataArray:
    from pyproj import CRS

    crs = CRS.from_epsg(4326)
    attrs = crs.to_cf()
    attrs["spatial_ref"] = crs.to_wkt()
    return xr.DataArray(np.int32(0), attrs=attrs)
