"""The seed's multi-temporal step for the three U-nets: every date of a 4-band time series is
classified by each U-net, each U-net's probabilities are fused over the dates the mask calls
clear, and the fused probabilities go through the same combination rule as one image.

Fusion per U-net, not of the combined classes: the rule (water > t, then built > t, then
vegetation > t, else barren; :func:`~s2cube.landcover.unets.combine_unets`) is defined on each
model's own probabilities, so it is applied once, to fused ones.  The fusion is the Dirichlet
posterior mean that Dynamic World's fusion uses (:func:`~s2cube.landcover.kernels.fuse`, why
a mean and not a product: ``docs/landcover.md``), per model with its own classes:
``(alpha + sum_t m_t p_t) / (K alpha + n)``, ``m_t`` the clear mask, ``n`` the clear dates.  A
date that is not clear adds an exact zero, so a cloudy date never changes the map.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from s2cube.errors import InputError
from s2cube.landcover.kernels import LANDCOVER_CLASSES
from s2cube.landcover.wrapper import (
    combine_probabilities,
    load_unet_set,
    unets_probabilities,
    unets_reflectance,
)
from s2cube.mask import CLEAR

__all__ = ["fuse_probabilities", "fuse_series", "landcover_unets_series"]


def fuse_probabilities(
    probs: np.ndarray, clear: np.ndarray, alpha: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Dirichlet posterior mean of ``(time, class, y, x)`` probabilities over the clear dates.

    Returns ``(fused (class, y, x) float32, n_dates (y, x) int)``; where no date is clear the
    fused distribution is uniform and ``n_dates`` is 0.

    >>> p = np.zeros((2, 2, 1, 1), "float32"); p[0, 1] = 1.0; p[1, 0] = 1.0
    >>> f, n = fuse_probabilities(p, np.array([[[True]], [[False]]]), alpha=0.0)
    >>> f[:, 0, 0].tolist(), int(n[0, 0])
    ([0.0, 1.0], 1)
    """
    probs = np.asarray(probs, dtype=np.float32)
    clear = np.asarray(clear, dtype=bool)
    if probs.ndim != 4 or clear.shape != (probs.shape[0], *probs.shape[2:]):
        raise InputError(
            f"probs {probs.shape} and clear {clear.shape}; expected (t, k, y, x) and (t, y, x)"
        )
    k = probs.shape[1]
    n = clear.sum(axis=0)
    total = np.where(clear[:, None], probs, np.float32(0)).sum(axis=0)
    fused = (np.float32(alpha) + total) / (np.float32(k * alpha) + n.astype(np.float32))
    fused = np.where(n > 0, fused, np.float32(1.0 / k)).astype(np.float32)
    return fused, n


def _fuse_block(probs: np.ndarray, clear: np.ndarray, *, alpha: float) -> np.ndarray:
    fused, n = fuse_probabilities(probs, clear, alpha)
    return np.concatenate([fused, n[None].astype(np.float32)])


def fuse_series(
    per_model: dict[str, list[Any]], clear: Any, *, alpha: float, threshold: float
) -> tuple[Any, Any]:
    """Each model's per-date probabilities (``{model: [(class, y, x) per date]}``, numpy or
    dask) fused over ``clear`` ``(time, y, x)``, then the combination rule: ``(2, y, x)``
    float32 (class, confidence) and ``n_dates`` ``(y, x)`` float32, lazy when the inputs are."""
    import dask.array as da

    lazy = any(isinstance(p, da.Array) for plist in per_model.values() for p in plist)
    fused: dict[str, Any] = {}
    n_dates: Any = None
    for key, plist in per_model.items():
        if lazy:
            probs = da.stack(plist).rechunk({0: -1, 1: -1})
            c = da.asarray(clear).rechunk((-1, probs.chunks[2], probs.chunks[3]))
            packed = da.blockwise(
                _fuse_block,
                "kyx",
                probs,
                "tkyx",
                c,
                "tyx",
                adjust_chunks={"k": probs.shape[1] + 1},
                concatenate=True,
                dtype=np.float32,
                meta=np.empty((0, 0, 0), np.float32),
                alpha=alpha,
            )
        else:
            packed = _fuse_block(np.stack(plist), np.asarray(clear), alpha=alpha)
        fused[key], n_dates = packed[:-1], packed[-1]
    return combine_probabilities(fused, n_dates > 0, threshold), n_dates


def landcover_unets_series(
    cube: xr.DataArray,
    codes: xr.DataArray | None = None,
    *,
    water: Any = "water",
    vegetation: Any = "vegetation",
    buildings: Any = None,
    threshold: float = 0.5,
    alpha: float = 0.1,
    window: int = 128,
    overlap: int = 32,
    halo: int | None = None,
    batch_size: int = 8,
    precision: str = "fp32",
    device: str | None = None,
) -> xr.Dataset:
    """Land cover of a 4-band time series with the seed's three U-nets, fused over the dates.

    Parameters
    ----------
    cube:
        ``(time, band, y, x)`` with ``red``, ``green``, ``blue`` and ``nir`` among its bands
        (``s2cube.load``); integers are DN (reflectance × 10000), floats reflectance.
    codes:
        ``(time, y, x)`` s2cube mask codes (:func:`s2cube.mask`); only ``clear`` pixels count.
        ``None``: every pixel with data counts as clear.
    water, vegetation, buildings, threshold, window, overlap, halo, batch_size, precision, device:
        As :func:`~s2cube.landcover.landcover_unets`.
    alpha:
        Dirichlet pseudo-count per class of each model.

    Returns
    -------
    Dataset with ``landcover`` (uint8, 0 where no date is clear), ``confidence`` (float32, the
    rule's confidence on the fused probabilities) and ``n_dates`` (uint8), lazy when the cube is.

    Examples
    --------
    >>> cube = s2cube.load(items, cell, grid=grid)  # doctest: +SKIP
    >>> lc = landcover_unets_series(cube, s2cube.mask(cube))  # doctest: +SKIP
    """
    import dask.array as da

    if cube.ndim != 4 or cube.dims[:2] != ("time", "band"):
        raise InputError(f"cube has dims {cube.dims}; expected (time, band, y, x)")
    names = [str(b) for b in cube["band"].values]
    missing = [b for b in ("red", "green", "blue", "nir") if b not in names]
    if missing:
        raise InputError(f"the cube lacks bands {missing} (it has {names})")
    ydim, xdim = cube.dims[2:]
    loaded = load_unet_set(water, vegetation, buildings)
    kw: dict[str, Any] = {"window": window, "overlap": overlap, "halo": halo}
    kw |= {"batch_size": batch_size, "precision": precision, "device": device}
    per_model: dict[str, list[Any]] = {k: [] for k in loaded}
    valids = []
    for t in range(cube.sizes["time"]):
        refl, valid = unets_reflectance(cube.data[t])
        valids.append(valid)
        for key, p in unets_probabilities(loaded, refl, names, kw).items():
            per_model[key].append(p)
    lazy = isinstance(cube.data, da.Array)
    stack = da.stack if lazy else np.stack
    clear = stack(valids)
    if codes is not None:
        clear = clear & (codes.transpose("time", ydim, xdim).data == CLEAR)
    packed, n_dates = fuse_series(per_model, clear, alpha=alpha, threshold=threshold)
    coords = {k: v for k, v in cube.coords.items() if set(v.dims) <= {ydim, xdim}}
    dims = (ydim, xdim)
    out = xr.Dataset(
        {
            "landcover": (dims, packed[0].astype(np.uint8)),
            "confidence": (dims, packed[1]),
            "n_dates": (dims, n_dates.astype(np.uint8)),
        },
        coords=coords,
    )
    out.attrs = {
        **{k: v for k, v in cube.attrs.items() if k in ("cell", "halo", "crs", "grid")},
        "models": ", ".join(f"{k}={m.card.name}" for k, m in loaded.items()),
        "classes": ", ".join(f"{i + 1}={c}" for i, c in enumerate(LANDCOVER_CLASSES)),
        "fusion": f"Dirichlet mean per U-net over the clear dates (alpha={alpha}), then the rule",
    }
    out["landcover"].attrs = {"nodata": 0, "flag_meanings": " ".join(LANDCOVER_CLASSES)}
    return out
