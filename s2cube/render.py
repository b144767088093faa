"""Core rendering kernels: reflectance → 8-bit colour, dates → colour, RGBA stacking.

This module owns the tone curve and the TCI rule that every picture of a composite goes
through: quick-look PNGs (:mod:`s2cube.quicklook`), the figures tool and the tile server
(:mod:`s2cube.serve`, which adds only the web encoding in :mod:`s2cube.serve.render`).  It is
numpy only (matplotlib is imported lazily for the date colour map).

**One fixed global tone curve** maps reflectance to 8 bits everywhere on the globe; nothing here
looks at the statistics of a tile or a cell (a per-tile or per-cell stretch makes every tile edge a
visible seam).

The s2cube tone curve (:func:`tone_curve`) is logarithmic::

    x = DN / 10000                      (surface reflectance, DN = stored uint16)
    y = 255 · ln(1 + x / 0.02) / ln(1 + 0.6 / 0.02)      clipped to 0..255

It lifts the dark end (water 0.02 → 51, dense forest 0.03 → 68, so texture in shadows and
vegetation stays visible) and compresses the bright end without clipping it (bare soil 0.2 →
178, bright roofs and cloud edges 0.5 → 242; only reflectance ≥ 0.6 saturates).  The ESA TCI rule
(:func:`tci`, linear 0–2000 DN → 0–255) is offered as well; it is what Sentinel-2 TCI products use
and clips everything brighter than 0.2.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "TONE_OFFSET",
    "TONE_WHITE",
    "tone_curve",
    "tci",
    "stack_rgba",
    "date_colors",
]

TONE_OFFSET = 0.02
"""Reflectance at which the log curve bends (smaller lifts darks more)."""
TONE_WHITE = 0.6
"""Reflectance mapped to 255 (brighter values saturate)."""


@lru_cache(maxsize=8)
def _tone_lut(offset: float, white: float) -> np.ndarray:
    x = np.arange(65536, dtype="float64") / 10000.0
    y = 255.0 * np.log1p(x / offset) / np.log1p(white / offset)
    lut = np.clip(np.rint(y), 0, 255).astype("uint8")
    lut.setflags(write=False)
    return lut


def tone_curve(
    dn: np.ndarray, *, offset: float = TONE_OFFSET, white: float = TONE_WHITE
) -> np.ndarray:
    """Map stored reflectance (uint16, ×10000) to 8 bits with the fixed global log curve.

    ``y = 255 · ln(1 + x/offset) / ln(1 + white/offset)`` with ``x = dn / 10000``, clipped to
    0..255.  DN 0 (nodata) maps to 0; mask it separately (alpha).  The same input always gives the
    same output, wherever and whenever it is rendered.

    Examples
    --------
    >>> tone_curve(np.array([0, 200, 300, 1000, 2000, 5000, 6000, 9000], dtype="uint16"))
    array([  0,  51,  68, 133, 178, 242, 255, 255], dtype=uint8)
    """
    a = np.asarray(dn)
    if a.dtype.kind not in "ui":
        raise TypeError(
            f"tone_curve expects integer DN (uint16 reflectance × 10000), got {a.dtype}"
        )
    lut = _tone_lut(float(offset), float(white))
    return lut[np.clip(a, 0, 65535).astype("uint16", copy=False)]


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
