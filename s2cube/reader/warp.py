"""Eager warped reads of :mod:`s2cube.reader`: one asset onto one target grid, and its geometry.

This module owns :func:`read_warped` (band 1 of one asset warped onto a
:class:`~s2cube.grid.Window` or any :class:`PixelGrid`, read at once; the planning looks), the
targets such a read takes (:class:`PixelGrid`, :func:`lonlat_geobox`) and
:func:`request_bounds`, the lon/lat bounds a window's lazy stack is requested with.  Every read
runs in :func:`~s2cube.reader.policy.gdal_env` under a
:class:`~s2cube.reader.policy.ReadPolicy`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import InputError
from .policy import RESAMPLING, ReadPolicy, gdal_env, read_policy

if TYPE_CHECKING:
    from collections.abc import Callable

    from affine import Affine

    from ..grid import Window

__all__ = [
    "NativeRead",
    "PixelGrid",
    "lonlat_geobox",
    "read_native",
    "read_warped",
    "request_bounds",
]


# --------------------------------------------------------------------------- geometry
class PixelGrid(Protocol):
    """What a warped read needs of its target: an affine ``transform`` and a ``(h, w)`` shape.

    :class:`~s2cube.grid.Window` (EPSG:4326) and ``odc.geo.geobox.GeoBox`` (any CRS) are both.
    """

    @property
    def transform(self) -> Affine: ...

    @property
    def shape(self) -> Any: ...


def request_bounds(window: Window) -> tuple[float, float, float, float]:
    """Lon/lat ``(west, south, east, north)`` that :func:`stack` asks stackstac for (unclipped).

    Computed in float from the window's edges (``-180 + col * float(resolution)``), the recipe
    every store so far was read with.  :attr:`Window.bounds <s2cube.grid.Window.bounds>` rounds
    the exact value once instead and differs by an ulp for most windows, which would move
    stackstac's output transform (and its pixel count, which it derives from the bounds) by an
    ulp: kept here so that stores stay bit-identical.
    """
    r = float(window.resolution)
    return (
        -180 + window.col0 * r,
        90 - (window.row0 + window.height) * r,
        -180 + (window.col0 + window.width) * r,
        90 - window.row0 * r,
    )


def lonlat_geobox(bounds: tuple[float, float, float, float], shape: tuple[int, int]) -> Any:
    """The EPSG:4326 ``GeoBox`` of ``shape`` pixels spanning lon/lat ``bounds`` exactly.

    Its transform is rasterio's ``from_bounds`` (pixel size = span / count), the geometry the
    planning looks have always been read on; use a :class:`~s2cube.grid.Window` for grid pixels.
    GeoBoxes are immutable; one per (bounds, shape) is kept (every look of a cell shares it).
    """
    return _lonlat_geobox(tuple(float(b) for b in bounds), (int(shape[0]), int(shape[1])))


@functools.lru_cache(maxsize=256)
def _lonlat_geobox(bounds: tuple[float, ...], shape: tuple[int, int]) -> Any:
    from odc.geo.geobox import GeoBox
    from rasterio.transform import from_bounds

    h, w = shape
    return GeoBox((h, w), from_bounds(*bounds, w, h), "EPSG:4326")


def _target(window: PixelGrid) -> tuple[Affine, int, int, str]:
    """Transform, height, width and CRS of a warp target (a Window is EPSG:4326)."""
    h, w = (int(n) for n in tuple(window.shape))
    crs = getattr(window, "crs", None)
    if crs is None:
        crs_text = "EPSG:4326"
    elif getattr(crs, "epsg", None) is not None:
        crs_text = f"EPSG:{crs.epsg}"
    else:
        crs_text = crs.to_wkt()
    return window.transform, h, w, crs_text


# --------------------------------------------------------------------------- eager reads
#: :func:`read_warped` reads its whole target in one request, and GDAL warps such a request in
#: one operation (its default, ``GDAL_VRT_WARP_USE_DATASET_RASTERIO=YES``), as the planning looks
#: have always been read.  Block-wise warping (:func:`gdal_env`) is what makes the lazy stacks'
#: pixels independent of their chunking; a one-shot look has no chunks to agree with, and
#: switching it to blocks moves up to 0.2 % of its SCL pixels (measured on the real fixture), which
#: changes plans and harmonization samples, hence stores.
_WHOLE_TARGET_WARP = {"GDAL_VRT_WARP_USE_DATASET_RASTERIO": "YES"}
#: nearest reads through :mod:`s2cube.reader.gather` (False: one GDAL warp per read, the
#: reference the gather is tested against)
GATHER = True


def _overview_open_options(src: Any, transform: Affine, height: int) -> dict[str, Any]:
    """Open options selecting the coarsest overview still at least as fine as the target.

    A warped VRT does not pick source overviews by itself.  Without a fine-enough overview the
    dataset is opened plainly (full resolution).
    """
    import math

    factors = src.overviews(1)
    src_m = abs(src.res[0]) if src.crs and src.crs.is_projected else abs(src.res[0]) * 111_320
    north = transform.f
    south = north + transform.e * height
    look_m = abs(transform.a) * 111_320 * math.cos(math.radians((south + north) / 2))
    fine_enough = [k for k, f in enumerate(factors) if f * src_m <= look_m]
    return {"OVERVIEW_LEVEL": fine_enough[-1]} if fine_enough else {}


def read_warped(
    href: str,
    window: PixelGrid,
    *,
    resampling: str = "nearest",
    overview: int | str | None = None,
    nodata: float = 0,
    dtype: str | None = None,
    strict: bool = False,
    policy: ReadPolicy | None = None,
) -> np.ndarray:
    """Warp band 1 of one asset onto ``window`` (one eager read; used by the planning looks).

    Parameters
    ----------
    href
        The asset (path or URL).
    window
        The target pixels: a :class:`~s2cube.grid.Window`, or any :class:`PixelGrid` such as an
        ``odc.geo`` ``GeoBox`` (see :func:`lonlat_geobox`).
    resampling
        ``nearest``, ``bilinear``, ``cubic`` or ``average``.
    overview
        ``None``: full resolution with overviews disabled (``OVERVIEW_LEVEL=NONE``; SCL, whose
        overviews average classes into invented ones); an int: that overview level;
        ``"auto"``: the coarsest overview at least as fine as the target pixels.
    nodata
        Source and target nodata (outside the source, and the fill of a failed read).
    dtype
        Cast of the result; ``None`` keeps the asset's (``uint16`` for a failed read).
    strict
        Raise :class:`RasterReadError` on any failure instead of a :class:`ReadFailureWarning`
        and an all-nodata array for a transient one.
    policy
        The :class:`ReadPolicy` (default: :func:`read_policy` of ``strict``, i.e. dask's
        config); a transient failure is retried by it first.

    Returns
    -------
    numpy.ndarray
        ``window.shape`` pixels.

    Examples
    --------
    >>> scl = read_warped(item.assets["scl"].href, grid.cell_window(cell))  # doctest: +SKIP
    """
    import rasterio
    from rasterio._err import CPLE_BaseError  # GDAL's own errors: not RasterioErrors
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.vrt import WarpedVRT

    if resampling not in RESAMPLING:
        raise InputError(f"resampling={resampling!r}; choose one of {RESAMPLING}")
    if overview is not None and overview != "auto" and not isinstance(overview, int):
        raise InputError(f"overview={overview!r}; pass None, an overview level (int) or 'auto'")
    from .cache import checkout
    from .gather import eligible, gather, gather_map, source_grid

    transform, h, w, crs = _target(window)
    env = gdal_env()
    policy = policy or read_policy(strict)

    def attempt() -> np.ndarray:
        with env.open:
            opts: dict[str, Any] = {"OVERVIEW_LEVEL": "NONE"}
            if overview == "auto" and GATHER:
                with checkout(href, env) as probe:
                    opts = _overview_open_options(probe, transform, h)
            elif overview == "auto":
                with rasterio.open(href) as probe:
                    opts = _overview_open_options(probe, transform, h)
            elif overview is not None:
                opts = {"OVERVIEW_LEVEL": overview}
            # a plain full-resolution read is the same from the default dataset, which the
            # block reads of this file keep open too
            full = opts == {"OVERVIEW_LEVEL": "NONE"}
            if GATHER:
                with checkout(href, env, **({} if full else opts)) as src:
                    if eligible(src, resampling) and nodata == 0:
                        # warp once per geometry: GDAL's own mapping, shared by every scene
                        # of this source grid (s2cube.reader.gather)
                        gmap = gather_map(
                            source_grid(src),
                            crs=crs,
                            transform=transform,
                            width=w,
                            height=h,
                            window=(0, 0, h, w),
                            env=env,
                            dtype=src.dtypes[0],
                            whole_target=True,
                        )
                        with env.read:
                            data = gather(src, gmap, fill=0)
                        return data if dtype is None else data.astype(dtype)
            with (
                rasterio.open(href, **opts) as src,
                WarpedVRT(
                    src,
                    crs=crs,
                    transform=transform,
                    width=w,
                    height=h,
                    resampling=getattr(Resampling, resampling),
                    src_nodata=nodata,
                    nodata=nodata,
                ) as vrt,
                env.read,
                # the one deviation from gdal_env(), see _WHOLE_TARGET_WARP
                rasterio.Env(**_WHOLE_TARGET_WARP),
            ):
                out: np.ndarray = vrt.read(1)
                return out

    try:
        data = policy.run(href, attempt)
    except (RasterioError, CPLE_BaseError, OSError) as exc:
        error: BaseException = exc
    else:
        return data if dtype is None else data.astype(dtype)
    # outside the except block: what the policy raises carries no unpicklable context
    policy.handle(href, error)
    return np.full((h, w), nodata, dtype=dtype or "uint16")


@dataclass(frozen=True, eq=False)
class NativeRead:
    """Band 1 of an asset at its own resolution, under a lon/lat window's lattice.

    ``data`` is the source window (pixels outside the source are ``nodata``); ``rows`` and
    ``cols`` ``(h + 1, w + 1)`` are the window's pixel corners in ``data``'s pixel coordinates
    (fractional; NaN where they do not project).  ``data`` is ``None`` after a failed read that
    the policy let pass (a warning was given).
    """

    data: np.ndarray | None
    rows: np.ndarray
    cols: np.ndarray


def read_native(
    href: str,
    bounds: tuple[float, float, float, float],
    shape: tuple[int, int],
    *,
    margin: int | Callable[[np.ndarray, np.ndarray], int] = 0,
    nodata: int = 0,
    strict: bool = False,
    policy: ReadPolicy | None = None,
) -> NativeRead:
    """Read band 1 of one asset *without warping*: the source pixels under a lon/lat window of
    ``shape`` pixels over ``bounds`` (its corners' bounding box plus ``margin`` source pixels, or
    ``margin(rows, cols)`` of the corner lattice),
    with full-resolution data (overviews disabled) and the window's corner lattice in the read's
    pixel coordinates (:func:`~s2cube.reader.gather.source_lattice`).

    The planning survey uses it to decide at the source's own resolution which coarse pixels
    are surely clear, instead of warping every candidate's SCL to the grid.  Failures go through
    the ``policy`` as in :func:`read_warped`.
    """
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    from .cache import checkout, read_window
    from .gather import source_grid, source_lattice

    env = gdal_env()
    policy = policy or read_policy(strict)

    def attempt() -> NativeRead:
        with env.open:
            # window reads at the source's own resolution: the default dataset (shared with
            # the block reads of this file) reads no overview for them
            with checkout(href, env) as src:
                rows, cols = source_lattice(source_grid(src), bounds, shape)
                ok = np.isfinite(rows) & np.isfinite(cols)
                if not ok.any():
                    return NativeRead(np.zeros((0, 0), src.dtypes[0]), rows, cols)
                pad = margin(rows, cols) if callable(margin) else margin
                r0 = int(np.floor(rows[ok].min())) - pad
                r1 = int(np.floor(rows[ok].max())) + pad + 1
                c0 = int(np.floor(cols[ok].min())) - pad
                c1 = int(np.floor(cols[ok].max())) + pad + 1
                data = np.full((r1 - r0, c1 - c0), nodata, dtype=src.dtypes[0])
                # the part inside the source; the rest stays nodata
                a0, a1 = max(r0, 0), min(r1, src.height)
                b0, b1 = max(c0, 0), min(c1, src.width)
                if a1 > a0 and b1 > b0:
                    with env.read:
                        data[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = read_window(
                            src, 1, a0, b0, a1 - a0, b1 - b0
                        )
                return NativeRead(data, rows - r0, cols - c0)

    try:
        return policy.run(href, attempt)
    except (RasterioError, CPLE_BaseError, OSError) as exc:
        error: BaseException = exc
    policy.handle(href, error)
    h, w = shape
    nan = np.full((h + 1, w + 1), np.nan)
    return NativeRead(None, nan, nan)
