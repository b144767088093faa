"""The on-disk layout of an s2cube store: format, variables, encodings and root metadata.

Layout (one store for the globe)::

    STORE/                      Zarr v3 group; attrs["s2cube"] = format, grid, bands, scene table
      red, green, blue, nir     uint16 (latitude, longitude), nodata 0, reflectance × 10000
      date                      uint16 days since 2015-01-01 (decoded to datetime64), 0 = none
      scene                     int32 index into the scene table, -1 = none
      clear_count               uint16 number of clear observations
      latitude, longitude       pixel-centre coordinates (EPSG:4326)
      spatial_ref               CRS (CF grid mapping, WKT)
      s2cube_manifest/<cell>.json   one record per finished cell (written last, atomically)

This module owns the constants of that layout (:data:`FORMAT`, :data:`DATE_EPOCH`,
:data:`MANIFEST_DIR`, :data:`PROVENANCE_VARS`), the Zarr encoding of every variable
(chunked for serving, sharded by cell), telling a store from any other path
(:func:`is_store`, :func:`check_store_path`) and reading and writing the root ``s2cube``
attributes (:func:`store_metadata`, :func:`store_grid`; only the driver writes them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..grid import GlobalGrid

__all__ = [
    "DATE_EPOCH",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_DIR",
    "PROVENANCE_VARS",
    "check_store_path",
    "is_store",
    "store_grid",
    "store_metadata",
]

FORMAT = "s2cube-mosaic"
FORMAT_VERSION = 1
DATE_EPOCH = "2015-01-01"
MANIFEST_DIR = "s2cube_manifest"
PROVENANCE_VARS = ("date", "scene", "clear_count")


# --------------------------------------------------------------------------- metadata
def is_store(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is an s2cube store."""
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        return False
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, json.JSONDecodeError):
        return False
    return attrs.get("s2cube", {}).get("format") == FORMAT


def _require_store(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not is_store(p):
        what = (
            "does not exist"
            if not p.exists()
            else "is not an s2cube store (no s2cube metadata in zarr.json)"
        )
        raise StoreError(
            f"{str(p)!r} {what}; create one with `s2cube mosaic --store {p}` or "
            "s2cube.create_store()"
        )
    return p


def check_store_path(path: str | os.PathLike[str]) -> None:
    """Raise :class:`StoreError` if ``path`` exists and is neither an s2cube store nor empty."""
    p = Path(path)
    if p.exists() and not is_store(p) and (p.is_file() or any(p.iterdir())):
        raise StoreError(
            f"{str(p)!r} exists and is not an s2cube store; refusing to write into it. "
            "Choose a new path (it will be created) or an existing s2cube store"
        )


def store_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``s2cube`` attributes of a store (grid, bands, scene table...)."""
    p = _require_store(path)
    return dict(json.loads((p / "zarr.json").read_text())["attributes"]["s2cube"])


def _write_metadata(path: Path, meta: dict[str, Any]) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="r+", zarr_format=3)
    group.attrs["s2cube"] = meta


def store_grid(path: str | os.PathLike[str]) -> GlobalGrid:
    return GlobalGrid.from_dict(store_metadata(path)["grid"])


# --------------------------------------------------------------------------- encodings
def _encodings(grid: GlobalGrid, bands: Sequence[str]) -> dict[str, dict[str, Any]]:
    import zarr.codecs

    chunks = (grid.chunk_size, grid.chunk_size)
    shards = grid.cell_shape
    comp = [zarr.codecs.ZstdCodec(level=3)]
    enc: dict[str, dict[str, Any]] = {}
    for band in bands:
        # zarr fill_value (not CF _FillValue): reflectance opens as uint16, not masked float
        enc[band] = {
            "chunks": chunks,
            "shards": shards,
            "compressors": comp,
            "dtype": "uint16",
            "fill_value": np.uint16(0),
        }
    enc["date"] = {
        "chunks": chunks,
        "shards": shards,
        "compressors": comp,
        "dtype": "uint16",
        "_FillValue": np.uint16(0),
        "units": f"days since {DATE_EPOCH}",
        "calendar": "proleptic_gregorian",
    }
    enc["scene"] = {
        "chunks": chunks,
        "shards": shards,
        "compressors": comp,
        "dtype": "int32",
        "fill_value": np.int32(-1),
    }
    enc["clear_count"] = {
        "chunks": chunks,
        "shards": shards,
        "compressors": comp,
        "dtype": "uint16",
        "fill_value": np.uint16(0),
    }
    coord_chunk = max(grid.cell_pixels, 2**16 // grid.cell_pixels * grid.cell_pixels)
    enc["latitude"] = {"chunks": (min(coord_chunk, grid.shape[0]),)}
    enc["longitude"] = {"chunks": (min(coord_chunk, grid.shape[1]),)}
    return enc
