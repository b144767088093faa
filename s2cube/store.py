"""The global Zarr v3 store: template, cell writes, manifest, scene table, open.

Layout (one store for the globe)::

    STORE/                      Zarr v3 group; attrs["s2cube"] = format, grid, bands, scene table
      red, green, blue, nir     uint16 (latitude, longitude), nodata 0, reflectance × 10000
      date                      uint16 days since 2015-01-01 (decoded to datetime64), 0 = none
      scene                     int32 index into the scene table, -1 = none
      clear_count               uint16 number of clear observations
      latitude, longitude       pixel-centre coordinates (EPSG:4326)
      spatial_ref               CRS (CF grid mapping, WKT)
      s2cube_manifest/<cell>.json   one record per finished cell (written last, atomically)

Every data array is chunked for serving (``grid.chunk_size`` px) and **sharded by cell**, so
one cell is one shard per variable and is written by exactly one task: there are never two
writers on a shard (Zarr v3 would lose data silently).  Shards of untouched cells are never
written, so the ocean costs nothing.  A cell's manifest record is written only after all its
shards are, so an interrupted run leaves no record and a rerun recomputes exactly the cells
that are not finished.  Only the driver writes the root attributes (scene table).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import xarray as xr

from .errors import InputError, StoreError
from .grid import DEFAULT_GRID, Cell, GlobalGrid

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


# --------------------------------------------------------------------------- template
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


def create_store(
    path: str | os.PathLike[str],
    *,
    grid: GlobalGrid = DEFAULT_GRID,
    bands: Sequence[str] = ("red", "green", "blue", "nir"),
    exist_ok: bool = True,
) -> Path:
    """Create the global store template (metadata and coordinates only, no data chunks).

    Parameters
    ----------
    path
        Directory of the Zarr v3 store.
    grid
        The global grid; fixed for the store's life.
    bands
        Reflectance bands stored as uint16 variables.
    exist_ok
        If the store exists with the same grid and bands, return it; otherwise raise.

    Raises
    ------
    StoreError
        If ``path`` exists and is not an s2cube store, or is one with another grid or bands.
    """
    import dask.array as da

    from .cube import _spatial_ref

    p = Path(path)
    if p.exists():
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
            return p
        if p.is_file() or any(p.iterdir()):
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
            "long_name": "index of the source scene in attrs['s2cube']['scenes']",
            "nodata": -1,
            "grid_mapping": "spatial_ref",
        },
    )
    data_vars["clear_count"] = (
        dims,
        da.zeros((n_lat, n_lon), dtype="uint16", chunks=big),
        {"long_name": "number of clear observations", "grid_mapping": "spatial_ref"},
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
        "scenes": [],
        "attribution": "Contains modified Copernicus Sentinel data",
    }
    ds.attrs["s2cube"] = meta
    ds.attrs["Conventions"] = "CF-1.9"
    ds.to_zarr(str(p), mode="w-", compute=False, zarr_format=3, encoding=enc, consolidated=False)
    # the manifest directory is an (empty) Zarr group, so Zarr readers listing the store do
    # not trip over unknown objects; its records are plain JSON files inside it
    import zarr

    zarr.open_group(str(p), mode="r+", zarr_format=3).create_group(
        MANIFEST_DIR, attributes={"description": "s2cube: one JSON record per finished cell"}
    )
    # array metadata never changes after creation: consolidate it once so that readers
    # (xr.open_zarr) open the store with one request
    consolidate(p)
    return p


def consolidate(path: str | os.PathLike[str]) -> None:
    """Consolidate a store's metadata (driver side only, never inside a task).

    zarr warns on every call that consolidated metadata is not yet part of the Zarr v3
    specification; that one notice is silenced by its message, nothing else.
    """
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(str(path), zarr_format=3)


# --------------------------------------------------------------------------- scenes
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
    from .harmonize.fit import SceneParams

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


# --------------------------------------------------------------------------- manifest
def _manifest_dir(path: Path) -> Path:
    return path / MANIFEST_DIR


def read_manifest(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Finished cells: ``{cell name: record}``."""
    p = _require_store(path)
    out: dict[str, dict[str, Any]] = {}
    d = _manifest_dir(p)
    if d.is_dir():
        for f in sorted(d.glob("r*c*.json")):
            try:
                rec = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # a torn record is the same as no record
            out[rec["cell"]] = rec
    return out


def cells_done(path: str | os.PathLike[str]) -> set[str]:
    return set(read_manifest(path))


def _atomic_write_json(target: Path, payload: dict[str, Any]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=1, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def forget_cell(path: str | os.PathLike[str], cell: Cell) -> None:
    """Remove a cell's manifest record (before overwriting it)."""
    (_manifest_dir(Path(path)) / f"{cell.name}.json").unlink(missing_ok=True)


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
    return out


def write_cell(
    path: str | os.PathLike[str],
    cell: Cell,
    ds: xr.Dataset,
    *,
    record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write one cell's composite into its shards, then its manifest record.

    ``ds`` covers exactly the cell (no halo) on the store's grid.  Returns the record.
    This is the only function that writes data arrays; call it once per cell.
    """
    import zarr

    p = _require_store(path)
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
    group = zarr.open_group(str(p), mode="r+", zarr_format=3)
    for name, arr in encoded.items():
        target: Any = group[name]  # an array (zarr types members as array-or-group)
        target[window.rows, window.cols] = arr
    valid = encoded["scene"] >= 0
    has_data = encoded[bands[0]] > 0
    days = encoded["date"][valid]
    rec = {
        **_cell_header(grid, cell),
        "n_pixels": int(valid.size),
        "n_composited": int(valid.sum()),
        "n_nodata": int((~valid).sum()),
        "n_without_clear": int((~valid & (encoded["clear_count"] == 0)).sum()),
        "valid_fraction": float(has_data.mean()),
        "scenes_used": sorted({int(s) for s in np.unique(encoded["scene"][valid])}),
        "date_min": str(np.datetime64(DATE_EPOCH) + int(days.min())) if days.size else None,
        "date_max": str(np.datetime64(DATE_EPOCH) + int(days.max())) if days.size else None,
        **(record or {}),
    }
    _atomic_write_json(_manifest_dir(p) / f"{cell.name}.json", rec)
    return rec


def _cell_header(grid: GlobalGrid, cell: Cell) -> dict[str, Any]:
    """The manifest fields every finished cell has: where it is and when it finished."""
    return {
        "cell": cell.name,
        "row": cell.row,
        "col": cell.col,
        "bounds": list(grid.cell_window(cell).bounds),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_empty_cell(
    path: str | os.PathLike[str], cell: Cell, *, record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Record a cell that no scene covers as finished, without writing any shard.

    ``record`` (the run's options) is merged into the manifest record, as for written cells.
    """
    p = _require_store(path)
    grid = GlobalGrid.from_dict(store_metadata(p)["grid"])
    n = grid.cell_pixels**2
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
    _atomic_write_json(_manifest_dir(p) / f"{cell.name}.json", rec)
    return rec


# --------------------------------------------------------------------------- open
def open_store(
    path: str | os.PathLike[str],
    *,
    bbox: Sequence[float] | None = None,
    cell: Cell | str | None = None,
    chunks: dict[str, int] | bool | None = None,
) -> xr.Dataset:
    """Open a store lazily with xarray (CRS decoded, dates as datetime64).

    Parameters
    ----------
    path
        The store.
    bbox
        Optional lon/lat subset ``(west, south, east, north)``: the pixels whose centres lie
        inside it, edges included (``GlobalGrid.window_of_bbox(bbox, pixels="centres")``).
    cell
        Optional cell (or cell name) subset; with ``bbox`` too, the pixels in both.
    chunks
        Dask chunks of the result (default: ~2048 px multiples of the store's chunks for a
        subset, one chunk per cell for the whole globe); ``False`` for no dask.

    Examples
    --------
    >>> ds = s2cube.open_store("mosaic.zarr", bbox=(15.5, 46.0, 16.0, 46.5))  # doctest: +SKIP
    >>> ds.rio.crs  # doctest: +SKIP
    CRS.from_epsg(4326)
    """
    import rioxarray  # noqa: F401  (registers .rio)

    p = _require_store(path)
    meta = store_metadata(p)
    # open without dask first: a global store has millions of chunks, and a dask graph over
    # all of them makes every later subset crawl; subset lazily, then chunk what is left
    ds = xr.open_zarr(str(p), decode_coords="all", chunks=None, zarr_format=3)
    grid = GlobalGrid.from_dict(meta["grid"])
    window = grid.window()
    if cell is not None:
        window = window.intersection(
            grid.cell_window(Cell.from_name(cell) if isinstance(cell, str) else cell)
        )
    if bbox is not None:
        # the pixels whose centres lie in the bbox, as a label selection on the coordinates
        # would pick, but computed exactly on the grid instead of on float coordinates
        window = window.intersection(grid.window_of_bbox(bbox, pixels="centres"))
    if cell is not None or bbox is not None:
        ds = ds.isel(latitude=window.rows, longitude=window.cols)
    if chunks is None:
        subset = cell is not None or bbox is not None
        edge = grid.chunk_size * max(1, 2048 // grid.chunk_size) if subset else grid.cell_pixels
        chunks = {"latitude": edge, "longitude": edge}
    if chunks is not False:
        ds = ds.chunk(chunks)
    ds = ds.rio.write_crs("EPSG:4326", grid_mapping_name="spatial_ref")
    ds.attrs["scenes"] = len(meta.get("scenes", []))
    return ds


def scene_table(path: str | os.PathLike[str]) -> Any:
    """The store's scene table as a pandas DataFrame indexed by scene index."""
    import pandas as pd

    scenes = store_metadata(path).get("scenes", [])
    df = pd.DataFrame(scenes)
    if not df.empty:
        df["datetime"] = pd.to_datetime(df["datetime"])
        df = df.set_index("index")
    return df


def store_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summary of a store: grid, cells done, coverage, dates, scenes."""
    meta = store_metadata(path)
    manifest = read_manifest(path)
    n_pix = sum(r["n_pixels"] for r in manifest.values())
    n_comp = sum(r["n_composited"] for r in manifest.values())
    dmins = [r["date_min"] for r in manifest.values() if r.get("date_min")]
    dmaxs = [r["date_max"] for r in manifest.values() if r.get("date_max")]
    return {
        "path": str(Path(path)),
        "grid": meta["grid"],
        "bands": meta["bands"],
        "cells_done": len(manifest),
        "cells": sorted(manifest),
        "pixels": n_pix,
        "composited_fraction": (n_comp / n_pix) if n_pix else 0.0,
        "date_min": min(dmins) if dmins else None,
        "date_max": max(dmaxs) if dmaxs else None,
        "scenes": len(meta.get("scenes", [])),
        "metrics": {k: r.get("metrics") for k, r in manifest.items() if r.get("metrics")},
    }
