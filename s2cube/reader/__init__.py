"""The raster edge: every open, warped read and GeoTIFF write of s2cube goes through here.

The package owns three things no other module repeats, one module each:

* :mod:`~s2cube.reader.policy`: **one GDAL environment** (:func:`gdal_env`) and **one policy for
  failed reads** (:class:`ReadPolicy`): a known transient failure (HTTP 5xx, a timeout, a reset
  connection, a remote read cut short) is retried with backoff, then becomes a
  :class:`ReadFailureWarning` naming the asset, and its pixels become nodata; any other
  failure, or any failure with ``strict=True``, raises :class:`~s2cube.errors.RasterReadError`.
  Under :func:`dropping_reads` (the mosaic's reads) every failure raises
  :class:`~s2cube.errors.SceneReadError` and the driver drops the scene for that cell;
* the reads themselves: :mod:`~s2cube.reader.stacks` (:func:`stack`, scenes on a
  :class:`~s2cube.grid.Window` of the global grid, lazily, through stackstac;
  :func:`stack_projected`, scenes on their own projected grid), :mod:`~s2cube.reader.warp`
  (:func:`read_warped`, one asset warped onto one window, eagerly) and
  :mod:`~s2cube.reader.files` (:func:`open_raster`, :func:`warp_like` and :func:`write_geotiff`:
  user rasters and chips).

Import from ``s2cube.reader``; the modules are its layout, not its interface.  Tasks never touch
process-global warning filters: a failure is reported by a warning of its own class, which the
caller may filter.
"""

from __future__ import annotations

from ..errors import RasterReadError
from .files import _aligned as _aligned
from .files import open_raster, warp_like, write_geotiff
from .policy import _REMOTE as _REMOTE
from .policy import (
    REMOTE_SHORT_READS,
    RESAMPLING,
    TRANSIENT_ERRORS,
    ReadFailureWarning,
    ReadPolicy,
    SceneReadError,
    dropping_reads,
    gdal_env,
    read_policy,
)
from .policy import _messages as _messages
from .stacks import PolicyRioReader, stack, stack_projected
from .stacks import _stackstac as _stackstac
from .warp import _WHOLE_TARGET_WARP as _WHOLE_TARGET_WARP
from .warp import NativeRead, PixelGrid, lonlat_geobox, read_native, read_warped, request_bounds
from .warp import _overview_open_options as _overview_open_options
from .warp import _target as _target

__all__ = [
    "TRANSIENT_ERRORS",
    "NativeRead",
    "PixelGrid",
    "PolicyRioReader",
    "REMOTE_SHORT_READS",
    "RESAMPLING",
    "RasterReadError",
    "ReadFailureWarning",
    "ReadPolicy",
    "SceneReadError",
    "dropping_reads",
    "gdal_env",
    "read_policy",
    "lonlat_geobox",
    "open_raster",
    "read_native",
    "read_warped",
    "request_bounds",
    "stack",
    "stack_projected",
    "warp_like",
    "write_geotiff",
]
