"""Haze scores of scenes (numpy kernels).

The Haze Optimized Transform (Zhang, Guindon & Cihlar 2002, *Remote Sensing of Environment*
82:173), ``HOT = blue − 0.5·red − 0.08`` in reflectance: clear land sits near or below 0; haze
raises blue over red and pushes HOT up.  A scene's score is the median HOT over its clear
pixels; scenes scoring above a threshold are demoted to the end of the priority order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["HOT_OFFSET", "haze_optimized_transform", "haze_score"]

HOT_OFFSET = 0.08


def haze_optimized_transform(blue: np.ndarray, red: np.ndarray) -> np.ndarray:
    """HOT = blue − 0.5·red − 0.08 in reflectance units (inputs in DN = reflectance × 10000)."""
    return blue.astype("float64") / 1e4 - 0.5 * red.astype("float64") / 1e4 - HOT_OFFSET


def haze_score(samples: Sequence[np.ndarray]) -> float:
    """Median HOT over all samples of a scene (NaN if none)."""
    vals = np.concatenate([np.asarray(s, "float64") for s in samples]) if samples else np.array([])
    if vals.size == 0:
        return float("nan")
    with np.errstate(invalid="ignore"):
        return float(np.median(vals))
