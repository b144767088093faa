"""The training loop: a seeded, deterministic fit with a checkpoint and model card per epoch.

This module owns how a network is trained on standardised patches (torch): the split into
training and validation patches, class weights, the AdamW loop with augmentation, validation
scores, and what a run leaves on disk: ``checkpoints/epoch-NNN.pt`` every epoch, the best
epoch by validation loss as ``model.pt`` (+ ``model.json``), and ``history.json``.  A seed
fixes the split, the initial weights, the shuffling and the augmentation, and torch runs
deterministic kernels.  :mod:`s2cube.models.train` prepares patches from cubes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from s2cube.errors import InputError, require
from s2cube.models.card import ModelCard
from s2cube.models.evaluate import IGNORE, confusion, scores
from s2cube.models.patches import augment_batch

__all__ = ["TrainConfig", "TrainResult", "fit"]


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

    Raises
    ------
    InputError
        If there are too few patches to split, or a class has no training example.

    Examples
    --------
    >>> result = fit(CloudUNet(in_channels=4), x, y, card=card, config=TrainConfig(),
    ...              out_dir="runs/cloud")  # doctest: +SKIP
    >>> result.best_epoch  # doctest: +SKIP
    7
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
                xb, yb = augment_batch(torch, xb, yb, gen)
            elif config.augment:
                xb, _ = augment_batch(torch, xb, xb[:, 0], gen)
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
