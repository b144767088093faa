"""The store template: creating a global store (metadata and coordinates, no data) once.

This module owns :func:`create_store` (every variable, its attributes and encoding, the root
``s2cube`` metadata and the manifest group, written with ``compute=False`` so no data chunk
exists until a cell is written) and :func:`consolidate` (the driver-side metadata
consolidation, silencing only zarr's notice about it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from ..errors import StoreError
from ..grid import DEFAULT_GRID, GlobalGrid
from ..render import rendering_attrs
from . import geozarr
from .layout import (
    DATE_EPOCH,
    FILL_VAR,
    FORMAT,
    FORMAT_VERSION,
    LEASE_NAMES,
    MANIFEST_DIR,
    _encodings,
    is_store,
    store_metadata,
)
from .location import StoreLike, StoreLocation, store_location

__all__ = ["consolidate", "create_store", "fill_attrs"]


def fill_attrs() -> dict[str, Any]:
    """CF attributes of the ``fill`` variable (its codes and their meanings)."""
    from ..fill.kernels import FILL_CODES

    return {
        "long_name": "how the pixel was filled",
        "flag_values": list(FILL_CODES),
        "flag_meanings": " ".join(FILL_CODES.values()),
        "grid_mapping": "spatial_ref",
    }


def create_store(
    path: StoreLike,
    *,
    grid: GlobalGrid = DEFAULT_GRID,
    bands: Sequence[str] = ("red", "green", "blue", "nir"),
    exist_ok: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | StoreLocation:
    """Create the global store template (metadata and coordinates only, no data chunks).

    Parameters
    ----------
    path
        The Zarr v3 store: a local directory or an fsspec URL (``s3://bucket/m.zarr``).
    grid
        The global grid; fixed for the store's life.
    bands
        Reflectance bands stored as uint16 variables.
    exist_ok
        If the store exists with the same grid and bands, return it; otherwise raise.
    storage_options
        fsspec options for a URL (credentials, endpoint); see :mod:`s2cube.store.location`.

    Returns
    -------
    pathlib.Path or StoreLocation
        The local directory, or the resolved location of a URL.

    Raises
    ------
    StoreError
        If ``path`` exists and is not an s2cube store, or is one with another grid or bands.
    """
    import dask.array as da

    from ..cube import _spatial_ref

    p = store_location(path, storage_options)
    if not p.is_empty(LEASE_NAMES):
        if is_store(p):
            meta = store_metadata(p)
            if GlobalGrid.from_dict(meta["grid"]) != grid or list(meta["bands"]) != list(bands):
                raise StoreError(
                    f"store {str(p)!r} exists with grid {meta['grid']} and bands {meta['bands']}, "
                    f"which differ from the requested grid {grid.to_dict()} and bands "
                    f"{list(bands)}; use another store path or the store's grid"
                )
            if not exist_ok:
                raise StoreError(f"store {str(p)!r} exists already")
            return p.path if p.is_local else p
        else:
            raise StoreError(
                f"{str(p)!r} exists and is not an s2cube store; refusing to write into it. "
                "Choose a new path (it will be created) or an existing s2cube store"
            )
    n_lat, n_lon = grid.shape
    # one lazy dask chunk per variable: never computed (compute=False writes metadata and
    # coordinates only), and a single chunk always aligns with the shards
    big = (n_lat, n_lon)
    dims = ("latitude", "longitude")
    data_vars: dict[str, Any] = {}
    for band in bands:
        data_vars[band] = (
            dims,
            da.zeros((n_lat, n_lon), dtype="uint16", chunks=big),
            {
                "long_name": f"{band} surface reflectance",
                "units": "1e-4",
                "nodata": 0,
                "grid_mapping": "spatial_ref",
            },
        )
    data_vars["date"] = (
        dims,
        da.zeros((n_lat, n_lon), dtype="uint16", chunks=big),
        {"long_name": "acquisition date of the chosen observation", "grid_mapping": "spatial_ref"},
    )
    data_vars["scene"] = (
        dims,
        da.zeros((n_lat, n_lon), dtype="int32", chunks=big),
        {
            "long_name": "index of the source scene in the scene table (group 'scenes')",
            "nodata": -1,
            "grid_mapping": "spatial_ref",
        },
    )
    data_vars["clear_count"] = (
        dims,
        da.zeros((n_lat, n_lon), dtype="uint16", chunks=big),
        {"long_name": "number of clear observations", "grid_mapping": "spatial_ref"},
    )
    data_vars[FILL_VAR] = (
        dims,
        da.zeros((n_lat, n_lon), dtype="uint8", chunks=big),
        fill_attrs(),
    )
    ds = xr.Dataset(
        data_vars,
        coords={
            "latitude": (
                "latitude",
                grid.latitudes(),
                {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
            ),
            "longitude": (
                "longitude",
                grid.longitudes(),
                {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
            ),
            "spatial_ref": _spatial_ref(),
        },
    )
    ds["spatial_ref"].attrs["GeoTransform"] = " ".join(str(v) for v in grid.transform)
    # date is stored encoded (uint16 days); declare it so xarray decodes to datetime64
    ds["date"].attrs.update(
        {"units": f"days since {DATE_EPOCH}", "calendar": "proleptic_gregorian"}
    )
    enc = _encodings(grid, bands)
    enc["date"].pop("units")
    enc["date"].pop("calendar")
    enc["date"].pop("dtype")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "grid": grid.to_dict(),
        "bands": list(bands),
        "nodata": 0,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "attribution": "Contains modified Copernicus Sentinel data",
        # the true-colour rendering the store is served with (tone curve name + version)
        "rendering": rendering_attrs(),
    }
    ds.attrs["s2cube"] = meta
    ds.attrs["Conventions"] = "CF-1.9"
    # GeoZarr proj: + spatial: conventions on the root and every data array (next to CF)
    for node in (ds, *ds.data_vars.values()):
        node.attrs.update(geozarr.node_attrs(grid.window()))
    # "a", not "w-": the folder may already hold the writer lease (checked empty otherwise)
    ds.to_zarr(
        p.zarr_store(), mode="a", compute=False, zarr_format=3, encoding=enc, consolidated=False
    )
    # the manifest directory is an (empty) Zarr group, so Zarr readers listing the store do
    # not trip over unknown objects; its records are plain JSON files inside it
    import zarr

    zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3).create_group(
        MANIFEST_DIR, attributes={"description": "s2cube: one JSON record per finished cell"}
    )
    from .scenes import create_scene_group

    create_scene_group(p)
    # array metadata never changes after creation: consolidate it once so that readers
    # (xr.open_zarr) open the store with one request
    consolidate(p)
    return p.path if p.is_local else p


def consolidate(path: StoreLike) -> None:
    """Consolidate a store's metadata (driver side only, never inside a task).

    zarr warns on every call that consolidated metadata is not yet part of the Zarr v3
    specification, and for every object it walks past that is not Zarr: s2cube's own JSON
    objects (manifest records, the writer lease) sit inside groups of their own on purpose.
    Those notices are silenced by their messages, nothing else.
    """
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        warnings.filterwarnings(
            "ignore",
            message=r"Object at ([^ /]+\.json|\.lease\.json\.lock|s2cube_built) is not "
            "recognized as a component",
        )
        zarr.consolidate_metadata(store_location(path).zarr_store(), zarr_format=3)
