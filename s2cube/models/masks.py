"""Learned cloud/shadow masks on s2cube cubes, in s2cube's mask codes.

Codes: ``0 nodata, 1 clear, 2 cloud, 3 shadow, 4 cirrus, 5 snow``. A model's classes map to
codes by name (``clear``/``cloud``/``shadow``/``cirrus``/``snow``); the ukis-csmask models give
0-3 only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s2cube.errors import InputError

__all__ = ["MASK_CODES", "cloud_mask", "codes_from_probabilities", "combine_with_scl"]

MASK_CODES: dict[str, int] = {
    "nodata": 0,
    "clear": 1,
    "cloud": 2,
    "shadow": 3,
    "cirrus": 4,
    "snow": 5,
}

#: DN of L2A reflectance: 1 DN = 0.0001 reflectance (Earth Search v1, offset already removed).
DN_SCALE = 1e-4


def _lut(classes: tuple[str, ...]) -> np.ndarray:
    unknown = [c for c in classes if c not in MASK_CODES or c == "nodata"]
    if unknown:
        raise InputError(
            f"model classes {unknown} have no s2cube mask code; classes must be among "
            f"{[c for c in MASK_CODES if c != 'nodata']}"
        )
    return np.array([MASK_CODES[c] for c in classes], dtype=np.uint8)


def codes_from_probabilities(
    prob: np.ndarray, valid: np.ndarray, classes: tuple[str, ...], axis: int = -3
) -> np.ndarray:
    """Kernel: probabilities with classes along ``axis`` → uint8 mask codes (0 where not
    ``valid``).

    Examples
    --------
    >>> p = np.array([[[0.9, 0.2]], [[0.1, 0.8]]])  # (class, y, x)
    >>> codes_from_probabilities(p, np.array([[True, False]]), ("clear", "cloud")).tolist()
    [[1, 0]]
    """
    lut = _lut(classes)
    codes = lut[np.argmax(prob, axis=axis)]
    return np.where(valid, codes, np.uint8(0)).astype(np.uint8)


def combine_with_scl(model_codes: Any, scl: Any) -> Any:
    """Kernel: the recommended conservative combination of a model mask with SCL.

    Precedence: nodata (SCL 0 or outside 0-11, or model nodata) > cloud (model cloud or SCL
    8/9) > cirrus (SCL 10) > shadow (model shadow or SCL 3) > snow (SCL 11) > clear. Works on
    numpy, dask and xarray inputs of the same shape (elementwise).

    Examples
    --------
    >>> model = np.array([1, 2, 1, 3, 1, 1, 0])
    >>> combine_with_scl(model, np.array([4, 4, 9, 4, 10, 11, 4])).tolist()
    [1, 2, 2, 3, 4, 5, 0]
    """
    import xarray as xr

    if isinstance(model_codes, xr.DataArray) or isinstance(scl, xr.DataArray):
        return xr.apply_ufunc(
            combine_with_scl, model_codes, scl, dask="parallelized", output_dtypes=[np.uint8]
        )
    # numpy functions dispatch to dask arrays (NEP 18), so this stays lazy for dask inputs
    out = np.full_like(model_codes, MASK_CODES["clear"], dtype=np.uint8)
    out = np.where(scl == 11, np.uint8(MASK_CODES["snow"]), out)
    out = np.where((model_codes == 3) | (scl == 3), np.uint8(MASK_CODES["shadow"]), out)
    out = np.where(scl == 10, np.uint8(MASK_CODES["cirrus"]), out)
    cloud = (model_codes == 2) | (scl == 8) | (scl == 9)
    out = np.where(cloud, np.uint8(MASK_CODES["cloud"]), out)
    nodata = (scl == 0) | (scl > 11) | (model_codes == 0)
    return np.where(nodata, np.uint8(MASK_CODES["nodata"]), out).astype(np.uint8)


def cloud_mask(
    data: Any,
    *,
    model: Any = "csmask-l2a-4b",
    window: int | None = None,
    overlap: int = 32,
    halo: int | None = None,
    batch_size: int = 8,
    precision: str = "fp32",
    device: str | None = None,
    factor: int | None = None,
) -> Any:
    """Cloud and shadow mask of an L2A cube by a learned model.

    Parameters
    ----------
    data:
        ``xr.DataArray`` ``(time, band, y, x)`` (or ``(band, y, x)``) of uint16 L2A DN
        (1 DN = 0.0001 reflectance, 0 = nodata) with a ``band`` coordinate holding the model's
        bands (``blue, green, red, nir`` and for 6-band models ``swir16, swir22``).
    model:
        Registry name, path or :class:`~s2cube.models.LoadedModel`.
    window, overlap, halo, batch_size, precision, device:
        As in :func:`s2cube.models.predict`; ``window`` defaults to the card's training tile.
    factor:
        Run the model on ``factor``×``factor`` block means (nodata left out) and repeat its
        codes back to the cube's pixels. ``None`` picks ``round(card.resolution_m / pixel
        size)`` from the ``x`` coordinate (3 for the 30 m csmask models on a 10 m cube, 1 at
        20 m and coarser).

    Returns
    -------
    xr.DataArray
        ``(time, y, x)`` uint8 codes: 0 nodata (all model bands 0), 1 clear, 2 cloud, 3 shadow.
        Lazy when ``data`` is dask-backed.

    Examples
    --------
    >>> mask = cloud_mask(cube.sel(band=["blue", "green", "red", "nir"]))  # doctest: +SKIP
    """
    import xarray as xr

    from s2cube.models.engine import predict
    from s2cube.models.runtime import as_model

    if not isinstance(data, xr.DataArray):
        raise InputError(f"data is a {type(data).__name__}; expected an xarray.DataArray cube")
    if np.dtype(data.dtype).kind not in "ui":
        raise InputError(
            f"data has dtype {data.dtype}; expected integer L2A DN (uint16, 1 = 0.0001 "
            "reflectance). For reflectance use s2cube.models.predict"
        )
    loaded = as_model(model)
    card = loaded.card
    lut_check = _lut(card.classes)  # validate before building the graph
    del lut_check
    if "band" not in data.dims or "band" not in data.coords:
        raise InputError(f"data has dims {data.dims}; expected a 'band' dimension with names")
    names = [str(b) for b in data["band"].values]
    missing = [b for b in card.input_bands if b not in names]
    if missing:
        raise InputError(
            f"bands {missing} are missing (the cube has {names}); model {card.name!r} reads "
            f"{list(card.input_bands)}. Load them, e.g. assets=[..., {missing[0]!r}]"
        )
    dn = data.sel(band=list(card.input_bands))
    valid = (dn != 0).any("band")
    factor = _factor(data, card.resolution_m) if factor is None else int(factor)
    if factor < 1:
        raise InputError(f"factor={factor}; expected a positive integer (1 = native pixels)")
    model_valid = valid
    kwargs: dict[str, Any] = {}
    if factor > 1:
        # block means over valid pixels only; a block is valid when any of its pixels is
        reflectance = dn.astype(np.float32) * np.float32(DN_SCALE)
        coarse = reflectance.where(valid).coarsen(y=factor, x=factor, boundary="pad").mean()
        model_valid = coarse.notnull().all("band")
        model_input = coarse.fillna(0).astype(np.float32)
    else:
        # DN travel to the model's device as uint16 and are scaled there (half the bytes
        # of float32 reflectance, no conversion pass on the host)
        model_input = dn
        kwargs["input_scale"] = DN_SCALE
    # the class index is taken on the device: one byte per pixel comes back
    index = predict(
        loaded,
        model_input,
        window=window or card.window,
        overlap=overlap,
        halo=halo,
        batch_size=batch_size,
        precision=precision,
        device=device,
        reduce="argmax",
        **kwargs,
    )
    lut = _lut(card.classes)
    codes = xr.apply_ufunc(
        _codes_from_index,
        index,
        model_valid,
        kwargs={"lut": lut},
        dask="parallelized",
        output_dtypes=[np.uint8],
    )
    if factor > 1:
        codes = _repeat_to(codes, factor, valid)
    codes = codes.transpose(*[d for d in data.dims if d != "band"])
    codes.name = "mask"
    codes.attrs = {
        "model": card.name,
        "codes": "0 nodata, 1 clear, 2 cloud, 3 shadow, 4 cirrus, 5 snow",
    }
    return codes


def _codes_from_index(index: np.ndarray, valid: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Kernel: class indices → mask codes (0 where not ``valid``); the same codes as
    :func:`codes_from_probabilities` on the probabilities the indices were taken from."""
    return np.where(valid, lut[index], np.uint8(0)).astype(np.uint8)


def _factor(data: Any, model_resolution_m: float) -> int:
    """round(model resolution / pixel size) from the x coordinate (1 when unknown)."""
    if "x" not in data.coords:  # bare arrays get an integer index from xarray: not metres
        return 1
    try:
        x = np.asarray(data["x"].values, dtype=np.float64)
        pixel = abs(float(x[1] - x[0]))
    except (KeyError, IndexError, TypeError, ValueError):
        return 1
    if not np.isfinite(pixel) or pixel <= 0:
        return 1
    return max(1, int(round(model_resolution_m / pixel)))


def _repeat_to(codes: Any, factor: int, valid: Any) -> Any:
    """Repeat block codes ``factor`` times along y/x onto the fine grid of ``valid``."""
    import dask.array as da
    import xarray as xr

    arr = codes.transpose(..., "y", "x").data
    xp = da if isinstance(arr, da.Array) else np
    fine = xp.repeat(xp.repeat(arr, factor, axis=-2), factor, axis=-1)
    fine = fine[..., : valid.sizes["y"], : valid.sizes["x"]]
    dims = codes.transpose(..., "y", "x").dims
    out = xr.DataArray(fine, dims=dims, coords={d: valid[d] for d in dims if d in valid.coords})
    return out.where(valid.transpose(*[d for d in dims if d in valid.dims]), 0).astype(np.uint8)
