"""Training the cloud/shadow U-net and the haze classifier on cubes with labels.

Labels are SCL used as weak labels (cloud 8/9/10, shadow 3, clear 2/4/5/6/7/11, ignore 0,
1 and > 11) or user-supplied masks in s2cube codes (0 ignore, 1 clear, 2 cloud, 3 shadow; for
haze 0 clear, 1 haze, 255 ignore).

This module owns the xarray side of training: it reads reflectance and labels from a
``(time, band, y, x)`` DN cube, derives the per-pixel or per-patch targets, and writes the
model card of the run.  Layers: :mod:`s2cube.models.patches` (patch kernels) and
:mod:`s2cube.models.fitting` (the torch loop, :func:`fit`) below it; :mod:`s2cube.models.cli`
reads catalogs above it.  :class:`TrainConfig`, :class:`TrainResult`, :func:`extract_patches`
and :func:`fit` are re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from s2cube.errors import InputError, require
from s2cube.models.card import ModelCard
from s2cube.models.evaluate import IGNORE, scl_to_codes
from s2cube.models.fitting import TrainConfig, TrainResult, fit
from s2cube.models.patches import extract_patches, standardise

__all__ = ["TrainConfig", "TrainResult", "extract_patches", "fit", "train_cloud", "train_haze"]

CLOUD_CLASSES = ("clear", "cloud", "shadow")
HAZE_CLASSES = ("clear", "haze")
DEFAULT_BANDS = ("blue", "green", "red", "nir")


def _cube_inputs(
    cube: Any, bands: tuple[str, ...], labels: Any, scl_band: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reflectance ``(time, band, y, x)``, valid mask and label source from a DN cube."""
    import xarray as xr

    if not isinstance(cube, xr.DataArray) or cube.dims != ("time", "band", "y", "x"):
        raise InputError(
            f"cube must be an xr.DataArray with dims (time, band, y, x); got "
            f"{getattr(cube, 'dims', type(cube).__name__)}"
        )
    names = [str(b) for b in cube["band"].values]
    missing = [b for b in bands if b not in names]
    if missing:
        raise InputError(f"bands {missing} are missing from the cube (it has {names})")
    dn = np.asarray(cube.sel(band=list(bands)).values)
    valid = (dn != 0).any(axis=1)
    if labels is None:
        if scl_band not in names:
            raise InputError(
                f"no labels given and no {scl_band!r} band in the cube ({names}); "
                "load the SCL asset or pass labels="
            )
        source = np.asarray(cube.sel(band=scl_band).values)
    else:
        source = np.asarray(getattr(labels, "values", labels))
        if source.shape != valid.shape:
            raise InputError(
                f"labels have shape {source.shape}; expected {valid.shape} (time, y, x)"
            )
    return dn.astype(np.float32) * np.float32(1e-4), valid, source


def train_cloud(
    cube: Any,
    out_dir: str | Path,
    *,
    labels: Any = None,
    bands: tuple[str, ...] = DEFAULT_BANDS,
    config: TrainConfig | None = None,
    scl_band: str = "scl",
    resolution_m: float | None = None,
    training_data: str = "",
) -> TrainResult:
    """Train a :class:`~s2cube.models.nets.CloudUNet` (clear/cloud/shadow).

    Parameters
    ----------
    cube:
        ``(time, band, y, x)`` uint16 L2A DN with the ``bands`` (and ``scl`` for weak labels).
    out_dir:
        Where ``model.pt``, ``model.json``, ``history.json`` and ``checkpoints/`` go.
    labels:
        ``(time, y, x)`` s2cube codes (1 clear, 2 cloud, 3 shadow, other values ignored);
        ``None`` uses the cube's SCL as weak labels.

    Examples
    --------
    >>> result = train_cloud(cube, "runs/cloud", config=TrainConfig(epochs=20))  # doctest: +SKIP
    >>> predict(load_model(result.path), reflectance)  # doctest: +SKIP
    """
    from s2cube.models.nets import CloudUNet

    config = config or TrainConfig()
    x, valid, source = _cube_inputs(cube, bands, labels, scl_band)
    codes = scl_to_codes(source) if labels is None else source.astype(np.uint8)
    target = np.where(np.isin(codes, (1, 2, 3)) & valid, codes.astype(np.int64) - 1, IGNORE)
    px, py = extract_patches(
        x,
        target.astype(np.uint8),
        patch=config.patch,
        stride=config.stride,
        min_labelled=config.min_labelled,
    )
    px, mean, std = standardise(px)
    kwargs = {
        "in_channels": len(bands),
        "n_classes": 3,
        "width": config.width,
        "depth": config.depth,
    }
    card = _card(
        "cloud-unet",
        out_dir,
        bands,
        CLOUD_CLASSES,
        mean,
        std,
        resolution_m or _resolution(cube),
        kwargs,
        config.patch,
        training_data
        or ("SCL weak labels" if labels is None else "user masks")
        + f", {cube.sizes['time']} scenes, {len(px)} patches of {config.patch} px",
    )
    torch: Any = require("torch", "ml")
    torch.manual_seed(config.seed)
    return fit(CloudUNet(**kwargs), px, py, card=card, config=config, out_dir=out_dir)


def train_haze(
    cube: Any,
    out_dir: str | Path,
    *,
    labels: Any = None,
    bands: tuple[str, ...] = DEFAULT_BANDS,
    config: TrainConfig | None = None,
    scl_band: str = "scl",
    haze_fraction: float = 0.3,
    clear_fraction: float = 0.9,
    resolution_m: float | None = None,
    training_data: str = "",
) -> TrainResult:
    """Train the 3-conv-layer :class:`~s2cube.models.nets.HazeNet` on patch labels.

    A patch is *haze* when at least ``haze_fraction`` of it is haze (SCL 10, thin cirrus, or
    1 in user ``labels``) and *clear* when at least ``clear_fraction`` is clear (SCL
    2/4/5/6/7/11, or 0 in ``labels``); other patches are not used.

    Examples
    --------
    >>> result = train_haze(cube, "runs/haze", config=TrainConfig(patch=16))  # doctest: +SKIP
    """
    from s2cube.models.nets import HazeNet

    config = config or TrainConfig(patch=16)
    x, valid, source = _cube_inputs(cube, bands, labels, scl_band)
    if labels is None:
        haze = source == 10
        clear = np.isin(source, (2, 4, 5, 6, 7, 11))
    else:
        haze, clear = source == 1, source == 0
    pixel = np.full(source.shape, IGNORE, dtype=np.uint8)
    pixel[clear & valid] = 0
    pixel[haze & valid] = 1
    px, pl = extract_patches(x, pixel, patch=config.patch, stride=config.stride, min_labelled=0.0)
    frac_haze = (pl == 1).mean(axis=(1, 2))
    frac_clear = (pl == 0).mean(axis=(1, 2))
    py = np.full(len(pl), IGNORE, dtype=np.uint8)
    py[frac_clear >= clear_fraction] = 0
    py[frac_haze >= haze_fraction] = 1
    keep = py != IGNORE
    px, py = px[keep], py[keep]
    if len(px) < 2:
        raise InputError(
            f"only {len(px)} patches are clearly haze or clear; lower haze_fraction/"
            "clear_fraction or use more data"
        )
    px, mean, std = standardise(px)
    kwargs = {"in_channels": len(bands), "n_classes": 2, "width": config.width}
    card = _card(
        "haze-net",
        out_dir,
        bands,
        HAZE_CLASSES,
        mean,
        std,
        resolution_m or _resolution(cube),
        kwargs,
        config.patch,
        training_data
        or ("SCL weak labels (10 = haze)" if labels is None else "user masks")
        + f", {len(px)} patches of {config.patch} px",
    )
    torch: Any = require("torch", "ml")
    torch.manual_seed(config.seed)
    return fit(
        HazeNet(**kwargs), px, py, card=card, config=config, out_dir=out_dir, task="classification"
    )


def _card(
    architecture: str,
    out_dir: str | Path,
    bands: tuple[str, ...],
    classes: Any,
    mean: Any,
    std: Any,
    resolution_m: float,
    arch_kwargs: dict[str, Any],
    patch: int,
    training_data: str,
) -> ModelCard:
    """The model card of a net trained here (standardised inputs, softmax output)."""
    return ModelCard(
        name=f"{architecture}-{Path(out_dir).name}",
        input_bands=bands,
        classes=classes,
        normalisation={"kind": "standardise", "mean": mean, "std": std},
        resolution_m=resolution_m,
        architecture=architecture,
        arch_kwargs=arch_kwargs,
        window=patch,
        output="softmax",
        licence="Apache-2.0",
        training_data=training_data,
    )


def _resolution(cube: Any) -> float:
    # the x spacing of the cube; 10 m (Sentinel-2's finest) when it cannot be read
    try:
        return float(abs(cube["x"].values[1] - cube["x"].values[0]))
    except (KeyError, IndexError, TypeError):
        return 10.0
