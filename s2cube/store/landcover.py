"""The land-cover product in the store: its three variables, cell writes and its own manifest.

Land cover lives in the same global store as the mosaic, on the same grid, chunks and shards
(one cell = one shard per variable), next to the reflectance::

    STORE/
      landcover                  uint8 class code (see ``classes`` below), 0 = no clear date
      landcover_confidence       uint8 fused probability of that class, percent (0 = none)
      landcover_dates            uint8 number of clear dates fused at the pixel
      s2cube_landcover_manifest/<cell>.json   one record per finished land-cover cell

The product is added to an existing store by :func:`add_landcover` (driver only, under the
writer lease; idempotent) and written by :func:`write_landcover_cell`, one task per cell, its
record last: the protocol of :mod:`.cells`, with a manifest of its own, so a land-cover run
resumes independently of the mosaic run that made the store.  The class table travels in the
root attribute ``s2cube_landcover`` (codes, names, colours, the model and fusion of the run).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError, StoreError
from ..grid import Cell, GlobalGrid
from .cells import _atomic_write_json, _cell_header
from .layout import _require_store, chunk_compressors, store_metadata
from .lease import check_lease
from .location import StoreLike, StoreLocation, store_location

__all__ = [
    "LANDCOVER_ATTR",
    "LANDCOVER_MANIFEST",
    "LANDCOVER_VARS",
    "add_landcover",
    "has_landcover",
    "landcover_attrs",
    "landcover_var_attrs",
    "read_landcover_manifest",
    "write_landcover_cell",
]

#: the product's arrays, in the store and in every overview level
LANDCOVER_VARS = ("landcover", "landcover_confidence", "landcover_dates")
LANDCOVER_MANIFEST = "s2cube_landcover_manifest"
#: root attribute holding the class table and the run's model/fusion
LANDCOVER_ATTR = "s2cube_landcover"
_RECORD = re.compile(r"^r\d+c\d+\.json$")


def landcover_var_attrs(classes: Mapping[int, str]) -> dict[str, dict[str, Any]]:
    """CF attributes of the three variables for a class table ``{code: name}``."""
    return {
        "landcover": {
            "long_name": "land-cover class",
            "flag_values": [int(k) for k in classes],
            "flag_meanings": " ".join(classes.values()),
            "nodata": 0,
            "grid_mapping": "spatial_ref",
        },
        "landcover_confidence": {
            "long_name": "fused probability of the land-cover class",
            "units": "percent",
            "nodata": 0,
            "grid_mapping": "spatial_ref",
        },
        "landcover_dates": {
            "long_name": "number of clear dates fused into the land-cover class",
            "grid_mapping": "spatial_ref",
        },
    }


def has_landcover(path: StoreLike) -> bool:
    """True if the store has the land-cover variables (:func:`add_landcover` ran)."""
    loc = store_location(path)
    return all(loc.exists(f"{v}/zarr.json") for v in LANDCOVER_VARS)


def landcover_attrs(path: StoreLike) -> dict[str, Any] | None:
    """The root ``s2cube_landcover`` attribute (class table, colours, model), or None."""
    loc = store_location(path)
    data = loc.get("zarr.json")
    if data is None:
        return None
    attrs = json.loads(data).get("attributes", {})
    out = attrs.get(LANDCOVER_ATTR)
    return dict(out) if isinstance(out, dict) else None


def add_landcover(path: StoreLike, info: Mapping[str, Any]) -> None:
    """Create the land-cover arrays (no data chunks) and its manifest group; idempotent.

    Driver only, while the run holds the store's lease.  ``info`` is the root attribute: at
    least ``classes`` (``{code: name}`` as strings or ints) and ``colors`` (``{code: "#rrggbb"}``);
    a store whose product has another class table is refused (a new store, or the same model).
    """
    import zarr

    from .template import consolidate

    loc = _require_store(path)
    grid = GlobalGrid.from_dict(store_metadata(loc)["grid"])
    classes = {int(k): str(v) for k, v in dict(info["classes"]).items()}
    old = landcover_attrs(loc)
    if old is not None:
        known = {int(k): str(v) for k, v in dict(old["classes"]).items()}
        if known != classes:
            raise StoreError(
                f"store {loc.url!r} holds land cover with classes {known}; this run's model has "
                f"{classes}. Use another store, or the model that made it"
            )
    root = zarr.open_group(loc.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    attrs = landcover_var_attrs(classes)
    band = str(store_metadata(loc)["bands"][0])
    changed = False
    for name in LANDCOVER_VARS:
        if name in root:
            continue
        root.create_array(
            name,
            shape=grid.shape,
            dtype="uint8",
            chunks=(grid.chunk_size, grid.chunk_size),
            shards=grid.cell_shape,
            fill_value=np.uint8(0),
            compressors=chunk_compressors(),
            dimension_names=("latitude", "longitude"),
            attributes=_with_geozarr(attrs[name], root[band]),
        )
        changed = True
    if LANDCOVER_MANIFEST not in root:
        root.create_group(
            LANDCOVER_MANIFEST,
            attributes={"description": "s2cube: one JSON record per finished land-cover cell"},
        )
        changed = True
    meta = {**dict(info), "classes": {str(k): v for k, v in classes.items()}}
    if root.attrs.get(LANDCOVER_ATTR) != json.loads(json.dumps(meta)):
        root.attrs[LANDCOVER_ATTR] = meta
        changed = True
    if changed:
        consolidate(loc)


def _with_geozarr(attrs: dict[str, Any], band: Any) -> dict[str, Any]:
    """The variable's CF attributes plus the GeoZarr ``proj:``/``spatial:`` ones of a band."""
    geo = {k: v for k, v in dict(band.attrs).items() if k.startswith(("proj:", "spatial:"))}
    for key in ("zarr_conventions",):
        if key in band.attrs:
            geo[key] = band.attrs[key]
    return {**attrs, **geo}


def read_landcover_manifest(
    path: StoreLike, storage_options: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Finished land-cover cells: ``{cell name: record}`` (empty for a store without them)."""
    loc = _require_store(path, storage_options)
    names = [n for n in loc.list(LANDCOVER_MANIFEST) if _RECORD.match(n)]
    out: dict[str, dict[str, Any]] = {}
    for _, data in sorted(loc.get_many([f"{LANDCOVER_MANIFEST}/{n}" for n in names]).items()):
        try:
            rec = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # a torn record is no record
        out[rec["cell"]] = rec
    return out


def forget_landcover_cell(path: StoreLike, cell: Cell) -> None:
    """Remove a cell's land-cover record (before its shards are rewritten)."""
    store_location(path).delete(f"{LANDCOVER_MANIFEST}/{cell.name}.json")


def class_shares(classes: np.ndarray, names: Mapping[int, str]) -> dict[str, int]:
    """Pixels per class name (``none`` for code 0)."""
    counts = np.bincount(np.asarray(classes, dtype="uint8").ravel(), minlength=256)
    out = {"none": int(counts[0])}
    out.update({name: int(counts[code]) for code, name in names.items()})
    return out


def write_landcover_cell(
    path: StoreLike | StoreLocation,
    cell: Cell,
    arrays: Mapping[str, np.ndarray],
    *,
    record: dict[str, Any] | None = None,
    lease: str | None = None,
) -> dict[str, Any]:
    """Write one cell's land cover (the three arrays, cell-shaped uint8), then its record.

    The lease is checked before the shards and again before the record, as for
    :func:`~s2cube.store.write_cell`; a cell is written by one task only (its shards).
    """
    import zarr

    p = _require_store(path)
    check_lease(p, lease)
    grid = GlobalGrid.from_dict(store_metadata(p)["grid"])
    info = landcover_attrs(p)
    if info is None or not has_landcover(p):
        raise StoreError(f"store {p.url!r} has no land-cover variables; run add_landcover first")
    window = grid.cell_window(cell)
    missing = [v for v in LANDCOVER_VARS if v not in arrays]
    if missing:
        raise InputError(f"land cover for {cell} lacks {missing}")
    for name in LANDCOVER_VARS:
        if np.shape(arrays[name]) != window.shape:
            raise InputError(
                f"{name} for {cell} has shape {np.shape(arrays[name])}, expected {window.shape}; "
                "crop the halo before writing"
            )
    forget_landcover_cell(p, cell)
    group = zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    for name in LANDCOVER_VARS:
        target: Any = group[name]
        target[window.rows, window.cols] = np.asarray(arrays[name], dtype="uint8")
    names = {int(k): str(v) for k, v in info["classes"].items()}
    cls = np.asarray(arrays["landcover"])
    rec = {
        **_cell_header(grid, cell),
        "n_pixels": int(cls.size),
        "n_classified": int((cls > 0).sum()),
        "classes": class_shares(cls, names),
        "mean_dates": float(np.asarray(arrays["landcover_dates"], dtype=float).mean()),
        **(record or {}),
    }
    check_lease(p, lease)
    _atomic_write_json(p, f"{LANDCOVER_MANIFEST}/{cell.name}.json", rec)
    return rec


def write_empty_landcover_cell(
    path: StoreLike,
    cell: Cell,
    *,
    record: dict[str, Any] | None = None,
    lease: str | None = None,
) -> dict[str, Any]:
    """Record a cell without any candidate scene as finished (no shard written)."""
    p = _require_store(path)
    grid = GlobalGrid.from_dict(store_metadata(p)["grid"])
    n = grid.cell_pixels**2
    rec = {
        **_cell_header(grid, cell),
        "empty": True,
        "n_pixels": n,
        "n_classified": 0,
        **(record or {}),
    }
    check_lease(p, lease)
    _atomic_write_json(p, f"{LANDCOVER_MANIFEST}/{cell.name}.json", rec)
    return rec


def landcover_shares(records: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    """Share of each class over the classified pixels of finished cells (None: none)."""
    totals: dict[str, int] = {}
    for rec in records:
        for name, n in (rec.get("classes") or {}).items():
            if name != "none":
                totals[name] = totals.get(name, 0) + int(n)
    n_all = sum(totals.values())
    return {k: v / n_all for k, v in totals.items()} if n_all else None
