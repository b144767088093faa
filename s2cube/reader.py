"""The raster edge: every open, warped read and GeoTIFF write of s2cube goes through here.

This module owns three things no other module repeats:

* **one GDAL environment**, :func:`gdal_env`: stackstac's layered options (HTTP range merging;
  no directory listing and a cached header on open; no cache for pixel reads) plus
  ``GDAL_VRT_WARP_USE_DATASET_RASTERIO=NO``, which makes a warped pixel independent of the
  window that read it (see :func:`gdal_env`);
* **one policy for failed reads**, :class:`ReadPolicy`: a known transient failure (HTTP 5xx, a
  timeout, a reset connection, a remote read cut short) becomes a :class:`ReadFailureWarning`
  naming the asset, and its pixels become nodata; any other failure, or any failure with
  ``strict=True``, raises :class:`RasterReadError`;
* **the reads themselves**: :func:`stack` (scenes on a :class:`~s2cube.grid.Window` of the global
  grid, lazily, through stackstac), :func:`stack_projected` (scenes on their own projected grid),
  :func:`read_warped` (one asset warped onto one window, eagerly), :func:`open_raster`,
  :func:`warp_like` and :func:`write_geotiff` (user rasters and chips).

Tasks never touch process-global warning filters: a failure is reported by a warning of its
own class, which the caller may filter.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import InputError, S2CubeError

if TYPE_CHECKING:
    import os

    import pystac
    import xarray as xr
    from affine import Affine
    from stackstac.rio_env import LayeredEnv

    from .grid import Window

__all__ = [
    "TRANSIENT_ERRORS",
    "PixelGrid",
    "PolicyRioReader",
    "REMOTE_SHORT_READS",
    "RESAMPLING",
    "RasterReadError",
    "ReadFailureWarning",
    "ReadPolicy",
    "gdal_env",
    "lonlat_geobox",
    "open_raster",
    "read_warped",
    "request_bounds",
    "stack",
    "stack_projected",
    "warp_like",
    "write_geotiff",
]

#: regular expressions (searched in the message of an error and of every error it was raised
#: from) that mark a read failure as transient: worth a retry later, not a broken asset
TRANSIENT_ERRORS: tuple[str, ...] = (
    r"HTTP response code: 5\d\d",
    r"timed out",
    r"Connection reset",
)
#: GDAL's /vsicurl/ reports a failed range request (5xx, reset) only as a read that came back
#: short: "TIFFFillTile:Read error at row ..., got 0 bytes, expected 716932" for pixels, "Failed
#: to read directory at offset ..." for a TIFF directory.  On a remote asset that is the same
#: transient failure; on a local file it means a truncated file, which is not transient.
REMOTE_SHORT_READS: tuple[str, ...] = (
    r"got \d+ bytes, expected \d+",
    r"Failed to read directory at offset",
)
_REMOTE = re.compile(r"^(/vsi(curl|s3|gs|az|adls|oss|swift)|https?://|s3://|gs://|az://)", re.I)
#: resampling methods of the reads
RESAMPLING = ("nearest", "bilinear", "cubic", "average")


# --------------------------------------------------------------------------- errors and policy
class RasterReadError(S2CubeError, OSError):
    """A raster could not be opened or read (the message names the asset and the fix)."""


class ReadFailureWarning(UserWarning):
    """A transient read failure was turned into nodata; :attr:`href` names the asset.

    Its class lets a caller (or a test, ``pytest.warns(ReadFailureWarning)``) tell it from any
    other warning; pass ``strict=True`` to the reading function to make such failures fatal.
    """

    def __init__(self, href: str, reason: str) -> None:
        super().__init__(href, reason)
        self.href = href
        self.reason = reason

    def __str__(self) -> str:
        return (
            f"reading {self.href!r} failed ({self.reason}); its pixels are nodata in this "
            "result. Pass strict=True to make such failures fatal"
        )


def _messages(error: BaseException) -> list[str]:
    """The messages of an error and of the errors it was raised from (rasterio chains GDAL's)."""
    out: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.append(str(current))
        # the explicit cause, else the error being handled when this one was raised (as
        # Python's traceback follows them)
        suppressed = current.__suppress_context__
        current = current.__cause__ or (None if suppressed else current.__context__)
    return out


@dataclass(frozen=True)
class ReadPolicy:
    """What a failed read does: warn and give nodata (transient, not strict) or raise.

    A frozen value, so it travels into dask tasks and hashes into their keys.

    Parameters
    ----------
    strict
        Raise :class:`RasterReadError` on every failure, transient or not.
    transient
        Regular expressions that mark an error message as transient (:data:`TRANSIENT_ERRORS`).
    remote_short_reads
        Further ones that do so for a remote asset only (:data:`REMOTE_SHORT_READS`).

    Examples
    --------
    >>> ReadPolicy().is_transient(OSError("HTTP response code: 503"), "https://x/B04.tif")
    True
    >>> ReadPolicy().is_transient(OSError("not a TIFF file"), "https://x/B04.tif")
    False
    """

    strict: bool = False
    transient: tuple[str, ...] = TRANSIENT_ERRORS
    remote_short_reads: tuple[str, ...] = REMOTE_SHORT_READS

    def is_transient(self, error: BaseException, href: str) -> bool:
        """Whether ``error`` (reading ``href``) is a known transient failure."""
        messages = _messages(error)
        patterns = self.transient + (self.remote_short_reads if _REMOTE.match(href) else ())
        return any(re.search(p, m) for p in patterns for m in messages)

    def handle(self, href: str, error: BaseException) -> None:
        """Warn about a transient failure (the caller then returns nodata), or raise.

        Raises
        ------
        RasterReadError
            When the failure is not transient, or the policy is strict.
        """
        transient = self.is_transient(error, href)
        if transient and not self.strict:
            warnings.warn(ReadFailureWarning(href, str(error)), stacklevel=3)
            return
        if transient:
            fix = (
                "it looks transient (HTTP 5xx, timeout, reset connection): retry later, or "
                "pass strict=False to turn such failures into nodata with a ReadFailureWarning"
            )
        else:
            fix = "check that the asset exists, is reachable and is a raster GDAL can read"
        raise RasterReadError(f"reading {href!r} failed: {error}; {fix}") from error


# --------------------------------------------------------------------------- GDAL environment
@functools.cache
def gdal_env() -> LayeredEnv:
    """The one GDAL environment of every read: stackstac's options plus block-wise warping.

    Layers (a ``stackstac.rio_env.LayeredEnv``): ``.open`` while opening a dataset (no
    directory listing, cached headers), ``.read`` while reading pixels (no cache), ``.always``
    for local files that may carry sidecars (``.aux.xml``, world files, masks).

    For a large request GDAL's warped VRT warps the requested window directly (GDAL 3.10 here),
    and its approximate transformer then interpolates along the rows of *that window*: with
    nearest resampling up to ~0.5 % of pixels (10 m data on the 1/12000° grid) pick a neighbouring
    source pixel depending on how the array was chunked.  With
    ``GDAL_VRT_WARP_USE_DATASET_RASTERIO=NO`` every read is served from the VRT's own
    512×128 blocks, which :data:`s2cube.cube.VRT_ALIGN` puts on one global tiling: a pixel's value
    no longer depends on the read window, the chunking or the cell (and the block path measured
    faster).
    :func:`read_warped` alone, a one-shot read of a whole target, keeps GDAL's whole-window warp
    (:data:`_WHOLE_TARGET_WARP`).

    Examples
    --------
    >>> with gdal_env().open:  # doctest: +SKIP
    ...     ds = rasterio.open(href)
    """
    from stackstac.rio_reader import DEFAULT_GDAL_ENV

    return DEFAULT_GDAL_ENV.updated(always={"GDAL_VRT_WARP_USE_DATASET_RASTERIO": "NO"})


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
    """
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


# --------------------------------------------------------------------------- lazy stacks
class PolicyRioReader:
    """stackstac's ``Reader`` for s2cube: its ``AutoParallelRioReader`` under a :class:`ReadPolicy`.

    stackstac's own ``errors_as_nodata`` is left empty (it would warn with a plain
    ``UserWarning``): every failure reaches :meth:`read`, which asks the policy.  Picklable
    (for distributed workers) from its constructor arguments, like stackstac's reader.
    """

    def __init__(self, *, policy: ReadPolicy = ReadPolicy(), **kwargs: Any) -> None:
        from stackstac.rio_reader import AutoParallelRioReader

        kwargs["errors_as_nodata"] = ()
        self.policy = policy
        self._kwargs = kwargs
        self._reader = AutoParallelRioReader(**kwargs)

    def read(self, window: Any, **kwargs: Any) -> np.ndarray:
        """Pixels of ``window`` (a rasterio window); nodata after a tolerated failure."""
        try:
            out: np.ndarray = self._reader.read(window, **kwargs)
            return out
        except Exception as exc:
            # stackstac wraps the GDAL error: RuntimeError("Error reading ...") from error
            error = exc.__cause__ if isinstance(exc, RuntimeError) and exc.__cause__ else exc
            self.policy.handle(self._kwargs["url"], error)
            return np.full(
                (window.height, window.width), self._kwargs["fill_value"], self._kwargs["dtype"]
            )

    def close(self) -> None:
        self._reader.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self._kwargs, "policy": self.policy}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]


def _stackstac(
    items: Sequence[Any],
    *,
    assets: Sequence[str],
    epsg: int | None,
    resolution: float,
    bounds: tuple[float, float, float, float] | None,
    chunks: int | tuple[tuple[int, ...], tuple[int, ...]],
    resampling: str,
    strict: bool,
    snap_bounds: bool,
) -> xr.DataArray:
    import stackstac
    from rasterio.enums import Resampling

    if resampling not in RESAMPLING:
        raise InputError(f"resampling={resampling!r}; choose one of {RESAMPLING}")
    spatial = (chunks, chunks) if isinstance(chunks, int) else (tuple(chunks[0]), tuple(chunks[1]))
    reader = functools.partial(PolicyRioReader, policy=ReadPolicy(strict=strict))
    return stackstac.stack(
        list(items),
        assets=list(assets),
        epsg=epsg,
        resolution=resolution,
        bounds=bounds,
        snap_bounds=snap_bounds,
        rescale=False,
        fill_value=np.uint16(0),
        dtype="uint16",
        xy_coords="center",
        sortby_date=False,
        chunksize=(1, 1, *spatial),
        resampling=getattr(Resampling, resampling),
        gdal_env=gdal_env(),
        reader=reader,
    )


def stack(
    items: Sequence[pystac.Item],
    window: Window,
    *,
    assets: Sequence[str],
    resampling: str = "nearest",
    chunks: int | tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    strict: bool = False,
) -> xr.DataArray:
    """The raw lazy stackstac stack of ``items`` on the part of ``window`` that lies on the globe.

    Parameters
    ----------
    items
        Normalised STAC items (``proj:epsg`` set; see :func:`s2cube.search.normalize_items`), in
        the order of the time axis.
    window
        Rows/columns of the global grid; a part past the poles or the antimeridian is not read
        (the caller pads it).
    assets
        Asset keys to stack, in band order.
    resampling
        ``nearest``, ``bilinear``, ``cubic`` or ``average`` (one for all assets).
    chunks
        Spatial dask chunks: an edge in pixels, or explicit ``(row sizes, col sizes)``
        (default: the whole window in one chunk).
    strict
        Raise :class:`RasterReadError` on any read failure instead of warning and giving nodata.

    Returns
    -------
    xarray.DataArray
        uint16 ``(time, band, y, x)``, nodata 0, no rescaling, pixel-centre coordinates in
        float as stackstac computes them, and stackstac's per-item coordinates.

    Examples
    --------
    >>> raw = stack(items, grid.cell_window(cell), assets=["red", "scl"])  # doctest: +SKIP
    """
    west, south, east, north = request_bounds(window)
    bounds = (max(west, -180.0), max(south, -90.0), min(east, 180.0), min(north, 90.0))
    if chunks is None:
        chunks = max(window.height, window.width, 1)
    return _stackstac(
        items,
        assets=assets,
        epsg=4326,
        resolution=float(window.resolution),
        bounds=bounds,
        chunks=chunks,
        resampling=resampling,
        strict=strict,
        # the window's own edges: the grid is the source of truth
        snap_bounds=False,
    )


def stack_projected(
    items: Sequence[pystac.Item | dict[str, Any]],
    *,
    assets: Sequence[str],
    resolution: float,
    epsg: int | None = None,
    bounds: tuple[float, float, float, float] | None = None,
    chunks: int = 1024,
    strict: bool = False,
) -> xr.DataArray:
    """The raw lazy stack of ``items`` on a projected grid (e.g. their own UTM zone).

    Parameters
    ----------
    items
        STAC items or their dicts (``proj:epsg`` set), in the order of the time axis.
    assets
        Asset keys to stack, in band order.
    resolution
        Pixel size in the units of the output CRS.
    epsg
        Output CRS; default: the items' common ``proj:epsg``.
    bounds
        ``(minx, miny, maxx, maxy)`` in the output CRS; default: the union of the items.
    chunks
        Spatial dask chunk edge in pixels.
    strict
        Raise :class:`RasterReadError` on any read failure instead of warning and giving nodata.

    Returns
    -------
    xarray.DataArray
        uint16 ``(time, band, y, x)`` in the items' order, nodata 0, nearest resampling, no
        rescaling, pixel edges on multiples of ``resolution``.

    Examples
    --------
    >>> cube = stack_projected(items, assets=["red"], epsg=32633, resolution=120)  # doctest: +SKIP
    """
    return _stackstac(
        items,
        assets=assets,
        epsg=epsg,
        resolution=resolution,
        bounds=bounds,
        chunks=chunks,
        resampling="nearest",
        strict=strict,
        # pixel edges on multiples of the resolution, as stackstac does by default
        snap_bounds=True,
    )


# --------------------------------------------------------------------------- eager reads
#: :func:`read_warped` reads its whole target in one request, and GDAL warps such a request in
#: one operation (its default, ``GDAL_VRT_WARP_USE_DATASET_RASTERIO=YES``), as the planning looks
#: have always been read.  Block-wise warping (:func:`gdal_env`) is what makes the lazy stacks'
#: pixels independent of their chunking; a one-shot look has no chunks to agree with, and
#: switching it to blocks moves up to 0.2 % of its SCL pixels (measured on the real fixture), which
#: changes plans and harmonization samples, hence stores.
_WHOLE_TARGET_WARP = {"GDAL_VRT_WARP_USE_DATASET_RASTERIO": "YES"}


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
    transform, h, w, crs = _target(window)
    env = gdal_env()
    try:
        with env.open:
            opts: dict[str, Any] = {"OVERVIEW_LEVEL": "NONE"}
            if overview == "auto":
                with rasterio.open(href) as probe:
                    opts = _overview_open_options(probe, transform, h)
            elif overview is not None:
                opts = {"OVERVIEW_LEVEL": overview}
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
                data = vrt.read(1)
    except (RasterioError, CPLE_BaseError, OSError) as exc:
        ReadPolicy(strict=strict).handle(href, exc)
        return np.full((h, w), nodata, dtype=dtype or "uint16")
    return data if dtype is None else data.astype(dtype)


def open_raster(path: str | os.PathLike[str]) -> Any:
    """Open a georeferenced raster (a user file: labels, a tile to chip) for reading.

    Opened in :func:`gdal_env`'s ``always`` layer, so sidecar files (world files, ``.aux.xml``,
    masks) are honoured.  Failures are never transient here: the file is the user's.

    Returns
    -------
    rasterio.io.DatasetReader
        Close it (or use it as a context manager).

    Raises
    ------
    RasterReadError
        When GDAL cannot open ``path``.

    Examples
    --------
    >>> with open_raster("labels.tif") as ds:  # doctest: +SKIP
    ...     ds.crs
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with gdal_env().always:
            return rasterio.open(path)
    except RasterioIOError as exc:
        raise RasterReadError(
            f"cannot open {str(path)!r} as a raster: {exc}; pass a GeoTIFF or another raster "
            "GDAL reads"
        ) from exc


def warp_like(
    dataset: Any,
    *,
    crs: Any,
    transform: Affine,
    shape: tuple[int, int],
    resampling: str = "nearest",
) -> np.ndarray:
    """All bands of an open ``dataset`` on another pixel grid ``(crs, transform, shape)``.

    When the grids are aligned (same CRS and pixel size, offsets a whole number of pixels apart)
    the pixels are read as they are, past the edges filled with the dataset's nodata (else 0);
    otherwise they are warped with ``resampling`` (nearest by default: labels are classes).

    Examples
    --------
    >>> lab = warp_like(ds, crs=c.crs, transform=c.transform, shape=(64, 64))  # doctest: +SKIP
    """
    from rasterio.enums import Resampling
    from rasterio.transform import array_bounds
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window as RioWindow
    from rasterio.windows import from_bounds

    h, w = shape
    with gdal_env().always:
        if dataset.crs == crs and _aligned(dataset.transform, transform):
            win = from_bounds(*array_bounds(h, w, transform), transform=dataset.transform)
            win = RioWindow(round(win.col_off), round(win.row_off), w, h)
            out: np.ndarray = dataset.read(
                window=win, boundless=True, fill_value=dataset.nodata or 0
            )
            return out
        with WarpedVRT(
            dataset,
            crs=crs,
            transform=transform,
            width=w,
            height=h,
            resampling=getattr(Resampling, resampling),
        ) as vrt:
            warped: np.ndarray = vrt.read()
            return warped


def _aligned(a: Affine, b: Affine) -> bool:
    """Same pixel size and pixel edges (offsets a whole number of pixels apart)."""
    import math

    if not (
        math.isclose(a.a, b.a, rel_tol=1e-9)
        and math.isclose(a.e, b.e, rel_tol=1e-9)
        and a.b == 0
        and a.d == 0
        and b.b == 0
        and b.d == 0
    ):
        return False
    dx, dy = (b.c - a.c) / a.a, (b.f - a.f) / a.e
    return abs(dx - round(dx)) < 1e-6 and abs(dy - round(dy)) < 1e-6


def write_geotiff(
    path: str | os.PathLike[str],
    array: np.ndarray,
    *,
    crs: Any,
    transform: Affine,
    nodata: float | None = None,
    descriptions: Sequence[str | None] = (),
) -> None:
    """Write a ``(band, y, x)`` array as a deflate-compressed GeoTIFF.

    Tiled in blocks of up to 256 px when both sides are multiples of 16 (GDAL's requirement
    for tiles), striped otherwise.  ``descriptions`` name the bands.

    Examples
    --------
    >>> write_geotiff("chip.tif", arr, crs="EPSG:4326", transform=w.transform)  # doctest: +SKIP
    """
    import rasterio

    h, w = array.shape[1:]
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": array.shape[0],
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
        "nodata": nodata,
    }
    if h % 16 == 0 and w % 16 == 0:
        profile.update(tiled=True, blockxsize=min(w, 256), blockysize=min(h, 256))
    with gdal_env().always, rasterio.open(Path(path), "w", **profile) as dst:
        dst.write(array)
        for i, d in enumerate(descriptions[: array.shape[0]], start=1):
            if d:
                dst.set_band_description(i, d)
