"""s2cube: seamless, cloud-free, colour-consistent Sentinel-2 mosaics on Dask.

The public API follows the data flow::

    items = s2cube.search("earth-search", bbox=..., start=..., end=..., max_cloud=60)
    cube = s2cube.load(items, cell, grid=grid)            # lazy (time, band, lat, lon)
    codes = s2cube.mask(cube, dilation=2)                 # clear/cloud/shadow/cirrus/snow/nodata
    ds = s2cube.composite(cube, codes)                    # the store's compositing engine
    s2cube.mosaic("earth-search", store="m.zarr", bbox=..., start=..., end=...)
    ds = s2cube.open_store("m.zarr")

Contains modified Copernicus Sentinel data when run on Sentinel-2 products.
"""

from __future__ import annotations

from .composite import composite, priority_composite, priority_order
from .config import ExecutionOptions, MosaicConfig
from .cube import load
from .driver import composite_cell, mosaic
from .errors import (
    CatalogError,
    EmptySearchError,
    InputError,
    MissingDependencyError,
    RasterReadError,
    S2CubeError,
    SceneReadError,
    StoreError,
)
from .execute import MosaicReport
from .fill import fill_holes
from .grid import DEFAULT_GRID, Cell, GlobalGrid
from .harmonize.fit import SceneParams
from .landcover import landcover
from .mask import mask
from .planner import SceneDroppedWarning
from .reader import ReadFailureWarning
from .search import normalize_item, normalize_items, search
from .store import (
    create_store,
    open_store,
    read_manifest,
    scene_params,
    scene_table,
    store_info,
    write_cell,
)

__version__ = "0.1.0"

#: alias: ``s2cube.write`` writes one computed cell into a store
write = write_cell

__all__ = [
    "CatalogError",
    "Cell",
    "DEFAULT_GRID",
    "EmptySearchError",
    "ExecutionOptions",
    "GlobalGrid",
    "InputError",
    "MissingDependencyError",
    "MosaicConfig",
    "MosaicReport",
    "RasterReadError",
    "ReadFailureWarning",
    "S2CubeError",
    "SceneDroppedWarning",
    "SceneParams",
    "SceneReadError",
    "StoreError",
    "__version__",
    "composite",
    "fill_holes",
    "composite_cell",
    "create_store",
    "landcover",
    "load",
    "mask",
    "mosaic",
    "normalize_item",
    "normalize_items",
    "open_store",
    "priority_composite",
    "priority_order",
    "read_manifest",
    "scene_params",
    "scene_table",
    "search",
    "store_info",
    "write",
    "write_cell",
]
