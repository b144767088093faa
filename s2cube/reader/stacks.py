"""Lazy stacks of :mod:`s2cube.reader`: scenes as a dask-backed cube, through stackstac.

This module owns :func:`stack` (scenes on a :class:`~s2cube.grid.Window` of the global grid),
:func:`stack_projected` (scenes on a projected grid, e.g. their own UTM zone) and
:class:`PolicyRioReader`, the stackstac reader that puts every pixel read under a
:class:`~s2cube.reader.policy.ReadPolicy`.  Every stack reads in
:func:`~s2cube.reader.policy.gdal_env`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .policy import RESAMPLING, ReadPolicy, gdal_env, read_policy
from .warp import request_bounds

if TYPE_CHECKING:
    import pystac
    import xarray as xr

    from ..grid import Window

__all__ = ["PolicyRioReader", "stack", "stack_projected"]

#: the default policy of a reader (a frozen value: one shared instance, as a default argument is)
_DEFAULT_POLICY = ReadPolicy()


class PolicyRioReader:
    """stackstac's ``Reader`` for s2cube: its ``AutoParallelRioReader`` under a :class:`ReadPolicy`.

    stackstac's own ``errors_as_nodata`` is left empty (it would warn with a plain
    ``UserWarning``): every failure reaches :meth:`read`, which asks the policy.  Picklable
    (for distributed workers) from its constructor arguments, like stackstac's reader.
    """

    def __init__(
        self, *, policy: ReadPolicy = _DEFAULT_POLICY, gather: bool = True, **kwargs: Any
    ) -> None:
        from stackstac.rio_reader import AutoParallelRioReader

        kwargs["errors_as_nodata"] = ()
        self.policy = policy
        self.gather = gather
        self._kwargs = kwargs
        self._reader = AutoParallelRioReader(**kwargs)

    def _gathered(self, window: Any) -> np.ndarray | None:
        """The window as a gather through GDAL's own nearest mapping, shared by every scene
        of the source grid (:mod:`s2cube.reader.gather`); ``None`` where that does not apply."""
        from .cache import checkout
        from .gather import eligible, gather, gather_map, source_grid

        kw = self._kwargs
        if kw["scale_offset"] != (1, 0) or np.dtype(kw["dtype"]) != np.dtype("uint16"):
            return None
        resampling = getattr(kw["resampling"], "name", str(kw["resampling"]))
        env = kw.get("gdal_env") or gdal_env()
        with checkout(kw["url"], env) as ds:
            spec = kw["spec"]
            vrt = spec.vrt_params
            if not eligible(ds, resampling):
                return None
            same = (ds.crs.to_epsg(), ds.transform, ds.height, ds.width)
            if same == (vrt["crs"], vrt["transform"], vrt["height"], vrt["width"]):
                return None  # no warp: stackstac reads the file directly
            win = (int(window.row_off), int(window.col_off), int(window.height), int(window.width))
            if win != (window.row_off, window.col_off, window.height, window.width):
                return None
            gmap = gather_map(
                source_grid(ds),
                crs=f"EPSG:{vrt['crs']}",
                transform=vrt["transform"],
                width=vrt["width"],
                height=vrt["height"],
                window=win,
                env=env,
                # block-wise warps (512×128 VRT blocks) are never split by data type: one map
                # serves SCL (uint8) and the bands (uint16) of a grid alike (tests prove it)
                dtype="uint16",
            )
            with env.read:
                return gather(ds, gmap, fill=int(kw["fill_value"])).astype("uint16", copy=False)

    def read(self, window: Any, **kwargs: Any) -> np.ndarray:
        """Pixels of ``window`` (a rasterio window); nodata after a tolerated failure.

        A transient failure is retried (:meth:`ReadPolicy.run`) before the policy decides.
        """

        def attempt() -> np.ndarray:
            if self.gather and not kwargs:
                got = self._gathered(window)
                if got is not None:
                    return got
            out: np.ndarray = self._reader.read(window, **kwargs)
            return out

        try:
            return self.policy.run(self._kwargs["url"], attempt)
        except Exception as exc:
            # stackstac wraps the GDAL error: RuntimeError("Error reading ...") from error
            error = exc.__cause__ if isinstance(exc, RuntimeError) and exc.__cause__ else exc
        # outside the except block: an error the policy raises carries no context that a
        # distributed worker could not pickle
        self.policy.handle(self._kwargs["url"], error)
        return np.full(
            (window.height, window.width), self._kwargs["fill_value"], self._kwargs["dtype"]
        )

    def close(self) -> None:
        self._reader.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self._kwargs, "policy": self.policy, "gather": self.gather}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]


#: nearest reads through :mod:`s2cube.reader.gather` (False: GDAL's warp per scene and band,
#: the reference the gather is tested against); read when a stack is built
GATHER = True


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
    reader = functools.partial(PolicyRioReader, policy=read_policy(strict), gather=GATHER)
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
