"""Multiscale overviews of a store: the pyramid layout, its kernels, per-cell and coarse builds.

Layout (inside the store, next to the full-resolution arrays)::

    STORE/                          attrs["multiscales"]: the pyramid (zarr-conventions multiscales
      red, green, ... (level 0)     v0.1, as used by GeoZarr); level 0 is the root group itself
      overviews/1/red, ...          level k: pixel size = resolution × 2**k, same variables,
      overviews/2/...               latitude/longitude pixel-centre coordinates and spatial_ref
      overviews/s2cube_built/<cell>.json   which cell's overviews were built from which cell write

Every level halves the previous one (2×2 blocks).  Reads stay bounded at every zoom: a 256-px
tile needs at most 2×2 level-pixels per tile pixel, which is at most 3×3 chunks of any level.

Modules, lowest layer first:

* :mod:`~s2cube.overviews.kernels`: the numpy 2×2 kernels (reflectance mean of valid children,
  provenance from the first valid child);
* :mod:`~s2cube.overviews.levels`: :class:`Level` and :func:`pyramid`, the layout; each level's
  geometry is a :class:`~s2cube.grid.Window` of the store's grid;
* :mod:`~s2cube.overviews.template`: the Zarr template and ``multiscales`` record
  (:func:`prepare_overviews`, driver only);
* :mod:`~s2cube.overviews.build`: per-cell and coarse builds, status, and :func:`open_level`.
"""

from __future__ import annotations

from .build import (
    BUILT_DIR,
    build_cell_overviews,
    build_coarse_overviews,
    build_overviews,
    open_level,
    overview_status,
)
from .kernels import (
    PROVENANCE_VARS,
    downsample_cell,
    downsample_reflectance,
    first_valid_child,
    take_child,
)
from .levels import OVERVIEW_GROUP, Level, pyramid
from .template import MULTISCALES_SCHEMA, MULTISCALES_SPEC, has_overviews, prepare_overviews

__all__ = [
    "Level",
    "pyramid",
    "downsample_reflectance",
    "downsample_cell",
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
    "BUILT_DIR",
    "PROVENANCE_VARS",
    "MULTISCALES_SCHEMA",
    "MULTISCALES_SPEC",
]
