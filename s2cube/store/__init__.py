"""The global Zarr v3 store: template, cell writes, manifest, scene table, open.

One store holds the globe on one grid, on local disk or object storage; the package owns every
read and write of it, one module each:

* :mod:`~s2cube.store.location`: where a store lives (:func:`store_location`: a path or any
  fsspec URL → :class:`StoreLocation`, its Zarr store and its small-object get/put);
* :mod:`~s2cube.store.lease`: the writer lease (:class:`Lease`), one writing run at a time;
* :mod:`~s2cube.store.layout`: the on-disk layout (format, variables and their encodings), what
  is a store (:func:`is_store`) and its root metadata (:func:`store_metadata`);
* :mod:`~s2cube.store.template`: :func:`create_store` (metadata and coordinates, no data) and
  :func:`consolidate`;
* :mod:`~s2cube.store.scenes`: the scene table, 1-D arrays in the ``scenes`` group
  (:func:`register_scenes`, :func:`scene_params`, :func:`scene_indices`, :func:`scene_table`);
* :mod:`~s2cube.store.cells`: cell writes and the manifest (:func:`write_cell`,
  :func:`write_empty_cell`, :func:`read_manifest`, :func:`cells_done`);
* :mod:`~s2cube.store.read`: :func:`open_store` and :func:`store_info`;
* :mod:`~s2cube.store.verify`: integrity: the cheap check a resume runs before skipping a
  finished cell (:func:`finished_cells`) and the full re-read behind ``s2cube verify``
  (:func:`verify_store`, :func:`forget_cells`).

Every data array is **sharded by cell** and one cell is written by exactly one task, its
manifest record last, so an interrupted run leaves no record and a rerun recomputes exactly the
cells that are not finished.  Only the driver writes the root attributes and the scene table,
while it holds the store's lease.
Import from ``s2cube.store``; the modules are its layout, not its interface.
"""

from __future__ import annotations

from .cells import _atomic_write_json as _atomic_write_json
from .cells import _cell_header as _cell_header
from .cells import _encode_cell as _encode_cell
from .cells import cells_done, read_manifest, write_cell, write_empty_cell
from .cells import forget_cell as forget_cell
from .cells import read_record as read_record
from .layout import DATE_EPOCH, FORMAT, is_store, store_metadata
from .layout import FILL_VAR as FILL_VAR
from .layout import FORMAT_VERSION as FORMAT_VERSION
from .layout import LEASE_NAMES as LEASE_NAMES
from .layout import MANIFEST_DIR as MANIFEST_DIR
from .layout import PROVENANCE_VARS as PROVENANCE_VARS
from .layout import _encodings as _encodings
from .layout import _require_store as _require_store
from .layout import _write_metadata as _write_metadata
from .layout import check_store_path as check_store_path
from .layout import days_to_dates as days_to_dates
from .layout import store_grid as store_grid
from .lease import Lease, LeaseError, LeaseLostError, check_lease, read_lease
from .location import StoreLike, StoreLocation, StoreURLError, store_location
from .location import parse_storage_options as parse_storage_options
from .read import open_store, store_info
from .scenes import SCENES_GROUP as SCENES_GROUP
from .scenes import register_scenes, scene_count, scene_indices, scene_params
from .scenes import scene_table as scene_table
from .scenes import update_scene_params as update_scene_params
from .template import consolidate as consolidate
from .template import create_store
from .verify import VerifyReport, finished_cells, forget_cells, verify_store

__all__ = [
    "FORMAT",
    "create_store",
    "open_store",
    "is_store",
    "store_metadata",
    "register_scenes",
    "scene_indices",
    "scene_params",
    "write_cell",
    "write_empty_cell",
    "read_manifest",
    "cells_done",
    "store_info",
    "DATE_EPOCH",
    "StoreLike",
    "StoreLocation",
    "StoreURLError",
    "store_location",
    "Lease",
    "LeaseError",
    "LeaseLostError",
    "check_lease",
    "read_lease",
    "scene_count",
    "finished_cells",
    "verify_store",
    "forget_cells",
    "VerifyReport",
]
