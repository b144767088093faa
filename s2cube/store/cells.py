"""Cell writes and the manifest: one task writes one cell's shards, then its record.

Every data array is chunked for serving (``grid.chunk_size`` px) and **sharded by cell**, so
one cell is one shard per variable and is written by exactly one task: there are never two
writers on a shard (Zarr v3 would lose data silently).  Shards of untouched cells are never
written, so the ocean costs nothing.  A cell's manifest record is written only after all its
shards are, so an interrupted run leaves no record and a rerun recomputes exactly the cells
that are not finished.

This module owns that protocol: encoding a composite (:func:`_encode_cell`), writing it
(:func:`write_cell`, the only function that writes data arrays; :func:`write_empty_cell` for a
cell no scene covers), and the manifest (:func:`read_manifest`, :func:`cells_done`,
:func:`forget_cell`, the atomic record write :func:`_atomic_write_json`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError
from ..grid import Cell, GlobalGrid
from .layout import (
    DATE_EPOCH,
    FILL_VAR,
    MANIFEST_DIR,
    _require_store,
    json_object,
    store_metadata,
)
from .lease import check_lease
from .location import StoreLike, StoreLocation, store_location

__all__ = [
    "cell_summary",
    "cells_done",
    "clear_cell_shards",
    "forget_cell",
    "read_manifest",
    "write_cell",
    "write_empty_cell",
]

_RECORD = re.compile(r"^r\d+c\d+\.json$")


# --------------------------------------------------------------------------- manifest
def _manifest_dir(path: StoreLike) -> str:
    return MANIFEST_DIR


def _record_names(loc: StoreLocation, folder: str) -> list[str]:
    return [n for n in loc.list(folder) if _RECORD.match(n)]


def read_manifest(
    path: StoreLike, storage_options: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Finished cells: ``{cell name: record}``."""
    loc = _require_store(path, storage_options)
    out: dict[str, dict[str, Any]] = {}
    keys = [f"{MANIFEST_DIR}/{n}" for n in _record_names(loc, MANIFEST_DIR)]
    for key, data in sorted(loc.get_many(keys).items()):
        rec = json_object(data)  # a torn record is the same as no record
        if rec is not None:
            # keyed by the object's name: a record naming another cell is found by the checks
            # of s2cube.store.verify instead of shadowing that cell's own record
            out[key.rsplit("/", 1)[-1].removesuffix(".json")] = rec
    return out


def cells_done(path: StoreLike, storage_options: Mapping[str, Any] | None = None) -> set[str]:
    return set(read_manifest(path, storage_options))


def _atomic_write_json(loc: StoreLike, key: str, payload: dict[str, Any]) -> None:
    """Write a JSON record as one object (rename locally, one PUT on object storage)."""
    data = json.dumps(payload, indent=1, sort_keys=True, default=str).encode()
    store_location(loc).put(key, data)


def read_record(path: StoreLike, cell: Cell) -> dict[str, Any] | None:
    """One cell's manifest record (None: not finished, or a torn record)."""
    return json_object(store_location(path).get(f"{MANIFEST_DIR}/{cell.name}.json"))


def forget_cell(path: StoreLike, cell: Cell) -> None:
    """Remove a cell's manifest record (before overwriting it)."""
    store_location(path).delete(f"{MANIFEST_DIR}/{cell.name}.json")


# --------------------------------------------------------------------------- cell writes
def _encode_cell(ds: xr.Dataset, bands: Sequence[str]) -> dict[str, np.ndarray]:
    """Composite dataset → the stored (encoded) arrays."""
    out: dict[str, np.ndarray] = {}
    for band in bands:
        out[band] = np.asarray(ds[band].values, dtype="uint16")
    date = ds["date"].values.astype("datetime64[D]")
    days = (date - np.datetime64(DATE_EPOCH, "D")).astype("int64")
    valid = ~np.isnat(date)
    if valid.any() and (days[valid].min() < 1 or days[valid].max() > 65535):
        raise InputError(f"dates outside {DATE_EPOCH} .. +179 years cannot be stored")
    out["date"] = np.where(valid, days, 0).astype("uint16")
    out["scene"] = np.asarray(ds["scene"].values, dtype="int32")
    out["clear_count"] = np.asarray(ds["clear_count"].values, dtype="uint16")
    if FILL_VAR in ds:
        out[FILL_VAR] = np.asarray(ds[FILL_VAR].values, dtype="uint8")
    else:
        # no filling step: a pixel with data in every band was observed in the period
        from ..fill.kernels import FILL_OBSERVED

        has_data = np.logical_and.reduce([out[b] > 0 for b in bands])
        out[FILL_VAR] = np.where(has_data, FILL_OBSERVED, 0).astype("uint8")
    return out


def fill_counts(fill: np.ndarray) -> dict[str, int]:
    """Pixels per ``fill`` code, by meaning (``observed_in_period``, ``inpainted``...)."""
    from ..fill.kernels import FILL_CODES

    counts = np.bincount(np.asarray(fill, dtype="uint8").ravel(), minlength=len(FILL_CODES))
    return {name: int(counts[code]) for code, name in FILL_CODES.items()}


def cell_summary(encoded: Mapping[str, np.ndarray], bands: Sequence[str]) -> dict[str, Any]:
    """The manifest fields a cell's stored (encoded) arrays determine.

    Written into the record by :func:`write_cell`, and recomputed from the pixels read back by
    :func:`s2cube.store.verify.verify_store`, so a record is checked against its pixels by the
    same code that wrote it.  ``content`` holds, per variable, a CRC-32 of the cell's array
    bytes and its number of non-fill pixels (whether its shard must exist).
    """
    valid = encoded["scene"] >= 0
    has_data = encoded[bands[0]] > 0
    days = encoded["date"][valid]
    return {
        "n_pixels": int(valid.size),
        "n_composited": int(valid.sum()),
        "n_nodata": int((~valid).sum()),
        "n_without_clear": int((~valid & (encoded["clear_count"] == 0)).sum()),
        "valid_fraction": float(has_data.mean()),
        "scenes_used": sorted({int(s) for s in np.unique(encoded["scene"][valid])}),
        "date_min": str(np.datetime64(DATE_EPOCH) + int(days.min())) if days.size else None,
        "date_max": str(np.datetime64(DATE_EPOCH) + int(days.max())) if days.size else None,
        **({"fill": fill_counts(encoded[FILL_VAR])} if FILL_VAR in encoded else {}),
        "content": {name: array_content(arr, name) for name, arr in encoded.items()},
    }


#: the fill value of every mosaic variable (what an unwritten pixel reads as)
FILL_VALUES: dict[str, int] = {"scene": -1}


def array_content(arr: np.ndarray, name: str) -> dict[str, int]:
    """CRC-32 of a cell's array (C order, little-endian bytes) and its non-fill pixel count."""
    data = np.ascontiguousarray(arr)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return {
        "crc32": zlib.crc32(data.tobytes()),
        "nonfill": int((data != FILL_VALUES.get(name, 0)).sum()),
    }


def write_cell(
    path: StoreLike,
    cell: Cell,
    ds: xr.Dataset,
    *,
    record: dict[str, Any] | None = None,
    lease: str | None = None,
) -> dict[str, Any]:
    """Write one cell's composite into its shards, then its manifest record.

    ``ds`` covers exactly the cell (no halo) on the store's grid.  Returns the record.
    This is the only function that writes data arrays; call it once per cell.  ``lease`` is
    the owner id of the writer lease the run holds (:class:`~s2cube.store.lease.Lease`); it is
    checked before the shards and again before the record, so a run that lost its lease never
    records a cell (without one, the write is refused while another run holds the lease).
    """
    import zarr

    p = _require_store(path)
    check_lease(p, lease)
    meta = store_metadata(p)
    grid = GlobalGrid.from_dict(meta["grid"])
    bands = list(meta["bands"])
    window = grid.cell_window(cell)
    got = (ds.sizes.get("latitude"), ds.sizes.get("longitude"))
    if got != window.shape:
        raise InputError(
            f"composite for {cell} has shape {got}, expected {window.shape}; "
            "crop the halo before writing"
        )
    # the first pixel's centre decides: a shifted composite would land on other pixels
    first = window[:1, :1]
    if not (
        np.isclose(float(ds.latitude.values[0]), first.latitudes()[0])
        and np.isclose(float(ds.longitude.values[0]), first.longitudes()[0])
    ):
        raise InputError(
            f"composite for {cell} is not aligned with the store's grid: its first pixel centre "
            f"is ({float(ds.longitude.values[0])}, {float(ds.latitude.values[0])}), expected "
            f"({first.longitudes()[0]}, {first.latitudes()[0]}); build it with grid.cell_window"
        )
    encoded = _encode_cell(ds, bands)
    forget_cell(p, cell)
    group = zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3)
    if FILL_VAR not in group:  # a store created before the fill variable existed
        encoded.pop(FILL_VAR)
    for name, arr in encoded.items():
        target: Any = group[name]  # an array (zarr types members as array-or-group)
        target[window.rows, window.cols] = arr
    header, summary = _cell_header(grid, cell), cell_summary(encoded, bands)
    # what the pixels determine always wins over a record carried over from an earlier write
    rest = {k: v for k, v in (record or {}).items() if k not in header and k not in summary}
    rec = {**header, **summary, **rest}
    check_lease(p, lease)
    _atomic_write_json(p, f"{MANIFEST_DIR}/{cell.name}.json", rec)
    return rec


def _cell_header(grid: GlobalGrid, cell: Cell) -> dict[str, Any]:
    """The manifest fields every finished cell has: where it is and when it finished.

    ``finished`` is to the microsecond: products and overviews built from a cell copy it and
    call themselves stale when it changes, so a rewrite within the same second must change it.
    """
    return {
        "cell": cell.name,
        "row": cell.row,
        "col": cell.col,
        "bounds": list(grid.cell_window(cell).bounds),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
    }


def write_empty_cell(
    path: StoreLike,
    cell: Cell,
    *,
    record: dict[str, Any] | None = None,
    lease: str | None = None,
) -> dict[str, Any]:
    """Record a cell that no scene covers as finished: its shards are removed (fill values),
    then its record is written.

    ``record`` (the run's options) is merged into the manifest record, as for written cells.
    """
    p = _require_store(path)
    meta = store_metadata(p)
    grid = GlobalGrid.from_dict(meta["grid"])
    n = grid.cell_pixels**2
    check_lease(p, lease)
    # an overwrite can make a cell empty: its old pixels go first (level 0 and the overview
    # levels sharded by cell), then the record; coarse levels are rebuilt by the driver
    forget_cell(p, cell)
    clear_cell_shards(p, cell, grid, mosaic_variables(meta))
    rec = {
        **_cell_header(grid, cell),
        "empty": True,
        "n_pixels": n,
        "n_composited": 0,
        "n_nodata": n,
        "n_without_clear": n,
        "scenes_used": [],
        **(record or {}),
    }
    check_lease(p, lease)
    _atomic_write_json(p, f"{MANIFEST_DIR}/{cell.name}.json", rec)
    return rec


def mosaic_variables(meta: Mapping[str, Any]) -> list[str]:
    """The mosaic's data variables of a store (bands, provenance, fill), in write order."""
    return [*meta["bands"], "date", "scene", "clear_count", FILL_VAR]


def cell_shard_keys(
    loc: StoreLocation, cell: Cell, grid: GlobalGrid, names: Sequence[str]
) -> dict[tuple[str, str], str]:
    """``{(group, variable): key}`` of the shards that hold exactly ``cell``: level 0 and every
    overview level still sharded by cell (coarse levels mix cells and have no such shard).
    Arrays that do not exist are left out."""
    from ..overviews.levels import pyramid

    out: dict[tuple[str, str], str] = {}
    n_cells = (grid.shape[0] // grid.cell_pixels, grid.shape[1] // grid.cell_pixels)
    for lv in pyramid(grid):
        if not lv.per_cell:
            break
        prefix = f"{lv.path}/" if lv.path else ""
        for name in names:
            raw = loc.get(f"{prefix}{name}/zarr.json")
            if raw is None:
                continue
            meta = json.loads(raw)
            codecs = meta.get("codecs") or []
            if not codecs or codecs[0].get("name") != "sharding_indexed":
                continue
            shard = meta["chunk_grid"]["configuration"]["chunk_shape"]
            shape = meta["shape"]
            if (-(-shape[0] // shard[0]), -(-shape[1] // shard[1])) != n_cells:
                continue
            enc = meta.get("chunk_key_encoding") or {"name": "default"}
            sep = (enc.get("configuration") or {}).get("separator", "/")
            if enc.get("name") == "v2":
                key = f"{cell.row}{sep}{cell.col}"
            else:
                key = f"c{sep}{cell.row}{sep}{cell.col}"
            out[(lv.path, name)] = f"{prefix}{name}/{key}"
    return out


def clear_cell_shards(
    loc: StoreLocation, cell: Cell, grid: GlobalGrid, names: Sequence[str]
) -> list[str]:
    """Remove ``cell``'s shards of the variables ``names`` (every pixel then reads as the fill
    value), at level 0 and at the per-cell overview levels; returns the keys removed."""
    removed = []
    for key in cell_shard_keys(loc, cell, grid, names).values():
        if loc.size(key) is not None:
            loc.delete(key)
            removed.append(key)
    return removed
