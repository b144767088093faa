"""User rasters of :mod:`s2cube.reader`: open a GeoTIFF, warp it onto a grid, write one.

This module owns :func:`open_raster` (a user file: labels, a tile to chip), :func:`warp_like`
(all bands of an open dataset on another pixel grid) and :func:`write_geotiff` (chips and
rasters s2cube writes).  Every open, read and write runs in the ``always`` layer of
:func:`~s2cube.reader.policy.gdal_env`, so sidecar files are honoured; a user's file is never a
transient failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RasterReadError
from .policy import gdal_env

if TYPE_CHECKING:
    import os

    from affine import Affine

__all__ = ["open_raster", "warp_like", "write_geotiff"]


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
