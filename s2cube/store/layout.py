"""The on-disk layout of an s2cube store: format, variables, encodings and root metadata.

Layout (one store for the globe)::

    STORE/                      Zarr v3 group; attrs["s2cube"] = format, grid, bands
      red, green, blue, nir     uint16 (latitude, longitude), nodata 0, reflectance × 10000
      date                      uint16 days since 2015-01-01 (decoded to datetime64), 0 = none
      scene                     int32 index into the scene table, -1 = none
      clear_count               uint16 number of clear observations
      fill                      uint8 how the pixel was filled: 0 none, 1 observed in the
                                period, 2 donor from another period, 3 inpainted (docs/fill.md)
      latitude, longitude       pixel-centre coordinates (EPSG:4326)
      spatial_ref               CRS (CF grid mapping, WKT)
      scenes/                   the scene table: 1-D arrays on dimension ``scene_index``
                                (id, datetime, mgrs_tile, platform, haze, knots...)
      s2cube_manifest/<cell>.json   one record per finished cell (one object, written last)
      s2cube_lease/lease.json   the writer lease while a run writes (:mod:`.lease`)

The store may be a local folder or any fsspec URL (:mod:`.location`).  Every data array is
sharded by cell; each chunk inside a shard is zstd-compressed, then checksummed (crc32c), so a
damaged chunk fails to read (stores from before the checksum read as before, unchecked).

This module owns the constants of that layout (:data:`FORMAT`, :data:`DATE_EPOCH`,
:data:`MANIFEST_DIR`, :data:`PROVENANCE_VARS`), the Zarr encoding of every variable
(chunked for serving, sharded by cell), telling a store from any other path
(:func:`is_store`, :func:`check_store_path`) and reading and writing the root ``s2cube``
attributes (:func:`store_metadata`, :func:`store_grid`; only the driver writes them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import StoreError
from ..grid import GlobalGrid
from .location import StoreLike, StoreLocation, store_location

__all__ = [
    "DATE_EPOCH",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_DIR",
    "PROVENANCE_VARS",
    "FILL_VAR",
    "CHECKSUM_CODEC",
    "array_checksummed",
    "check_store_path",
    "chunk_compressors",
    "is_store",
    "store_grid",
    "store_metadata",
]

FORMAT = "s2cube-mosaic"
FORMAT_VERSION = 2  # 2: the scene table is the ``scenes`` group of 1-D arrays
DATE_EPOCH = "2015-01-01"


def days_to_dates(days: np.ndarray) -> np.ndarray:
    """Stored ``date`` (days since :data:`DATE_EPOCH`, 0 = none) → datetime64[ns], NaT for 0.

    >>> days_to_dates(np.array([0, 1])).astype(str).tolist()
    ['NaT', '2015-01-02T00:00:00.000000000']
    """
    dates = np.datetime64(DATE_EPOCH, "D") + days.astype("int64").astype("timedelta64[D]")
    return np.where(days > 0, dates, np.datetime64("NaT")).astype("datetime64[ns]")


MANIFEST_DIR = "s2cube_manifest"
PROVENANCE_VARS = ("date", "scene", "clear_count")
#: the fill code array (stores created before it lack it; cell writes and overviews skip it)
FILL_VAR = "fill"


# --------------------------------------------------------------------------- metadata
#: objects that may sit in a store folder before its template exists (the writer lease)
LEASE_NAMES = ("s2cube_lease",)  # the lease and its local lock file live in this folder


def json_object(data: bytes | None) -> dict[str, Any] | None:
    """A small JSON object the store wrote, or None: missing, torn or not an object.

    >>> json_object(b'{"a": 1}'), json_object(b'{"a"'), json_object(b"[1]"), json_object(None)
    ({'a': 1}, None, None, None)
    """
    if data is None:
        return None
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _root_meta(loc: StoreLocation) -> dict[str, Any] | None:
    return json_object(loc.get("zarr.json"))


def is_store(path: StoreLike, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True if ``path`` (a local path or a URL) is an s2cube store."""
    loc = store_location(path, storage_options)
    try:
        meta = _root_meta(loc)
    except OSError:
        return False
    if meta is None:
        return False
    return bool(meta.get("attributes", {}).get("s2cube", {}).get("format") == FORMAT)


def _require_store(
    path: StoreLike, storage_options: Mapping[str, Any] | None = None
) -> StoreLocation:
    loc = store_location(path, storage_options)
    if not is_store(loc):
        what = (
            "does not exist"
            if loc.is_empty(LEASE_NAMES)
            else "is not an s2cube store (no s2cube metadata in zarr.json)"
        )
        raise StoreError(
            f"{loc.url!r} {what}; create one with `s2cube mosaic --store {loc.url}` or "
            "s2cube.create_store()"
        )
    return loc


def check_store_path(path: StoreLike, storage_options: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`StoreError` if ``path`` exists and is neither an s2cube store nor empty."""
    loc = store_location(path, storage_options)
    if not is_store(loc) and not loc.is_empty(LEASE_NAMES):
        raise StoreError(
            f"{loc.url!r} exists and is not an s2cube store; refusing to write into it. "
            "Choose a new path (it will be created) or an existing s2cube store"
        )


def store_metadata(
    path: StoreLike, storage_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``s2cube`` attributes of a store (grid, bands...)."""
    loc = _require_store(path, storage_options)
    meta = _root_meta(loc)
    assert meta is not None  # _require_store checked it
    return dict(meta["attributes"]["s2cube"])


def _write_metadata(path: StoreLike, meta: dict[str, Any]) -> None:
    import zarr

    group = zarr.open_group(store_location(path).zarr_store(), mode="r+", zarr_format=3)
    group.attrs["s2cube"] = meta


def store_grid(path: StoreLike, storage_options: Mapping[str, Any] | None = None) -> GlobalGrid:
    return GlobalGrid.from_dict(store_metadata(path, storage_options)["grid"])


# --------------------------------------------------------------------------- encodings
#: the checksum codec that ends every chunk's codec chain (inside the shard): a flipped byte in
#: a chunk raises on read instead of decoding to other numbers (stores created before it have
#: only zstd, and the shard index's own checksum)
CHECKSUM_CODEC = "crc32c"


def chunk_compressors() -> list[Any]:
    """The bytes-to-bytes codecs of every data chunk: zstd, then a crc32c checksum of the
    compressed bytes.  With shards they form the inner chunk chain of the sharding codec."""
    import zarr.codecs

    return [zarr.codecs.ZstdCodec(level=3), zarr.codecs.Crc32cCodec()]


def array_checksummed(array_meta: Mapping[str, Any]) -> bool:
    """True if an array's ``zarr.json`` (parsed) checksums its chunk data (not only the shard
    index): a ``crc32c`` codec in the chunk chain, inside the sharding codec or outside."""

    def chain_has(codecs: Any) -> bool:
        for codec in codecs or []:
            name = codec.get("name") if isinstance(codec, dict) else None
            if name == CHECKSUM_CODEC:
                return True
            if name == "sharding_indexed":
                return chain_has((codec.get("configuration") or {}).get("codecs"))
        return False

    return chain_has(array_meta.get("codecs"))


def _encodings(grid: GlobalGrid, bands: Sequence[str]) -> dict[str, dict[str, Any]]:
    chunks = (grid.chunk_size, grid.chunk_size)
    shards = grid.cell_shape
    comp = chunk_compressors()
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
    enc[FILL_VAR] = {
        "chunks": chunks,
        "shards": shards,
        "compressors": comp,
        "dtype": "uint8",
        "fill_value": np.uint8(0),
    }
    coord_chunk = max(grid.cell_pixels, 2**16 // grid.cell_pixels * grid.cell_pixels)
    enc["latitude"] = {"chunks": (min(coord_chunk, grid.shape[0]),)}
    enc["longitude"] = {"chunks": (min(coord_chunk, grid.shape[1]),)}
    return enc
