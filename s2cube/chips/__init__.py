"""Fixed-size georeferenced GeoTIFF chips (for deep learning) and their index.

A source is either a region of an s2cube store (``cell=`` or ``bbox=``; the four reflectance
bands) or any georeferenced raster rasterio opens (e.g. one Sentinel-2 tile image in its own UTM
grid).  Chips are cut on the source's own pixel grid, never resampled, and named
``tile_{y}_{x}.tif`` where ``y``/``x`` are the pixel offsets of the chip's top-left corner from the
source's origin (row, column), stepping by ``size`` (seed 000: ``Tile_7936_8448.tif``).  For a
store region the origin is the region's top-left pixel.

Edge rule (``edge=``), for a source whose size is not a multiple of ``size``:

``"pad"`` (default)
    Chips start at 0, size, 2·size, …; the last row and column of chips extend past the source
    and the part outside is filled with nodata (the source's nodata, else 0).  Every chip is
    ``size``×``size`` and keeps the source's grid; count = ceil(H/size)·ceil(W/size): a
    10980×10980 Sentinel-2 image at 256 px gives 43×43 = **1849** chips (seed 000).
``"drop"``
    Only whole chips: floor(H/size)·floor(W/size) (42×42 = 1764 for 10980 px).
``"shift"``
    The last chip of a row/column is moved back to end exactly at the edge (it overlaps its
    neighbour), so every chip is whole and holds only real pixels; its name carries its real
    offset (e.g. ``tile_10724_0.tif``).  Same count as ``"pad"``.
``"partial"``
    The last chips are smaller (the remainder), not padded.  Same count as ``"pad"``.

The index (``chips.csv`` or GeoParquet ``chips.parquet``) has one row per chip: name, path,
label path, row/col offset, width, height, bounds in the chip CRS, the CRS, and the valid
fraction (share of the chip's pixels that lie inside the source and are not nodata in every band).
Optional label chips (``labels=`` a raster) are cut on exactly the same grid, reprojected with
nearest-neighbour only if the label raster is on another grid, into ``DIR/labels/``.

Modules: :mod:`~s2cube.chips.windows` (where the chips lie; pure), :mod:`~s2cube.chips.sources`
(a raster file or a store region, read in strips), :mod:`~s2cube.chips.make` (chips, label chips
and the index; rasters are opened and written by :mod:`s2cube.reader`), :mod:`~s2cube.chips.cli`.
"""

from __future__ import annotations

from .cli import chips_command
from .make import make_chips
from .windows import EDGE_RULES, ChipWindow, chip_windows

__all__ = ["EDGE_RULES", "ChipWindow", "chip_windows", "make_chips", "chips_command"]
