"""Training the super-resolution GAN by the Wald protocol (``s2cube train sr``).

Pairs are made on the fly: a real patch (the truth) is degraded by :func:`degrade_torch` (the
sensor blur + decimation) and the generator learns to restore it.  Losses:

* **pixel**: L1 (or, with ``pixel_loss="mse"``, the squared error) between the SR output and
  the truth;
* **spectral consistency**: L1 (squared error with ``"mse"``) between the SR output degraded
  back and the input (the SR must not change what the coarse sensor would have seen);
* **adversarial** (from ``gan_start`` on): the relativistic-free, plain BCE GAN loss of SRGAN
  against a patch :class:`~s2cube.superres.nets.Discriminator`, with a small weight.

Epochs ``1 .. gan_start - 1`` train SRResNet alone (the warm-up); the GAN phase follows.  Every
random draw comes from generators seeded by ``(seed, epoch)``, so a run resumed from its
checkpoint (written after every epoch, with both networks, both optimisers and the history)
ends in the same weights as one uninterrupted run.  Validation on held-out patches after every
epoch: PSNR of SR and of bicubic, and the consistency error; the best epoch by validation PSNR
is kept as ``generator.pt``.

Patch sampling lives here too (:func:`clear_patches`, :func:`split_by_columns`): whole
``patch × patch`` windows with data in every band and no cloud, cloud shadow or snow in SCL,
with the held-out set a whole block of columns (ground never seen in training).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, require
from .degrade import degrade_torch
from .model import DN_SCALE, to_input

__all__ = [
    "SRTrainConfig",
    "SRDataset",
    "SRTrainResult",
    "clear_patches",
    "learning_rate",
    "split_by_columns",
    "sr_dataset",
    "train_sr",
]

#: SCL classes a training patch may contain (vegetation, bare, water, unclassified, dark)
CLEAR_SCL = (2, 4, 5, 6, 7)


@dataclass(frozen=True)
class SRTrainConfig:
    """Everything that defines a training run (recorded in the checkpoint and the card)."""

    scale: int = 4
    features: int = 32
    blocks: int = 6
    patch: int = 64
    batch_size: int = 16
    epochs: int = 10
    gan_start: int = 7
    lr: float = 2e-4
    #: ``"constant"`` or ``"cosine"``: the learning rate falls from ``lr`` to ``lr_min`` along
    #: half a cosine over all the run's steps (a function of the step, so resume is exact)
    lr_schedule: str = "constant"
    lr_min: float = 0.0
    #: the content and consistency losses: ``"l1"`` (EDSR's choice) or ``"mse"`` (SRResNet's,
    #: Ledig et al.; the loss PSNR measures); both terms take it, so their balance is kept
    pixel_loss: str = "l1"
    adv_weight: float = 1e-3
    consistency_weight: float = 1.0
    disc_features: int = 32
    seed: int = 0
    steps_per_epoch: int | None = None
    device: str | None = None
    #: a generator state_dict (``generator.pt`` of an earlier run, same architecture) to start
    #: from instead of the seeded initialisation: fine-tuning, e.g. with larger patches
    init: str | None = None

    def __post_init__(self) -> None:
        if self.pixel_loss not in ("l1", "mse"):
            raise InputError(f"pixel_loss={self.pixel_loss!r}: expected 'l1' or 'mse'")
        if self.lr_schedule not in ("constant", "cosine") or not 0.0 <= self.lr_min <= self.lr:
            raise InputError(
                f"lr_schedule={self.lr_schedule!r}, lr_min={self.lr_min}: expected 'constant' "
                f"or 'cosine' and 0 <= lr_min <= lr (lr={self.lr})"
            )
        if self.patch % self.scale or self.patch < 4 * self.scale:
            raise InputError(
                f"patch={self.patch} must be a multiple of scale={self.scale} and at least "
                f"{4 * self.scale} px (the input is patch/scale px)"
            )
        if self.epochs < 1 or self.batch_size < 1 or not 1 <= self.gan_start:
            raise InputError(
                f"epochs={self.epochs}, batch_size={self.batch_size}, gan_start="
                f"{self.gan_start}: expected epochs >= 1, batch_size >= 1, gan_start >= 1 "
                "(gan_start > epochs trains SRResNet only)"
            )


@dataclass
class SRTrainResult:
    """What a run produced: the best generator's path, the checkpoint and the history."""

    generator_path: Path
    checkpoint_path: Path
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)


def clear_patches(
    cube: np.ndarray,
    scl: np.ndarray | None,
    *,
    patch: int,
    stride: int | None = None,
    max_cloud: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Every ``patch × patch`` window of a ``(time, band, y, x)`` uint16 cube fit to train on.

    A window qualifies when every band has data (> 0) at every pixel and at most ``max_cloud``
    of its SCL pixels fall outside :data:`CLEAR_SCL`.

    Returns
    -------
    patches, positions
        ``(N, band, patch, patch)`` uint16 and each patch's ``(time, row, column)`` of its
        first pixel (``(N, 3)`` int; columns feed :func:`split_by_columns`).
    """
    arr = np.asarray(cube)
    if arr.ndim != 4:
        raise InputError(f"clear_patches takes a (time, band, y, x) cube; got shape {arr.shape}")
    step = stride or patch
    out: list[np.ndarray] = []
    where: list[tuple[int, int, int]] = []
    _, _, height, width = arr.shape
    for t in range(arr.shape[0]):
        valid = np.all(arr[t] > 0, axis=0)
        clear = np.isin(scl[t], CLEAR_SCL) if scl is not None else np.ones_like(valid)
        for y in range(0, height - patch + 1, step):
            for x in range(0, width - patch + 1, step):
                if not valid[y : y + patch, x : x + patch].all():
                    continue
                if 1.0 - clear[y : y + patch, x : x + patch].mean() > max_cloud:
                    continue
                out.append(arr[t, :, y : y + patch, x : x + patch])
                where.append((t, y, x))
    if not out:
        raise InputError(
            f"no clear {patch}×{patch} patch in the cube (shape {arr.shape}); pass more or "
            "clearer scenes, a larger area or a smaller --patch"
        )
    return np.stack(out).astype(np.uint16), np.asarray(where, dtype=np.int64)


def split_by_columns(
    columns: np.ndarray, *, patch: int, held_out: float = 0.25, width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and held-out patches: the last ``held_out`` of the columns is held
    out, and training patches end at least one patch before it (no shared ground)."""
    cols = np.asarray(columns)
    right = int(width if width is not None else cols.max() + patch)
    cut = int(right * (1.0 - held_out))
    val = np.flatnonzero(cols >= cut)
    train = np.flatnonzero(cols + patch <= cut - patch)
    if len(train) == 0 or len(val) == 0:
        raise InputError(
            f"held_out={held_out} leaves {len(train)} training and {len(val)} held-out patches; "
            "use more data or another held_out fraction"
        )
    return train, val


@dataclass(frozen=True)
class SRDataset:
    """Patches split three ways: training, validation (picks the best epoch) and test (the
    reported metrics), the last two from the held-out block of columns (its upper and lower
    rows), so the reported numbers come from ground neither training nor selection saw."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    cut_column: int
    cut_row: int


def sr_dataset(
    cube: np.ndarray,
    scl: np.ndarray | None,
    *,
    patch: int,
    stride: int | None = None,
    held_out: float = 0.25,
    max_cloud: float = 0.02,
) -> SRDataset:
    """Clear patches of a ``(time, band, y, x)`` cube split into train / validation / test."""
    patches, where = clear_patches(cube, scl, patch=patch, stride=stride, max_cloud=max_cloud)
    width = int(np.asarray(cube).shape[-1])
    train, held = split_by_columns(where[:, 2], patch=patch, held_out=held_out, width=width)
    rows = where[held, 1]
    cut_row = int(np.median(rows))
    val, test = held[rows < cut_row], held[rows >= cut_row]
    if len(val) == 0 or len(test) == 0:
        raise InputError(
            f"the held-out block has {len(held)} patches, too few to split into validation and "
            "test; use more data or a larger held_out fraction"
        )
    cut = int(width * (1.0 - held_out))
    return SRDataset(patches[train], patches[val], patches[test], cut, cut_row)


def _augment(batch: Any, rng: np.random.Generator) -> Any:
    """Random rot90 and flips (the Earth has no preferred orientation at these scales)."""
    import torch

    k = int(rng.integers(4))
    batch = torch.rot90(batch, k, dims=(2, 3))
    if rng.integers(2):
        batch = torch.flip(batch, dims=(3,))
    return batch


def learning_rate(config: SRTrainConfig, epoch: int, step: int, steps: int) -> float:
    """The learning rate of step ``step`` (0-based) of epoch ``epoch`` (1-based)."""
    if config.lr_schedule == "constant":
        return config.lr
    done = ((epoch - 1) * steps + step) / (config.epochs * steps)
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1.0 + np.cos(np.pi * done))


def _validate(gen: Any, val: Any, config: SRTrainConfig, dev: Any) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    gen.eval()
    sr_se = bic_se = cons = 0.0
    n = 0
    with torch.no_grad():
        for i in range(0, len(val), 64):
            hr = val[i : i + 64].to(dev)
            lr = degrade_torch(hr, config.scale)
            sr = gen(lr)
            bic = F.interpolate(lr, scale_factor=config.scale, mode="bicubic", align_corners=False)
            sr_se += float(((sr - hr) ** 2).sum())
            bic_se += float(((bic - hr) ** 2).sum())
            cons += float((degrade_torch(sr, config.scale) - lr).abs().sum()) * config.scale**2
            n += hr.numel()
    gen.train()
    return {
        "val_psnr": 10.0 * float(np.log10(n / sr_se)),
        "val_psnr_bicubic": 10.0 * float(np.log10(n / bic_se)),
        "val_consistency_l1": cons / n,
    }


def train_sr(
    train_patches: np.ndarray,
    val_patches: np.ndarray,
    out_dir: str | Path,
    *,
    config: SRTrainConfig | None = None,
    resume: bool = False,
    log: Callable[[str], None] | None = None,
) -> SRTrainResult:
    """Train a generator (and, from ``gan_start``, its discriminator) on real patches.

    Parameters
    ----------
    train_patches, val_patches
        ``(N, bands, patch, patch)`` uint16 reflectance (× 10000): the truth; inputs are
        made by degrading them (:func:`clear_patches`, :func:`split_by_columns`).
    out_dir
        Where ``checkpoint.pt`` (after every epoch), ``generator.pt`` (the best epoch's
        generator ``state_dict``) and ``history.json`` go.
    config
        The run (:class:`SRTrainConfig`).
    resume
        Continue from ``out_dir/checkpoint.pt`` instead of starting (same config; only
        ``epochs`` may differ, to extend a run).
    log
        Called with one line per epoch.

    Examples
    --------
    >>> result = train_sr(train, val, "runs/sr", config=SRTrainConfig(epochs=2))  # doctest: +SKIP
    """
    torch: Any = require("torch", "ml")
    import torch.nn.functional as F

    from ..models.runtime import resolve_device
    from .nets import Discriminator, Generator

    config = config or SRTrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    for name, arr in (("train_patches", train_patches), ("val_patches", val_patches)):
        if arr.ndim != 4 or arr.shape[-1] != config.patch or arr.shape[-2] != config.patch:
            raise InputError(
                f"{name} has shape {arr.shape}; expected (N, bands, {config.patch}, "
                f"{config.patch}) (config.patch={config.patch})"
            )
    dev = resolve_device(config.device)
    bands = int(train_patches.shape[1])
    torch.manual_seed(config.seed)
    gen = Generator(config.scale, bands, config.features, config.blocks).to(dev)
    if config.init and not resume:
        if not Path(config.init).is_file():
            raise InputError(f"init={config.init!r} is not a file; give a generator.pt")
        try:
            gen.load_state_dict(torch.load(config.init, map_location=dev, weights_only=True))
        except RuntimeError as err:
            raise InputError(
                f"init={config.init!r} does not fit Generator(scale={config.scale}, "
                f"features={config.features}, blocks={config.blocks}): {err}"
            ) from err
    disc = Discriminator(bands, config.disc_features).to(dev)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(0.9, 0.99))
    history: list[dict[str, float]] = []
    start = 1
    best = (-np.inf, 0)
    if resume:
        if not ckpt_path.exists():
            raise InputError(f"--resume: no checkpoint at {ckpt_path}; run without --resume")
        state = torch.load(ckpt_path, map_location=dev, weights_only=False)
        # the number of epochs may grow (extending a run) under a constant learning rate;
        # a cosine schedule spans the run's epochs, so there every option must match
        free = {"epochs"} if config.lr_schedule == "constant" else set()
        old = {"lr_schedule": "constant", "lr_min": 0.0, "pixel_loss": "l1", **state["config"]}
        same = {k: v for k, v in old.items() if k not in free} == {
            k: v for k, v in _config_record(config).items() if k not in free
        }
        if not same:
            raise InputError(
                f"--resume: {ckpt_path} was made with other options ({state['config']}); "
                "resume with the same options or start in a new directory"
            )
        gen.load_state_dict(state["generator"])
        disc.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        history = list(state["history"])
        start = int(state["epoch"]) + 1
        best = (float(state["best_psnr"]), int(state["best_epoch"]))
    x_train = torch.from_numpy(to_input(train_patches))
    x_val = torch.from_numpy(to_input(val_patches))
    n = len(x_train)
    steps = config.steps_per_epoch or max(1, n // config.batch_size)
    for epoch in range(start, config.epochs + 1):
        t0 = time.perf_counter()
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 100_003 + epoch)
        gan = epoch >= config.gan_start
        order = rng.permutation(max(n, steps * config.batch_size)) % n
        sums = {"l1": 0.0, "consistency": 0.0, "adversarial": 0.0, "disc": 0.0}
        gen.train()
        for step in range(steps):
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            lr_now = learning_rate(config, epoch, step, steps)
            for group in (*opt_g.param_groups, *opt_d.param_groups):
                group["lr"] = lr_now
            hr = _augment(x_train[idx], rng).to(dev)
            lr = degrade_torch(hr, config.scale)
            sr = gen(lr)
            l1 = F.l1_loss(sr, hr)
            back = degrade_torch(sr, config.scale)
            if config.pixel_loss == "l1":
                pixel, cons = l1, F.l1_loss(back, lr)
            else:
                pixel, cons = F.mse_loss(sr, hr), F.mse_loss(back, lr)
            loss = pixel + config.consistency_weight * cons
            if gan:
                fake_logits = disc(sr)
                adv = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
                loss = loss + config.adv_weight * adv
                sums["adversarial"] += adv.item()
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            if gan:
                real = disc(hr)
                fake = disc(sr.detach())
                d_loss = F.binary_cross_entropy_with_logits(
                    real, torch.ones_like(real)
                ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                sums["disc"] += d_loss.item()
            sums["l1"] += l1.item()
            sums["consistency"] += cons.item()
        seconds = time.perf_counter() - t0
        record = {
            "epoch": float(epoch),
            "phase_gan": float(gan),
            "seconds": round(seconds, 2),
            "lr_end": learning_rate(config, epoch, steps - 1, steps),
        }
        record.update({f"train_{k}": v / steps for k, v in sums.items()})
        record.update(_validate(gen, x_val, config, dev))
        history.append(record)
        if record["val_psnr"] > best[0]:
            best = (record["val_psnr"], epoch)
            torch.save(
                {k: v.detach().cpu() for k, v in gen.state_dict().items()}, out / "generator.pt"
            )
        torch.save(
            {
                "config": _config_record(config),
                "epoch": epoch,
                "generator": gen.state_dict(),
                "discriminator": disc.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "history": history,
                "best_psnr": best[0],
                "best_epoch": best[1],
            },
            ckpt_path,
        )
        (out / "history.json").write_text(json.dumps(history, indent=1))
        if log is not None:
            log(
                f"epoch {epoch}/{config.epochs} ({'GAN' if gan else 'SRResNet'}) "
                f"{seconds:.1f} s: l1 {record['train_l1'] * DN_SCALE:.1f} DN, val PSNR "
                f"{record['val_psnr']:.2f} dB (bicubic {record['val_psnr_bicubic']:.2f})"
            )
    return SRTrainResult(out / "generator.pt", ckpt_path, int(best[1]), history)


def _config_record(config: SRTrainConfig) -> dict[str, Any]:
    rec = asdict(config)
    rec.pop("device")  # where it ran does not define the run
    return rec
