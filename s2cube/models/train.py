"""Training the cloud/shadow U-net and the haze classifier on cubes with labels.

Labels are SCL used as weak labels (cloud 8/9/10, shadow 3, clear 2/4/5/6/7/11, ignore 0,
1 and > 11) or user-supplied masks in s2cube codes (0 ignore, 1 clear, 2 cloud, 3 shadow; for
haze 0 clear, 1 haze, 255 ignore). The loop is reproducible: a seed fixes the split, the
initial weights, the shuffling and the augmentation, and torch runs deterministic kernels.
Each epoch writes a checkpoint with its model card; the best epoch by validation loss is
saved as ``model.pt`` (+ ``model.json``) and ``history.json`` records the curves.

Layers: :func:`extract_patches` and :func:`fit` are numpy/torch kernels; :func:`train_cloud`
and :func:`train_haze` take xarray cubes; :mod:`s2cube.models.cli` reads catalogs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from s2cube.errors import InputError, require
from s2cube.models.card import ModelCard
from s2cube.models.evaluate import IGNORE, confusion, scl_to_codes, scores

__all__ = ["TrainConfig", "TrainResult", "extract_patches", "fit", "train_cloud", "train_haze"]

CLOUD_CLASSES = ("clear", "cloud", "shadow")
HAZE_CLASSES = ("clear", "haze")
DEFAULT_BANDS = ("blue", "green", "red", "nir")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (all defaults small enough for a laptop CPU)."""

    patch: int = 64
    stride: int | None = None
    epochs: int = 10
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    seed: int = 0
    width: int = 16
    depth: int = 3
    min_labelled: float = 0.5
    max_patches: int | None = None
    augment: bool = True

    def __post_init__(self) -> None:
        if self.patch < 8 or self.epochs < 1 or self.batch_size < 1:
            raise InputError(
                f"patch={self.patch}, epochs={self.epochs}, batch_size="
                f"{self.batch_size}; expected patch >= 8 and positive epochs/batch"
            )
        if not 0 < self.val_fraction < 1:
            raise InputError(f"val_fraction={self.val_fraction}; expected 0 < val_fraction < 1")


@dataclass
class TrainResult:
    """What a training run produced."""

    path: Path
    card: ModelCard
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0


# -- kernels -----------------------------------------------------------------------------------
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


def _augment(torch: Any, x: Any, y: Any, gen: Any) -> tuple[Any, Any]:
    """Random flips and 90° rotations, identical for image and label (seeded)."""
    k = int(torch.randint(0, 4, (1,), generator=gen))
    flip = bool(torch.randint(0, 2, (1,), generator=gen))
    dims = (-2, -1)
    x, y = torch.rot90(x, k, dims), torch.rot90(y, k, dims)
    if flip:
        x, y = torch.flip(x, (-1,)), torch.flip(y, (-1,))
    return x, y


def fit(
    net: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    card: ModelCard,
    config: TrainConfig,
    out_dir: str | Path,
    task: str = "segmentation",
) -> TrainResult:
    """Train ``net`` on standardised patches; checkpoint every epoch, keep the best.

    ``y`` is ``(n, p, p)`` class indices (255 ignored) for ``task="segmentation"`` and ``(n,)``
    for ``task="classification"`` (the net must have ``classify``).
    """
    torch: Any = require("torch", "ml")
    from s2cube.models.registry import LoadedModel, save_model

    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(x))
    if config.max_patches:
        order = order[: config.max_patches]
    n_val = max(1, int(round(len(order) * config.val_fraction)))
    if len(order) - n_val < 1:
        raise InputError(
            f"only {len(order)} patches: too few to split into training and validation"
        )
    val_idx, train_idx = order[:n_val], order[n_val:]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    n_class = len(card.classes)
    weights = None
    if task == "segmentation":
        counts = np.bincount(y[train_idx][y[train_idx] != IGNORE].ravel(), minlength=n_class)
    else:
        counts = np.bincount(y[train_idx][y[train_idx] != IGNORE], minlength=n_class)
    if (counts == 0).any():
        missing = [c for c, n in zip(card.classes, counts, strict=True) if n == 0]
        raise InputError(f"classes {missing} have no training examples; add data that has them")
    # inverse-sqrt frequency weights: rare shadow/haze pixels still count
    weights = torch.tensor((counts.sum() / counts) ** 0.5, dtype=torch.float32)
    weights = weights / weights.mean()
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights, ignore_index=IGNORE)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)

    def forward(batch: Any) -> Any:
        return net.classify(batch) if task == "classification" else net(batch)

    history: list[dict[str, Any]] = []
    best = (float("inf"), 0)
    for epoch in range(1, config.epochs + 1):
        net.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
        total, seen = 0.0, 0
        for b in range(0, len(perm), config.batch_size):
            idx = torch.from_numpy(perm[b : b + config.batch_size])
            xb, yb = xt[idx], yt[idx]
            if config.augment and task == "segmentation":
                xb, yb = _augment(torch, xb, yb, gen)
            elif config.augment:
                xb, _ = _augment(torch, xb, xb[:, 0], gen)
            opt.zero_grad()
            loss = loss_fn(forward(xb), yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        net.eval()
        with torch.no_grad():
            vx, vy = xt[torch.from_numpy(val_idx)], yt[torch.from_numpy(val_idx)]
            logits = torch.cat([forward(vx[i : i + 64]) for i in range(0, len(vx), 64)])
            val_loss = float(loss_fn(logits, vy))
            pred = logits.argmax(1).numpy()
        labels = tuple(range(n_class))
        s = scores(confusion(pred, vy.numpy().astype(np.uint8), labels), labels)
        record = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": s.accuracy,
            "val_f1": dict(zip(card.classes, s.f1, strict=True)),
        }
        history.append(record)
        epoch_card = replace(card, metrics={**record, "n_train": len(train_idx), "n_val": n_val})
        save_model(LoadedModel(net, epoch_card), out / "checkpoints" / f"epoch-{epoch:03d}.pt")
        if val_loss < best[0]:
            best = (val_loss, epoch)
            save_model(LoadedModel(net, epoch_card), out / "model.pt")
    (out / "history.json").write_text(
        json.dumps({"config": asdict(config), "history": history, "best_epoch": best[1]}, indent=2)
        + "\n"
    )
    final_card = ModelCard.from_json(out / "model.json")
    return TrainResult(out / "model.pt", final_card, history, best[1])


# -- cube wrappers -----------------------------------------------------------------------------
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


def _standardise(x: np.ndarray) -> tuple[np.ndarray, list[float], list[float]]:
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3)) + 1e-6
    return (
        ((x - mean[None, :, None, None]) / std[None, :, None, None]).astype(np.float32),
        mean.tolist(),
        std.tolist(),
    )


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
    px, mean, std = _standardise(px)
    kwargs = {
        "in_channels": len(bands),
        "n_classes": 3,
        "width": config.width,
        "depth": config.depth,
    }
    card = _card(
        "cloud-unet", out_dir, bands, CLOUD_CLASSES, mean, std,
        resolution_m or _resolution(cube), kwargs, config.patch,
        training_data or ("SCL weak labels" if labels is None else "user masks")
        + f", {cube.sizes['time']} scenes, {len(px)} patches of {config.patch} px",
    )  # fmt: skip
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
    px, mean, std = _standardise(px)
    kwargs = {"in_channels": len(bands), "n_classes": 2, "width": config.width}
    card = _card(
        "haze-net", out_dir, bands, HAZE_CLASSES, mean, std,
        resolution_m or _resolution(cube), kwargs, config.patch,
        training_data or ("SCL weak labels (10 = haze)" if labels is None else "user masks")
        + f", {len(px)} patches of {config.patch} px",
    )  # fmt: skip
    torch: Any = require("torch", "ml")
    torch.manual_seed(config.seed)
    return fit(
        HazeNet(**kwargs), px, py, card=card, config=config, out_dir=out_dir, task="classification"
    )


def _card(
    architecture: str, out_dir: str | Path, bands: tuple[str, ...], classes: Any, mean: Any,
    std: Any, resolution_m: float, arch_kwargs: dict[str, Any], patch: int, training_data: str,
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
    )  # fmt: skip


def _resolution(cube: Any) -> float:
    try:
        return float(abs(cube["x"].values[1] - cube["x"].values[0]))
    except (KeyError, IndexError, TypeError):
        return 10.0
