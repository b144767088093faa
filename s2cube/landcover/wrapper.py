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

__all__ = ["landcover", "landcover_unets"]


def fuse_block(
    probs: np.ndarray, clear: np.ndarray, *, method: str, alpha: float, snow: float
) -> np.ndarray:
    """:func:`~s2cube.landcover.kernels.fuse` of one block, packed ``(3, y, x)`` float32
    (class, confidence, dates): what a dask blockwise fusion returns."""
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
            fuse_block,
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
        packed = fuse_block(np.asarray(probs), np.asarray(clear), **kw)
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


def _combine_block(
    pw: np.ndarray,
    pv: np.ndarray,
    pb: np.ndarray | None,
    valid: np.ndarray,
    *,
    threshold: float,
) -> np.ndarray:
    from s2cube.landcover.unets import combine_unets

    classes, conf = combine_unets(pw, pv, pb, threshold=threshold, valid=valid)
    return np.stack([classes.astype(np.float32), conf])


def landcover_unets(
    data: xr.Dataset | xr.DataArray,
    *,
    water: Any = "water",
    vegetation: Any = "vegetation",
    buildings: Any = None,
    threshold: float = 0.5,
    window: int = 128,
    overlap: int = 32,
    halo: int | None = None,
    batch_size: int = 8,
    precision: str = "fp32",
    device: str | None = None,
) -> xr.Dataset:
    """Land cover from a 4-band image (the mosaic) with the seed's three U-nets, combined.

    Parameters
    ----------
    data:
        A Dataset with ``red``, ``green``, ``blue`` and ``nir`` variables on ``(y, x)``, or a
        DataArray ``(band, y, x)`` with those band names. Integer data are DN (reflectance ×
        10000), floats reflectance; pixels where every band is 0 (or NaN) are no data.
    water, vegetation, buildings:
        Each a U-net name (shipped weights, :func:`~s2cube.landcover.unets.load_unet`), a path
        of a trained ``model.pt`` or a ``LoadedModel``; ``buildings=None`` (the default: no
        buildings weights ship) runs without it, so built is never assigned.
    threshold:
        The combination rule's probability threshold
        (:func:`~s2cube.landcover.unets.combine_unets`).
    window, overlap, halo, batch_size, precision, device:
        Inference options of :func:`s2cube.models.predict` (``halo=None``: ``window - 1``,
        the same result for any chunking).

    Returns
    -------
    Dataset with ``landcover`` (uint8: 1 water, 2 tree, 3 grass, 4 barren, 5 built, 0 no data)
    and ``confidence`` (float32), lazy when the input is.

    Examples
    --------
    >>> ds = s2cube.open_store("store")[["red", "green", "blue", "nir"]]  # doctest: +SKIP
    >>> lc = landcover_unets(ds.isel(y=slice(0, 512), x=slice(0, 512)))  # doctest: +SKIP
    """
    data = unets_input(data)
    ydim, xdim = data.dims[1:]
    loaded = load_unet_set(water, vegetation, buildings)
    refl, valid = unets_reflectance(data.data)
    kw: dict[str, Any] = {"window": window, "overlap": overlap, "halo": halo}
    kw |= {"batch_size": batch_size, "precision": precision, "device": device}
    probs = unets_probabilities(loaded, refl, [str(b) for b in data["band"].values], kw)
    packed = combine_probabilities(probs, valid, threshold)
    coords = {k: v for k, v in data.coords.items() if set(v.dims) <= {ydim, xdim}}
    dims = (ydim, xdim)
    out = xr.Dataset(
        {"landcover": (dims, packed[0].astype(np.uint8)), "confidence": (dims, packed[1])},
        coords=coords,
    )
    out.attrs = {
        **{k: v for k, v in data.attrs.items() if k in ("crs", "grid")},
        "models": ", ".join(f"{k}={m.card.name}" for k, m in loaded.items()),
        "model_resolution_m": ", ".join(f"{k}={m.card.resolution_m:g}" for k, m in loaded.items()),
        "classes": ", ".join(f"{i + 1}={c}" for i, c in enumerate(LANDCOVER_CLASSES)),
        "rule": f"water > {threshold}, then built > {threshold}, then vegetation > {threshold}"
        " (tree vs grass by the larger), else barren",
    }
    out["landcover"].attrs = {"nodata": 0, "flag_meanings": " ".join(LANDCOVER_CLASSES)}
    return out


def unets_input(data: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """``(band, y, x)`` red, green, blue, nir of a Dataset (or a DataArray, checked)."""
    if isinstance(data, xr.Dataset):
        missing = [b for b in ("red", "green", "blue", "nir") if b not in data]
        if missing:
            raise InputError(
                f"the dataset lacks {missing} (it has {sorted(map(str, data.data_vars))}); "
                "the U-nets read red, green, blue and nir"
            )
        data = data[["red", "green", "blue", "nir"]].to_dataarray("band")
    if data.ndim != 3 or data.dims[0] != "band":
        raise InputError(f"data has dims {data.dims}; expected (band, y, x)")
    return data


def load_unet_set(water: Any, vegetation: Any, buildings: Any) -> dict[str, Any]:
    """The loaded U-nets (water and vegetation required), each checked against its role."""
    from s2cube.landcover.unets import UNET_MODELS, load_unet

    models = {"water": water, "vegetation": vegetation, "buildings": buildings}
    loaded = {k: load_unet(v) for k, v in models.items() if v is not None}
    for key, m in loaded.items():
        if tuple(m.card.classes) != UNET_MODELS[key].classes:
            raise InputError(
                f"{key} model {m.card.name!r} predicts {m.card.classes}; expected "
                f"{UNET_MODELS[key].classes}"
            )
    for key in ("water", "vegetation"):
        if key not in loaded:
            raise InputError(f"{key}=None: the {key} model is required")
    return loaded


def unets_reflectance(raw: Any) -> tuple[Any, Any]:
    """Reflectance (float32) and the pixels with data (any band) of ``(band, ...)`` DN or
    reflectance, numpy or dask."""
    import dask.array as da

    if np.dtype(raw.dtype).kind in "iu":
        return raw.astype(np.float32) / np.float32(10000), (raw != 0).any(axis=0)
    refl = raw.astype(np.float32)
    valid = ((raw != 0) & (raw == raw)).any(axis=0)
    return (da.nan_to_num(refl) if isinstance(refl, da.Array) else np.nan_to_num(refl)), valid


def unets_probabilities(
    loaded: dict[str, Any], refl: Any, names: list[str], kw: dict[str, Any]
) -> dict[str, Any]:
    """Each U-net's softmax ``(class, y, x)`` on its own bands of ``refl`` (``(band, y, x)``)."""
    from s2cube.models import predict

    probs = {}
    for key, m in loaded.items():
        idx = [names.index(b) for b in m.card.input_bands if b in names]
        if len(idx) != len(m.card.input_bands):
            raise InputError(f"the {key} model reads {m.card.input_bands}; data has {names}")
        probs[key] = predict(m, refl[idx], **kw)
    return probs


def combine_probabilities(probs: dict[str, Any], valid: Any, threshold: float) -> Any:
    """``(2, y, x)`` float32 (class, confidence) by the combination rule, per chunk when lazy."""
    import dask.array as da

    pb = probs.get("buildings")
    if isinstance(probs["water"], da.Array):
        chunks = probs["water"].chunks[1:]
        args: list[Any] = [probs["water"].rechunk({0: -1}), "kyx"]
        args += [probs["vegetation"].rechunk({0: -1}), "jyx"]
        args += [None if pb is None else pb.rechunk({0: -1}), None if pb is None else "lyx"]
        args += [da.asarray(valid).rechunk(chunks), "yx"]
        return da.blockwise(
            _combine_block,
            "cyx",
            *args,
            new_axes={"c": 2},
            concatenate=True,
            dtype=np.float32,
            meta=np.empty((0, 0, 0), np.float32),
            threshold=threshold,
        )
    return _combine_block(
        probs["water"], probs["vegetation"], pb, np.asarray(valid), threshold=threshold
    )
