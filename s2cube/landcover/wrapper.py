"""``s2cube.landcover``: a fused land-cover map of a cube, in the style of ``s2cube.composite``.

The network runs through :func:`s2cube.models.predict` (one task per chunk, each reading a halo
of ``window - 1`` px from its neighbours by default, so the probabilities do not depend on the
chunking); the per-pixel time fusion (:func:`~s2cube.landcover.kernels.fuse`) then runs per
chunk with time and class whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from s2cube.errors import InputError
from s2cube.landcover.kernels import LANDCOVER_CLASSES, fuse
from s2cube.mask import CLEAR

__all__ = ["landcover"]


def _fuse_block(
    probs: np.ndarray, clear: np.ndarray, *, method: str, alpha: float, snow: float
) -> np.ndarray:
    classes, conf, n = fuse(probs, clear, method=method, alpha=alpha, snow_threshold=snow)
    return np.stack([classes.astype(np.float32), conf, n.astype(np.float32)])


def landcover(
    cube: xr.DataArray,
    codes: xr.DataArray | None = None,
    *,
    model: Any = "dynamicworld",
    method: str = "mean",
    alpha: float = 0.1,
    snow_threshold: float = 0.5,
    window: int = 256,
    overlap: int = 32,
    halo: int | None = None,
    batch_size: int = 8,
    precision: str = "fp32",
    device: str | None = None,
) -> xr.Dataset:
    """Land-cover classes of a cube: Dynamic World per date, fused over the clear dates.

    Parameters
    ----------
    cube:
        ``(time, band, y, x)`` with the model's bands by name (Dynamic World: blue, green, red,
        rededge1-3, nir, swir16, swir22, all at 10 m). Integer cubes are DN (reflectance ×
        10000); float cubes are reflectance. The model was trained on **L1C**; L2A input is
        used as is (see ``docs/landcover.md`` for the measured effect).
    codes:
        ``(time, y, x)`` s2cube mask codes (:func:`s2cube.mask`); only ``clear`` pixels count.
        ``None``: every pixel with data (any band non-zero) counts as clear.
    model:
        Registry name, path or ``LoadedModel`` of a Dynamic World-compatible model.
    method, alpha, snow_threshold:
        Fusion options of :func:`s2cube.landcover.fuse`.
    window, overlap, halo, batch_size, precision, device:
        Inference options of :func:`s2cube.models.predict`.

    Returns
    -------
    Dataset with ``landcover`` (uint8: 1 water, 2 tree, 3 grass, 4 barren, 5 built, 0 no clear
    date), ``confidence`` (float32 fused probability of that class) and ``n_dates`` (uint8), lazy
    when the cube is.

    Examples
    --------
    >>> ds = s2cube.landcover(cube, s2cube.mask(cube))  # doctest: +SKIP
    >>> ds.landcover.plot()  # doctest: +SKIP
    """
    import dask.array as da

    from s2cube.models import load_model, predict

    if cube.ndim != 4 or cube.dims[:2] != ("time", "band"):
        raise InputError(f"cube has dims {cube.dims}; expected (time, band, y, x)")
    loaded = load_model(model) if isinstance(model, str) else model
    bands = list(loaded.card.input_bands)
    names = [str(b) for b in cube["band"].values]
    missing = [b for b in bands if b not in names]
    if missing:
        raise InputError(f"bands {missing} are missing from the cube (it has {names})")
    ydim, xdim = cube.dims[2:]
    sel = cube.sel(band=bands)
    data = sel.data
    valid = (data != 0).any(axis=1)
    if np.dtype(cube.dtype).kind in "iu":
        data = data.astype(np.float32) / np.float32(10000)
    else:
        data = data.astype(np.float32)
    if codes is not None:
        if codes.dims != ("time", ydim, xdim):
            raise InputError(f"codes have dims {codes.dims}; expected ('time', {ydim!r}, {xdim!r})")
        clear = (codes.data == CLEAR) & valid
    else:
        clear = valid
    probs = predict(
        loaded,
        data,
        window=window,
        overlap=overlap,
        halo=halo,
        batch_size=batch_size,
        precision=precision,
        device=device,
    )
    kw: dict[str, Any] = {"method": method, "alpha": alpha, "snow": snow_threshold}
    if isinstance(probs, da.Array):
        probs = probs.rechunk({0: -1, 1: -1})
        clear = da.asarray(clear).rechunk((-1, probs.chunks[2], probs.chunks[3]))
        packed = da.blockwise(
            _fuse_block,
            "kyx",
            probs,
            "tcyx",
            clear,
            "tyx",
            new_axes={"k": 3},
            concatenate=True,
            dtype=np.float32,
            meta=np.empty((0, 0, 0), np.float32),
            **kw,
        )
    else:
        packed = _fuse_block(np.asarray(probs), np.asarray(clear), **kw)
    coords = {k: v for k, v in cube.coords.items() if set(v.dims) <= {ydim, xdim}}
    dims = (ydim, xdim)
    out = xr.Dataset(
        {
            "landcover": (dims, packed[0].astype(np.uint8)),
            "confidence": (dims, packed[1]),
            "n_dates": (dims, packed[2].astype(np.uint8)),
        },
        coords=coords,
    )
    out.attrs = {
        **{k: v for k, v in cube.attrs.items() if k in ("cell", "halo", "crs", "grid")},
        "model": loaded.card.name,
        "model_product_level": loaded.card.product_level,
        "classes": ", ".join(f"{i + 1}={c}" for i, c in enumerate(LANDCOVER_CLASSES)),
        "fusion": method,
    }
    out["landcover"].attrs = {"nodata": 0, "flag_meanings": " ".join(LANDCOVER_CLASSES)}
    return out
