"""The store's scene table: which scenes a store's pixels came from, and their parameters.

The table is the ``scenes`` group of the store: one 1-D Zarr array per column on the dimension
``scene_index``, whose position is the value of the ``scene`` variable (``scene == i`` means
the pixel came from row ``i``).  Strings are variable-length UTF-8, numbers float64 (NaN =
unknown), fitted transfer knots and bands JSON text.  Opening the store's pixels never reads
the table; it is read only on request, column by column::

    xr.open_zarr(store, group="scenes", consolidated=False)   # plain xarray

This module owns it: registering scenes with stable indices (:func:`register_scenes`, driver
only), recording their fitted parameters (:func:`update_scene_params`, driver only) and reading
them back (:func:`scene_params`, :func:`scene_indices`, :func:`scene_table`).  Stores of format
version 1 kept the table in the root attributes; they are still read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pystac

from .layout import _require_store, store_metadata
from .location import StoreLike, StoreLocation

__all__ = [
    "SCENES_GROUP",
    "register_scenes",
    "scene_count",
    "scene_indices",
    "scene_params",
    "scene_table",
    "update_scene_params",
]

SCENES_GROUP = "scenes"
DIM = "scene_index"
CHUNK = 65536
#: array name → (dtype, scene-table column, description)
COLUMNS: dict[str, tuple[str, str, str]] = {
    "id": ("str", "id", "STAC item id"),
    "datetime": ("str", "datetime", "acquisition time, ISO 8601"),
    "mgrs_tile": ("str", "mgrs_tile", "MGRS tile"),
    "cloud_cover": ("float64", "eo:cloud_cover", "eo:cloud_cover of the item, percent"),
    "processing_baseline": ("str", "processing_baseline", "s2:processing_baseline"),
    "boa_offset_removed": ("float64", "boa_offset_removed", "BOA offset removed on read (DN)"),
    "platform": ("str", "platform", "platform"),
    "haze": ("float64", "haze", "haze score (NaN: not fitted)"),
    "harmonize": ("str", "harmonize", "harmonization method of the knots"),
    "bands": ("json", "bands", "bands of the knots (JSON list)"),
    "knots": ("json", "knots", "transfer knots per band (JSON; empty: not fitted)"),
}
PARAM_COLUMNS = ("haze", "harmonize", "bands", "knots")


def _group(loc: StoreLocation, mode: Literal["r", "r+"]) -> Any:
    import zarr

    root = zarr.open_group(
        loc.zarr_store(read_only=mode == "r"), mode=mode, zarr_format=3, use_consolidated=False
    )
    return root[SCENES_GROUP] if SCENES_GROUP in root else None


def create_scene_group(loc: StoreLocation) -> None:
    """The empty table (template only; :func:`~s2cube.store.create_store` calls it)."""
    import zarr

    root = zarr.open_group(loc.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    group = root.create_group(
        SCENES_GROUP,
        attributes={"description": "s2cube scene table: row i is the source of scene == i"},
    )
    for name, (kind, column, text) in COLUMNS.items():
        numeric = kind == "float64"
        group.create_array(
            name,
            shape=(0,),
            chunks=(CHUNK,),
            dtype="float64" if numeric else str,
            fill_value=np.nan if numeric else "",
            dimension_names=[DIM],
            attributes={"long_name": text, "s2cube:column": column},
        )


def _encode(kind: str, values: Sequence[Any]) -> np.ndarray:
    if kind == "float64":
        return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")
    if kind == "json":
        return np.array(["" if v is None else json.dumps(v) for v in values], dtype=object)
    return np.array(["" if v is None else str(v) for v in values], dtype=object)


def _decode(kind: str, values: np.ndarray) -> list[Any]:
    if kind == "float64":
        return [None if np.isnan(v) else float(v) for v in values]
    if kind == "json":
        return [json.loads(v) if v else None for v in values.astype(object)]
    return [str(v) if v else None for v in values.astype(object)]


def _read_columns(
    path: StoreLike, names: Sequence[str] | None = None
) -> tuple[dict[str, list[Any]], int]:
    """Columns of the table (array names) and its length; version-1 stores from attributes."""
    loc = _require_store(path)
    names = list(names or COLUMNS)
    group = _group(loc, "r")
    if group is None:  # format version 1: a list of records in the root attributes
        rows = store_metadata(loc).get("scenes", [])
        return {n: [r.get(COLUMNS[n][1]) for r in rows] for n in names}, len(rows)
    arrays = {n: group[n] for n in names}
    size = int(arrays[names[0]].shape[0]) if names else 0
    return {n: _decode(COLUMNS[n][0], np.asarray(a[:])) for n, a in arrays.items()}, size


def register_scenes(path: StoreLike, items: Iterable[pystac.Item]) -> dict[str, int]:
    """Add scenes to the store's scene table (driver only) and return ``{scene id: index}``.

    Indices are stable: a scene registered once keeps its index across runs.
    """
    from .template import consolidate

    loc = _require_store(path)
    ids = _read_columns(loc, ["id"])[0]["id"]
    index = {sid: i for i, sid in enumerate(ids)}
    new: list[dict[str, Any]] = []
    for it in items:
        if it.id in index:
            continue
        index[it.id] = len(ids) + len(new)
        when = it.datetime
        new.append(
            {
                "id": it.id,
                "datetime": when.isoformat() if when else None,
                "mgrs_tile": it.properties.get("s2cube:mgrs_tile"),
                "cloud_cover": it.properties.get("eo:cloud_cover"),
                "processing_baseline": it.properties.get("s2:processing_baseline"),
                "boa_offset_removed": it.properties.get("s2cube:boa_offset", 0),
                "platform": it.properties.get("platform"),
            }
        )
    if new:
        group = _group(loc, "r+")
        n0, n1 = len(ids), len(ids) + len(new)
        for name, (kind, _, _) in COLUMNS.items():
            arr = group[name]
            arr.resize((n1,))
            arr[n0:n1] = _encode(kind, [row.get(name) for row in new])
        # the arrays grew: refresh the root's consolidated metadata (driver only)
        consolidate(loc)
    return index


def scene_count(path: StoreLike) -> int:
    """Number of scenes in the table (reads one array's metadata, not the table)."""
    loc = _require_store(path)
    group = _group(loc, "r")
    if group is None:
        return len(store_metadata(loc).get("scenes", []))
    return int(group["id"].shape[0])


def scene_params(path: StoreLike) -> dict[str, Any]:
    """The fitted parameters of every scene of a store: ``{scene id: SceneParams}``.

    Pass them to :func:`s2cube.composite` to composite a cube exactly as the store did.
    """
    from ..harmonize.fit import SceneParams

    cols, size = _read_columns(path, ["id", *PARAM_COLUMNS])
    out = {}
    for i in range(size):
        params = SceneParams.from_record({k: cols[k][i] for k in PARAM_COLUMNS})
        if params is not None:
            out[cols["id"][i]] = params
    return out


def scene_indices(path: StoreLike) -> dict[str, int]:
    """``{scene id: index}`` of a store's scene table (the values of its ``scene`` array)."""
    return {sid: i for i, sid in enumerate(_read_columns(path, ["id"])[0]["id"])}


def update_scene_params(path: StoreLike, params: Mapping[str, Mapping[str, Any]]) -> None:
    """Record per-scene parameters (haze score, transfer knots) in the scene table (driver only).

    Only the rows whose values change are written.
    """
    if not params:
        return
    loc = _require_store(path)
    group = _group(loc, "r+")
    if group is None:
        return
    cols, size = _read_columns(loc, ["id", *PARAM_COLUMNS])
    rows = {}
    for i in range(size):
        new = params.get(cols["id"][i])
        if new and any(cols[k][i] != _roundtrip(COLUMNS[k][0], new.get(k)) for k in new):
            rows[i] = new
    for name in PARAM_COLUMNS:
        kind = COLUMNS[name][0]
        values = list(cols[name])
        for i, new in rows.items():
            if name in new:
                values[i] = new[name]
        changed = sorted(i for i, new in rows.items() if name in new)
        if changed:
            lo, hi = changed[0], changed[-1] + 1
            group[name][lo:hi] = _encode(kind, values[lo:hi])


def _roundtrip(kind: str, value: Any) -> Any:
    return _decode(kind, _encode(kind, [value]))[0]


def scene_table(path: StoreLike) -> Any:
    """The store's scene table as a pandas DataFrame indexed by scene index."""
    import pandas as pd

    cols, size = _read_columns(path)
    df = pd.DataFrame({COLUMNS[n][1]: v for n, v in cols.items()}, index=pd.RangeIndex(size))
    df.index.name = "index"
    if not df.empty:
        df["datetime"] = pd.to_datetime(df["datetime"])
    return df
