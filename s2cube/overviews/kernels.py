"""The numpy kernels of the pyramid: one 2×2 step for reflectance and for provenance.

Reflectance is the mean of the valid (non-zero) children, so nodata never darkens an edge;
``date``, ``scene`` and ``clear_count`` (and ``fill``, when stored) are taken together from one
child (the first valid one in the order NW, NE, SW, SE), so provenance stays a real observation
and they never disagree; where no child has a scene, ``fill`` is the first child's code that is
set (an inpainted pixel).  Arrays only: no zarr, no xarray.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "PROVENANCE_VARS",
    "downsample_reflectance",
    "first_valid_child",
    "take_child",
    "downsample_cell",
    "downsample_classes",
]

PROVENANCE_VARS = ("date", "scene", "clear_count")


def _blocks(a: np.ndarray, fill: Any) -> np.ndarray:
    """(h, w) → (ceil(h/2), ceil(w/2), 4) children in the order NW, NE, SW, SE."""
    h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)), constant_values=fill)
    h2, w2 = a.shape[0] // 2, a.shape[1] // 2
    return a.reshape(h2, 2, w2, 2).transpose(0, 2, 1, 3).reshape(h2, w2, 4)


def downsample_reflectance(a: np.ndarray) -> np.ndarray:
    """2×2 mean of the valid (non-zero) children of a uint16 reflectance array (nodata 0).

    Odd edges are padded with nodata.  A block without a valid child stays 0.

    Examples
    --------
    >>> downsample_reflectance(np.array([[0, 4], [6, 0]], dtype="uint16"))
    array([[5]], dtype=uint16)
    """
    b = _blocks(np.asarray(a), 0)
    n = np.count_nonzero(b, axis=-1)
    s = b.sum(axis=-1, dtype="uint32")
    out = np.zeros(n.shape, dtype="uint16")
    ok = n > 0
    out[ok] = ((s[ok] + n[ok] // 2) // n[ok]).astype("uint16")
    return out


def first_valid_child(valid: np.ndarray) -> np.ndarray:
    """Index (0..3, NW NE SW SE) of the first valid child of each 2×2 block (0 if none).

    Examples
    --------
    >>> first_valid_child(np.array([[False, True], [True, False]]))
    array([[1]], dtype=uint8)
    """
    return np.argmax(_blocks(np.asarray(valid, dtype=bool), False), axis=-1).astype("uint8")


def take_child(a: np.ndarray, child: np.ndarray, fill: Any) -> np.ndarray:
    """The child ``child`` of each 2×2 block of ``a`` (nearest-style, keeps real values).

    Examples
    --------
    >>> take_child(np.array([[1, 2], [3, 4]]), np.array([[2]]), 0)
    array([[3]])
    """
    b = _blocks(np.asarray(a), fill)
    return np.take_along_axis(b, child[..., None].astype("intp"), axis=-1)[..., 0]


def downsample_cell(arrays: dict[str, np.ndarray], bands: Sequence[str]) -> dict[str, np.ndarray]:
    """One pyramid step for stored (encoded) arrays: bands by mean, provenance by first valid.

    Parameters
    ----------
    arrays
        The stored arrays of one window: every band (uint16, nodata 0) and ``scene`` (int32,
        -1 = none), ``date`` and ``clear_count`` (uint16).
    bands
        The reflectance bands among ``arrays``.

    Returns
    -------
    dict
        The same variables at half the resolution (odd edges padded with nodata).

    Examples
    --------
    >>> out = downsample_cell({"red": np.full((2, 2), 8, "uint16"),
    ...                        "scene": np.array([[-1, 3], [2, 2]], "int32"),
    ...                        "date": np.full((2, 2), 40, "uint16"),
    ...                        "clear_count": np.ones((2, 2), "uint16")}, ["red"])
    >>> int(out["red"][0, 0]), int(out["scene"][0, 0])
    (8, 3)
    """
    out: dict[str, np.ndarray] = {b: downsample_reflectance(arrays[b]) for b in bands}
    child = first_valid_child(arrays["scene"] >= 0)
    out["scene"] = take_child(arrays["scene"], child, np.int32(-1))
    out["date"] = take_child(arrays["date"], child, np.uint16(0))
    out["clear_count"] = take_child(arrays["clear_count"], child, np.uint16(0))
    # a block with no valid child has none of its provenance either
    none = out["scene"] < 0
    out["date"][none] = 0
    out["clear_count"][none] = 0
    if "fill" in arrays:
        # the fill code of the provenance child; where no child has a scene (inpainted or
        # empty), the first child with a code (nearest-style: codes are never averaged)
        fill = take_child(arrays["fill"], child, np.uint8(0))
        other = take_child(arrays["fill"], first_valid_child(arrays["fill"] > 0), np.uint8(0))
        out["fill"] = np.where(none, other, fill).astype("uint8")
    return out


def downsample_classes(
    classes: np.ndarray, confidence: np.ndarray, dates: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One 2×2 step of a class map (uint8 codes, 0 = none): the **mode** of the coded children.

    Class codes are never averaged: the block takes the most frequent non-zero class among its
    four children (a tie goes to the class with the higher summed ``confidence``, then to the
    lower code), and ``confidence`` and ``dates`` are taken from the first child (NW, NE, SW,
    SE) of that class, so they stay the values of a real pixel.  A block without a coded child
    stays 0 in all three.

    Examples
    --------
    >>> c = np.array([[3, 2], [2, 0]], "uint8"); p = np.array([[90, 60], [70, 0]], "uint8")
    >>> [int(a[0, 0]) for a in downsample_classes(c, p, np.full((2, 2), 4, "uint8"))]
    [2, 60, 4]
    """
    b = _blocks(np.asarray(classes), np.uint8(0))
    conf = _blocks(np.asarray(confidence), np.uint8(0)).astype("int64")
    n_classes = int(b.max()) if b.size else 0
    best = np.zeros(b.shape[:2], dtype="uint8")
    score = np.full(b.shape[:2], -1, dtype="int64")
    for k in range(1, n_classes + 1):
        hit = b == k
        # count first, then summed confidence (at most 4 × 255 < 2048)
        s = hit.sum(axis=-1) * 2048 + np.where(hit, conf, 0).sum(axis=-1)
        s = np.where(hit.any(axis=-1), s, -1)
        better = s > score
        best[better] = k
        score[better] = s[better]
    child = np.argmax(b == best[..., None], axis=-1)
    take = child[..., None].astype("intp")
    out_conf = np.take_along_axis(_blocks(np.asarray(confidence), 0), take, -1)[..., 0]
    out_dates = np.take_along_axis(_blocks(np.asarray(dates), 0), take, -1)[..., 0]
    none = best == 0
    out_conf = np.where(none, 0, out_conf).astype(np.asarray(confidence).dtype)
    out_dates = np.where(none, 0, out_dates).astype(np.asarray(dates).dtype)
    return best, out_conf, out_dates
