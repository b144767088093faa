"""Super-resolution metrics in numpy: PSNR, SSIM, spectral angle, and opensr-test's scores.

Images are ``(bands, H, W)`` reflectance (float, 0–1; :func:`s2cube.superres.model.to_input`).
``lr`` is the input, ``sr`` the super-resolved image, ``hr`` the truth (``scale`` × larger).

Fidelity to the truth
    * :func:`psnr`: ``10 log10(peak² / MSE)`` over all bands and pixels, ``peak = 1``
      (reflectance 1.0 = 10000 DN).
    * :func:`ssim`: mean structural similarity (Wang et al., 2004) over the bands
      (:func:`skimage.metrics.structural_similarity`, ``data_range = 1``, 7 × 7 window).
    * :func:`sam`: mean spectral angle (degrees) between the band vectors of two images, per
      pixel.

opensr-test's scores (Aybar et al., 2024, "A comprehensive benchmark for optical remote
sensing image super-resolution", IEEE GRSL; ``ESAOpenSR/opensr-test``, ``main.py``,
``correctness.py``, ``distance.py``, ``utils.py``, with its default ``Config``).  The
package itself imports torchvision, which does not import with the CPU torch here, so the same
definitions are implemented below:

* **consistency** (:func:`consistency`): SR brought back to the input grid must equal the
  input.  opensr-test downsamples SR with torch's bilinear interpolation with antialiasing (a
  triangle filter ``scale`` px wide each side, :func:`downsample_bilinear_aa`) and reports the
  mean absolute reflectance error (``reflectance``) and the mean spectral angle in degrees
  (``spectral``) against the input.  We also report the same L1 under the Wald degradation the
  model was trained with (``reflectance_wald``, :func:`s2cube.superres.degrade.degrade`).
* **improvement, omission, hallucination** (:func:`correctness`): with ``lr↑`` the input
  upsampled bilinearly to the truth's grid (:func:`upsample_bilinear`) and ``sr*`` the SR
  histogram-matched to the truth per band (opensr-test's "harmonisation", removing systematic
  reflectance error), three per-pixel normalised differences (mean over bands of
  ``|x - y| / |x + y|``) are taken: ``d_ref = nd(lr↑, hr)``, ``d_im = nd(sr*, hr)`` (distance
  to the improvement space) and ``d_om = nd(sr*, lr↑)`` (distance to the omission space).
  Pixels where none of the three exceeds the 75th percentile of ``d_ref`` are dropped (flat
  areas where nothing can be judged), the rest are scaled by ``d_ref``, and with
  ``H = d_im + d_om - 1`` and ``λ = 0.05``:

      improvement   = d_im + d_om (1 - exp(-λ H))
      omission      = d_om + d_im (1 - exp(-λ H))
      hallucination = exp(-λ d_im d_om)

  Each pixel's three values go through a softmin with temperature ``T = 0.25`` (they become
  shares summing to 1) and the scores are their means over the kept pixels.  A perfect SR
  (``d_im = 0, d_om = 1``) scores improvement ≈ 0.96; the bilinear input itself
  (``d_im = 1, d_om = 0``) scores omission ≈ 0.96; an SR far from both truth and input
  (invented texture) scores hallucination.  A border of 16 truth pixels (``16 / scale`` input
  pixels) is cropped first, as opensr-test does.  Not reproduced: opensr-test's spatial
  alignment of SR to the truth (phase correlation); our SR and truth share one grid by
  construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "consistency",
    "correctness",
    "downsample_bilinear_aa",
    "evaluate",
    "psnr",
    "sam",
    "ssim",
    "upsample_bilinear",
]

#: opensr-test ``Config`` defaults
BORDER = 16
LAMBDA = 0.05
TEMPERATURE = 0.25
THRESHOLD_QUANTILE = 0.75
_EPS = 1e-8


def _f64(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3:
        raise InputError(f"{name} must be (bands, H, W); got shape {arr.shape}")
    return arr


def _same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{what}: shapes {a.shape} and {b.shape} differ")


def psnr(truth: Any, pred: Any, *, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio (dB) over all bands and pixels.

    Examples
    --------
    >>> round(psnr(np.zeros((1, 2, 2)), np.full((1, 2, 2), 0.1)), 3)
    20.0
    """
    t, p = _f64(truth, "truth"), _f64(pred, "pred")
    _same(t, p, "psnr")
    mse = float(np.mean((t - p) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak**2 / mse))


def ssim(truth: Any, pred: Any, *, data_range: float = 1.0) -> float:
    """Mean SSIM over the bands (skimage, 7 × 7 uniform window)."""
    from skimage.metrics import structural_similarity

    t, p = _f64(truth, "truth"), _f64(pred, "pred")
    _same(t, p, "ssim")
    return float(structural_similarity(t, p, data_range=data_range, channel_axis=0))


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dot = np.sum(a * b, axis=0)
    norm = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.clip(dot / norm, -1.0, 1.0)
    return np.asarray(np.degrees(np.arccos(cos)))


def sam(truth: Any, pred: Any) -> float:
    """Mean spectral angle (degrees) between the pixels' band vectors (zero vectors skipped).

    Examples
    --------
    >>> round(sam(np.ones((2, 1, 1)), np.array([[[1.0]], [[0.0]]])), 6)
    45.0
    """
    t, p = _f64(truth, "truth"), _f64(pred, "pred")
    _same(t, p, "sam")
    return float(np.nanmean(_angles(t, p)))


def _linear_weights(n_in: int, n_out: int, support: float) -> np.ndarray:
    """``(n_out, n_in)`` triangle-filter weights (half-pixel centres, edges renormalised)."""
    ratio = n_in / n_out
    centres = (np.arange(n_out) + 0.5) * ratio - 0.5
    dist = np.abs(np.arange(n_in)[None, :] - centres[:, None])
    w = np.clip(1.0 - dist / support, 0.0, None)
    return np.asarray(w / w.sum(axis=1, keepdims=True))


def upsample_bilinear(lr: Any, scale: int) -> np.ndarray:
    """Bilinear upsampling by ``scale`` (torch ``interpolate(mode="bilinear",
    align_corners=False)``: half-pixel centres, clamped at the edges)."""
    x = _f64(lr, "lr")
    _, h, w = x.shape
    wy = _linear_weights(h, h * scale, 1.0)
    wx = _linear_weights(w, w * scale, 1.0)
    return np.asarray(np.einsum("yi,bij,xj->byx", wy, x, wx))


def downsample_bilinear_aa(sr: Any, scale: int) -> np.ndarray:
    """Downsampling by ``scale`` with torch's antialiased bilinear filter (a triangle
    ``scale`` input pixels wide on each side of each output centre)."""
    x = _f64(sr, "sr")
    _, h, w = x.shape
    if h % scale or w % scale:
        raise InputError(f"sr of {h}×{w} px is not a multiple of scale={scale}")
    wy = _linear_weights(h, h // scale, float(scale))
    wx = _linear_weights(w, w // scale, float(scale))
    return np.asarray(np.einsum("yi,bij,xj->byx", wy, x, wx))


def _scale_of(lr: np.ndarray, big: np.ndarray) -> int:
    s = big.shape[-1] // lr.shape[-1]
    if s < 1 or big.shape[-1] != lr.shape[-1] * s or big.shape[-2] != lr.shape[-2] * s:
        raise InputError(
            f"images of shape {big.shape} and {lr.shape} are not an integer scale apart"
        )
    return s


def consistency(lr: Any, sr: Any) -> dict[str, float]:
    """opensr-test consistency: SR downsampled back vs the input (lower is better).

    Returns ``reflectance`` (mean |Δ| reflectance, antialiased bilinear), ``spectral``
    (mean spectral angle, degrees) and ``reflectance_wald`` (mean |Δ| under the Wald
    degradation, :func:`s2cube.superres.degrade.degrade`).
    """
    from .degrade import degrade

    x, y = _f64(lr, "lr"), _f64(sr, "sr")
    s = _scale_of(x, y)
    down = downsample_bilinear_aa(y, s)
    return {
        "reflectance": float(np.mean(np.abs(down - x))),
        "spectral": float(np.nanmean(_angles(down, x))),
        "reflectance_wald": float(np.mean(np.abs(degrade(y, s) - x))),
    }


def _nd(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.asarray(np.mean(np.abs(x - y) / np.abs(x + y + _EPS), axis=0))


def correctness(
    lr: Any,
    sr: Any,
    hr: Any,
    *,
    harmonise: bool = True,
    border: int = BORDER,
    lam: float = LAMBDA,
    temperature: float = TEMPERATURE,
) -> dict[str, float]:
    """opensr-test improvement / omission / hallucination shares (each 0–1, summing to 1).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> hr = rng.uniform(0.05, 0.4, (4, 64, 64))
    >>> from s2cube.superres.degrade import degrade
    >>> round(correctness(degrade(hr, 4), hr, hr)["improvement"], 2)
    0.96
    """
    from skimage.exposure import match_histograms

    x, y, t = _f64(lr, "lr"), _f64(sr, "sr"), _f64(hr, "hr")
    _same(y, t, "correctness (sr vs hr)")
    s = _scale_of(x, t)
    b = int(border)
    if b and (t.shape[1] <= 2 * b or t.shape[2] <= 2 * b):
        raise InputError(f"images of {t.shape[1:]} px are too small for a border of {b} px")
    up = upsample_bilinear(x, s)
    if b:
        up, y, t = (a[:, b:-b, b:-b] for a in (up, y, t))
    if harmonise:
        y = np.asarray(match_histograms(y, t, channel_axis=0))
    d_ref, d_im, d_om = _nd(up, t), _nd(y, t), _nd(y, up)
    flat = np.sort(d_ref.ravel())
    thr = flat[max(int(THRESHOLD_QUANTILE * flat.size) - 1, 0)]  # torch kthvalue, 1-indexed
    keep = (d_ref > thr) | (d_im > thr) | (d_om > thr)
    if not keep.any():
        raise InputError("correctness: no pixel differs from its neighbours (a flat image)")
    rim = d_im[keep] / d_ref[keep]
    rom = d_om[keep] / d_ref[keep]
    h = rim + rom - 1.0
    scores = np.stack(
        [rim + rom * (1 - np.exp(-h * lam)), rom + rim * (1 - np.exp(-h * lam)),
         np.exp(-rim * rom * lam)]
    )  # fmt: skip
    e = np.exp(-(scores - scores.min(axis=0)) / temperature)  # softmin, stable
    share = e / e.sum(axis=0)
    share = share[:, np.all(np.isfinite(share), axis=0)]
    return {
        "improvement": float(share[0].mean()),
        "omission": float(share[1].mean()),
        "hallucination": float(share[2].mean()),
    }


def evaluate(lr: Any, sr: Any, hr: Any) -> dict[str, float]:
    """Every metric of one (input, SR, truth) triple: psnr, ssim, sam, consistency_*,
    improvement, omission, hallucination."""
    out = {"psnr": psnr(hr, sr), "ssim": ssim(hr, sr), "sam": sam(hr, sr)}
    out.update({f"consistency_{k}": v for k, v in consistency(lr, sr).items()})
    out.update(correctness(lr, sr, hr))
    return out
