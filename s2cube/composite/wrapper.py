"""``s2cube.composite``: the notebook-sized call, on the store's compositing kernel.

:func:`composite` runs :func:`~s2cube.composite.kernels.composite_window` — the kernel every
block of ``s2cube mosaic`` runs — over any cube, with the same options
(:class:`~s2cube.config.MosaicConfig`: priority, haze demotion, harmonization, blending,
mask method).  Given a store's scene parameters (its fitted transfers and haze scores) and a
cell loaded with the config's halo, it returns exactly the pixels the store holds for that
cell.  Without them, the scene parameters are fitted on the cube itself.

Output per pixel: the reflectance bands (uint16, nodata 0), ``date`` (acquisition date of the
chosen observation), ``scene`` (index of the chosen scene in the scene table) and
``clear_count`` (number of clear or snow observations, i.e. usable views of the surface).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..config import CompositeSpec, MosaicConfig
from ..errors import InputError
from ..harmonize.fit import SceneParams, fit_cube_params
from .engine import unpack_composite
from .kernels import composite_window
from .order import demote_hazy, priority_order

__all__ = ["composite"]


def _composite_chunk(
    block: np.ndarray,
    *,
    n_b: int,
    knots: Any,
    spec: CompositeSpec,
    scenes: np.ndarray,
    depth: tuple[int, int],
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """Dask block function: ``(time, band + codes, y, x)`` with ``depth`` (y, x) px of overlap
    where a neighbouring chunk exists → packed ``(band + 2, y, x)`` int32 of the chunk's core."""
    (_, _, i, j) = block_info[0]["chunk-location"] if block_info else (0, 0, 0, 0)
    (_, _, ni, nj) = block_info[0]["num-chunks"] if block_info else (1, 1, 1, 1)
    dy, dx = depth
    # boundary="none": chunks on the array's edge got no overlap on that side
    crop = (
        dy if i > 0 else 0,
        dy if i < ni - 1 else 0,
        dx if j > 0 else 0,
        dx if j < nj - 1 else 0,
    )
    refl = block[:, :n_b]
    codes = block[:, n_b].astype("uint8")
    out, source, count = composite_window(refl, codes, knots, spec, crop=crop)
    packed = np.empty((n_b + 2, *source.shape), dtype="int32")
    packed[:n_b] = out
    packed[n_b] = np.append(scenes, -1).astype("int32")[source]  # -1 → the appended -1
    packed[n_b + 1] = count
    return packed


def composite(
    cube: xr.DataArray,
    codes: xr.DataArray | None = None,
    *,
    config: MosaicConfig | None = None,
    scene_params: Mapping[str, SceneParams] | None = None,
    scene_index: Sequence[int] | Mapping[str, int] | None = None,
    bands: Sequence[str] | None = None,
    **options: Any,
) -> xr.Dataset:
    """Priority composite of a cube: harmonized, blended, with per-pixel provenance.

    Parameters
    ----------
    cube
        ``(time, band, latitude, longitude)`` uint16 from :func:`s2cube.load` (numpy or dask).
    codes
        ``(time, latitude, longitude)`` mask codes from :func:`s2cube.mask`; default: computed
        with the config's ``mask_method``, ``model`` and dilations.
    config
        The :class:`~s2cube.config.MosaicConfig` (default: the store's defaults).  Keyword
        ``options`` replace single fields, e.g. ``priority="cloud"``, ``blend="none"``.
    scene_params
        Per scene id, fitted transfers and haze score (e.g.
        :func:`s2cube.store.scene_params` of a store); default: fitted on this cube.
    scene_index
        Per-``time`` index of each scene in the store's scene table, or ``{scene id: index}``
        (default: position along time).
    bands
        Reflectance bands to composite (default: every band but ``scl``).

    Returns
    -------
    xarray.Dataset
        One uint16 variable per band, ``date`` (datetime64[ns], NaT where none), ``scene``
        (int32, -1 where none) and ``clear_count`` (uint16), lazily if the cube is.

    Examples
    --------
    >>> cfg = s2cube.MosaicConfig(priority="target:2023-08-15")  # doctest: +SKIP
    >>> cube = s2cube.load(items, cell, grid=grid, halo=cfg.halo)  # doctest: +SKIP
    >>> ds = s2cube.composite(cube, config=cfg)  # doctest: +SKIP
    """
    import dask.array as da

    config = config or MosaicConfig()
    if options:
        config = dataclasses.replace(config, **options)
    n_t = cube.sizes.get("time", 0)
    if n_t == 0:
        raise InputError("the cube has no observation (time axis is empty)")
    if codes is None:
        codes = _codes(cube, config)
    if codes.sizes["time"] != n_t:
        raise InputError(f"mask has {codes.sizes['time']} observations but the cube has {n_t}")
    all_bands = [b for b in cube.band.values.tolist() if b != "scl"]
    bands = list(bands) if bands is not None else all_bands
    missing = [b for b in bands if b not in all_bands]
    if missing:
        raise InputError(f"bands {missing} are not in the cube (it has {all_bands})")
    ids = [str(i) for i in (cube.coords["id"].values if "id" in cube.coords else range(n_t))]
    scenes = _scene_numbers(scene_index, ids)
    cloud = cube.coords["eo:cloud_cover"].values if "eo:cloud_cover" in cube.coords else None
    order = priority_order(cube.time.values, priority=config.priority, cloud_cover=cloud, ids=ids)
    needs_params = config.harmonize != "none" or config.haze_threshold is not None
    if scene_params is None and needs_params:
        scene_params = fit_cube_params(cube, codes, config)
    params = scene_params or {}
    haze = {i: p.haze for i, p in params.items() if p.haze is not None}
    ids_o = [ids[t] for t in order]
    order = order[demote_hazy(ids_o, haze, config.haze_threshold)]

    refl = cube.sel(band=bands).isel(time=order)
    codes_o = codes.isel(time=order)
    knots = None
    if config.harmonize != "none":
        knots = [_knots(params, ids[t], bands) for t in order]
    spec = dataclasses.replace(config.spec, bands=tuple(bands))
    kwargs = dict(n_b=len(bands), knots=knots, spec=spec, scenes=scenes[order])
    stacked = [refl.data, codes_o.data.astype("uint16")[:, None]]
    if any(isinstance(a, da.Array) for a in stacked):
        data = da.concatenate([da.asarray(a) for a in stacked], axis=1).rechunk({0: -1, 1: -1})
        # a blended pixel depends on inputs up to blend_halo px away: chunks overlap by it (an
        # axis shorter than that is one chunk: dask cannot overlap it)
        h = spec.blend_halo
        depth = tuple(h if n > h else 0 for n in data.shape[2:])
        data = data.rechunk({2 + k: -1 for k in (0, 1) if h and not depth[k]})
        if any(depth):
            data = da.overlap.overlap(
                data, depth={0: 0, 1: 0, 2: depth[0], 3: depth[1]}, boundary="none"
            )
        ys, xs = _core_chunks(data.chunks[2], depth[0]), _core_chunks(data.chunks[3], depth[1])
        packed = da.map_blocks(
            _composite_chunk,
            data,
            drop_axis=0,
            chunks=((len(bands) + 2,), ys, xs),
            dtype="int32",
            meta=np.empty((0, 0, 0), "int32"),
            depth=depth,
            **kwargs,
        )
    else:
        data = np.concatenate([np.asarray(a) for a in stacked], axis=1)
        packed = _composite_chunk(data, depth=(0, 0), **kwargs)

    coords = {k: v for k, v in cube.coords.items() if set(v.dims) <= {"latitude", "longitude"}}
    out = xr.Dataset(coords=coords)
    times = cube.time.values.astype("datetime64[ns]")
    unpack_composite(out, packed, bands, {int(scenes[t]): times[t] for t in range(n_t)})
    out.attrs = {
        "priority": config.priority,
        "composite": "priority (first clear observation), harmonized and blended",
        **{k: v for k, v in cube.attrs.items() if k in ("cell", "halo", "crs", "grid")},
    }
    return out


def _codes(cube: xr.DataArray, config: MosaicConfig) -> xr.DataArray:
    from ..mask import mask

    model_kwargs = {"factor": config.model_factor} if config.model_factor else None
    return mask(
        cube,
        method=config.mask_method,
        model=config.model,
        model_kwargs=model_kwargs,
        dilation={"cloud": config.cloud_dilation, "shadow": config.shadow_dilation},
    )


def _scene_numbers(scene_index: Sequence[int] | Mapping[str, int] | None, ids: list[str]) -> Any:
    if scene_index is None:
        return np.arange(len(ids), dtype="int64")
    if isinstance(scene_index, Mapping):
        missing = [i for i in ids if i not in scene_index]
        if missing:
            raise InputError(f"scene_index has no entry for scene(s) {missing[:3]}")
        return np.asarray([scene_index[i] for i in ids], dtype="int64")
    scenes = np.asarray(scene_index, dtype="int64")
    if len(scenes) != len(ids):
        raise InputError(f"scene_index has {len(scenes)} entries for {len(ids)} scenes")
    return scenes


def _knots(params: Mapping[str, SceneParams], scene: str, bands: Sequence[str]) -> list[Any]:
    from ..harmonize.radiometry import IDENTITY

    p = params.get(scene)
    return p.knots_for(bands) if p is not None else [IDENTITY] * len(bands)


def _core_chunks(chunks: tuple[int, ...], depth: int) -> tuple[int, ...]:
    """Chunk sizes without the overlap that ``overlap(boundary="none")`` added inside."""
    n = len(chunks)
    return tuple(
        c - (depth if k > 0 else 0) - (depth if k < n - 1 else 0) for k, c in enumerate(chunks)
    )
