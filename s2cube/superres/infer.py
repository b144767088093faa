"""Super-resolution inference kernel: uint16 bands in, ``scale``× finer uint16 bands out.

numpy/torch only (layer 2): no xarray, no dask, no store.  :func:`superres_array` runs a
generator (:class:`s2cube.superres.nets.Generator`, anything with a ``scale``) over an image
of any size by tiles, each read with ``halo`` pixels of context on every side and cropped back
to its own pixels after the network, so tile edges leave no seam.

How the output is made, and why:

* **nodata** (a pixel where any band is 0) is filled before inference with the value of its
  nearest valid pixel (Euclidean, :func:`scipy.ndimage.distance_transform_edt`), so a hole or
  the edge of the data never drags zeros into its neighbours' receptive field; afterwards the
  output is 0 exactly where the nearest-upsampled input mask is nodata, and a valid output
  pixel is at least 1 DN (0 stays reserved for nodata).
* **edges of the image** are reflected (``numpy.pad(mode="symmetric")``) by ``halo`` pixels,
  so every tile has the same shape (one batch shape, one CUDA graph) and the image border
  sees mirrored context rather than the network's zero padding.
* **tiles** start at ``0, tile, 2·tile, ...`` plus one flush with the far edge, the layout of
  :func:`s2cube.models.tiling.window_starts`; each output pixel comes from the one tile that
  owns it.

Chunk invariance: the output at a pixel depends only on the input within the network's
receptive field (radius ``R``, :func:`s2cube.superres.model.context_pixels`) and on where
the nearest valid pixels are.  A tile (or a dask block, :mod:`s2cube.superres.wrapper`) that
sees ``halo >= R`` pixels of real context therefore computes the same floats as one pass over
the whole image, up to the rounding of the convolution arithmetic (a different tile shape may
sum in another order): the stated tolerance is **max |diff| <= 1 DN**, and the tests hold it.
Nodata filling is exact when ``halo >= 2R`` (a filled pixel inside a valid pixel's receptive
field takes its value from at most ``R`` further away); with a smaller halo only pixels next to
large holes can differ.  With ``halo`` below ``R`` the output is approximate: the error decays
with the weight the network gives far context.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "DEFAULT_TILE",
    "fill_nodata",
    "generator_scale",
    "superres_array",
    "valid_mask",
]

#: default tile edge in input pixels (128 → 512 output px at ×4)
DEFAULT_TILE = 128


def generator_scale(gen: Any) -> int:
    """The upscaling factor of a generator (its ``scale`` attribute).

    Raises
    ------
    InputError
        If ``gen`` has no integer ``scale`` ≥ 2.
    """
    scale = getattr(gen, "scale", None)
    if not isinstance(scale, int | np.integer) or scale < 2:
        raise InputError(
            f"generator {type(gen).__name__} has scale={scale!r}; expected an integer >= 2 "
            "(build it with s2cube.superres.nets.Generator(scale=...) or load_generator)"
        )
    return int(scale)


def valid_mask(arr: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: every band has data (> 0) at the pixel."""
    return np.asarray(np.all(np.asarray(arr) > 0, axis=0))


def fill_nodata(arr: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``arr`` (bands, H, W) with every nodata pixel set to its nearest valid pixel's values.

    Examples
    --------
    >>> a = np.array([[[0, 5, 0, 0, 9]]], dtype="uint16")
    >>> fill_nodata(a, a[0] > 0)[0].tolist()
    [[5, 5, 5, 9, 9]]
    """
    if valid.all() or not valid.any():
        return arr
    from scipy.ndimage import distance_transform_edt

    idx = distance_transform_edt(~valid, return_distances=False, return_indices=True)
    rows, cols = np.asarray(idx[0]), np.asarray(idx[1])
    return np.asarray(arr[:, rows, cols])


def _tile_starts(n: int, tile: int) -> list[int]:
    """Tile starts along an axis: ``0, tile, 2·tile, ...`` and one flush with the far edge."""
    from ..models.tiling import window_starts

    return [int(s) for s in window_starts(n, tile, 0)]


def _module_on(gen: Any, device: Any) -> Any:
    """The generator in eval mode on ``device``; a copy if the caller's is elsewhere or training
    (the caller's module is never moved or switched)."""
    params = list(gen.parameters())
    here = not params or all(p.device == device for p in params)
    if here and not gen.training:
        return gen
    return copy.deepcopy(gen).to(device).eval()


def superres_array(
    arr: np.ndarray,
    gen: Any,
    *,
    halo: int | None = None,
    tile: int = DEFAULT_TILE,
    batch_size: int = 8,
    device: Any = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Super-resolve one image: ``(bands, H, W)`` uint16 → ``(bands, H·s, W·s)`` uint16.

    Parameters
    ----------
    arr
        uint16 L2A reflectance (× 10000), 0 = nodata, the generator's bands in its order.
    gen
        A torch generator with a ``scale`` attribute (e.g.
        :func:`s2cube.superres.model.load_generator`), or a
        :class:`~s2cube.models.runtime.ModelRef` of one (what the dask wrapper passes, so
        each worker keeps one instance per device).
    halo
        Input pixels of context around each tile (default: the generator's receptive radius,
        :func:`~s2cube.superres.model.context_pixels`, which makes tiles agree with one pass
        over the image to ≤ 1 DN).
    tile
        Tile edge in input pixels (the network sees ``tile + 2·halo``).
    batch_size
        Tiles per forward pass.
    device
        ``"cpu"``, ``"cuda"`` or None (CUDA when this process sees a GPU; see
        :func:`s2cube.models.runtime.resolve_device`).
    precision
        ``"fp32"``, or ``"bf16"`` / ``"fp16"`` under torch autocast (meant for CUDA).

    Returns
    -------
    numpy.ndarray
        uint16, 0 exactly where the nearest-upsampled input is nodata, ≥ 1 elsewhere.

    Examples
    --------
    >>> from s2cube.superres.nets import Generator  # doctest: +SKIP
    >>> out = superres_array(arr, Generator(scale=4, blocks=2), device="cpu")  # doctest: +SKIP
    >>> out.shape == (arr.shape[0], arr.shape[1] * 4, arr.shape[2] * 4)  # doctest: +SKIP
    True
    """
    import torch

    from ..models.runtime import ModelRef, check_precision, get_module, make_runner, resolve_device
    from .model import context_pixels, from_output, to_input

    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.dtype != np.uint16:
        raise InputError(
            f"superres_array takes (bands, H, W) uint16 reflectance; got {arr.dtype} with shape "
            f"{arr.shape}"
        )
    if tile < 1 or batch_size < 1:
        raise InputError(f"tile={tile} and batch_size={batch_size} must be >= 1")
    check_precision(precision)
    dev = resolve_device(device)
    module = get_module(gen, dev) if isinstance(gen, ModelRef) else _module_on(gen, dev)
    scale = generator_scale(module)
    halo = context_pixels(module) if halo is None else int(halo)
    if halo < 0:
        raise InputError(f"halo={halo} must be >= 0 input pixels")
    bands, height, width = arr.shape
    out = np.zeros((bands, height * scale, width * scale), dtype=np.uint16)
    if height == 0 or width == 0:
        return out
    valid = valid_mask(arr)
    if not valid.any():
        return out
    x = to_input(fill_nodata(arr, valid))
    x = np.pad(x, ((0, 0), (halo, halo), (halo, halo)), mode="symmetric")
    th, tw = min(tile, height), min(tile, width)
    starts = [(y, x0) for y in _tile_starts(height, th) for x0 in _tile_starts(width, tw)]
    run = make_runner(module, dev, precision)
    s, h = scale, halo
    dn = np.empty((bands, height * s, width * s), dtype=np.uint16)
    for i in range(0, len(starts), batch_size):
        group = starts[i : i + batch_size]
        batch = np.stack([x[:, y : y + th + 2 * h, c : c + tw + 2 * h] for y, c in group])
        with torch.inference_mode():
            got = run(torch.from_numpy(np.ascontiguousarray(batch)).to(dev)).float().cpu().numpy()
        for (y, c), tile_out in zip(group, got, strict=True):
            # each tile leaves as uint16 at once: no float copy of the whole output
            dn[:, y * s : (y + th) * s, c * s : (c + tw) * s] = from_output(
                tile_out[:, h * s : (h + th) * s, h * s : (h + tw) * s]
            )
    up = np.repeat(np.repeat(valid, s, axis=0), s, axis=1)
    np.copyto(out, np.maximum(dn, 1), where=up[None])
    return out
