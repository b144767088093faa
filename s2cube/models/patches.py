"""Training data kernels: labelled patches cut from images, standardised and augmented.

This module owns what a training run is fed (numpy, and torch for the augmentation that runs
per batch): :func:`extract_patches` cuts ``(time, band, y, x)`` images and their labels into
square patches, :func:`standardise` scales every band to zero mean and unit variance (the
statistics go into the model card), and :func:`augment_batch` flips and rotates a batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s2cube.errors import InputError
from s2cube.models.evaluate import IGNORE

__all__ = ["augment_batch", "extract_patches", "standardise"]


def extract_patches(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    patch: int,
    stride: int | None = None,
    min_labelled: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``(time, band, y, x)`` images and ``(time, y, x)`` labels into square patches.

    Patches with less than ``min_labelled`` labelled (≠ 255) pixels are dropped.

    Examples
    --------
    >>> x, y = extract_patches(np.zeros((1, 2, 8, 8)), np.zeros((1, 8, 8), np.uint8), patch=4)
    >>> x.shape, y.shape
    ((4, 2, 4, 4), (4, 4, 4))
    """
    if images.ndim != 4 or labels.shape != (images.shape[0],) + images.shape[2:]:
        raise InputError(
            f"images {images.shape} and labels {labels.shape}: expected "
            "(time, band, y, x) and (time, y, x) on the same grid"
        )
    stride = stride or patch
    xs, ys = [], []
    for t in range(images.shape[0]):
        for y0 in range(0, images.shape[2] - patch + 1, stride):
            for x0 in range(0, images.shape[3] - patch + 1, stride):
                lab = labels[t, y0 : y0 + patch, x0 : x0 + patch]
                if (lab != IGNORE).mean() >= min_labelled:
                    xs.append(images[t, :, y0 : y0 + patch, x0 : x0 + patch])
                    ys.append(lab)
    if not xs:
        raise InputError(
            f"no {patch} px patch has {min_labelled:.0%} labelled pixels; use smaller "
            "patches, a lower min_labelled, or more data"
        )
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.uint8)


def standardise(x: np.ndarray) -> tuple[np.ndarray, list[float], list[float]]:
    """Patches ``(n, band, y, x)`` scaled per band to zero mean and unit variance, as float32,
    with the per-band means and standard deviations (which the model card records).

    Examples
    --------
    >>> z, mean, std = standardise(np.arange(16.0).reshape(2, 2, 2, 2))
    >>> mean
    [5.5, 9.5]
    """
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3)) + 1e-6
    return (
        ((x - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32),
        mean.tolist(),
        std.tolist(),
    )


def augment_batch(torch: Any, x: Any, y: Any, gen: Any) -> tuple[Any, Any]:
    """Random flips and 90° rotations, identical for image and label (seeded by ``gen``).

    ``x`` is a ``(batch, band, y, x)`` torch tensor and ``y`` its ``(batch, y, x)`` labels; the
    whole batch gets the same transform.  ``torch`` is the module (imported by the caller, as
    it is an optional dependency).
    """
    k = int(torch.randint(0, 4, (1,), generator=gen))
    flip = bool(torch.randint(0, 2, (1,), generator=gen))
    dims = (-2, -1)
    x, y = torch.rot90(x, k, dims), torch.rot90(y, k, dims)
    if flip:
        x, y = torch.flip(x, (-1,)), torch.flip(y, (-1,))
    return x, y
