"""Overviews of the land-cover product: the mode of the classes, level by level.

The land-cover arrays (:data:`~s2cube.store.landcover.LANDCOVER_VARS`) get the same pyramid
as the mosaic, in the same level groups, with the same chunks and shards; the 2×2 step is
:func:`~s2cube.overviews.kernels.downsample_classes` (mode of the classes; confidence and
dates of a child of that class), never an average.  The protocol is the mosaic's: per-cell
levels in the cell's own task (:func:`build_cell_landcover_overviews`, only that cell's
shards), coarse levels once in the driver after every cell
(:func:`build_coarse_landcover_overviews`).
The mosaic's own overview builds do not touch these arrays, nor these builds the mosaic's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..grid import Cell
from ..store import _require_store
from ..store.landcover import LANDCOVER_VARS, has_landcover, landcover_attrs, landcover_var_attrs
from ..store.layout import chunk_compressors
from ..store.location import StoreLike
from .build import _read, _write, build_coarse
from .kernels import downsample_classes
from .template import _require_template, _store_levels, prepare_overviews

__all__ = [
    "build_cell_landcover_overviews",
    "build_coarse_landcover_overviews",
    "prepare_landcover_overviews",
]


def prepare_landcover_overviews(store: StoreLike) -> None:
    """Add the land-cover arrays to every overview level (after the mosaic's template, which
    is created if missing); driver only, idempotent."""
    import zarr

    from ..store import consolidate

    p = _require_store(store)
    prepare_overviews(p)
    info = landcover_attrs(p)
    if info is None or not has_landcover(p):
        return
    attrs = landcover_var_attrs({int(k): str(v) for k, v in info["classes"].items()})
    _, bands, levels = _store_levels(p)
    root = zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    changed = False
    for lv in levels[1:]:
        group: Any = root[lv.path]
        geo = {
            k: v
            for k, v in dict(group[bands[0]].attrs).items()
            if k.startswith(("proj:", "spatial:"))
        }
        for name in LANDCOVER_VARS:
            if name in group:
                continue
            shards = {"shards": (lv.cell_pixels, lv.cell_pixels)} if lv.cell_pixels else {}
            group.create_array(
                name,
                shape=lv.shape,
                dtype="uint8",
                chunks=(lv.chunk, lv.chunk),
                fill_value=np.uint8(0),
                compressors=chunk_compressors(),
                dimension_names=("latitude", "longitude"),
                attributes={**attrs[name], **geo, "resampling": "mode of the 2x2 children"},
                **shards,
            )
            changed = True
    if changed:
        consolidate(p)


def build_cell_landcover_overviews(store: StoreLike, cell: Cell | str) -> list[int]:
    """Per-cell land-cover levels of one finished land-cover cell; returns the levels written.

    Touches only this cell's shards (safe in the cell's task)."""
    import zarr

    p = _require_store(store)
    _require_template(p)
    c = Cell.from_name(cell) if isinstance(cell, str) else cell
    _, _, levels = _store_levels(p)
    root = zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    written: list[int] = []
    for lv in levels[1:]:
        if not lv.per_cell:
            break
        src: Any = root[levels[lv.index - 1].path] if lv.index > 1 else root
        dst: Any = root[lv.path]
        window = lv.cell_window(c)
        out = {n: np.zeros(window.shape, dtype="uint8") for n in LANDCOVER_VARS}
        step = lv.chunk  # output rows per strip: memory bounded by 2 chunk-rows of the source
        for r in range(0, window.height, step):
            part = _step(_read(src, LANDCOVER_VARS, window[r : r + step, :].zoom_in(2)))
            for n in LANDCOVER_VARS:
                out[n][r : r + step] = part[n]
        _write(dst, out, window)
        written.append(lv.index)
    return written


def build_coarse_landcover_overviews(
    store: StoreLike, cells: Iterable[Cell | str]
) -> dict[int, int]:
    """Rebuild the coarse-level land-cover chunks touching ``cells`` (driver only, after every
    cell of the run and its per-cell levels are finished); returns ``{level: chunks}``."""
    import zarr

    p = _require_store(store)
    _require_template(p)
    grid, _, levels = _store_levels(p)
    cell_list = [Cell.from_name(c) if isinstance(c, str) else c for c in cells]
    root = zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    return build_coarse(root, grid, levels, cell_list, list(LANDCOVER_VARS), _step)


def _step(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    cls, conf, n = downsample_classes(
        arrays["landcover"], arrays["landcover_confidence"], arrays["landcover_dates"]
    )
    return {"landcover": cls, "landcover_confidence": conf, "landcover_dates": n}
