"""Land-cover kernels (numpy): Dynamic World's 9 classes → s2cube's classes, and time fusion.

Class mapping (:data:`DW_TO_LANDCOVER`), Dynamic World → s2cube:

========================  =======================================================================
``water``                 water
``tree``                  trees
``grass``                 grass, crops, shrub_and_scrub, flooded_vegetation (low vegetation)
``barren``                bare
``built``                 built; the seed's residential/industrial split is not made here (one
                          ``built`` class) because DW has no such distinction and no labels here
                          can train or check it
(dropped)                 snow_and_ice, see below
========================  =======================================================================

**snow_and_ice** is not a land-cover class of the seed, and Dynamic World gives it to residual
cloud and haze (its published maps call a cloudy scene snow_and_ice). Its probability is dropped
and the other eight are renormalised; where it dominates a date's pixel (``> snow_threshold``)
that date is treated as not clear for the pixel, like a cloud. Permanent ice (glaciers) therefore
comes out as "no usable date" (class 0) rather than being forced into another class.

**Fusion** (:func:`fuse`): the Dirichlet posterior mean of the per-date class probabilities,
``(alpha + sum_t m_t p_t) / (K alpha + n)``, over the dates ``t`` whose clear mask ``m_t`` is set
(``n`` of them). Chosen over the naive-Bayes product ``prod_t p_t`` because the dates are not
independent looks (same sensor, same network, correlated errors: the product is overconfident),
and because one date with a confidently wrong answer (a missed cloud edge or shadow) can veto a
class in the product but only moves the mean by ``1/n``. The product is available
(``method="product"``, floored at ``1e-4`` per date) for comparison. A masked date contributes an
exact zero, so adding cloudy dates never changes the fused map.
"""

from __future__ import annotations

import numpy as np

from s2cube.errors import InputError

__all__ = [
    "LANDCOVER_COLORS",
    "SPLIT_CLASSES",
    "DW_TO_LANDCOVER",
    "LANDCOVER_CLASSES",
    "LANDCOVER_CODES",
    "NO_DATE",
    "dw_to_landcover",
    "fuse",
]

#: output classes, coded 1..5 in that order; 0 (:data:`NO_DATE`) = no usable date
LANDCOVER_CLASSES = ("water", "tree", "grass", "barren", "built")
LANDCOVER_CODES = {name: i + 1 for i, name in enumerate(LANDCOVER_CLASSES)}
NO_DATE = 0

#: the seed's palette, by class name (``built``: the unsplit built class has its own colour;
#: ``residential``/``industrial`` only in the experimental split, :mod:`s2cube.landcover.split`)
LANDCOVER_COLORS: dict[str, str] = {
    "water": "#2b6cc4",  # blue
    "tree": "#1b5e20",  # dark green
    "grass": "#7cc242",  # green
    "barren": "#f2e6c2",  # cream
    "built": "#c0392b",  # red: built-up, residential/industrial not split
    "residential": "#f28c28",  # orange (experimental split only)
    "industrial": "#8b5a2b",  # brown (experimental split only)
}
#: codes of the experimental residential/industrial split (never in the ``landcover`` map)
SPLIT_CLASSES = {"residential": 6, "industrial": 7}

#: Dynamic World class (in DW's output order) → s2cube class, ``None`` = dropped
DW_TO_LANDCOVER: dict[str, str | None] = {
    "water": "water",
    "trees": "tree",
    "grass": "grass",
    "flooded_vegetation": "grass",
    "crops": "grass",
    "shrub_and_scrub": "grass",
    "built": "built",
    "bare": "barren",
    "snow_and_ice": None,
}

_DW_ORDER = tuple(DW_TO_LANDCOVER)
_SNOW = _DW_ORDER.index("snow_and_ice")
#: (5, 9) summation matrix: row k adds the DW probabilities of s2cube class k
_MAP = np.array(
    [[1.0 if DW_TO_LANDCOVER[d] == c else 0.0 for d in _DW_ORDER] for c in LANDCOVER_CLASSES],
    dtype=np.float32,
)


def dw_to_landcover(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic World probabilities ``(..., 9, y, x)`` → s2cube class probabilities
    ``(..., 5, y, x)`` (renormalised without snow_and_ice) and the snow_and_ice probability
    ``(..., y, x)``.

    Examples
    --------
    >>> p = np.zeros((9, 1, 1), "float32"); p[[1, 4, 8], 0, 0] = 0.5, 0.3, 0.2
    >>> five, snow = dw_to_landcover(p)
    >>> five[:, 0, 0].round(3).tolist(), round(float(snow[0, 0]), 3)
    ([0.0, 0.625, 0.375, 0.0, 0.0], 0.2)
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim < 3 or probs.shape[-3] != len(_DW_ORDER):
        raise InputError(
            f"probabilities have shape {probs.shape}; expected (..., 9, y, x) in Dynamic World's "
            f"class order {_DW_ORDER}"
        )
    five = np.einsum("kc,...cyx->...kyx", _MAP, probs)
    total = five.sum(axis=-3, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        five = np.where(total > 0, five / total, np.float32(1.0 / len(LANDCOVER_CLASSES)))
    return five.astype(np.float32), probs[..., _SNOW, :, :]


def fuse(
    probs: np.ndarray,
    clear: np.ndarray,
    *,
    method: str = "mean",
    alpha: float = 0.1,
    snow_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse per-date Dynamic World probabilities into one map, using only clear observations.

    Parameters
    ----------
    probs:
        ``(time, 9, y, x)`` Dynamic World probabilities (softmax of the logits).
    clear:
        ``(time, y, x)`` bool: the date sees the surface at that pixel. Other dates contribute
        exactly nothing.
    method:
        ``"mean"`` (Dirichlet posterior mean, the default; see the module notes) or
        ``"product"`` (naive Bayes with a uniform prior, per-date probabilities floored at 1e-4).
    alpha:
        Dirichlet pseudo-count per class (``"mean"`` only): with few dates it pulls the confidence
        towards ``1/5``.
    snow_threshold:
        A date whose snow_and_ice probability exceeds this at a pixel counts as not clear there.

    Returns
    -------
    ``(classes, confidence, n_dates)``: uint8 codes (1..5 in :data:`LANDCOVER_CLASSES` order,
    0 where no date was usable), float32 fused probability of the chosen class (0 there) and
    uint8 number of dates used.

    Examples
    --------
    >>> p = np.zeros((2, 9, 1, 1), "float32"); p[0, 1] = 1.0; p[1, 8] = 1.0  # trees; "snow"
    >>> cls, conf, n = fuse(p, np.ones((2, 1, 1), bool))
    >>> int(cls[0, 0]), int(n[0, 0])  # the snow/cloud date is not used
    (2, 1)
    """
    probs = np.asarray(probs, dtype=np.float32)
    clear = np.asarray(clear, dtype=bool)
    if probs.ndim != 4 or clear.shape != (probs.shape[0], *probs.shape[2:]):
        raise InputError(
            f"probs {probs.shape} and clear {clear.shape}; expected (time, 9, y, x) and "
            "(time, y, x)"
        )
    if method not in ("mean", "product"):
        raise InputError(f"method={method!r}; expected 'mean' or 'product'")
    five, snow = dw_to_landcover(probs)
    use = clear & ~(snow > snow_threshold)
    n = use.sum(axis=0)
    k = len(LANDCOVER_CLASSES)
    w = use[:, None].astype(np.float32)
    if method == "mean":
        fused = (np.float32(alpha) + (w * five).sum(axis=0)) / (
            np.float32(k * alpha) + n.astype(np.float32)
        )
    else:
        logp = (w * np.log(np.maximum(five, np.float32(1e-4)))).sum(axis=0)
        logp -= logp.max(axis=0, keepdims=True)
        fused = np.exp(logp)
        fused /= fused.sum(axis=0, keepdims=True)
    best = fused.argmax(axis=0)
    conf = np.take_along_axis(fused, best[None], axis=0)[0]
    classes = np.where(n > 0, best + 1, NO_DATE).astype(np.uint8)
    return classes, np.where(n > 0, conf, 0).astype(np.float32), n.astype(np.uint8)
