"""The overview template inside a store: one group per level, and the ``multiscales`` record.

:func:`prepare_overviews` writes metadata and coordinates only (no data chunks), once, in the
driver; the builds in :mod:`s2cube.overviews.build` then write regions into it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import StoreError
from ..grid import GlobalGrid
from ..store import DATE_EPOCH, _require_store, consolidate, geozarr, store_metadata
from ..store.layout import FILL_VAR, chunk_compressors
from ..store.location import StoreLike, StoreLocation, store_location
from ..store.template import fill_attrs
from .levels import OVERVIEW_GROUP, Level, pyramid

__all__ = ["has_overviews", "prepare_overviews"]

MULTISCALES_SCHEMA = (
    "https://raw.githubusercontent.com/zarr-conventions/multiscales/refs/tags/v0.1/schema.json"
)
MULTISCALES_SPEC = "https://github.com/zarr-conventions/multiscales/blob/v0.1/README.md"
MULTISCALES_UUID = "d35379db-88df-4056-af3a-620245f8e347"


def _multiscales(levels: Sequence[Level]) -> dict[str, Any]:
    layout: list[dict[str, Any]] = []
    for lv in levels:
        entry: dict[str, Any] = {
            "asset": lv.path or ".",
            "transform": {"scale": [float(lv.factor)] * 2, "translation": [0.0, 0.0]},
            "proj:transform": list(lv.transform),
            "proj:shape": list(lv.shape),
            **geozarr.layout_spatial(lv.window),
            "s2cube:chunk": lv.chunk,
            "s2cube:per_cell": lv.per_cell,
        }
        if lv.index:
            entry["derived_from"] = levels[lv.index - 1].path or "."
            entry["transform"]["scale"] = [2.0, 2.0]
            entry["resampling_method"] = "average"
        layout.append(entry)
    return {
        "layout": layout,
        "resampling_method": "average",
        "s2cube:notes": (
            "asset '.' is the store's root group (full resolution). Reflectance: mean of valid "
            "(non-zero) children; date/scene/clear_count/fill: first valid child (NW, NE, SW, SE); "
            "fill where no child has a scene: the first filled (inpainted) child."
        ),
    }


def _level_template(
    lv: Level, bands: Sequence[str], fill: bool = True
) -> tuple[xr.Dataset, dict[str, Any]]:
    import dask.array as da

    from ..cube import _spatial_ref

    dims = ("latitude", "longitude")
    comp = chunk_compressors()
    chunks = (lv.chunk, lv.chunk)
    shard = {"shards": (lv.cell_pixels, lv.cell_pixels)} if lv.cell_pixels else {}
    big = lv.shape

    def lazy(dtype: str) -> Any:
        # one lazy chunk, never computed: the template writes metadata and coordinates only
        return da.zeros(big, dtype=dtype, chunks=big)

    data_vars: dict[str, Any] = {}
    enc: dict[str, Any] = {}
    for b in bands:
        data_vars[b] = (
            dims,
            lazy("uint16"),
            {
                "long_name": f"{b} surface reflectance (overview level {lv.index})",
                "units": "1e-4",
                "nodata": 0,
                "grid_mapping": "spatial_ref",
            },
        )
        enc[b] = {
            "chunks": chunks,
            "compressors": comp,
            "dtype": "uint16",
            "fill_value": np.uint16(0),
            **shard,
        }
    data_vars["date"] = (
        dims,
        lazy("uint16"),
        {
            "long_name": "acquisition date",
            "grid_mapping": "spatial_ref",
            "units": f"days since {DATE_EPOCH}",
            "calendar": "proleptic_gregorian",
        },
    )
    enc["date"] = {"chunks": chunks, "compressors": comp, "_FillValue": np.uint16(0), **shard}
    data_vars["scene"] = (
        dims,
        lazy("int32"),
        {"long_name": "index of the source scene", "nodata": -1, "grid_mapping": "spatial_ref"},
    )
    enc["scene"] = {
        "chunks": chunks,
        "compressors": comp,
        "dtype": "int32",
        "fill_value": np.int32(-1),
        **shard,
    }
    data_vars["clear_count"] = (
        dims,
        lazy("uint16"),
        {"long_name": "number of clear observations", "grid_mapping": "spatial_ref"},
    )
    enc["clear_count"] = {
        "chunks": chunks,
        "compressors": comp,
        "dtype": "uint16",
        "fill_value": np.uint16(0),
        **shard,
    }
    if fill:  # the fill code, taken with the provenance (stores from before it lack it)
        data_vars[FILL_VAR] = (dims, lazy("uint8"), fill_attrs())
        enc[FILL_VAR] = {
            "chunks": chunks,
            "compressors": comp,
            "dtype": "uint8",
            "fill_value": np.uint8(0),
            **shard,
        }
    lat_attrs = {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"}
    lon_attrs = {"standard_name": "longitude", "units": "degrees_east", "axis": "X"}
    ds = xr.Dataset(
        data_vars,
        coords={
            "latitude": ("latitude", lv.latitudes(), lat_attrs),
            "longitude": ("longitude", lv.longitudes(), lon_attrs),
            "spatial_ref": _spatial_ref(),
        },
    )
    ds["spatial_ref"].attrs["GeoTransform"] = " ".join(str(v) for v in lv.transform)
    ds.attrs["s2cube_overview"] = {
        "level": lv.index,
        "factor": lv.factor,
        "resolution": str(lv.resolution),
    }
    # GeoZarr proj: + spatial: conventions on the level group and its data arrays
    for node in (ds, *ds.data_vars.values()):
        node.attrs.update(geozarr.node_attrs(lv.window))
    enc["latitude"] = {"chunks": (min(lv.shape[0], 2**20),)}
    enc["longitude"] = {"chunks": (min(lv.shape[1], 2**20),)}
    return ds, enc


def _store_levels(path: StoreLike) -> tuple[GlobalGrid, list[str], list[Level]]:
    meta = store_metadata(path)
    grid = GlobalGrid.from_dict(meta["grid"])
    return grid, list(meta["bands"]), pyramid(grid)


def has_overviews(store: StoreLike) -> bool:
    """True if the store has an overview template (:func:`prepare_overviews` ran).

    Examples
    --------
    >>> has_overviews("mosaic.zarr")  # doctest: +SKIP
    True
    """
    p = store_location(store)
    try:
        attrs = json.loads(p.get("zarr.json") or b"{}").get("attributes", {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return "multiscales" in attrs and p.exists(f"{OVERVIEW_GROUP}/zarr.json")


def prepare_overviews(store: StoreLike) -> list[Level]:
    """Create the overview template (metadata and coordinates only) once; idempotent.

    Driver only: it writes the root ``multiscales`` attribute.  Call it before cell tasks that
    run :func:`~s2cube.overviews.build_cell_overviews`, so workers never race to create the
    template.

    Parameters
    ----------
    store
        An s2cube store.

    Returns
    -------
    list of Level
        The store's pyramid.

    Examples
    --------
    >>> [lv.index for lv in prepare_overviews("mosaic.zarr")][:3]  # doctest: +SKIP
    [0, 1, 2]
    """
    import zarr

    p = _require_store(store)
    _, bands, levels = _store_levels(p)
    had_consolidated = "consolidated_metadata" in json.loads(p.get("zarr.json") or b"{}")
    root = zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    if OVERVIEW_GROUP not in root:
        root.create_group(
            OVERVIEW_GROUP,
            attributes={
                "description": "s2cube overview levels; see the root attribute 'multiscales'"
            },
        )
    created = False
    for lv in levels[1:]:
        if p.exists(f"{lv.path}/zarr.json"):
            continue
        ds, enc = _level_template(lv, bands, fill=FILL_VAR in root)
        ds.to_zarr(
            p.zarr_store(),
            group=lv.path,
            mode="w-",
            compute=False,
            zarr_format=3,
            encoding=enc,
            consolidated=False,
        )
        created = True
    root = zarr.open_group(p.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False)
    multiscales = json.loads(json.dumps(_multiscales(levels)))
    if root.attrs.get("multiscales") != multiscales:
        known: Any = root.attrs.get("zarr_conventions", [])
        conventions = [c for c in known if c.get("schema_url") != MULTISCALES_SCHEMA]
        conventions.append(
            {
                "schema_url": MULTISCALES_SCHEMA,
                "spec_url": MULTISCALES_SPEC,
                "uuid": MULTISCALES_UUID,  # the published v0.1 schema requires it
                "name": "multiscales",
                "description": "Multiscale layout of zarr datasets",
            }
        )
        root.attrs.update({"multiscales": multiscales, "zarr_conventions": conventions})
        created = True
    if created and had_consolidated:
        # the store consolidates its (never-changing) array metadata at the root: add the
        # overview levels to it, or readers that trust it would not see them
        consolidate(p)
    return levels


def _require_template(p: StoreLocation) -> None:
    if not has_overviews(p):
        raise StoreError(
            f"store {str(p)!r} has no overview template; call "
            "s2cube.overviews.prepare_overviews(store) in the driver first (or build_overviews)"
        )
