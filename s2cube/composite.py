"""Priority (best-available-pixel) composites with per-pixel provenance.

Per pixel, the composite takes the **first clear observation in priority order** (no median:
a real observation keeps its texture and its date, and a priority composite need not read
every scene).  When a pixel has no clear observation, snow observations are used as a
fallback; with neither, the pixel stays nodata (0) and is counted.

Priorities (the order of the time axis before the kernel runs):

* ``"recent"``: most recent first (default);
* ``"target:YYYY-MM-DD"``: closest to a target date first;
* ``"cloud"``: least cloudy scene (``eo:cloud_cover``) first.

Output per pixel: the reflectance bands (uint16, nodata 0), ``date`` (acquisition date of the
chosen observation), ``scene`` (index of the chosen scene in the scene table) and
``clear_count`` (number of clear or snow observations, i.e. usable views of the surface).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .errors import InputError
from .harmonize.blend import select_sources

__all__ = ["priority_order", "priority_composite", "composite"]


# --------------------------------------------------------------------------- kernels
def priority_composite(
    refl: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First usable observation along axis 0.

    Parameters
    ----------
    refl
        ``(time, band, y, x)`` uint16 reflectance, time already in priority order.
    codes
        ``(time, y, x)`` uint8 mask codes (see :mod:`s2cube.mask`).

    Returns
    -------
    composite : ``(band, y, x)`` uint16, 0 where no usable observation
    source : ``(y, x)`` int32 index along time of the chosen observation, -1 where none
    count : ``(y, x)`` uint16 number of usable (clear or snow) observations
    """
    if refl.ndim != 4 or codes.ndim != 3 or refl.shape[:1] + refl.shape[2:] != codes.shape:
        raise InputError(f"shapes do not match: refl {refl.shape}, codes {codes.shape}")
    source, count = select_sources(codes)
    if codes.shape[0] == 0:
        return np.zeros(refl.shape[1:], dtype=refl.dtype), source, count
    idx = np.clip(source, 0, None)
    out = np.take_along_axis(refl, idx[None, None, :, :], axis=0)[0]
    out = np.where(source[None] >= 0, out, 0).astype(refl.dtype, copy=False)
    return out, source, count


def _composite_block(refl: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Dask block function: pack the kernel's three outputs into one int32 array."""
    out, source, count = priority_composite(refl, codes[:, 0] if codes.ndim == 4 else codes)
    packed = np.empty((out.shape[0] + 2, *out.shape[1:]), dtype="int32")
    packed[:-2] = out
    packed[-2] = source
    packed[-1] = count
    return packed


# --------------------------------------------------------------------------- ordering
def priority_order(
    times: Sequence[np.datetime64] | pd.DatetimeIndex,
    *,
    priority: str = "recent",
    cloud_cover: Sequence[float] | None = None,
    ids: Sequence[str] | None = None,
) -> np.ndarray:
    """Indices that sort observations into priority order (ties broken by id, then position).

    Raises
    ------
    InputError
        For an unknown priority or a target date that cannot be parsed.
    """
    t = pd.DatetimeIndex(pd.to_datetime(np.asarray(times)))
    if t.tz is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    n = len(t)
    tie = np.asarray(ids if ids is not None else [""] * n, dtype=object)
    pos = np.arange(n)
    ns = t.asi8
    if priority == "recent":
        key: np.ndarray = -ns
    elif priority == "cloud":
        if cloud_cover is None:
            raise InputError("priority='cloud' needs the scenes' eo:cloud_cover")
        key = np.asarray(cloud_cover, dtype="float64")
    elif priority.startswith("target:"):
        text = priority.split(":", 1)[1]
        try:
            target = pd.Timestamp(dt.datetime.fromisoformat(text))
        except ValueError as exc:
            raise InputError(
                f"priority={priority!r}: {text!r} is not a date; use e.g. 'target:2023-08-15'"
            ) from exc
        if target.tz is not None:
            target = target.tz_convert("UTC").tz_localize(None)
        key = np.abs(ns - target.value).astype("float64")
    else:
        raise InputError(
            f"priority={priority!r}; choose 'recent', 'cloud' or 'target:YYYY-MM-DD'"
        )
    order = sorted(pos, key=lambda i: (key[i], str(tie[i]), i))
    return np.asarray(order, dtype="intp")


# --------------------------------------------------------------------------- wrapper
def composite(
    cube: xr.DataArray,
    codes: xr.DataArray,
    *,
    priority: str = "recent",
    bands: Sequence[str] | None = None,
    scene_index: Sequence[int] | None = None,
) -> xr.Dataset:
    """Priority composite of a cube given its mask.

    Parameters
    ----------
    cube
        ``(time, band, latitude, longitude)`` uint16 from :func:`s2cube.load`.
    codes
        ``(time, latitude, longitude)`` mask codes from :func:`s2cube.mask`.
    priority
        ``"recent"``, ``"cloud"`` or ``"target:YYYY-MM-DD"``.
    bands
        Reflectance bands to composite (default: every band but ``scl``).
    scene_index
        Per-``time`` index of each scene in the store's scene table (default: position along time).

    Returns
    -------
    xarray.Dataset
        One uint16 variable per band, ``date`` (datetime64[ns], NaT where none), ``scene``
        (int32, -1 where none) and ``clear_count`` (uint16), lazily if the cube is.

    Examples
    --------
    >>> ds = s2cube.composite(cube, s2cube.mask(cube), priority="target:2023-08-15")  # doctest: +SKIP
    """
    import dask.array as da

    if cube.sizes.get("time", 0) == 0:
        raise InputError("the cube has no observation (time axis is empty)")
    if codes.sizes["time"] != cube.sizes["time"]:
        raise InputError(
            f"mask has {codes.sizes['time']} observations but the cube has {cube.sizes['time']}"
        )
    all_bands = [b for b in cube.band.values.tolist() if b != "scl"]
    bands = list(bands) if bands is not None else all_bands
    missing = [b for b in bands if b not in all_bands]
    if missing:
        raise InputError(f"bands {missing} are not in the cube (it has {all_bands})")
    ids = cube.coords["id"].values if "id" in cube.coords else None
    cloud = cube.coords["eo:cloud_cover"].values if "eo:cloud_cover" in cube.coords else None
    order = priority_order(cube.time.values, priority=priority, cloud_cover=cloud, ids=ids)
    scenes = np.asarray(
        scene_index if scene_index is not None else np.arange(cube.sizes["time"]), dtype="int64"
    )
    if len(scenes) != cube.sizes["time"]:
        raise InputError(f"scene_index has {len(scenes)} entries for {cube.sizes['time']} scenes")

    refl = cube.sel(band=bands).isel(time=order)
    mask_o = codes.isel(time=order)
    times_o = cube.time.values[order].astype("datetime64[ns]")
    scenes_o = scenes[order]

    r = refl.data
    m = mask_o.data
    if isinstance(r, da.Array) or isinstance(m, da.Array):
        r = da.asarray(r)
        m = da.asarray(m)
        r = r.rechunk({0: -1, 1: -1})
        m = m.rechunk({0: -1, 1: r.chunks[2], 2: r.chunks[3]})
        packed = da.blockwise(
            _composite_block,
            "byx",
            r,
            "tbyx",
            m[:, None],
            "tzyx",
            new_axes={"b": len(bands) + 2},
            adjust_chunks={"b": len(bands) + 2},
            concatenate=True,
            dtype="int32",
            meta=np.empty((0, 0, 0), "int32"),
        )
    else:
        packed = _composite_block(np.asarray(r), np.asarray(m))

    source = packed[-2]
    dims = ("latitude", "longitude")
    coords = {k: v for k, v in cube.coords.items() if set(v.dims) <= set(dims)}
    out = xr.Dataset(coords=coords)
    for i, band in enumerate(bands):
        arr = packed[i].astype("uint16")
        out[band] = xr.DataArray(arr, dims=dims, attrs={"nodata": 0, "units": "DN (reflectance × 10000)"})
    lut_t = np.concatenate([times_o, np.array(["NaT"], dtype="datetime64[ns]")])
    lut_s = np.concatenate([scenes_o, [-1]]).astype("int32")
    # index -1 (no observation) picks the appended NaT / -1
    if isinstance(source, np.ndarray):
        date = lut_t[source]
        scene = lut_s[source]
    else:
        date = source.map_blocks(lambda s: lut_t[s], dtype="datetime64[ns]")
        scene = source.map_blocks(lambda s: lut_s[s], dtype="int32")
    out["date"] = xr.DataArray(date, dims=dims, attrs={"long_name": "acquisition date of the chosen observation"})
    out["scene"] = xr.DataArray(scene, dims=dims, attrs={"long_name": "index of the chosen scene in the scene table", "nodata": -1})
    out["clear_count"] = xr.DataArray(
        packed[-1].astype("uint16"), dims=dims,
        attrs={"long_name": "number of clear (or snow) observations"},
    )  # fmt: skip
    out.attrs = {
        "priority": priority,
        "composite": "priority (first clear observation)",
        **{k: v for k, v in cube.attrs.items() if k in ("cell", "halo", "crs", "grid")},
    }
    for name in out.data_vars:
        out[name].attrs["grid_mapping"] = "spatial_ref"
    return out
