"""The store's scene table: which scenes a store's pixels came from, and their parameters.

This module owns the ``scenes`` list of the root ``s2cube`` attributes: registering scenes
with stable indices (:func:`register_scenes`, driver only), recording their fitted parameters
(:func:`update_scene_params`, driver only) and reading them back (:func:`scene_params`,
:func:`scene_indices`, :func:`scene_table`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pystac

from .layout import _require_store, _write_metadata, store_metadata

__all__ = [
    "register_scenes",
    "scene_indices",
    "scene_params",
    "scene_table",
    "update_scene_params",
]


def register_scenes(path: str | os.PathLike[str], items: Iterable[pystac.Item]) -> dict[str, int]:
    """Add scenes to the store's scene table (driver only) and return ``{scene id: index}``.

    Indices are stable: a scene registered once keeps its index across runs.
    """
    p = _require_store(path)
    meta = store_metadata(p)
    table: list[dict[str, Any]] = list(meta.get("scenes", []))
    index = {s["id"]: s["index"] for s in table}
    added = False
    for it in items:
        if it.id in index:
            continue
        idx = len(table)
        when = it.datetime
        table.append(
            {
                "index": idx,
                "id": it.id,
                "datetime": when.isoformat() if when else None,
                "mgrs_tile": it.properties.get("s2cube:mgrs_tile"),
                "eo:cloud_cover": it.properties.get("eo:cloud_cover"),
                "processing_baseline": it.properties.get("s2:processing_baseline"),
                "boa_offset_removed": it.properties.get("s2cube:boa_offset", 0),
                "platform": it.properties.get("platform"),
            }
        )
        index[it.id] = idx
        added = True
    if added:
        meta["scenes"] = table
        _write_metadata(p, meta)
    return index


def scene_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The fitted parameters of every scene of a store: ``{scene id: SceneParams}``.

    Pass them to :func:`s2cube.composite` to composite a cube exactly as the store did.
    """
    from ..harmonize.fit import SceneParams

    out = {}
    for entry in store_metadata(path).get("scenes", []):
        params = SceneParams.from_record(entry)
        if params is not None:
            out[entry["id"]] = params
    return out


def scene_indices(path: str | os.PathLike[str]) -> dict[str, int]:
    """``{scene id: index}`` of a store's scene table (the values of its ``scene`` array)."""
    return {s["id"]: int(s["index"]) for s in store_metadata(path).get("scenes", [])}


def update_scene_params(path: str | os.PathLike[str], params: dict[str, dict[str, Any]]) -> None:
    """Record per-scene parameters (haze score, transfer knots) in the scene table (driver only)."""
    if not params:
        return
    p = _require_store(path)
    meta = store_metadata(p)
    changed = False
    for entry in meta.get("scenes", []):
        new = params.get(entry["id"])
        if new and any(entry.get(k) != v for k, v in new.items()):
            entry.update(new)
            changed = True
    if changed:
        _write_metadata(p, meta)


def scene_table(path: str | os.PathLike[str]) -> Any:
    """The store's scene table as a pandas DataFrame indexed by scene index."""
    import pandas as pd

    scenes = store_metadata(path).get("scenes", [])
    df = pd.DataFrame(scenes)
    if not df.empty:
        df["datetime"] = pd.to_datetime(df["datetime"])
        df = df.set_index("index")
    return df
