"""EXPERIMENTAL, NOT VALIDATED: residential vs industrial/commercial split of the built class.

No open model or offline label here separates residential from industrial/commercial land, so
this is a rule, not a trained or checked classifier. It never replaces the map's unsplit
``built`` class (code 5); it returns a separate array in which built pixels become
``residential`` (6) or ``industrial`` (7) (:data:`~s2cube.landcover.SPLIT_CLASSES`).

The rule (:func:`split_built`), per connected built-up component (8-connected):

* **industrial/commercial** when the component is large (``area >= min_area_m2``, default
  2 ha), bright (mean of the visible bands ``>= min_brightness``, default 0.15 reflectance:
  flat metal and concrete roofs, parking, yards) and smooth (mean 3×3 standard deviation of
  that brightness inside the component ``<= max_texture``, default 0.04: large uniform roofs);
* **residential** otherwise (small or dark or textured blocks: houses, gardens, trees and
  streets mixed at 10 m).

Why these features: industrial and commercial estates are dominated by large, bright,
homogeneous roofs and sealed yards, while housing mixes roofs, vegetation and shadow at the
scale of a few pixels. The thresholds are guesses from that reasoning, not fitted: their error
rate is unknown. Tested only on constructed inputs with known answers.
"""

from __future__ import annotations

import numpy as np

from s2cube.errors import InputError
from s2cube.landcover.kernels import LANDCOVER_CODES, SPLIT_CLASSES

__all__ = ["EXPERIMENTAL_NOTE", "built_components", "split_built"]

#: the label every output of this module carries
EXPERIMENTAL_NOTE = (
    "experimental residential/industrial split: a rule on built-up component size, brightness "
    "and texture; not validated (no labels); the unsplit built class is the product"
)


def built_components(
    classes: np.ndarray, brightness: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Connected built-up components and their features.

    Returns ``(labels, area_px, mean_brightness, mean_texture)``: ``labels`` ``(y, x)`` int32
    (0 outside built, components numbered from 1) and per-component arrays indexed by label
    (index 0 unused).
    """
    from scipy import ndimage

    built = np.asarray(classes) == LANDCOVER_CODES["built"]
    labels, n = ndimage.label(built, structure=np.ones((3, 3), bool))
    b = np.asarray(brightness, dtype=np.float64)
    mean = ndimage.uniform_filter(b, 3, mode="nearest")
    sq = ndimage.uniform_filter(b * b, 3, mode="nearest")
    texture = np.sqrt(np.maximum(sq - mean * mean, 0))
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bright = np.bincount(flat, weights=b.ravel(), minlength=n + 1) / area
        tex = np.bincount(flat, weights=texture.ravel(), minlength=n + 1) / area
    return labels.astype(np.int32), area, bright, tex


def split_built(
    classes: np.ndarray,
    reflectance: np.ndarray,
    *,
    pixel_size_m: float = 10.0,
    min_area_m2: float = 20000.0,
    min_brightness: float = 0.15,
    max_texture: float = 0.04,
) -> np.ndarray:
    """The experimental split (module notes): built pixels → 6 residential / 7 industrial.

    Parameters
    ----------
    classes:
        ``(y, x)`` s2cube land-cover codes (5 = built).
    reflectance:
        ``(band, y, x)`` reflectance (0-1) of the visible bands (e.g. red, green, blue).
    pixel_size_m, min_area_m2, min_brightness, max_texture:
        The rule's parameters (unvalidated guesses; see the module notes).

    Returns
    -------
    ``(y, x)`` uint8: the input codes with built (5) replaced by 6 or 7.

    Examples
    --------
    >>> cls = np.full((30, 30), 3, np.uint8); cls[2:6, 2:6] = 5; cls[10:28, 10:28] = 5
    >>> rgb = np.full((3, 30, 30), 0.3, np.float32)
    >>> out = split_built(cls, rgb)
    >>> int(out[3, 3]), int(out[20, 20]), int(out[0, 0])
    (6, 7, 3)
    """
    classes = np.asarray(classes)
    refl = np.asarray(reflectance, dtype=np.float32)
    if refl.ndim != 3 or refl.shape[1:] != classes.shape:
        raise InputError(
            f"reflectance {refl.shape} and classes {classes.shape}: expected (band, y, x) "
            "on the same (y, x) grid"
        )
    if pixel_size_m <= 0 or min_area_m2 < 0:
        raise InputError(f"pixel_size_m={pixel_size_m}, min_area_m2={min_area_m2}")
    labels, area, bright, tex = built_components(classes, refl.mean(axis=0))
    industrial = (
        (area * pixel_size_m**2 >= min_area_m2) & (bright >= min_brightness) & (tex <= max_texture)
    )
    industrial[0] = False
    code = np.where(industrial, SPLIT_CLASSES["industrial"], SPLIT_CLASSES["residential"])
    return np.where(labels > 0, code[labels], classes).astype(np.uint8)
