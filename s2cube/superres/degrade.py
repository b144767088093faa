"""The Wald-protocol degradation: a Sentinel-2-like sensor blur, then decimation by the scale.

To learn super-resolution from Sentinel-2 alone, an image is degraded the way the sensor would
have seen the scene with pixels ``scale`` times larger, and the network learns to restore the
original (Wald et al., 1997; the protocol behind DSen2, Lanaras et al., 2018).  The same
operator scores consistency: an SR output degraded back must equal its input.

The operator, per band: a Gaussian blur (the optics) then the mean over each ``scale × scale``
block (the detector integrating over its larger footprint, which also centres each coarse
pixel exactly on its block, so the coarse grid aligns with the fine one).  The two together
are matched to the sensor's modulation transfer function (MTF) at the coarse grid's Nyquist
frequency ``f_N = 1 / (2·scale)`` cycles per fine pixel:

    MTF(f_N) = exp(-2 π² σ² f_N²) × sinc(1/2)   →   σ = scale · sqrt(-2 ln(g / sinc(1/2))) / π

with ``g`` the MTF value at Nyquist and ``sinc(1/2) = 2/π ≈ 0.637`` the block mean's MTF there.
Sentinel-2 MSI's requirement for the MTF at Nyquist of its 10 m bands is 0.15–0.30, and the
in-flight values reported by ESA's MSI data-quality reports sit near the top of that range; we
use ``g = 0.25`` for red, green, blue and nir (:data:`MTF_NYQUIST`), the value the
pansharpening literature also uses for Gaussian MTF-matched filters (Vivone et al., 2015).  At
``scale = 4`` this gives σ = 1.74 fine pixels.

Kernels: :func:`degrade` (numpy, the oracle) and :func:`degrade_torch` (the same operator as
``conv2d`` + ``avg_pool2d``, for training batches).  Both mirror the image at its edges
(``d c b | a b c d``: scipy ``"mirror"``, torch ``"reflect"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["MTF_NYQUIST", "degrade", "degrade_torch", "gaussian_kernel", "mtf_sigma"]

#: MTF at the coarse grid's Nyquist frequency per band (``"*"``: every other band)
MTF_NYQUIST: Mapping[str, float] = {"*": 0.25}
_SINC_HALF = 2.0 / math.pi  # the s×s block mean's MTF at the coarse Nyquist frequency


def mtf_sigma(scale: int, mtf: float = 0.25) -> float:
    """Gaussian σ (fine pixels) that, with the block mean, gives ``mtf`` at the coarse Nyquist.

    Examples
    --------
    >>> round(mtf_sigma(4, 0.25), 3)
    1.741
    """
    if not 0.0 < mtf < _SINC_HALF:
        raise InputError(
            f"mtf={mtf} at Nyquist; expected a value in (0, {_SINC_HALF:.3f}) (the block mean "
            "alone already gives 2/π); Sentinel-2's 10 m bands are about 0.25"
        )
    if int(scale) < 1:
        raise InputError(f"scale={scale}; expected an integer >= 1")
    return float(scale * math.sqrt(-2.0 * math.log(mtf / _SINC_HALF)) / math.pi)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps out to ``ceil(3σ)`` on each side (float64)."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return np.asarray(taps / taps.sum())


def _band_mtfs(bands: Sequence[str] | int, mtf: Mapping[str, float] | float | None) -> list[float]:
    names = [str(i) for i in range(bands)] if isinstance(bands, int) else list(bands)
    if mtf is None:
        mtf = MTF_NYQUIST
    if isinstance(mtf, int | float):
        return [float(mtf)] * len(names)
    if "*" not in mtf and any(n not in mtf for n in names):
        missing = [n for n in names if n not in mtf]
        raise InputError(f"mtf has no value for bands {missing}; add them or a '*' default")
    return [float(mtf.get(n, mtf.get("*", 0.25))) for n in names]


def degrade(
    hr: np.ndarray,
    scale: int,
    *,
    mtf: Mapping[str, float] | float | None = None,
    bands: Sequence[str] | None = None,
) -> np.ndarray:
    """Degrade ``(bands, H, W)`` (or ``(H, W)``) by ``scale``: MTF-matched blur, block mean.

    ``H`` and ``W`` must be multiples of ``scale``.  Float in, float64 out (cast as needed);
    the operator is linear, so it commutes with :func:`s2cube.superres.model.to_input`.

    Parameters
    ----------
    hr
        The fine image.
    scale
        Decimation factor.
    mtf
        MTF at Nyquist: one value, or per band name with a ``"*"`` default
        (:data:`MTF_NYQUIST`).
    bands
        Band names of ``hr``'s first axis (for a per-band ``mtf``).

    Examples
    --------
    >>> degrade(np.full((1, 8, 8), 0.3), 4).round(6).tolist()
    [[[0.3, 0.3], [0.3, 0.3]]]
    """
    from scipy.ndimage import convolve1d

    arr = np.asarray(hr, dtype=np.float64)
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"degrade takes (bands, H, W) or (H, W); got shape {np.shape(hr)}")
    s = int(scale)
    nb, h, w = arr.shape
    if s < 1 or h % s or w % s:
        raise InputError(
            f"image of {h}×{w} px cannot be decimated by scale={scale}: crop it to a multiple "
            "of the scale first"
        )
    out = np.empty((nb, h // s, w // s), dtype=np.float64)
    for i, g in enumerate(_band_mtfs(list(bands) if bands else nb, mtf)):
        taps = gaussian_kernel(mtf_sigma(s, g))
        blurred = convolve1d(convolve1d(arr[i], taps, axis=0, mode="mirror"), taps, axis=1,
                             mode="mirror")  # fmt: skip
        out[i] = blurred.reshape(h // s, s, w // s, s).mean(axis=(1, 3))
    return out[0] if squeeze else out


def degrade_torch(
    hr: Any,
    scale: int,
    *,
    mtf: Mapping[str, float] | float | None = None,
    bands: Sequence[str] | None = None,
) -> Any:
    """:func:`degrade` for a torch batch ``(N, bands, H, W)`` (differentiable, on its device)."""
    import torch
    import torch.nn.functional as F

    s = int(scale)
    n, nb, h, w = hr.shape
    if h % s or w % s:
        raise InputError(f"batch of {h}×{w} px cannot be decimated by scale={scale}")
    sigmas = [mtf_sigma(s, g) for g in _band_mtfs(list(bands) if bands else nb, mtf)]
    radius = max(len(gaussian_kernel(sg)) // 2 for sg in sigmas)
    taps = np.zeros((nb, 2 * radius + 1))
    for i, sg in enumerate(sigmas):
        k = gaussian_kernel(sg)
        r = len(k) // 2
        taps[i, radius - r : radius + r + 1] = k
    kern = torch.as_tensor(taps, dtype=hr.dtype, device=hr.device)
    x = F.pad(hr, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kern[:, None, :, None], groups=nb)
    x = F.conv2d(x, kern[:, None, None, :], groups=nb)
    return F.avg_pool2d(x, s)
