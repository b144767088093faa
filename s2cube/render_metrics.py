"""How good a true-colour rendering is (numpy kernels, no I/O).

Every metric takes an 8-bit ``(y, x, 3)`` RGB rendering and a ``(y, x)`` validity mask; the
decile entropies also take the *input* luminance, so that every rendering of one image is
judged on the same pixels (the darkest/brightest 10 % of the scene, not of the picture).

``clipped_fraction``
    Fraction of valid pixels with any channel at 0 or 255 (saturated: detail lost).
``decile_entropy``
    Shannon entropy (bits) of the 8-bit luminance histogram over the pixels whose *input*
    luminance is in the darkest (``q=0``) or brightest (``q=9``) decile: how many distinguishable
    grey levels the rendering keeps where TCI crushes shadows or clips highlights.
``rms_contrast``
    Standard deviation of the rendered luminance, in 0..1.
``colourfulness``
    Hasler & Süsstrunk (2003): ``sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²)`` with
    ``rg = R − G`` and ``yb = (R + G)/2 − B`` on 0..255 values.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "luminance",
    "clipped_fraction",
    "decile_entropy",
    "rms_contrast",
    "colourfulness",
    "rendering_metrics",
]

_REC601 = np.array([0.299, 0.587, 0.114])


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of ``(..., 3)`` values (any scale), as float64.

    >>> luminance(np.array([[255, 255, 255], [0, 0, 0]])).tolist()
    [255.0, 0.0]
    """
    return np.asarray(rgb, dtype="float64") @ _REC601


def clipped_fraction(rgb8: np.ndarray, valid: np.ndarray) -> float:
    """Fraction of valid pixels with any channel at 0 or 255.

    >>> rgb = np.array([[[0, 10, 10], [5, 6, 7], [255, 1, 1], [9, 9, 9]]], "uint8")
    >>> clipped_fraction(rgb, np.ones((1, 4), bool))
    0.5
    """
    px = np.asarray(rgb8)[np.asarray(valid)]
    if px.size == 0:
        return float("nan")
    return float(((px == 0) | (px == 255)).any(axis=-1).mean())


def _entropy(values: np.ndarray) -> float:
    counts = np.bincount(np.clip(np.rint(values), 0, 255).astype("int64"), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: no negative zero


def decile_entropy(
    rgb8: np.ndarray, valid: np.ndarray, input_luminance: np.ndarray, decile: int
) -> float:
    """Entropy (bits) of the rendered 8-bit luma over one decile of the input luminance.

    ``decile`` 0 is the darkest 10 % of the valid pixels (by ``input_luminance``), 9 the
    brightest.  A rendering that maps the whole decile to one grey has entropy 0.

    >>> lum = np.arange(100.0).reshape(10, 10)
    >>> flat = np.zeros((10, 10, 3), "uint8")
    >>> decile_entropy(flat, np.ones((10, 10), bool), lum, 0)
    0.0
    >>> ramp = np.repeat(np.arange(100, dtype="uint8").reshape(10, 10, 1), 3, axis=-1)
    >>> round(decile_entropy(ramp, np.ones((10, 10), bool), lum, 9), 3)
    3.322
    """
    if not 0 <= decile <= 9:
        raise ValueError(f"decile must be 0..9, got {decile}")
    v = np.asarray(valid)
    lum_in = np.asarray(input_luminance, dtype="float64")[v]
    if lum_in.size == 0:
        return float("nan")
    lo, hi = np.quantile(lum_in, [decile / 10, (decile + 1) / 10])
    sel = (lum_in >= lo) & (lum_in <= hi)
    return _entropy(luminance(np.asarray(rgb8)[v][sel]))


def rms_contrast(rgb8: np.ndarray, valid: np.ndarray) -> float:
    """Standard deviation of the rendered luma of the valid pixels, on a 0..1 scale.

    >>> rms_contrast(np.array([[[0, 0, 0], [255, 255, 255]]], "uint8"), np.ones((1, 2), bool))
    0.5
    """
    lum = luminance(np.asarray(rgb8)[np.asarray(valid)]) / 255.0
    return float(lum.std()) if lum.size else float("nan")


def colourfulness(rgb8: np.ndarray, valid: np.ndarray) -> float:
    """Hasler–Süsstrunk colourfulness of the valid pixels (0 for a grey image).

    >>> grey = np.full((2, 2, 3), 120, "uint8")
    >>> colourfulness(grey, np.ones((2, 2), bool))
    0.0
    """
    px = np.asarray(rgb8)[np.asarray(valid)].astype("float64")
    if px.size == 0:
        return float("nan")
    rg = px[:, 0] - px[:, 1]
    yb = 0.5 * (px[:, 0] + px[:, 1]) - px[:, 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def rendering_metrics(
    rgb8: np.ndarray, valid: np.ndarray, input_luminance: np.ndarray
) -> dict[str, float]:
    """All metrics of one rendering: clipped, entropy_dark, entropy_bright, rms_contrast,
    colourfulness."""
    return {
        "clipped": clipped_fraction(rgb8, valid),
        "entropy_dark": decile_entropy(rgb8, valid, input_luminance, 0),
        "entropy_bright": decile_entropy(rgb8, valid, input_luminance, 9),
        "rms_contrast": rms_contrast(rgb8, valid),
        "colourfulness": colourfulness(rgb8, valid),
    }
