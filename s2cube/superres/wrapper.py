"""Super-resolution of an xarray Dataset: the dask/xarray wrapper of :func:`superres_array`.

:func:`superres` takes a mosaic Dataset (``red``, ``green``, ``blue``, ``nir`` on
``(latitude, longitude)``, numpy- or dask-backed, e.g. from :func:`s2cube.open_store`) and
returns it on a grid ``scale``× finer: the bands super-resolved, every other
``(latitude, longitude)`` variable (provenance: ``date``, ``scene``, ``clear_count``,
``fill``) nearest-upsampled, coordinates at the finer pixels' centres, CRS kept.

Dask blocks are processed with ``halo`` pixels of real neighbours on every side
(``dask.array.overlap.overlap`` with ``boundary="none"``: the image edge is reflected by the
kernel, exactly as in one numpy pass) and each block's output is cropped by ``halo × scale``,
so the dask result equals the numpy result within the kernel's stated tolerance (≤ 1 DN,
:mod:`s2cube.superres.infer`).  The generator travels through the graph as one
:class:`~s2cube.models.runtime.ModelRef` (one instance per worker and device).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError
from .infer import DEFAULT_TILE, generator_scale, superres_array

__all__ = ["SR_BANDS", "fine_coords", "superres"]

#: the bands the generator reads, in its order
SR_BANDS = ("red", "green", "blue", "nir")
_DIMS = ("latitude", "longitude")


def fine_coords(coords: np.ndarray, scale: int, step: float | None = None) -> np.ndarray:
    """Pixel-centre coordinates of the ``scale``× finer grid over the pixels at ``coords``.

    ``step`` is the signed pixel step (default ``coords[1] - coords[0]``; needed for a
    one-pixel axis).

    Examples
    --------
    >>> fine_coords(np.array([0.5, 1.5]), 2).tolist()
    [0.25, 0.75, 1.25, 1.75]
    >>> fine_coords(np.array([10.0, 8.0]), 2).tolist()
    [10.5, 9.5, 8.5, 7.5]
    """
    c = np.asarray(coords, dtype="float64")
    if step is None:
        if c.size < 2:
            raise InputError("a one-pixel axis needs its pixel step to place the finer pixels")
        step = float(c[1] - c[0])
    offsets = (np.arange(scale, dtype="float64") + 0.5) / scale - 0.5
    return (c[:, None] + offsets[None, :] * step).ravel()


def _upsample(a: Any, scale: int) -> Any:
    """Nearest upsampling of the last two axes (numpy or dask)."""
    if hasattr(a, "dask"):
        return a.repeat(scale, axis=-2).repeat(scale, axis=-1)
    return np.repeat(np.repeat(np.asarray(a), scale, axis=-2), scale, axis=-1)


def _sr_block(
    block: np.ndarray,
    ref: Any,
    *,
    halo: int,
    scale: int,
    tile: int,
    batch_size: int,
    device: str | None,
    precision: str,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """One overlapped block → its own pixels super-resolved (the halo cropped)."""
    out = superres_array(
        block,
        ref,
        halo=halo,
        tile=tile,
        batch_size=batch_size,
        device=device,
        precision=precision,
    )
    assert block_info is not None
    loc, n = block_info[0]["chunk-location"], block_info[0]["num-chunks"]
    # boundary="none": no context was added on the image's outer edges
    top = halo if loc[1] > 0 else 0
    bottom = halo if loc[1] < n[1] - 1 else 0
    left = halo if loc[2] > 0 else 0
    right = halo if loc[2] < n[2] - 1 else 0
    h, w = out.shape[1:]
    return out[:, top * scale : h - bottom * scale, left * scale : w - right * scale]


def superres(
    ds: xr.Dataset,
    gen: Any,
    scale: int | None = None,
    *,
    halo: int | None = None,
    tile: int = DEFAULT_TILE,
    batch_size: int = 8,
    device: str | None = None,
    precision: str = "fp32",
    bands: Sequence[str] = SR_BANDS,
) -> xr.Dataset:
    """Super-resolve a mosaic Dataset onto a ``scale``× finer grid (numpy or dask).

    Parameters
    ----------
    ds
        ``bands`` as uint16 on ``(latitude, longitude)``, 0 = nodata; numpy or dask-backed.
    gen
        The generator (:func:`s2cube.superres.model.load_generator` or a
        :class:`~s2cube.superres.nets.Generator`).
    scale
        Expected upscaling factor (checked against ``gen.scale``; default: the generator's).
    halo
        Context pixels per tile and per dask block (default: the receptive radius of ``gen``,
        :func:`~s2cube.superres.model.context_pixels`).
    tile, batch_size, device, precision
        As in :func:`~s2cube.superres.infer.superres_array`.
    bands
        The generator's input bands, in its order.

    Returns
    -------
    xarray.Dataset
        The bands super-resolved (uint16, same attrs), the other ``(latitude, longitude)``
        variables nearest-upsampled, coordinates at the finer pixel centres, dask-backed
        exactly when ``ds`` is.

    Examples
    --------
    >>> sr = superres(s2cube.open_store("m.zarr", cell="r0352c1567"), gen)  # doctest: +SKIP
    >>> sr.sizes["latitude"] == 4 * ds.sizes["latitude"]  # doctest: +SKIP
    True
    """
    import dask
    import dask.array as da

    from ..models.runtime import ModelRef

    missing = [b for b in bands if b not in ds.data_vars]
    if missing:
        raise InputError(
            f"superres needs the bands {list(bands)}; the dataset lacks {missing} "
            f"(it has {list(ds.data_vars)})"
        )
    s = generator_scale(gen)
    if scale is not None and int(scale) != s:
        raise InputError(
            f"scale={scale} but the generator upscales ×{s}; load the ×{scale} generator "
            f"(load_generator({scale})) or pass scale={s}"
        )
    if halo is None:
        from .model import context_pixels

        halo = context_pixels(gen)
    halo = int(halo)
    if halo < 0:
        raise InputError(f"halo={halo} must be >= 0 input pixels")
    for b in bands:
        if ds[b].dims != _DIMS:
            raise InputError(f"band {b!r} has dims {ds[b].dims}; expected {_DIMS}")
    stack = [ds[b].data for b in bands]
    lazy = any(isinstance(a, da.Array) for a in stack)
    options: dict[str, Any] = {
        "tile": tile,
        "batch_size": batch_size,
        "device": device,
        "precision": precision,
    }
    if lazy:
        x = da.stack([da.asarray(a).astype("uint16") for a in stack]).rechunk({0: -1})
        # every block must be at least as wide as the halo dask takes from its neighbours
        least = max(halo, 1)
        x = x.rechunk(
            (
                x.chunks[0],
                da.overlap.ensure_minimum_chunksize(least, x.chunks[1]),
                da.overlap.ensure_minimum_chunksize(least, x.chunks[2]),
            )
        )
        padded = da.overlap.overlap(x, depth={0: 0, 1: halo, 2: halo}, boundary="none")
        gpu = {"resources": {"GPU": 1}} if (device or "").startswith("cuda") else {}
        with dask.annotate(**gpu):
            out = da.map_blocks(
                _sr_block,
                padded,
                # one key holds the model: workers fetch it once, not with every block
                dask.delayed(ModelRef.of(gen), pure=True, traverse=False),
                halo=halo,
                scale=s,
                **options,
                chunks=(
                    x.chunks[0],
                    tuple(c * s for c in x.chunks[1]),
                    tuple(c * s for c in x.chunks[2]),
                ),
                dtype=np.uint16,
                meta=np.empty((0, 0, 0), np.uint16),
            )
    else:
        arr = np.stack([np.asarray(a, dtype="uint16") for a in stack])
        out = superres_array(arr, gen, halo=halo, **options)
    lat, lon = ds["latitude"].values, ds["longitude"].values
    step_lat = step_lon = None
    if lat.size < 2 or lon.size < 2:
        res = ds.rio.resolution()
        step_lon, step_lat = float(res[0]), float(res[1])
    coords = {
        "latitude": ("latitude", fine_coords(lat, s, step_lat), ds["latitude"].attrs),
        "longitude": ("longitude", fine_coords(lon, s, step_lon), ds["longitude"].attrs),
    }
    data_vars: dict[str, Any] = {b: (_DIMS, out[i], dict(ds[b].attrs)) for i, b in enumerate(bands)}
    for name, var in ds.data_vars.items():
        if name in bands or var.dims != _DIMS:
            continue
        data_vars[str(name)] = (_DIMS, _upsample(var.data, s), dict(var.attrs))
    # attributes describing the parent's grid (GeoZarr spatial:, its pyramid, the store's
    # metadata) would misplace the finer pixels: they are not carried over
    attrs = {
        k: v
        for k, v in ds.attrs.items()
        if not str(k).startswith("spatial:") and k not in ("multiscales", "s2cube")
    }
    result = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    import rioxarray  # noqa: F401  (registers .rio)

    crs = ds.rio.crs
    if crs is not None:
        # a new grid mapping: the parent's GeoTransform would place the finer pixels wrongly
        result = result.rio.write_crs(crs, grid_mapping_name="spatial_ref")
        result = result.rio.write_transform(result.rio.transform(recalc=True))
    return result
