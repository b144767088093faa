"""A loaded cube as one ``.npz`` file: how the GPU check carries a real cell to a machine
that has no rasterio, stackstac or ``../shared`` (``scripts/device/prepare.sh`` writes it).

Only plain numpy arrays and JSON go in (``allow_pickle=False`` on the way back): the values,
every coordinate along a dimension or over ``time``, and the attributes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr


def save_cube(cube: xr.DataArray, path: str | Path) -> Path:
    """Write ``cube`` (computed) with its coordinates to ``path`` (``.npz``)."""
    arrays: dict[str, Any] = {"values": np.asarray(cube.values)}
    coords: dict[str, list[str]] = {}
    for name, coord in cube.coords.items():
        if coord.ndim > 1 or (coord.ndim == 1 and coord.dims[0] not in cube.dims):
            continue
        values = np.asarray(coord.values)
        if values.dtype == object:
            values = values.astype(str)
        arrays[f"coord:{name}"] = values
        coords[str(name)] = [str(d) for d in coord.dims]
    meta = {"dims": list(cube.dims), "coords": coords, "attrs": _jsonable(cube.attrs)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return path


def load_cube(path: str | Path) -> xr.DataArray:
    """The cube :func:`save_cube` wrote, as a numpy-backed ``xarray.DataArray``."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(bytes(f["meta"]).decode())
        coords = {name: (tuple(dims), f[f"coord:{name}"]) for name, dims in meta["coords"].items()}
        return xr.DataArray(f["values"], dims=meta["dims"], coords=coords, attrs=meta["attrs"])


def _jsonable(attrs: dict[Any, Any]) -> dict[str, Any]:
    out = {}
    for key, value in attrs.items():
        try:
            json.dumps(value)
        except TypeError:
            value = str(value)
        out[str(key)] = value
    return out
