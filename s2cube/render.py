"""Core rendering kernels: reflectance → 8-bit colour, dates → colour, RGBA stacking.

This module owns the tone curve and the TCI rule that every picture of a composite goes
through: quick-look PNGs (:mod:`s2cube.quicklook`), the figures tool and the tile server
(:mod:`s2cube.serve`, which adds only the web encoding in :mod:`s2cube.serve.render`).  It is
numpy only (matplotlib is imported lazily for the date colour map).

**One fixed global tone curve** maps reflectance to 8 bits everywhere on the globe; nothing here
looks at the statistics of a tile or a cell (a per-tile or per-cell stretch makes every tile edge a
visible seam).

The s2cube tone curve (:func:`tone_curve`, version :data:`TONE_CURVE_VERSION` = 2) is a
film-like curve in three C1-continuous pieces, on ``x = DN / 10000`` (surface reflectance)::

    s  = 1.3 · 255 / 0.2                (1.3 × the TCI slope: ~1658 levels per unit reflectance)
    toe       x < 2b:   y = s · x² / (4b)                   (b = 0.01: no hard black clip)
    linear 2b ≤ x ≤ xk: y = s · (x − b)                     (up to the knee yk = 190)
    shoulder   x > xk:  y = yk + (255 − yk) · t / (1 + t),  t = s · (x − xk) / (255 − yk)

It is steeper than TCI where the land is (0.02–0.12: more texture in shadows and forests, more
colour), bends at y = 190 (reflectance 0.125) and then compresses the highlights smoothly
toward 255 without ever reaching it below reflectance ~4 (bare soil 0.2 → 233, bright roofs
0.3 → 243, cloud 0.5 → 249): nothing saturates, where TCI clips everything above 0.2.
Measured on the real 33TWL/33TWM fixture against TCI and a Planetary-Computer-style sigmoidal
formula: ``docs/true_colour.md`` (metrics in :mod:`s2cube.render_metrics`).

Version 1 (until issue 14) was ``255 · ln(1 + x/0.02) / ln(1 + 0.6/0.02)``: no clipping, but
grey and low in contrast; :func:`tone_curve_v1` keeps it for comparison.  The version is part of
what a rendering means: :func:`rendering_attrs` gives it, with the parameters, to whoever
records how a picture was made (served layers, exports).

The ESA TCI rule (:func:`tci`, linear 0–2000 DN → 0–255) is offered as well; it is what
Sentinel-2 TCI products use and clips everything brighter than 0.2.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "TONE_CURVE_VERSION",
    "TONE_BLACK",
    "TONE_GAIN",
    "TONE_KNEE",
    "TONE_OFFSET",
    "TONE_WHITE",
    "tone_curve",
    "tone_curve_v1",
    "pc_sigmoidal",
    "rendering_attrs",
    "tci",
    "stack_rgba",
    "date_colors",
]

TONE_CURVE_VERSION = 2
"""Version of :func:`tone_curve`; changes whenever a pixel of the rendering would change."""
TONE_BLACK = 0.01
"""Reflectance ``b`` where the linear part starts (the toe below 2b keeps it off hard black)."""
TONE_GAIN = 1.3
"""Slope of the linear part relative to the TCI rule (255 levels per 0.2 reflectance)."""
TONE_KNEE = 190.0
"""Output level (0..255) where the linear part bends into the highlight shoulder."""
TONE_OFFSET = 0.02
"""Version 1 only: reflectance at which the log curve bends."""
TONE_WHITE = 0.6
"""Version 1 only: reflectance mapped to 255."""


def _curve_v2(x: np.ndarray, black: float, gain: float, knee: float) -> np.ndarray:
    """The version-2 curve on reflectance ``x`` (float), in 0..255 before rounding."""
    s = gain * 255.0 / 0.2
    xk = black + knee / s
    toe = s * x * x / (4.0 * black)
    linear = s * (x - black)
    t = s * (x - xk) / (255.0 - knee)
    shoulder = knee + (255.0 - knee) * t / (1.0 + np.maximum(t, 0.0))
    return np.where(x < 2.0 * black, toe, np.where(x <= xk, linear, shoulder))


@lru_cache(maxsize=8)
def _tone_lut(black: float, gain: float, knee: float) -> np.ndarray:
    x = np.arange(65536, dtype="float64") / 10000.0
    lut = np.clip(np.rint(_curve_v2(x, black, gain, knee)), 0, 255).astype("uint8")
    lut[0] = 0  # nodata stays 0 (alpha is set separately)
    lut.setflags(write=False)
    return lut


@lru_cache(maxsize=8)
def _log_lut(offset: float, white: float) -> np.ndarray:
    x = np.arange(65536, dtype="float64") / 10000.0
    y = 255.0 * np.log1p(x / offset) / np.log1p(white / offset)
    lut = np.clip(np.rint(y), 0, 255).astype("uint8")
    lut.setflags(write=False)
    return lut


def _check_dn(dn: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(dn)
    if a.dtype.kind not in "ui":
        raise TypeError(f"{name} expects integer DN (uint16 reflectance × 10000), got {a.dtype}")
    return np.clip(a, 0, 65535).astype("uint16", copy=False)


def tone_curve(
    dn: np.ndarray,
    *,
    black: float = TONE_BLACK,
    gain: float = TONE_GAIN,
    knee: float = TONE_KNEE,
) -> np.ndarray:
    """Map stored reflectance (uint16, ×10000) to 8 bits with the fixed global curve (v2).

    Toe, linear part at ``gain`` × the TCI slope, soft shoulder above ``knee`` (see the module
    docstring).  DN 0 (nodata) maps to 0; mask it separately (alpha).  The same input always
    gives the same output, wherever and whenever it is rendered.

    Examples
    --------
    >>> tone_curve(np.array([0, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 9000], "uint16"))
    array([  0,   4,  17,  33,  66, 149, 233, 243, 249, 252], dtype=uint8)
    """
    a = _check_dn(dn, "tone_curve")
    return _tone_lut(float(black), float(gain), float(knee))[a]


def tone_curve_v1(
    dn: np.ndarray, *, offset: float = TONE_OFFSET, white: float = TONE_WHITE
) -> np.ndarray:
    """The version-1 log curve ``255 · ln(1 + x/offset) / ln(1 + white/offset)`` (comparison only).

    >>> tone_curve_v1(np.array([0, 200, 300, 1000, 2000, 5000, 6000, 9000], dtype="uint16"))
    array([  0,  51,  68, 133, 178, 242, 255, 255], dtype=uint8)
    """
    a = _check_dn(dn, "tone_curve_v1")
    return _log_lut(float(offset), float(white))[a]


def rendering_attrs() -> dict[str, object]:
    """What the true-colour rendering is, for whoever records it (layer metadata, exports).

    >>> rendering_attrs()["tone_curve_version"]
    2
    """
    return {
        "tone_curve": "s2cube.render.tone_curve",
        "tone_curve_version": TONE_CURVE_VERSION,
        "tone_curve_params": {"black": TONE_BLACK, "gain": TONE_GAIN, "knee": TONE_KNEE},
        "nodata": "transparent (alpha 0)",
    }


def pc_sigmoidal(
    r: np.ndarray,
    g: np.ndarray,
    b: np.ndarray,
    *,
    gamma: float = 3.2,
    saturation: float = 0.8,
    contrast: float = 25.0,
    bias: float = 0.35,
    boa_offset: float = 1000.0,
) -> np.ndarray:
    """The Planetary Computer's Sentinel-2 L2A "Natural color" rendering (comparison only).

    PC renders ``assets=B04,B03,B02&nodata=0&color_formula=Gamma RGB 3.2 Saturation 0.8
    Sigmoidal RGB 25 0.35`` with no rescale: rio-tiler hands rio-color the uint16 DN divided by
    65535, and PC's L2A keeps the +1000 BOA offset of processing baseline ≥ 04.00, so the
    input here is ``(dn + boa_offset) / 65535`` (``dn`` as s2cube stores it, offset removed).
    Gamma is ``x^(1/gamma)``; saturation scales each pixel's chroma around its Rec. 601 luma
    (rio-color works in LCH: an approximation); sigmoidal contrast is rio-color's normalised
    logistic ``(σ(x) − σ(0)) / (σ(1) − σ(0))``, ``σ(x) = 1/(1 + exp(contrast·(bias − x)))``.
    Returns ``(y, x, 3)`` uint8 (nodata, ``dn`` 0, stays 0).

    >>> one = np.array([[1000]], "uint16")
    >>> pc_sigmoidal(one, one, one)[0, 0].tolist()
    [105, 105, 105]
    """
    dn = np.stack([np.asarray(c) for c in (r, g, b)], axis=-1)
    rgb = (dn.astype("float64") + boa_offset) / 65535.0
    rgb = np.clip(rgb, 0.0, 1.0) ** (1.0 / gamma)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    rgb = np.clip(luma[..., None] + saturation * (rgb - luma[..., None]), 0.0, 1.0)

    def sig(v: np.ndarray | float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(contrast * (bias - np.asarray(v))))

    out = (sig(rgb) - sig(0.0)) / (sig(1.0) - sig(0.0))
    out8 = np.clip(np.rint(255.0 * out), 0, 255).astype("uint8")
    return np.where(dn == 0, 0, out8).astype("uint8")


def tci(dn: np.ndarray) -> np.ndarray:
    """The ESA TCI rule: DN 0..2000 (reflectance 0..0.2) linearly to 0..255, brighter clipped.

    >>> tci(np.array([0, 1000, 2000, 3000], dtype="uint16"))
    array([  0, 128, 255, 255], dtype=uint8)
    """
    a = np.asarray(dn).astype("float32")
    return np.clip(np.rint(a * (255.0 / 2000.0)), 0, 255).astype("uint8")


def stack_rgba(r: np.ndarray, g: np.ndarray, b: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Stack three 8-bit channels and a validity mask into an ``(h, w, 4)`` uint8 RGBA image.

    Invalid pixels are fully transparent and black (so an encoder without alpha shows black).

    Examples
    --------
    >>> one = np.full((1, 2), 200, "uint8")
    >>> stack_rgba(one, one, one, np.array([[True, False]]))[0].tolist()
    [[200, 200, 200, 255], [0, 0, 0, 0]]
    """
    out = np.zeros((*r.shape, 4), dtype="uint8")
    out[..., 0], out[..., 1], out[..., 2] = r, g, b
    out[..., 3] = np.where(valid, 255, 0)
    out[~valid, :3] = 0
    return out


@lru_cache(maxsize=1)
def _date_lut() -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return (np.asarray(cmap(np.linspace(0, 1, 256)))[:, :3] * 255).round().astype("uint8")


def date_colors(days: np.ndarray, start: int, end: int) -> np.ndarray:
    """Colour stored dates (days since 2015-01-01, 0 = none) on a fixed store-wide range.

    ``start``/``end`` (days) come from the whole store, never from a tile, so one date has one
    colour everywhere (matplotlib's viridis, oldest dark blue, newest yellow).

    Returns
    -------
    numpy.ndarray
        ``(h, w, 4)`` uint8 RGBA with alpha 0 where there is no date.

    Examples
    --------
    >>> date_colors(np.array([[0, 3000, 3100]]), 3000, 3100)[0, :, 3].tolist()
    [0, 255, 255]
    """
    d = np.asarray(days).astype("float64")
    span = max(end - start, 1)
    idx = np.clip(np.rint((d - start) / span * 255), 0, 255).astype("uint8")
    rgb = _date_lut()[idx]
    valid = np.asarray(days) > 0
    return stack_rgba(rgb[..., 0], rgb[..., 1], rgb[..., 2], valid)
