"""Chip sources: a georeferenced raster file, or a region of an s2cube store, read in strips."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..grid import Cell, GlobalGrid

__all__ = ["ChipSource", "RasterSource", "StoreSource", "open_source"]


@dataclass
class ChipSource:
    """What chipping needs of a source: its grid, bands and nodata, and strips of rows."""

    height: int
    width: int
    count: int
    dtype: str
    crs: Any
    transform: Any
    nodata: float | None
    descriptions: Sequence[str | None]

    def read_rows(self, row_off: int, n_rows: int) -> np.ndarray:
        """``(bands, rows, width)`` pixels of rows ``row_off`` on (fewer past the bottom)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the source."""


class RasterSource(ChipSource):
    """Any georeferenced raster GDAL reads (opened through :func:`s2cube.reader.open_raster`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from ..reader import RasterReadError, open_raster

        try:
            self.ds = open_raster(path)
        except RasterReadError as exc:
            raise InputError(
                f"cannot open {str(path)!r} as a raster or an s2cube store: {exc.__cause__}; "
                "pass a GeoTIFF (or any GDAL raster), or a store with --cell/--bbox"
            ) from exc
        ds = self.ds
        if ds.crs is None or ds.transform.is_identity:
            raise InputError(f"{str(path)!r} is not georeferenced (no CRS or geotransform)")
        super().__init__(
            ds.height,
            ds.width,
            ds.count,
            ds.dtypes[0],
            ds.crs,
            ds.transform,
            ds.nodata,
            ds.descriptions,
        )

    def read_rows(self, row_off: int, n_rows: int) -> np.ndarray:
        from rasterio.windows import Window as RioWindow

        n = min(n_rows, self.height - row_off)
        out: np.ndarray = self.ds.read(window=RioWindow(0, row_off, self.width, n))
        return out

    def close(self) -> None:
        self.ds.close()


class StoreSource(ChipSource):
    """A cell or a bbox of an s2cube store: its reflectance bands on the store's grid."""

    def __init__(
        self, path: str | os.PathLike[str], cell: str | Cell | None, bbox: Sequence[float] | None
    ) -> None:
        import zarr
        from rasterio.crs import CRS

        from ..store import _require_store, store_metadata

        p = _require_store(path)
        meta = store_metadata(p)
        grid = GlobalGrid.from_dict(meta["grid"])
        if (cell is None) == (bbox is None):
            raise InputError(
                "a store source needs exactly one of cell= (e.g. 'r0087c0391') or "
                "bbox= (west, south, east, north)"
            )
        if cell is not None:
            window = grid.cell_window(Cell.from_name(cell) if isinstance(cell, str) else cell)
        else:
            window = grid.window_of_bbox(bbox)  # type: ignore[arg-type]
        self.rows, self.cols = window.rows, window.cols
        self.bands = list(meta["bands"])
        group = zarr.open_group(p.zarr_store(read_only=True), mode="r", zarr_format=3)
        self.arrays: list[Any] = [group[b] for b in self.bands]
        super().__init__(
            window.height,
            window.width,
            len(self.bands),
            "uint16",
            CRS.from_epsg(4326),
            window.transform,
            0,
            self.bands,
        )

    def read_rows(self, row_off: int, n_rows: int) -> np.ndarray:
        r0 = self.rows.start + row_off
        r1 = min(r0 + n_rows, self.rows.stop)
        return np.stack([np.asarray(a[r0:r1, self.cols]) for a in self.arrays])


def open_source(source: str | os.PathLike[str], cell: Any, bbox: Any) -> ChipSource:
    """A store region (``cell`` or ``bbox``) or a raster file, checked before any chip is cut."""
    from ..store import is_store
    from ..store.location import store_location

    if not isinstance(source, str | os.PathLike):
        return StoreSource(source, cell, bbox)  # a StoreLocation
    if is_store(source):
        return StoreSource(source, cell, bbox)
    if cell is not None or bbox is not None:
        raise InputError(
            f"cell=/bbox= select a region of an s2cube store, but {str(source)!r} "
            "is not one; drop them to chip a raster file whole"
        )
    if not store_location(source).is_local:
        raise InputError(
            f"source {str(source)!r} is not an s2cube store; a raster source must be a local "
            "file (GDAL paths such as /vsis3/... work too)"
        )
    if not Path(source).exists():
        raise InputError(f"source {str(source)!r} does not exist")
    return RasterSource(source)
