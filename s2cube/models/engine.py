"""Inference over an image of any kind: :func:`predict` and its numpy and xarray paths.

Layers: :mod:`s2cube.models.tiling` holds the numpy/torch kernel (overlapping windows, ramp
blending); :mod:`s2cube.models.chunked` runs it per chunk of a dask array;
:mod:`s2cube.models.runtime` places the model on a device once per worker process.  This
module validates the arguments before any task exists, runs numpy inputs in one pass, and
wraps xarray inputs (band selection by name, a ``class`` dimension named after the model
card's classes).  The runtime names (:class:`ModelRef`, :func:`get_module`, :class:`ModelPlugin`,
:func:`register_model`, :func:`resolve_device`, :func:`make_runner`) are re-exported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s2cube.errors import InputError, require
from s2cube.models.chunked import predict_dask
from s2cube.models.runtime import (
    PRECISIONS,
    ModelPlugin,
    ModelRef,
    RunOptions,
    as_model,
    check_precision,
    get_module,
    make_runner,
    module_of,
    register_model,
    resolve_device,
)
from s2cube.models.tiling import TileLayout, predict_region

__all__ = [
    "PRECISIONS",
    "ModelPlugin",
    "ModelRef",
    "get_module",
    "make_runner",
    "predict",
    "register_model",
    "resolve_device",
]


def predict(
    model: Any,
    data: Any,
    *,
    window: int = 256,
    overlap: int = 32,
    halo: int | None = None,
    batch_size: int = 8,
    precision: str = "fp32",
    device: str | None = None,
    input_scale: float | None = None,
    reduce: str | None = None,
) -> Any:
    """Run a model over an image by overlapping windows, per chunk for dask inputs.

    Parameters
    ----------
    model:
        A registry name or path (see :func:`s2cube.models.load_model`), a ``LoadedModel``
        (its card's normalisation and activation are applied: reflectance in, probabilities
        out), or any torch module mapping ``(batch, band, y, x)`` to ``(batch, channel, y, x)``.
    data:
        ``(band, y, x)`` or ``(time, band, y, x)`` float reflectance, as numpy, dask or
        xarray (dims ``band, y, x`` with optional ``time``). Dask inputs are chunked along
        y/x; bands are gathered into one chunk.
    window, overlap:
        Tile size fed to the network and the overlap of neighbouring tiles (blended with a
        linear ramp).
    halo:
        Pixels each chunk reads from its neighbours. ``None`` (default) is ``window - 1``:
        every window that touches a chunk is computed whole, so the result equals the
        single-pass (numpy) result whatever the chunking. Smaller halos shift windows inside
        the chunk (cheaper reads; exact only up to the network's receptive field).
    batch_size:
        Windows per forward pass.
    precision:
        ``"fp32"``, ``"bf16"`` or ``"fp16"`` (torch autocast).
    device:
        ``None`` chooses per worker (CUDA if present, else CPU); ``"cpu"``/``"cuda"`` force one
        (``"cuda"`` also annotates the tasks with the ``GPU`` resource).
    input_scale:
        Multiply the input by this on the model's device, which lets integer data (e.g.
        uint16 DN with ``input_scale=1e-4``) travel at its own width.  Without it the input
        must be float reflectance.
    reduce:
        ``"argmax"``: return the uint8 index of the most probable class, computed on the
        device (no ``channel``/``class`` axis; a twelfth of the bytes of three float32
        probabilities leave the GPU).

    Returns
    -------
    The same kind as ``data``: ``(channel, y, x)`` or ``(time, channel, y, x)`` float32. An
    xarray result has a ``class`` dimension named after the card's classes (``channel`` for a
    plain module).  With ``reduce="argmax"``: ``(y, x)`` or ``(time, y, x)`` uint8.

    Examples
    --------
    >>> rgbn = cube.sel(band=["blue", "green", "red", "nir"]) / 1e4  # doctest: +SKIP
    >>> probs = predict("csmask-l2a-4b", rgbn)  # doctest: +SKIP
    """
    import dask.array as da

    check_precision(precision)
    if reduce not in (None, "argmax"):
        raise InputError(f"reduce={reduce!r}; expected None or 'argmax'")
    if input_scale is not None and not (np.isfinite(input_scale) and input_scale > 0):
        raise InputError(f"input_scale={input_scale!r}; expected a positive number or None")
    layout = TileLayout(window=window, overlap=overlap, batch_size=batch_size)
    if halo is not None and halo < 0:
        raise InputError(f"halo={halo}; expected None or a non-negative number of pixels")
    if device is not None:
        torch: Any = require("torch", "ml")
        try:
            torch.device(device)
        except RuntimeError as exc:
            raise InputError(
                f"device={device!r} is not a torch device; use 'cpu' or 'cuda'"
            ) from exc
    model = as_model(model)
    module = module_of(model)
    multiple = getattr(module, "size_multiple", 1)
    if window % multiple:
        raise InputError(
            f"window={window} is not a multiple of {multiple}, which this network needs "
            f"(it downsamples by {multiple}); use e.g. "
            f"window={window - window % multiple or multiple}"
        )

    import xarray as xr

    if isinstance(data, xr.DataArray):
        return _predict_xarray(
            model,
            data,
            window=window,
            overlap=overlap,
            halo=halo,
            batch_size=batch_size,
            precision=precision,
            device=device,
            input_scale=input_scale,
            reduce=reduce,
        )

    if data.ndim not in (3, 4):
        raise InputError(
            f"data has shape {data.shape}; expected (band, y, x) or (time, band, y, x)"
        )
    if np.dtype(data.dtype).kind not in "f" and input_scale is None:
        raise InputError(
            f"data has dtype {data.dtype}; expected float reflectance (0-1). Convert DN first, "
            "e.g. data.astype('float32') / 10000, or pass input_scale=1e-4"
        )
    n_band = data.shape[-3]
    expected = _expected_bands(model)
    if expected is not None and n_band != len(expected):
        raise InputError(f"data has {n_band} bands; the model expects {len(expected)}: {expected}")
    opts = RunOptions(layout, precision, device, _n_out(model, n_band, window), input_scale, reduce)
    squeeze = data.ndim == 3
    x = data[None] if squeeze else data
    if isinstance(x, da.Array):
        out = predict_dask(ModelRef.of(model), x, opts, window - 1 if halo is None else halo)
    else:
        out = _predict_numpy(module, np.asarray(x), opts)
    return out[0] if squeeze else out


def _expected_bands(model: Any) -> tuple[str, ...] | None:
    # a plain torch module has no card: any band count is accepted
    card = getattr(model, "card", None)
    return card.input_bands if card is not None else None


def _predict_xarray(model: Any, data: Any, **kw: Any) -> Any:
    import xarray as xr

    dims = data.dims
    if dims not in (("band", "y", "x"), ("time", "band", "y", "x")):
        raise InputError(
            f"data has dims {dims}; expected ('band', 'y', 'x') or ('time', 'band', 'y', 'x'). "
            "Transpose it first, e.g. data.transpose('time', 'band', 'y', 'x')"
        )
    expected = _expected_bands(model)
    if expected is not None and "band" in data.coords:
        names = [str(b) for b in data["band"].values]
        missing = [b for b in expected if b not in names]
        if missing:
            raise InputError(
                f"bands {missing} are missing from the data (it has {names}); the model "
                f"{model.card.name!r} reads {list(expected)}"
            )
        data = data.sel(band=list(expected))
    result = predict(model, data.data, **kw)
    card = getattr(model, "card", None)
    if kw.get("reduce") == "argmax":
        coords = {k: v for k, v in data.coords.items() if "band" not in v.dims}
        attrs = dict(data.attrs) | ({"model": card.name} if card is not None else {})
        return xr.DataArray(
            result, dims=tuple(d for d in dims if d != "band"), coords=coords, attrs=attrs
        )
    out_dim = "class" if card is not None else "channel"
    coords = {k: v for k, v in data.coords.items() if "band" not in v.dims}
    labels = list(card.classes) if card is not None else list(range(result.shape[-3]))
    coords[out_dim] = labels
    new_dims = tuple(out_dim if d == "band" else d for d in dims)
    attrs = dict(data.attrs)
    if card is not None:
        attrs["model"] = card.name
    return xr.DataArray(
        result,
        dims=new_dims,
        coords=coords,
        attrs=attrs,
        name=f"{card.name}_probability" if card is not None else data.name,
    )


def _n_out(model: Any, n_band: int, window: int) -> int:
    """Output channels, known before any task runs."""
    from s2cube.models.registry import LoadedModel

    if isinstance(model, LoadedModel):
        return len(model.card.classes)
    for obj in (model, getattr(model, "net", None)):
        n = getattr(obj, "out_channels", None)
        if isinstance(n, int):
            return n
    torch: Any = require("torch", "ml")
    param = next(iter(model.parameters()), None)
    probe = torch.zeros(
        (1, n_band, window, window), device=param.device if param is not None else "cpu"
    )
    with torch.inference_mode():
        return int(model(probe).shape[1])


def _predict_numpy(module: Any, x: np.ndarray, opts: RunOptions) -> np.ndarray:
    # one pass over the whole image: the oracle the dask path is tested against
    torch: Any = require("torch", "ml")
    device = resolve_device(opts.device)
    param = next(iter(module.parameters()), None)
    if param is not None and param.device != device:
        import copy

        module = copy.deepcopy(module).to(device)
    module.eval()
    h, w = x.shape[-2:]
    with torch.inference_mode():
        return predict_region(
            make_runner(module, device, opts.precision),
            x,
            slab_origin=(0, 0),
            image_shape=(h, w),
            core=(0, h, 0, w),
            layout=opts.layout,
            n_out=opts.n_out,
            device=device,
            input_scale=opts.input_scale,
            reduce=opts.reduce,
        )
