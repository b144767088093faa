"""Compositing kernels (numpy in, numpy out): source selection, harmonization, blending.

Per pixel the source is the **first clear observation in priority order** (no median: a real
observation keeps its texture and its date, and a priority composite need not read every
scene); with no clear observation, the first snow observation; with neither, nodata (0).
:func:`composite_window` is the one kernel both the notebook call
(:func:`s2cube.composite`) and the store's cell engine run: per-scene transfers
(harmonization), then the blended priority composite.  Where the source changes, the value is
blended over ``width`` pixels from the scenes on both sides:

``feather``
    each scene ``s`` gets the weight ``clip(0.5 + d_s / width, 0, 1)`` where it is clear, with
    ``d_s`` the signed Euclidean distance to the edge of the region where ``s`` is the source
    (positive inside).  At a transition both sides weigh 0.5; ``width/2`` px inside a region
    only its own scene remains.
``multiband``
    two-band blending: the low frequencies (a normalised Gaussian of σ = width/4 over each
    scene's clear pixels) are feathered over ``width``, the high frequencies (the rest) over
    ``width/4``, so broad colour steps fade smoothly while texture does not ghost.

Exact under tiling: a pixel depends only on inputs within ``blend_halo(width, method)`` px, so
a block computed with that halo equals the same pixels of a whole-cell computation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..config import CompositeSpec, blend_halo
from ..errors import InputError
from ..harmonize.radiometry import IDENTITY, apply_knots
from ..mask import CLEAR, SNOW

__all__ = [
    "Knots",
    "blend_composite",
    "blend_halo",
    "composite_window",
    "harmonize_window",
    "priority_composite",
    "select_sources",
]

#: a per-band transfer function: knots ``(x, y)`` of a monotone piecewise-linear map
Knots = tuple[tuple[float, ...], tuple[float, ...]]


def select_sources(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first clear (else snow) observation per pixel (-1 none) and the usable count."""
    clear = codes == CLEAR
    snow = codes == SNOW
    count = (clear | snow).sum(axis=0, dtype="uint16")
    if codes.shape[0] == 0:
        return np.full(codes.shape[1:], -1, "int32"), count
    first_clear = np.argmax(clear, axis=0)
    first_snow = np.argmax(snow, axis=0)
    source = np.where(clear.any(0), first_clear, np.where(snow.any(0), first_snow, -1))
    return source.astype("int32"), count


#: distances below this are exact whatever the distance transform (a float32 transform's
#: squared distance is within 0.13 of the integer below it; see :func:`_distance`); farther
#: ones only saturate the feather weight (width ≤ 2046)
_EXACT_DISTANCE = 1024.0


def _distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every True pixel to the nearest False one (0 on False pixels).

    The values of ``scipy.ndimage.distance_transform_edt`` (float64), computed by OpenCV's
    exact transform (Felzenszwalb's, ``DIST_MASK_PRECISE``: ~4× faster on a 1000² block) when
    OpenCV is installed.  Its float32 output is made bit-identical by squaring, rounding to
    the integer squared distance and taking the float64 root, below :data:`_EXACT_DISTANCE`
    (farther than any feather reaches).  Without OpenCV, scipy (same values).
    """
    try:
        import cv2
    except ImportError:  # a dependency, but the GPU machine's Python has no OpenCV
        from scipy.ndimage import distance_transform_edt

        return np.asarray(distance_transform_edt(mask), dtype="float64")
    d = cv2.distanceTransform(mask.astype("uint8"), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    d = d.astype("float64")
    near = d < _EXACT_DISTANCE
    d[near] = np.sqrt(np.rint(np.square(d[near])))
    return d


def _feather_weights(
    source: np.ndarray, usable: np.ndarray, scenes: np.ndarray, width: float
) -> np.ndarray:
    """Per scene ``clip(0.5 + d_s / width, 0, 1)`` where usable, ``d_s`` the signed distance.

    The distance transforms run on the bounding box of the scene's region grown by the blend
    reach (``width/2`` + 2 px): beyond it the weight is 0 whatever the distance, and inside it
    every distance is exact (the nearest pixel of the other kind always lies inside the box, as
    clamping any outside pixel into the box brings it no farther).
    """
    weights = np.zeros((len(scenes), *source.shape), dtype="float32")
    reach = int(math.ceil(width / 2)) + 2
    for k, s in enumerate(scenes):
        region = source == s
        if region.all():
            weights[k] = usable[s]
            continue
        rows = np.flatnonzero(region.any(axis=1))
        cols = np.flatnonzero(region.any(axis=0))
        y0, y1 = max(rows[0] - reach, 0), min(rows[-1] + 1 + reach, region.shape[0])
        x0, x1 = max(cols[0] - reach, 0), min(cols[-1] + 1 + reach, region.shape[1])
        # the box holds a non-region pixel: a region filling its box would fill the array
        sub = region[y0:y1, x0:x1]
        d = np.where(sub, _distance(sub) - 0.5, -(_distance(~sub) - 0.5))
        w = np.clip(0.5 + d / width, 0.0, 1.0)
        weights[k, y0:y1, x0:x1] = np.where(usable[s, y0:y1, x0:x1], w, 0.0)
    return weights


def _lowpass(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    v = np.where(valid, values, 0.0)
    num = gaussian_filter(v, sigma, mode="constant", truncate=3.0)
    den = gaussian_filter(valid.astype("float64"), sigma, mode="constant", truncate=3.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-6, num / den, 0.0)


def _feather(
    out: np.ndarray,
    refl: np.ndarray,
    w: np.ndarray,
    scenes: np.ndarray,
    source: np.ndarray,
    has: np.ndarray,
) -> None:
    """``out[b] = rint(Σ_k w_k · refl[scenes[k], b] / Σ_k w_k)`` where ``has``, in place.

    ``out`` holds the priority choice (``refl[source]``).  Only pixels where two or more
    scenes weigh are blended: a pixel one scene alone weighs takes that scene's value
    (``w·v / w`` is exactly ``v``: a float32 weight times a uint16 value is exact in float64),
    which is already in ``out`` when that scene is the source, and one no scene weighs keeps
    the priority choice (at least 1).  The seams are thin, so this skips the float arithmetic
    on almost every pixel; the values are those of the full formula, bit for bit
    (``tests/test_seamless.py``).
    """
    nonzero = w > 0
    n_w = nonzero.sum(axis=0)
    none = has & (n_w == 0)
    out[:, none] = np.maximum(out[:, none], 1)
    k_of = np.full(refl.shape[0], 0, dtype="intp")
    k_of[scenes] = np.arange(len(scenes))
    src_weighs = np.take_along_axis(nonzero, k_of[np.clip(source, 0, None)][None], axis=0)[0]
    other = has & (n_w == 1) & ~src_weighs
    if other.any():
        yy, xx = np.nonzero(other)
        k_one = np.argmax(nonzero[:, yy, xx], axis=0)
        out[:, yy, xx] = refl[scenes[k_one], :, yy, xx].T
    mixed = has & (n_w >= 2)
    if not mixed.any():
        return
    yy, xx = np.nonzero(mixed)
    wm = w[:, yy, xx]
    # summed over the whole array, then picked: numpy's reduction order (and so the float32
    # total) differs between a (k, y, x) and a (k, n) array
    total = w.sum(axis=0)[yy, xx]
    for b in range(refl.shape[1]):
        acc = np.zeros(yy.size, dtype="float64")
        for k, s in enumerate(scenes):
            acc += wm[k] * refl[s, b, yy, xx]
        out[b, yy, xx] = np.clip(np.rint(acc / total), 1, 65535).astype("uint16")


def blend_composite(
    refl: np.ndarray,
    codes: np.ndarray,
    *,
    width: int = 0,
    method: str = "feather",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Priority composite with seam blending.

    Parameters
    ----------
    refl
        ``(time, band, y, x)`` uint16 (already harmonized), time in priority order.
    codes
        ``(time, y, x)`` mask codes.
    width
        Blend width in pixels (0: no blending, the plain priority composite).
    method
        ``"feather"``, ``"multiband"`` or ``"none"``.

    Returns
    -------
    composite, source, count
        As :func:`s2cube.composite.priority_composite`; ``source`` is the scene whose
        observation dominates the pixel (the priority choice).
    """
    source, count = select_sources(codes)
    idx = np.clip(source, 0, None)
    picked = np.take_along_axis(refl, idx[None, None], axis=0)[0]
    out = np.where(source[None] >= 0, picked, 0).astype("uint16")
    if width <= 0 or method == "none" or refl.shape[0] < 2:
        return out, source, count
    usable = (codes == CLEAR) | (codes == SNOW)
    usable &= (refl > 0).all(axis=1)
    scenes = np.flatnonzero(np.bincount(source[source >= 0], minlength=refl.shape[0]))
    if len(scenes) < 2:
        return out, source, count
    has = source >= 0
    if method == "feather":
        w = _feather_weights(source, usable, scenes, float(width))
        _feather(out, refl, w, scenes, source, has)
        return out, source, count
    if method == "multiband":
        w_low = _feather_weights(source, usable, scenes, float(width))
        w_high = _feather_weights(source, usable, scenes, max(float(width) / 4, 1.0))
        t_low, t_high = w_low.sum(0), w_high.sum(0)
        sigma = max(width / 4, 0.5)
        for b in range(refl.shape[1]):
            acc_l = np.zeros(source.shape)
            acc_h = np.zeros(source.shape)
            for k, s in enumerate(scenes):
                v = refl[s, b].astype("float64")
                low = _lowpass(v, usable[s], sigma)
                acc_l += w_low[k] * low
                acc_h += w_high[k] * np.where(usable[s], v - low, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                val = np.where((t_low > 0) & (t_high > 0), acc_l / t_low + acc_h / t_high, out[b])
            out[b] = np.where(has, np.clip(np.rint(val), 1, 65535), 0).astype("uint16")
        return out, source, count
    raise InputError(f"blend method {method!r}; choose 'feather', 'multiband' or 'none'")


def priority_composite(
    refl: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First usable observation along axis 0 (the composite without blending).

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
    if codes.shape[0] == 0:
        source, count = select_sources(codes)
        return np.zeros(refl.shape[1:], dtype=refl.dtype), source, count
    return blend_composite(refl, codes, width=0, method="none")


def harmonize_window(refl: np.ndarray, knots: Sequence[Sequence[Knots]] | None) -> np.ndarray:
    """Apply per-scene, per-band transfers: ``knots[t][b]`` to ``refl[t, b]`` (uint16)."""
    if not knots:
        return refl
    out = np.empty_like(refl)
    for t in range(refl.shape[0]):
        for b in range(refl.shape[1]):
            k = knots[t][b]
            out[t, b] = refl[t, b] if k == IDENTITY else apply_knots(refl[t, b], k)
    return out


def composite_window(
    refl: np.ndarray,
    codes: np.ndarray,
    knots: Sequence[Sequence[Knots]] | None,
    spec: CompositeSpec,
    *,
    crop: tuple[int, int, int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Harmonized, blended priority composite of one window: the compositing kernel.

    Parameters
    ----------
    refl
        ``(time, band, y, x)`` uint16, time in priority order.
    codes
        ``(time, y, x)`` final mask codes (dilated) of the same window.
    knots
        Per time, per band transfer knots (``None``: no harmonization).
    spec
        Blend method and width (``spec.blend``, ``spec.blend_width``).
    crop
        Pixels to drop from the result on the (top, bottom, left, right): the context the
        window carries beyond its core; default ``spec.blend_halo`` on every side.

    Returns
    -------
    composite, source, count
        As :func:`priority_composite`, for the window's core.
    """
    out, source, count = blend_composite(
        harmonize_window(refl, knots), codes, width=spec.blend_width, method=spec.blend
    )
    h = spec.blend_halo
    top, bottom, left, right = crop if crop is not None else (h, h, h, h)
    core = (
        slice(top, source.shape[0] - bottom),
        slice(left, source.shape[1] - right),
    )
    return out[(slice(None), *core)], source[core], count[core]
