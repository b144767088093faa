"""Training the three land-cover U-nets: label sources, held-out splits, a resumable seeded loop.

Labels travel as **s2cube label codes** on the image grid, ``(time, y, x)`` uint8:

=====  ===================================================================================
code   meaning
=====  ===================================================================================
1-5    water, tree, grass, barren, built (:data:`~s2cube.landcover.LANDCOVER_CODES`)
6, 7   residential, industrial (count as built for the buildings model)
20     vegetation, grass or tree not known (SCL 4): a *partial* label
21     not vegetated, barren or built not known (SCL 5)
255    no label (also 0)
=====  ===================================================================================

Each model reads a code as the set of its classes it allows (:func:`allowed_classes`): the
water model reads 20 and 21 as "other"; the vegetation model reads 20 as "grass or tree" and
is trained on it with the partial-label loss ``-log(p_grass + p_tree)``; the buildings model
ignores 20 and 21 (SCL cannot tell built from bare soil).

Sources, all kernels on arrays (files are read by :mod:`s2cube.landcover.train_cli`):
:func:`labels_from_values` (a label raster + mapping table), :func:`labels_from_polygons`
(vector polygons rasterised with ``rasterio.features``), :func:`labels_from_scl` (weak labels)
and :func:`labels_from_fused` (distillation from the fused Dynamic World map).

:func:`train_unet` fits a :class:`~s2cube.models.nets.VGG16UNet` on patches of the training
area only, seeded (split, weights, shuffling, augmentation), with a checkpoint every epoch
(``checkpoints/state.pt``: weights, optimiser and generator state, history) from which an
interrupted run resumes to the same weights; the last epoch is the model (no selection on the
held-out data). It then predicts the held-out area through :func:`s2cube.models.predict` and
records the confusion matrix, overall accuracy, kappa and per-class F1 in the model card.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2cube.errors import InputError, require
from s2cube.landcover.kernels import LANDCOVER_CODES
from s2cube.landcover.unets import UNET_MODELS
from s2cube.models.evaluate import confusion, scores

__all__ = [
    "LABEL_CODES",
    "NO_LABEL",
    "LandcoverTrainConfig",
    "LandcoverTrainResult",
    "allowed_classes",
    "block_split",
    "evaluate_unet",
    "labels_from_fused",
    "labels_from_polygons",
    "labels_from_scl",
    "labels_from_values",
    "train_unet",
]

NO_LABEL = 255
#: label name → code (mapping tables name classes; see the module notes)
LABEL_CODES: dict[str, int] = {
    **LANDCOVER_CODES,
    "residential": 6,
    "industrial": 7,
    "vegetation": 20,
    "not_vegetated": 21,
    "ignore": NO_LABEL,
}
_BUILT = (LANDCOVER_CODES["built"], 6, 7)


def allowed_classes(model: str) -> np.ndarray:
    """``(256, n_classes)`` bool: for each label code, the model classes it is consistent with
    (all False: not a label for this model).

    Examples
    --------
    >>> a = allowed_classes("vegetation")
    >>> a[20].tolist(), a[1].tolist(), a[255].any()
    ([False, True, True], [True, False, False], np.False_)
    """
    spec = UNET_MODELS.get(model)
    if spec is None:
        raise InputError(f"model={model!r}; expected one of {sorted(UNET_MODELS)}")
    k = {c: i for i, c in enumerate(spec.classes)}
    table = np.zeros((256, len(spec.classes)), dtype=bool)
    lc = LANDCOVER_CODES
    if model == "water":
        table[lc["water"], k["water"]] = True
        for c in (lc["tree"], lc["grass"], lc["barren"], *_BUILT, 20, 21):
            table[c, k["other"]] = True
    elif model == "vegetation":
        table[lc["tree"], k["tree"]] = True
        table[lc["grass"], k["grass"]] = True
        table[20, [k["grass"], k["tree"]]] = True
        for c in (lc["water"], lc["barren"], *_BUILT, 21):
            table[c, k["other"]] = True
    else:
        for c in _BUILT:
            table[c, k["built"]] = True
        for c in (lc["water"], lc["tree"], lc["grass"], lc["barren"], 20):
            table[c, k["other"]] = True
    return table


def labels_from_values(values: np.ndarray, mapping: Mapping[Any, str]) -> np.ndarray:
    """A label raster's values → label codes, by a mapping table ``{value: class name}``.

    Class names are keys of :data:`LABEL_CODES` (``"ignore"`` drops a value); values missing
    from the table get no label.

    Examples
    --------
    >>> labels_from_values(np.array([10, 80, 50, 0]), {10: "tree", 80: "water", 50: "built"})
    array([  2,   1,   5, 255], dtype=uint8)
    """
    values = np.asarray(values)
    if values.dtype.kind not in "iub":
        raise InputError(f"label raster has dtype {values.dtype}; expected integer class values")
    out = np.full(values.shape, NO_LABEL, dtype=np.uint8)
    for value, name in mapping.items():
        code = LABEL_CODES.get(str(name).strip().lower())
        if code is None:
            raise InputError(
                f"mapping {value!r} -> {name!r}: unknown class; use one of {sorted(LABEL_CODES)}"
            )
        try:
            v = int(value)
        except (TypeError, ValueError):
            raise InputError(
                f"mapping key {value!r} is not an integer raster value; a raster mapping table "
                "maps integer values to class names"
            ) from None
        out[values == v] = code
    return out


def labels_from_polygons(
    geometries: list[Any],
    values: list[Any],
    mapping: Mapping[Any, str],
    *,
    transform: Any,
    shape: tuple[int, int],
) -> np.ndarray:
    """Polygons with an attribute → label codes on a grid (``rasterio.features.rasterize``,
    pixel centres inside a polygon; later polygons win where they overlap).

    ``geometries`` are GeoJSON-like mappings or shapely geometries **in the grid's CRS**;
    ``values`` their attribute values, mapped by ``mapping`` (``{attribute value: class}``;
    values missing from it are not burnt).

    Examples
    --------
    >>> from affine import Affine
    >>> box = {"type": "Polygon", "coordinates": [[(0, 0), (2, 0), (2, -2), (0, -2), (0, 0)]]}
    >>> labels_from_polygons([box], ["forest"], {"forest": "tree"},
    ...                      transform=Affine(1, 0, 0, 0, -1, 0), shape=(3, 3)).tolist()
    [[2, 2, 255], [2, 2, 255], [255, 255, 255]]
    """
    from rasterio.features import rasterize

    if len(geometries) != len(values):
        raise InputError(f"{len(geometries)} geometries but {len(values)} attribute values")
    lookup = {str(k): str(v).strip().lower() for k, v in mapping.items()}
    unknown = sorted({v for v in lookup.values() if v not in LABEL_CODES})
    if unknown:
        raise InputError(f"mapping names unknown classes {unknown}; use {sorted(LABEL_CODES)}")
    shapes = [
        (g, LABEL_CODES[lookup[str(v)]])
        for g, v in zip(geometries, values, strict=True)
        if str(v) in lookup
    ]
    if not shapes:
        raise InputError(
            f"no polygon's attribute value is in the mapping (values seen: "
            f"{sorted({str(v) for v in values})[:10]}, mapping keys {sorted(lookup)[:10]})"
        )
    out: np.ndarray = rasterize(
        shapes, out_shape=shape, transform=transform, fill=NO_LABEL, dtype="uint8"
    )
    return out


_SCL_LUT = np.full(256, NO_LABEL, dtype=np.uint8)
_SCL_LUT[6] = LANDCOVER_CODES["water"]
_SCL_LUT[4] = LABEL_CODES["vegetation"]
_SCL_LUT[5] = LABEL_CODES["not_vegetated"]


def labels_from_scl(scl: np.ndarray) -> np.ndarray:
    """SCL → weak label codes: 6 water, 4 vegetation (partial), 5 not vegetated (partial);
    clouds, shadows, snow, dark areas, unclassified and nodata get no label.

    Examples
    --------
    >>> labels_from_scl(np.array([6, 4, 5, 9, 0, 12])).tolist()
    [1, 20, 21, 255, 255, 255]
    """
    scl = np.asarray(scl)
    if scl.dtype.kind not in "iu":
        raise InputError(f"SCL has dtype {scl.dtype}; expected integer classes 0-11")
    return _SCL_LUT[np.clip(scl, 0, 255).astype(np.intp)]


def labels_from_fused(
    classes: np.ndarray, confidence: np.ndarray, *, min_confidence: float = 0.5
) -> np.ndarray:
    """Distillation targets: the fused Dynamic World classes where their fused confidence is at
    least ``min_confidence`` (else no label; class 0, no clear date, never labels).

    Examples
    --------
    >>> labels_from_fused(np.array([2, 3, 0]), np.array([0.9, 0.4, 0.0])).tolist()
    [2, 255, 255]
    """
    classes = np.asarray(classes)
    keep = (np.asarray(confidence) >= min_confidence) & (classes > 0)
    return np.where(keep, classes, NO_LABEL).astype(np.uint8)


def block_split(
    shape: tuple[int, int], *, side: str = "south", fraction: float = 0.3, gap: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A spatial hold-out: ``(train, held_out)`` bool ``(y, x)`` masks; the held-out block is
    the ``fraction`` of rows (or columns) on ``side``, with ``gap`` px between the two that
    neither uses (so no training patch touches the held-out block).

    Examples
    --------
    >>> tr, ho = block_split((10, 4), side="south", fraction=0.3, gap=2)
    >>> tr[:, 0].astype(int).tolist(), ho[:, 0].astype(int).tolist()
    ([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
    """
    if side not in ("north", "south", "east", "west"):
        raise InputError(f"side={side!r}; expected north, south, east or west")
    if not 0 < fraction < 1 or gap < 0:
        raise InputError(f"fraction={fraction}, gap={gap}; expected 0 < fraction < 1, gap >= 0")
    h, w = shape
    n = h if side in ("north", "south") else w
    k = max(1, int(round(n * fraction)))
    idx = np.arange(n)
    if side in ("south", "east"):
        held, train = idx >= n - k, idx < n - k - gap
    else:
        held, train = idx < k, idx >= k + gap
    if not train.any():
        raise InputError(f"fraction={fraction} and gap={gap} leave no training rows of {n}")
    if side in ("north", "south"):
        return np.repeat(train[:, None], w, 1), np.repeat(held[:, None], w, 1)
    return np.repeat(train[None], h, 0), np.repeat(held[None], h, 0)


@dataclass(frozen=True)
class LandcoverTrainConfig:
    """Hyper-parameters of :func:`train_unet` (defaults sized for a CPU)."""

    patch: int = 64
    stride: int | None = None
    epochs: int = 8
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 8
    seed: int = 0
    min_labelled: float = 0.3
    max_patches: int | None = 2000
    augment: bool = True
    #: ``"sqrt"``: inverse-sqrt class frequency weights; ``"none"``: every labelled pixel 1
    class_weights: str = "sqrt"

    def __post_init__(self) -> None:
        if self.patch % 32 or self.patch < 32:
            raise InputError(
                f"patch={self.patch}; the VGG16 U-net needs a multiple of 32 (e.g. 64)"
            )
        if self.class_weights not in ("sqrt", "none"):
            raise InputError(f"class_weights={self.class_weights!r}; expected 'sqrt' or 'none'")
        if self.epochs < 1 or self.batch_size < 1 or self.width < 1:
            raise InputError(
                f"epochs={self.epochs}, batch_size={self.batch_size}, width={self.width}; "
                "expected positive values"
            )

    def key(self) -> str:
        """A stable hash of everything but ``epochs`` (a resumed run may extend them)."""
        d = asdict(self)
        d.pop("epochs")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class LandcoverTrainResult:
    """What :func:`train_unet` produced."""

    path: Path
    card: Any
    history: list[dict[str, Any]] = field(default_factory=list)
    held_out: dict[str, Any] = field(default_factory=dict)
    resumed_from: int = 0


_FORBIDDEN = 254


def _patches(
    images: np.ndarray,
    labels: np.ndarray,
    allowed: np.ndarray,
    config: LandcoverTrainConfig,
    forbidden: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled patches of the training area: every patch holding a rare class (< 5 % of the
    labelled pixels, e.g. water) and a seeded sample of the rest, ``max_patches`` in all. No
    patch touches a ``forbidden`` (held-out) pixel, not even as unlabelled context."""
    from s2cube.models.patches import extract_patches

    usable = allowed[labels].any(axis=-1)
    lab = np.where(usable, labels, NO_LABEL).astype(np.uint8)
    lab[forbidden] = _FORBIDDEN
    px, py = extract_patches(
        images, lab, patch=config.patch, stride=config.stride, min_labelled=config.min_labelled
    )
    clean = ~(py == _FORBIDDEN).any(axis=(1, 2))
    px, py = px[clean], py[clean]
    if not len(py):
        raise InputError("every training patch touches the held-out area; use a smaller patch")
    single = allowed.sum(axis=1) == 1
    cls_of = np.where(single, allowed.argmax(axis=1), -1)
    idx = cls_of[py]
    counts = np.array([(idx == c).sum() for c in range(allowed.shape[1])])
    rare = [c for c in range(allowed.shape[1]) if 0 < counts[c] < 0.05 * max(counts.sum(), 1)]
    rng = np.random.default_rng(config.seed)
    has_rare = np.isin(idx, rare).any(axis=(1, 2)) if rare else np.zeros(len(py), bool)
    first = np.flatnonzero(has_rare)
    rest = rng.permutation(np.flatnonzero(~has_rare))
    cap = config.max_patches or len(py)
    keep = np.concatenate([rng.permutation(first)[:cap], rest[: max(cap - len(first), 0)]])
    keep = rng.permutation(keep)
    return px[keep], py[keep]


def _pixel_weights(py: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Weight per label code: inverse-sqrt frequency of the class it names (partial codes: the
    mean over their classes), normalised to mean 1 over the labelled pixels."""
    n_class = allowed.shape[1]
    codes, counts = np.unique(py, return_counts=True)
    per_class = np.zeros(n_class)
    for c, n in zip(codes, counts, strict=True):
        per_class[allowed[c]] += n / max(allowed[c].sum(), 1)
    w_class = np.where(per_class > 0, (per_class.sum() / np.maximum(per_class, 1)) ** 0.5, 0)
    table = np.zeros(256, dtype=np.float32)
    for c in range(256):
        if allowed[c].any():
            table[c] = w_class[allowed[c]].mean()
    used = table[py][allowed[py].any(-1)]
    return table / (used.mean() if used.size else 1.0)


def train_unet(
    images: np.ndarray,
    labels: np.ndarray,
    model: str,
    out_dir: str | Path,
    *,
    train_area: np.ndarray | None = None,
    held_out: np.ndarray | None = None,
    config: LandcoverTrainConfig | None = None,
    resume: bool = False,
    training_data: str = "",
    held_out_data: str = "",
    not_proven: str = "",
    resolution_m: float = 10.0,
    product_level: str = "l2a",
) -> LandcoverTrainResult:
    """Train one of the three land-cover U-nets; checkpoint every epoch; score the hold-out.

    Parameters
    ----------
    images:
        ``(time, band, y, x)`` float reflectance (0-1) in the model's band order
        (:data:`~s2cube.landcover.unets.UNET_MODELS`).
    labels:
        ``(time, y, x)`` label codes (module notes).
    model:
        ``"water"``, ``"vegetation"`` or ``"buildings"``.
    out_dir:
        ``model.pt`` + ``model.json`` (the card, with the held-out metrics), ``history.json``,
        ``checkpoints/`` (``state.pt`` to resume; ``epoch-NNN.pt`` loadable models).
    train_area, held_out:
        ``(y, x)`` or ``(time, y, x)`` bool masks: where training patches may come from, and
        which labelled pixels score the model (e.g. :func:`block_split`, or whole scenes).
        ``held_out=None``: no held-out score (the card then says so).
    resume:
        Continue from ``checkpoints/state.pt`` (same data and config except ``epochs``).
    training_data, held_out_data, not_proven:
        Provenance text for the card.

    Examples
    --------
    >>> tr, ho = block_split(labels.shape[1:], side="south", fraction=0.3, gap=64)  # doctest: +SKIP
    >>> train_unet(x, labels, "water", "runs/water", train_area=tr, held_out=ho)  # doctest: +SKIP
    """
    torch: Any = require("torch", "ml")
    from dataclasses import replace

    from s2cube.models import LoadedModel, ModelCard, save_model
    from s2cube.models.nets import VGG16UNet
    from s2cube.models.patches import augment_batch, standardise

    config = config or LandcoverTrainConfig()
    spec = UNET_MODELS.get(model)
    if spec is None:
        raise InputError(f"model={model!r}; expected one of {sorted(UNET_MODELS)}")
    multi = isinstance(images, (list, tuple))
    sets = _as_sets(images, labels, train_area, held_out, multi, model)
    allowed = allowed_classes(model)
    cut = [
        _patches(x, np.where(tr, lab, NO_LABEL).astype(np.uint8), allowed, config, ho)
        for x, lab, tr, ho in sets
    ]
    px = np.concatenate([c[0] for c in cut]) if multi else cut[0][0]
    py = np.concatenate([c[1] for c in cut]) if multi else cut[0][1]
    present = allowed[py[allowed[py].any(-1)]].any(axis=0)
    if not present.all():
        missing = [c for c, p in zip(spec.classes, present, strict=True) if not p]
        raise InputError(
            f"the {model} model's classes {missing} have no label in the training area; "
            "add labels that have them (or a larger area)"
        )
    px, mean, std = standardise(px)
    kwargs = {"in_channels": len(spec.bands), "n_classes": len(spec.classes), "width": config.width}
    card = ModelCard(
        name=f"unet-{model}",
        input_bands=spec.bands,
        classes=spec.classes,
        normalisation={"kind": "standardise", "mean": mean, "std": std},
        resolution_m=resolution_m,
        training_data=training_data or f"{len(px)} patches of {config.patch} px",
        licence="Apache-2.0",
        architecture="vgg16-unet",
        arch_kwargs=kwargs,
        output="softmax",
        window=config.patch,
        product_level=product_level,
    )
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    state_path = out / "checkpoints" / "state.pt"
    data_key = hashlib.sha256(px.tobytes() + py.tobytes()).hexdigest()[:16]

    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    net = VGG16UNet(**kwargs)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, Any]] = []
    start = 0
    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state["config_key"] != config.key() or state["data_key"] != data_key:
            raise InputError(
                f"{state_path} was written by a run with other data or settings; resume only "
                "with the same labels, area and config (epochs may grow), or drop --resume"
            )
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        history, start = state["history"], state["epoch"]
    xt, yt = torch.from_numpy(px), torch.from_numpy(py.astype(np.int64))
    allowed_t = torch.from_numpy(allowed)
    weights = (
        _pixel_weights(py, allowed)
        if config.class_weights == "sqrt"
        else allowed.any(axis=1).astype(np.float32)
    )
    weight_t = torch.from_numpy(weights)
    for epoch in range(start + 1, config.epochs + 1):
        net.train()
        perm = torch.randperm(len(px), generator=gen)
        total, seen = 0.0, 0
        for b in range(0, len(perm), config.batch_size):
            idx = perm[b : b + config.batch_size]
            xb, yb = xt[idx], yt[idx]
            if config.augment:
                xb, yb = augment_batch(torch, xb, yb, gen)
            opt.zero_grad()
            logp = torch.log_softmax(net(xb), dim=1)  # (b, k, y, x)
            ok = allowed_t[yb].permute(0, 3, 1, 2)  # (b, k, y, x)
            has = ok.any(dim=1)
            # partial-label loss: -log of the probability of the allowed set
            nll = -torch.logsumexp(logp.masked_fill(~ok, float("-inf")), dim=1)
            w = weight_t[yb] * has
            loss = (torch.where(has, nll, 0.0) * w).sum() / w.sum().clamp_min(1e-6)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        history.append({"epoch": epoch, "train_loss": total / max(seen, 1)})
        epoch_card = replace(
            card, metrics={"epoch": epoch, "train_loss": history[-1]["train_loss"]}
        )
        save_model(LoadedModel(net, epoch_card), out / "checkpoints" / f"epoch-{epoch:03d}.pt")
        torch.save(
            {
                "net": net.state_dict(),
                "opt": opt.state_dict(),
                "gen": gen.get_state(),
                "history": history,
                "epoch": epoch,
                "config_key": config.key(),
                "data_key": data_key,
            },
            state_path,
        )
    net.eval()
    loaded = LoadedModel(net, card)
    metrics: dict[str, Any] = {
        "epochs": config.epochs,
        "n_patches": len(px),
        "train_loss": history[-1]["train_loss"] if history else None,
        "held_out_data": held_out_data or ("none" if held_out is None else "given mask"),
        "not_proven": not_proven,
    }
    scored: dict[str, Any] = {}
    if held_out is not None:
        per_set = [
            evaluate_unet(loaded, x, np.where(ho, lab, NO_LABEL), model)
            for x, lab, _, ho in sets
            if ho.any()
        ]
        scored = per_set[0] if not multi else {"sets": per_set}
        metrics["held_out"] = scored
    final = LoadedModel(net, replace(card, metrics=metrics))
    path = save_model(final, out / "model.pt")
    (out / "history.json").write_text(
        json.dumps({"config": asdict(config), "history": history}, indent=2) + "\n"
    )
    return LandcoverTrainResult(path, final.card, history, scored, start)


def _as_sets(
    images: Any, labels: Any, train_area: Any, held_out: Any, multi: bool, model: str
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(images, labels, training area, held-out area)`` per
    data set (one, or several on different grids when ``images`` is a list)."""
    spec = UNET_MODELS[model]
    n = len(images) if multi else 1
    as_list = (
        (lambda v: list(v) if isinstance(v, (list, tuple)) else [v] * n)
        if multi
        else (lambda v: [v])
    )
    out = []
    for x, lab, tr, ho in zip(
        as_list(images), as_list(labels), as_list(train_area), as_list(held_out), strict=True
    ):
        x = np.asarray(x, dtype=np.float32)
        lab = np.asarray(lab, dtype=np.uint8)
        if x.ndim != 4 or x.shape[1] != len(spec.bands):
            raise InputError(
                f"images have shape {x.shape}; the {model} model needs (time, "
                f"{len(spec.bands)}, y, x) with bands {spec.bands}"
            )
        if lab.shape != (x.shape[0], *x.shape[2:]):
            raise InputError(f"labels {lab.shape} do not match images {x.shape}")
        area = _area(tr, lab.shape)
        forbidden = np.zeros(lab.shape, bool) if ho is None else _area(ho, lab.shape)
        if (area & forbidden).any():
            raise InputError("the training area and the held-out area overlap; make them disjoint")
        out.append((x, lab, area, forbidden))
    return out


def _area(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == shape[1:]:
        return np.broadcast_to(mask, shape)
    if mask.shape != shape:
        raise InputError(f"area mask has shape {mask.shape}; expected {shape[1:]} or {shape}")
    return mask


def evaluate_unet(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    name: str,
    *,
    window: int = 128,
    overlap: int = 32,
) -> dict[str, Any]:
    """Score a U-net against label codes (only dates with a label are run).

    Returns a dict: ``confusion`` (rows = reference, columns = predicted, over the model's
    classes; pixels whose label names one class), ``overall_accuracy``, ``kappa``, ``f1`` per
    class, ``n_pixels``; and, where partial labels exist (SCL vegetation / not vegetated),
    ``partial_accuracy``: the share of those pixels predicted inside their allowed set.
    """
    from s2cube.models import predict

    allowed = allowed_classes(name)
    classes = UNET_MODELS[name].classes
    labels = np.asarray(labels, dtype=np.uint8)
    dates = [t for t in range(labels.shape[0]) if allowed[labels[t]].any()]
    if not dates:
        raise InputError("no labelled pixel to score the model on")
    single = allowed.sum(axis=1) == 1
    cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
    part_ok = part_n = 0
    for t in dates:
        # only the labelled pixels' bounding box (plus the network's reach) is run
        rows, cols = np.nonzero(allowed[labels[t]].any(-1))
        y0, x0 = max(rows.min() - window, 0), max(cols.min() - window, 0)
        y1, x1 = rows.max() + window + 1, cols.max() + window + 1
        img = images[t][:, y0:y1, x0:x1]
        probs = predict(model, img, window=window, overlap=overlap, device="cpu")
        pred = probs.argmax(axis=0)
        lab = labels[t][y0:y1, x0:x1]
        ref = np.where(single[lab], allowed[lab].argmax(axis=-1), NO_LABEL)
        cm += confusion(pred.astype(np.uint8), ref.astype(np.uint8), tuple(range(len(classes))))
        partial = allowed[lab].any(-1) & ~single[lab]
        if partial.any():
            hit = np.take_along_axis(allowed[lab], pred[..., None], axis=-1)[..., 0]
            part_ok += int((hit & partial).sum())
            part_n += int(partial.sum())
    s = scores(cm, tuple(range(len(classes))))
    out: dict[str, Any] = {
        "classes": list(classes),
        "confusion": cm.tolist(),
        "overall_accuracy": _num(s.accuracy),
        "kappa": _num(s.kappa),
        "f1": {c: _num(f) for c, f in zip(classes, s.f1, strict=True)},
        "n_pixels": int(cm.sum()),
        "dates": len(dates),
    }
    if part_n:
        out["partial_accuracy"] = round(part_ok / part_n, 4)
        out["n_partial_pixels"] = part_n
    return out


def _num(v: float) -> float | None:
    # JSON has no NaN: an undefined score (class absent) is null
    return None if not np.isfinite(v) else round(float(v), 4)
