"""Weights I/O: load models by registry name or path, save trained models with their card.

Registry names map to weights that ship inside an installed wheel (they work offline):

========================  ===========================================================
``csmask-l2a-4b``         ukis-csmask U-net (EfficientNet-B4), L2A, blue/green/red/nir
``csmask-l2a-6b``         same, plus swir16/swir22
``csmask-l1c-4b``         L1C (top-of-atmosphere) variant, 4 bands
``csmask-l1c-6b``         L1C variant, 6 bands
``dynamicworld``          Dynamic World land cover (Google, Apache-2.0), L1C, 9 bands, 9 classes
========================  ===========================================================

Anything else is a path: a ``.pt`` file written by :func:`save_model` (its card is inside and
next to it as ``.json``), or an ``.onnx`` file with a card ``.json`` next to it.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2cube.errors import InputError, require
from s2cube.models.card import ModelCard

__all__ = ["REGISTRY", "LoadedModel", "load_model", "save_model"]

_FORMAT = "s2cube-model/1"

#: registry name -> (ukis-csmask file stem, product level)
REGISTRY: dict[str, tuple[str, str]] = {
    "csmask-l2a-4b": ("model_4b_l2a", "l2a"),
    "csmask-l2a-6b": ("model_6b_l2a", "l2a"),
    "csmask-l1c-4b": ("model_4b_l1c", "l1c"),
    "csmask-l1c-6b": ("model_6b_l1c", "l1c"),
    "dynamicworld": ("dynamicworld", "l1c"),  # s2cube/models/weights, see models.dynamicworld
}

_CSMASK_TRAINING = (
    "ukis-csmask 1.0.0 (DLR, Apache-2.0): U-net with an EfficientNet-B4 encoder trained on "
    "manually labelled Sentinel-2 and Landsat scenes resampled to about 30 m (Wieland et al., "
    "2019, Remote Sensing of Environment 230, 111203; see the ukis-csmask README)"
)


@dataclass
class LoadedModel:
    """A network with its model card.

    Attributes
    ----------
    net:
        The network (logits out).
    card:
        What it expects and predicts.
    source:
        Registry name it was loaded by (workers load it themselves), or ``None``.
    module:
        Reflectance in, probabilities out (normalisation and activation around ``net``);
        what :func:`s2cube.models.predict` runs.
    """

    net: Any
    card: ModelCard
    source: str | None = None
    module: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from s2cube.models.nets import InferenceModel

        norm = self.card.normalisation
        standardise = norm.get("kind") == "standardise"
        self.module = InferenceModel(
            self.net,
            norm["mean"] if standardise else None,
            norm["std"] if standardise else None,
            output=self.card.output,
        ).eval()


def _csmask_dir() -> Path:
    ukis: Any = require("ukis_csmask", "ml")
    return Path(ukis.__file__).parent


@functools.lru_cache(maxsize=4)
def _convert_csmask(stem: str) -> Any:
    from s2cube.models.onnx_torch import onnx_to_torch

    return onnx_to_torch(_csmask_dir() / f"{stem}.onnx")


def csmask_card(name: str) -> ModelCard:
    """The model card of a ukis-csmask model, from the JSON that ships with its weights."""
    stem, level = REGISTRY[name]
    meta = json.loads((_csmask_dir() / f"{stem}.json").read_text())
    stats = meta["data"]["dataset_statistics"]
    ukis: Any = require("ukis_csmask", "ml")
    return ModelCard(
        name=name,
        input_bands=tuple(stats["band_names"]),
        classes=("clear", "cloud", "shadow"),
        normalisation={"kind": "standardise", "mean": stats["img"][0], "std": stats["img"][1]},
        resolution_m=30.0,
        training_data=_CSMASK_TRAINING,
        licence="Apache-2.0",
        architecture="onnx",
        output="softmax",
        window=int(meta["data"]["target_size"][0]),
        product_level=level,
        version=f"{meta['model']['version']} (ukis-csmask {ukis.__version__})",
    )


def load_model(name_or_path: str | Path) -> LoadedModel:
    """Load a model by registry name or path (on CPU, in eval mode).

    Examples
    --------
    >>> model = load_model("csmask-l2a-4b")  # doctest: +SKIP
    >>> model.card.input_bands  # doctest: +SKIP
    ('blue', 'green', 'red', 'nir')
    """
    torch: Any = require("torch", "ml")
    key = str(name_or_path)
    if key == "dynamicworld":
        from s2cube.models.dynamicworld import load_dynamicworld

        return load_dynamicworld()
    if key in REGISTRY:
        net = copy.deepcopy(_convert_csmask(REGISTRY[key][0]))
        return LoadedModel(net.eval(), csmask_card(key), source=key)
    path = Path(name_or_path)
    if not path.exists():
        raise InputError(
            f"{key!r} is neither a registry model ({', '.join(sorted(REGISTRY))}) nor an "
            "existing path; pass a name from that list or the path of a saved model (.pt)"
        )
    if path.is_dir():
        path = path / "model.pt"
    if path.suffix == ".onnx":
        from s2cube.models.onnx_torch import onnx_to_torch

        card_path = path.with_suffix(".json")
        if not card_path.exists():
            raise InputError(f"{path} needs a model card next to it at {card_path}")
        return LoadedModel(onnx_to_torch(path), ModelCard.from_json(card_path))
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign files
        raise InputError(
            f"cannot read {path} as an s2cube model file ({exc.__class__.__name__}); "
            "pass a .pt written by s2cube.models.save_model"
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
        raise InputError(f"{path} is not an s2cube model file (expected format {_FORMAT!r})")
    from s2cube.models.nets import build

    card = ModelCard.from_dict(blob["card"])
    net = build(card.architecture, **card.arch_kwargs)
    net.load_state_dict(blob["state_dict"])
    return LoadedModel(net.eval(), card)


def save_model(model: LoadedModel, path: str | Path) -> Path:
    """Save a model built from :mod:`s2cube.models.nets` as ``path`` (.pt) plus its card (.json).

    Examples
    --------
    >>> save_model(trained, "out/cloud.pt")  # doctest: +SKIP
    """
    torch: Any = require("torch", "ml")
    from s2cube.models.nets import ARCHITECTURES

    if model.card.architecture not in ARCHITECTURES:
        raise InputError(
            f"card.architecture={model.card.architecture!r} cannot be rebuilt from a state dict; "
            f"expected one of {sorted(ARCHITECTURES)}"
        )
    path = Path(path)
    if path.suffix != ".pt":
        path = path / "model.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
    # plain JSON types only: weights_only loading refuses numpy scalars
    card = json.loads(json.dumps(model.card.to_dict(), default=float))
    torch.save({"format": _FORMAT, "card": card, "state_dict": state}, path)
    model.card.to_json(path.with_suffix(".json"))
    return path
