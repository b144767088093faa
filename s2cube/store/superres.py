"""The super-resolution product of a store: a complete s2cube store nested in its parent.

Layout::

    STORE/                          the mosaic (the parent)
      superres/                     Zarr group: attrs describe the products inside
        x4/                         a COMPLETE s2cube mosaic store (same format, variables,
                                    manifest, overviews, a copy of the parent's scene table)
                                    on the parent grid with resolution / 4 (same cell size,
                                    same chunk edge in pixels, so a cell is still one shard);
                                    attrs["s2cube_superres"] = {"scale", "parent_resolution",
                                    "model"}

Everything that reads an s2cube store (``open_store``, ``s2cube info``, ``export``, the WMTS
server) reads the product as it is: it is just another store.  Its pixels are the generator's
output (reflectance bands) and the parent's provenance (``date``, ``scene``, ``clear_count``,
``fill``) nearest-upsampled, so a super-resolved pixel names the observation it came from.

This module owns the product's place and template (:func:`superres_location`,
:func:`superres_grid`, :func:`create_superres_store`, :func:`superres_attrs`), reading the
parent around a cell (:func:`read_parent_window`) and the cell write
(:func:`write_superres_cell`, which goes through the store's normal
:func:`~s2cube.store.write_cell`).  The driver is :mod:`s2cube.superres.run`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError, StoreError
from ..grid import Cell, GlobalGrid, Window
from .cells import write_cell
from .layout import FILL_VAR, _require_store, days_to_dates, is_store, store_metadata
from .location import StoreLike, StoreLocation, store_location
from .template import consolidate, create_store

__all__ = [
    "SUPERRES_ATTR",
    "SUPERRES_DIR",
    "create_superres_store",
    "read_parent_window",
    "superres_attrs",
    "superres_grid",
    "superres_location",
    "superres_products",
    "write_superres_cell",
]

#: the group inside a store that holds its super-resolution products
SUPERRES_DIR = "superres"
#: root attribute of a product: {"scale", "parent_resolution", "model"}
SUPERRES_ATTR = "s2cube_superres"


def superres_location(parent: StoreLike, scale: int) -> StoreLocation:
    """Where the ×``scale`` product of ``parent`` lives: ``<parent>/superres/x<scale>``."""
    loc = store_location(parent)
    return store_location(
        f"{loc.url.rstrip('/')}/{SUPERRES_DIR}/x{int(scale)}", loc.storage_options
    )


def superres_grid(parent: GlobalGrid, scale: int) -> GlobalGrid:
    """The product's grid: the parent's resolution / ``scale``, same cells, same chunk edge.

    A parent cell of ``n`` px becomes ``n·scale`` px, still one shard; the chunk edge (a
    divisor of ``n``) divides it too, so tiles are served from chunks of the same pixel size.

    Examples
    --------
    >>> g = superres_grid(GlobalGrid(resolution="1/800", cell_size="1/8", chunk_size=50), 4)
    >>> g.resolution, g.cell_pixels, g.chunk_size
    (Fraction(1, 3200), 400, 50)
    """
    return GlobalGrid(
        resolution=parent.resolution / int(scale),
        cell_size=parent.cell_size,
        chunk_size=parent.chunk_size,
    )


def superres_attrs(product: StoreLike) -> dict[str, Any] | None:
    """The ``s2cube_superres`` attribute of a product (None: not a product)."""
    loc = store_location(product)
    raw = loc.get("zarr.json")
    if raw is None:
        return None
    try:
        attrs = json.loads(raw).get("attributes", {})
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    got = attrs.get(SUPERRES_ATTR)
    return dict(got) if isinstance(got, dict) else None


def superres_products(parent: StoreLike) -> dict[int, StoreLocation]:
    """``{scale: location}`` of the super-resolution products nested in ``parent``."""
    loc = store_location(parent)
    out: dict[int, StoreLocation] = {}
    for name in loc.folders(SUPERRES_DIR):
        if name.startswith("x") and name[1:].isdigit():
            child = superres_location(loc, int(name[1:]))
            if is_store(child) and superres_attrs(child) is not None:
                out[int(name[1:])] = child
    return dict(sorted(out.items()))


def create_superres_store(
    parent: StoreLike,
    scale: int,
    *,
    model: str,
    replace_model: bool = False,
) -> StoreLocation:
    """Create (or reopen) the ×``scale`` product of ``parent`` (driver only, under the lease).

    Makes the ``superres`` group in the parent, the product's store template on
    :func:`superres_grid` with the parent's bands, its ``s2cube_superres`` attribute, and
    copies the parent's scene table (the ``scene`` values index it).

    Raises
    ------
    StoreError
        If the product exists with another model and ``replace_model`` is False (its cells
        would mix two models), or with another grid.
    """
    import zarr

    p = _require_store(parent)
    meta = store_metadata(p)
    grid = GlobalGrid.from_dict(meta["grid"])
    sr = superres_location(p, scale)
    info: dict[str, Any] = {
        "scale": int(scale),
        "parent_resolution": str(grid.resolution),
        "model": str(model),
    }
    old = superres_attrs(sr) if is_store(sr) else None
    if old is not None and old.get("model") != info["model"] and not replace_model:
        raise StoreError(
            f"{sr.url!r} holds super-resolution by model {old.get('model')!r}; this run uses "
            f"{info['model']!r}. Rerun with --overwrite to recompute every cell with the new "
            "model, or use the model that made it"
        )
    if not p.exists(f"{SUPERRES_DIR}/zarr.json"):
        root = zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
        root.create_group(
            SUPERRES_DIR,
            attributes={
                "description": "s2cube: super-resolution products of this store, one complete "
                "s2cube store per scale (x2, x4...); see docs/superres.md"
            },
        )
    create_store(sr, grid=superres_grid(grid, scale), bands=list(meta["bands"]))
    group = zarr.open_group(sr.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    changed = False
    if group.attrs.get(SUPERRES_ATTR) != info:
        group.attrs[SUPERRES_ATTR] = info  # type: ignore[assignment]  # JSON-able by construction
        changed = True
    changed |= copy_scene_table(p, sr)
    if changed:
        consolidate(sr)
    return sr


def copy_scene_table(parent: StoreLocation, product: StoreLocation) -> bool:
    """Make the product's scene table a copy of the parent's; True if anything was written."""
    from .scenes import COLUMNS, _group

    src, dst = _group(parent, "r"), _group(product, "r+")
    if src is None or dst is None:
        return False
    changed = False
    for name in COLUMNS:
        if name not in src:
            continue
        values = np.asarray(src[name][:])
        if dst[name].shape == values.shape and np.array_equal(
            np.asarray(dst[name][:]).astype(object), values.astype(object)
        ):
            continue
        dst[name].resize(values.shape)
        if values.size:
            dst[name][:] = values
        changed = True
    return changed


def read_parent_window(parent: StoreLike, window: Window) -> dict[str, np.ndarray]:
    """The parent's stored arrays (encoded: date as days) over ``window``, clipped to the globe.

    Returns ``{variable: array}`` plus ``"_offset"``: the (row, col) of the clipped window's
    first pixel inside ``window`` (a halo past the poles or the antimeridian is cut off).
    """
    import zarr

    p = _require_store(parent)
    meta = store_metadata(p)
    names = [*meta["bands"], "date", "scene", "clear_count"]
    part = window.clip()
    root = zarr.open_group(p.zarr_store(read_only=True), mode="r", zarr_format=3,
                           use_consolidated=False)  # fmt: skip
    if FILL_VAR in root:
        names.append(FILL_VAR)
    out: dict[str, np.ndarray] = {}
    for name in names:
        arr: Any = root[name]
        out[name] = np.asarray(arr[part.rows, part.cols])
    out["_offset"] = np.asarray(part.offset_in(window))
    return out


def write_superres_cell(
    product: StoreLike,
    cell: Cell,
    bands: Mapping[str, np.ndarray],
    provenance: Mapping[str, np.ndarray],
    *,
    record: dict[str, Any] | None = None,
    lease: str | None = None,
) -> dict[str, Any]:
    """Write one product cell: super-resolved ``bands`` (uint16, the product cell's shape) and
    the parent cell's stored ``provenance`` (date as days, scene, clear_count, fill; the
    parent cell's shape), nearest-upsampled here.  Goes through
    :func:`~s2cube.store.write_cell` (shards, record last, lease checked).
    """
    p = _require_store(product)
    grid = GlobalGrid.from_dict(store_metadata(p)["grid"])
    info = superres_attrs(p)
    if info is None:
        raise StoreError(f"{p.url!r} is not a super-resolution product (no {SUPERRES_ATTR})")
    scale = int(info["scale"])
    window = grid.cell_window(cell)
    for name, arr in bands.items():
        if arr.shape != window.shape:
            raise InputError(
                f"super-resolved {name} for {cell} has shape {arr.shape}, expected "
                f"{window.shape}; crop the halo before writing"
            )

    def up(a: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(np.asarray(a), scale, axis=0), scale, axis=1)

    dims = ("latitude", "longitude")
    data_vars: dict[str, Any] = {b: (dims, np.asarray(a, "uint16")) for b, a in bands.items()}
    data_vars["date"] = (dims, up(days_to_dates(provenance["date"])))
    for name in ("scene", "clear_count", FILL_VAR):
        if name in provenance:
            data_vars[name] = (dims, up(provenance[name]))
    ds = xr.Dataset(
        data_vars,
        coords={"latitude": window.latitudes(), "longitude": window.longitudes()},
    )
    return write_cell(p, cell, ds, record=record, lease=lease)
