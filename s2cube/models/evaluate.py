"""Mask accuracy: reference labels from SCL / s2cloudless, confusion matrices, per-class scores.

Kernels only (numpy in, numbers out); the accuracy tables in ``docs/models.md`` come from
:func:`confusion` and :func:`scores` applied to the real data in ``../shared/data``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from s2cube.errors import InputError

__all__ = ["IGNORE", "Scores", "confusion", "scl_to_codes", "scores"]

#: label value excluded from scores and training
IGNORE = 255

# SCL -> s2cube codes: 8/9/10 cloud (10 = thin cirrus counts as cloud), 3 shadow,
# 2 (dark area), 4, 5, 6, 7 (unclassified), 11 (snow) clear; 0, 1 (saturated) and > 11 ignored.
_SCL_LUT = np.full(256, IGNORE, dtype=np.uint8)
_SCL_LUT[[2, 4, 5, 6, 7, 11]] = 1
_SCL_LUT[[8, 9, 10]] = 2
_SCL_LUT[3] = 3


def scl_to_codes(scl: np.ndarray) -> np.ndarray:
    """SCL classes → s2cube mask codes (1 clear, 2 cloud, 3 shadow; 255 ignore).

    Examples
    --------
    >>> scl_to_codes(np.array([0, 3, 4, 8, 10, 12])).tolist()
    [255, 3, 1, 2, 2, 255]
    """
    scl = np.asarray(scl)
    if scl.dtype.kind not in "ui":
        raise InputError(f"SCL has dtype {scl.dtype}; expected integer classes 0-11")
    return _SCL_LUT[np.clip(scl, 0, 255).astype(np.intp)]


def confusion(pred: np.ndarray, ref: np.ndarray, labels: tuple[int, ...]) -> np.ndarray:
    """Confusion matrix ``[ref, pred]`` over ``labels``; pixels whose reference or prediction
    is not among ``labels`` are left out.

    Examples
    --------
    >>> confusion(np.array([1, 2, 2, 0]), np.array([1, 2, 1, 1]), (1, 2)).tolist()
    [[1, 1], [0, 1]]
    """
    pred, ref = np.asarray(pred).ravel(), np.asarray(ref).ravel()
    if pred.shape != ref.shape:
        raise InputError(f"prediction has {pred.size} pixels, reference {ref.size}")
    index = {v: i for i, v in enumerate(labels)}
    lut = np.full(256, -1, dtype=np.int64)
    for v, i in index.items():
        lut[v] = i
    p, r = lut[pred.astype(np.intp)], lut[ref.astype(np.intp)]
    keep = (p >= 0) & (r >= 0)
    n = len(labels)
    return np.bincount(r[keep] * n + p[keep], minlength=n * n).reshape(n, n)


@dataclass(frozen=True)
class Scores:
    """Per-class precision, recall, F1 and IoU, overall accuracy and Cohen's kappa."""

    labels: tuple[int, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    iou: tuple[float, ...]
    accuracy: float
    kappa: float
    support: tuple[int, ...]


def scores(cm: np.ndarray, labels: tuple[int, ...]) -> Scores:
    """Scores from a confusion matrix ``[ref, pred]`` (NaN where a class is absent)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / cm.sum(axis=0)
        recall = tp / cm.sum(axis=1)
        f1 = 2 * precision * recall / (precision + recall)
        iou = tp / (cm.sum(axis=0) + cm.sum(axis=1) - tp)
    total = cm.sum()
    accuracy = float(tp.sum() / total) if total else float("nan")
    pe = float((cm.sum(axis=0) * cm.sum(axis=1)).sum() / total**2) if total else float("nan")
    kappa = (accuracy - pe) / (1 - pe) if total and pe != 1 else float("nan")
    return Scores(
        tuple(labels),
        tuple(precision),
        tuple(recall),
        tuple(f1),
        tuple(iou),
        accuracy,
        float(kappa),
        tuple(int(s) for s in cm.sum(axis=1)),
    )
