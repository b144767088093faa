"""Lazy Sentinel-2 cubes on the global grid (stackstac + dask).

:func:`load` turns normalised STAC items into a lazy ``(time, band, latitude, longitude)``
uint16 cube covering one cell of the :class:`~s2cube.grid.GlobalGrid` (plus a halo), with:

* the grid's exact pixel-centre coordinates (EPSG:4326, north-up);
* SCL always resampled with nearest (its classes must never be averaged);
* one reflectance scale: the +1000 DN offset of processing baseline ≥ 04.00 removed where
  the provider did not remove it (per item, from :func:`s2cube.search.boa_offset`);
* a slim set of per-scene coordinates (``id``, ``eo:cloud_cover``, ``mgrs_tile``...).

Only items whose footprint touches the cell are stacked, so a cell's graph reads nothing else.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pystac
import xarray as xr

from .errors import InputError
from .grid import DEFAULT_GRID, Cell, GlobalGrid
from .search import ASSET_ALIASES, REFLECTANCE_BANDS, normalize_items

__all__ = ["load", "load_window", "remove_boa_offset", "items_touching", "DEFAULT_BANDS"]



DEFAULT_BANDS = ("red", "green", "blue", "nir")
READ_CHUNK = 2048
#: (rows, cols) alignment of warped reads: GDAL's default warped-VRT block is 512×128 px
VRT_ALIGN = (128, 512)
_RESAMPLING = ("nearest", "bilinear", "cubic", "average")
_SCENE_COORDS = ("id", "eo:cloud_cover", "s2cube:mgrs_tile", "s2cube:boa_offset", "s2cube:epsg")


# --------------------------------------------------------------------------- kernels
def remove_boa_offset(dn: np.ndarray, offset: np.ndarray | int) -> np.ndarray:
    """Subtract a per-scene DN offset from uint16 reflectance, keeping 0 as nodata.

    ``offset`` broadcasts against ``dn`` (e.g. shape ``(time, 1, 1, 1)``).  Valid pixels at or
    below the offset (reflectance ≤ 0 after correction) become 1, the smallest valid DN, so
    that they are not mistaken for nodata.
    """
    offset = np.asarray(offset, dtype="int32")
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
    unknown = [b for b in bands if b not in ASSET_ALIASES or b == "scl"]
    if unknown:
        raise InputError(
            f"unknown band(s) {unknown}; choose from {', '.join(REFLECTANCE_BANDS)} "
            "(scl is always loaded)"
        )
    if len(set(bands)) != len(bands):
        raise InputError(f"bands={list(bands)} lists a band twice")
    return tuple(bands)


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
        Raise on read errors instead of turning known transient errors into nodata.

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
    rows, cols = grid.cell_region(cell, halo=halo)
    stack = load_window(items, rows, cols, grid=grid, bands=bands, chunksize=chunksize,
                        resampling=resampling, strict=strict, what=str(cell))  # fmt: skip
    stack.attrs["cell"] = cell.name
    stack.attrs["halo"] = halo
    return stack


def _gdal_env() -> Any:
    """stackstac's GDAL options, plus block-wise warping (window-independent pixels).

    For a large request GDAL's warped VRT warps the requested window directly (GDAL 3.10 here),
    and its approximate transformer then interpolates along the rows of *that window*: with
    nearest resampling up to ~0.5 % of pixels (10 m data on the 1/12000° grid) pick a neighbouring
    source pixel depending on how the array was chunked.  With
    ``GDAL_VRT_WARP_USE_DATASET_RASTERIO=NO`` every read is served from the VRT's own
    512×128 blocks, which :data:`VRT_ALIGN` puts on one global tiling: a pixel's value no longer
    depends on the read window, the chunking or the cell (and the block path measured faster).
    """
    from stackstac.rio_reader import DEFAULT_GDAL_ENV

    return DEFAULT_GDAL_ENV.updated(always={"GDAL_VRT_WARP_USE_DATASET_RASTERIO": "NO"})


def load_window(
    items: Sequence[pystac.Item | dict[str, Any]],
    rows: slice,
    cols: slice,
    *,
    grid: GlobalGrid = DEFAULT_GRID,
    bands: Sequence[str] = DEFAULT_BANDS,
    chunksize: int | tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    resampling: str = "nearest",
    strict: bool = False,
    what: str = "window",
    align: tuple[int, int] | None = None,
) -> xr.DataArray:
    """Like :func:`load` for any window of global pixel rows/cols (may extend past the globe).

    ``align=(rows, cols)`` makes the warped read itself cover a window whose edges are multiples
    of ``rows``/``cols`` global pixels (the result is still cropped to ``rows``/``cols``).  With
    :data:`VRT_ALIGN`, GDAL's warped-VRT blocks (512×128) then fall on one global tiling, and
    its approximate transformer (per block row) gives every global pixel the same value
    whichever window read it: cells, halos and fallbacks agree exactly.
    """
    if align is not None:
        ay, ax = align
        rv = slice((rows.start // ay) * ay, -(-rows.stop // ay) * ay)
        cv = slice((cols.start // ax) * ax, -(-cols.stop // ax) * ax)
        if isinstance(chunksize, tuple):
            ch_y = tuple(c for c in (rows.start - rv.start, *chunksize[0], rv.stop - rows.stop) if c > 0)
            ch_x = tuple(c for c in (cols.start - cv.start, *chunksize[1], cv.stop - cols.stop) if c > 0)
            inner: Any = (ch_y, ch_x)
        else:
            inner = chunksize
        full = load_window(items, rv, cv, grid=grid, bands=bands, chunksize=inner,
                           resampling=resampling, strict=strict, what=what)  # fmt: skip
        return full.isel(
            latitude=slice(rows.start - rv.start, rows.stop - rv.start),
            longitude=slice(cols.start - cv.start, cols.stop - cv.start),
        )
    import stackstac
    from rasterio.enums import Resampling

    bands = _check_bands(bands)
    if resampling not in _RESAMPLING:
        raise InputError(f"resampling={resampling!r}; choose one of {_RESAMPLING}")
    # read chunks are decoupled from the store's (small, tile-serving) chunks: fewer, larger
    # reads keep the graph small (tasks = scenes × bands × chunks); 2048 px × 10 scenes × 5
    # bands of uint16 is ~400 MB per chunk column at most
    if isinstance(chunksize, tuple):
        # explicit (row chunks, col chunks), e.g. aligned to processing blocks and their halos
        chunk_spec: Any = (1, 1, tuple(chunksize[0]), tuple(chunksize[1]))
    else:
        chunk = int(chunksize or min(max(rows.stop - rows.start, cols.stop - cols.start), READ_CHUNK))
        chunk_spec = (1, 1, chunk, chunk)
    done = all(isinstance(it, pystac.Item) and "s2cube:boa_offset" in it.properties for it in items)
    normed = list(items) if done else normalize_items(items, bands=(*bands, "scl"))
    r = float(grid.resolution)
    bounds = (-180 + cols.start * r, 90 - rows.stop * r, -180 + cols.stop * r, 90 - rows.start * r)
    touching = items_touching(normed, bounds)  # type: ignore[arg-type]
    if not touching:
        raise InputError(f"no item touches {what} ({bounds}); nothing to load")

    errors: tuple[Exception, ...] = ()
    if not strict:
        from rasterio.errors import RasterioIOError

        # transient HTTP failures become nodata (with a warning from stackstac), never silence
        errors = (
            RasterioIOError("HTTP response code: 5"),
            RasterioIOError(".*timed out.*"),
            RasterioIOError(".*Connection reset.*"),
        )

    # clip to the globe (halo at the poles/antimeridian), pad afterwards
    south, north = max(bounds[1], -90.0), min(bounds[3], 90.0)
    west, east = max(bounds[0], -180.0), min(bounds[2], 180.0)
    common = dict(
        epsg=4326,
        resolution=float(grid.resolution),
        bounds=(west, south, east, north),
        snap_bounds=False,
        rescale=False,
        fill_value=np.uint16(0),
        dtype="uint16",
        xy_coords="center",
        sortby_date=False,
        chunksize=chunk_spec,
        errors_as_nodata=errors,
        gdal_env=_gdal_env(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        if resampling == "nearest":
            stack = stackstac.stack(
                touching, assets=[*bands, "scl"], resampling=Resampling.nearest, **common
            )
        else:
            refl = stackstac.stack(
                touching, assets=list(bands), resampling=getattr(Resampling, resampling), **common
            )
            scl = stackstac.stack(touching, assets=["scl"], resampling=Resampling.nearest, **common)
            stack = xr.concat([refl, scl], dim="band", coords="minimal", compat="override")

    # exact grid coordinates: stackstac's are computed in float and drift by ulps
    r0 = max(rows.start, 0)
    c0 = max(cols.start, 0)
    n_y, n_x = stack.sizes["y"], stack.sizes["x"]
    lat = grid.latitudes(r0, r0 + n_y)
    lon = grid.longitudes(c0, c0 + n_x)
    if not (np.allclose(stack.y.values, lat, atol=float(grid.resolution) / 100)
            and np.allclose(stack.x.values, lon, atol=float(grid.resolution) / 100)):
        raise RuntimeError(
            f"stackstac grid does not match the global grid for {what}: "
            f"y {stack.y.values[[0, -1]]} vs {lat[[0, -1]]}, x {stack.x.values[[0, -1]]} vs {lon[[0, -1]]}"
        )
    keep = [c for c in _SCENE_COORDS if c in stack.coords]
    stack = stack.drop_vars([c for c in stack.coords if c not in (*keep, "time", "band", "x", "y")])
    stack = stack.rename({"y": "latitude", "x": "longitude"}).assign_coords(
        latitude=lat, longitude=lon
    )
    stack = stack.rename({"s2cube:mgrs_tile": "mgrs_tile"}) if "s2cube:mgrs_tile" in stack.coords else stack

    # one reflectance scale across processing baselines
    offsets = np.array([it.properties.get("s2cube:boa_offset", 0) for it in touching], dtype="int32")
    if offsets.any():
        per_band = np.zeros((len(touching), len(bands) + 1), dtype="int32")
        per_band[:, : len(bands)] = offsets[:, None]
        stack = xr.apply_ufunc(
            remove_boa_offset,
            stack,
            xr.DataArray(per_band, dims=("time", "band")),
            dask="parallelized",
            output_dtypes=["uint16"],
            keep_attrs=True,
        ).transpose("time", "band", "latitude", "longitude")

    # pad back to the full halo'd cell where the globe was clipped
    pad_y = (r0 - rows.start, rows.stop - (r0 + n_y))
    pad_x = (c0 - cols.start, cols.stop - (c0 + n_x))
    if any(pad_y + pad_x):
        stack = stack.pad(latitude=pad_y, longitude=pad_x, constant_values=0)
        stack = stack.assign_coords(
            latitude=grid.latitudes(rows.start, rows.stop),
            longitude=grid.longitudes(cols.start, cols.stop),
        )
    stack = stack.assign_coords(spatial_ref=_spatial_ref())
    stack.attrs = {
        "grid": str(grid.to_dict()),
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
