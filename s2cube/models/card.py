"""Model cards: what a set of weights expects and what it predicts, saved next to the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from s2cube.errors import InputError

__all__ = ["ModelCard"]


@dataclass(frozen=True)
class ModelCard:
    """Describes a model's inputs, outputs and provenance.

    Parameters
    ----------
    name:
        Registry name or a short identifier of trained weights.
    input_bands:
        Band names in the order the network reads them (Earth Search v1 names:
        ``blue, green, red, nir, swir16, swir22``).
    normalisation:
        How reflectance (0–1) becomes network input: ``{"kind": "standardise", "mean": [...],
        "std": [...]}`` (per band) or ``{"kind": "none"}``.
    classes:
        Output channel names, in order.
    resolution_m:
        The ground sampling distance the model was trained at.
    training_data, licence:
        Provenance, free text.
    architecture, arch_kwargs:
        How to rebuild the network (a name in :data:`s2cube.models.nets.ARCHITECTURES`, or
        ``"onnx"`` for converted ONNX graphs).
    output:
        ``"softmax"`` (mutually exclusive classes) or ``"sigmoid"`` (independent channels).
    window:
        The tile size the model was trained on; the inference default.
    product_level:
        ``"l2a"`` or ``"l1c"``.
    metrics:
        Validation scores recorded at training time.

    Examples
    --------
    >>> card = ModelCard(name="demo", input_bands=("red", "nir"), classes=("clear", "cloud"))
    >>> ModelCard.from_dict(card.to_dict()) == card
    True
    """

    name: str
    input_bands: tuple[str, ...]
    classes: tuple[str, ...]
    normalisation: dict[str, Any] = field(default_factory=lambda: {"kind": "none"})
    resolution_m: float = 10.0
    training_data: str = ""
    licence: str = ""
    architecture: str = ""
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    output: str = "softmax"
    window: int = 256
    product_level: str = "l2a"
    version: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_bands", tuple(self.input_bands))
        object.__setattr__(self, "classes", tuple(self.classes))
        if self.output not in ("softmax", "sigmoid", "identity"):
            raise InputError(
                f"ModelCard.output={self.output!r}; expected 'softmax', 'sigmoid' or 'identity'"
            )
        kind = self.normalisation.get("kind")
        if kind not in ("none", "standardise"):
            raise InputError(
                f"ModelCard.normalisation kind={kind!r}; expected 'none' or 'standardise'"
            )
        if kind == "standardise":
            for key in ("mean", "std"):
                if len(self.normalisation[key]) != len(self.input_bands):
                    raise InputError(
                        f"normalisation {key} has {len(self.normalisation[key])} values for "
                        f"{len(self.input_bands)} input bands {self.input_bands}"
                    )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_bands"] = list(self.input_bands)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown model card fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=float) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> ModelCard:
        return cls.from_dict(json.loads(Path(path).read_text()))
