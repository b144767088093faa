"""The seed's three land-cover U-nets and the rule that combines them into one map.

Three separate networks, each a :class:`~s2cube.models.nets.VGG16UNet` (VGG16 encoder, two
centre convolutions, mirrored decoder; Tasar et al.), run on the 4-band mosaic:

==============  =================  ==============================================
model           input bands        classes (softmax)
==============  =================  ==============================================
``water``       nir, red, green    other, water
``vegetation``  nir, red, green    other, grass, tree
``buildings``   red, green, blue   other, built
==============  =================  ==============================================

**Combination rule** (:func:`combine_unets`), per pixel, with ``t = threshold`` (0.5):

1. ``p_water > t`` → water. First because water is the most separable signal (NIR absorbed)
   and the other two models only ever saw water as "other": over water their outputs are
   not evidence of anything.
2. else ``p_built > t`` → built. Before vegetation because 10 m built-up pixels mix roofs,
   streets and gardens: the vegetation model sees green in them and would claim them, while
   the buildings model is trained on exactly those mixtures.
3. else ``p_grass + p_tree > t`` → tree if ``p_tree >= p_grass`` else grass.
4. else barren: no model is confident that the pixel is water, built or vegetated.

The same order defines a proper five-class distribution (a chain of conditional decisions),
``P(water) = p_w``, ``P(built) = (1 - p_w) p_b``, ``P(tree) = (1 - p_w)(1 - p_b) p_tree``,
``P(grass) = (1 - p_w)(1 - p_b) p_grass``, ``P(barren) = (1 - p_w)(1 - p_b) p_other``; the
confidence of a pixel is the probability of its chosen class under that distribution (the
rule's thresholds, not the argmax of the chain, pick the class). Without a buildings model
``p_b = 0``: built is never assigned and built-up land falls to grass or barren.

Shipped weights (``s2cube/landcover/weights/unet-<model>.pt`` with a card ``.json``) load with
:func:`load_unet`; which models ship and what their held-out accuracy is: ``docs/landcover.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from s2cube.errors import InputError
from s2cube.landcover.kernels import LANDCOVER_CODES, NO_DATE

__all__ = [
    "UNET_MODELS",
    "UNetSpec",
    "chain_probabilities",
    "combine_unets",
    "load_unet",
    "shipped_unets",
    "unet_weights_path",
]


@dataclass(frozen=True)
class UNetSpec:
    """One of the three land-cover U-nets: its input bands and output classes."""

    name: str
    bands: tuple[str, ...]
    classes: tuple[str, ...]


#: the seed's three models (NIR-R-G for water and vegetation, R-G-B for buildings)
UNET_MODELS: dict[str, UNetSpec] = {
    "water": UNetSpec("water", ("nir", "red", "green"), ("other", "water")),
    "vegetation": UNetSpec("vegetation", ("nir", "red", "green"), ("other", "grass", "tree")),
    "buildings": UNetSpec("buildings", ("red", "green", "blue"), ("other", "built")),
}

#: order of :func:`chain_probabilities`' class axis = s2cube codes 1..5
_CHAIN = ("water", "tree", "grass", "barren", "built")
assert tuple(LANDCOVER_CODES) == _CHAIN


def unet_weights_path(name: str) -> Path:
    """Where the shipped weights of U-net ``name`` are (whether or not they exist)."""
    return Path(str(files("s2cube.landcover") / "weights" / f"unet-{name}.pt"))


def shipped_unets() -> tuple[str, ...]:
    """Names of the U-nets whose weights ship in the package."""
    return tuple(n for n in UNET_MODELS if unet_weights_path(n).exists())


def load_unet(model: Any) -> Any:
    """A :class:`~s2cube.models.LoadedModel` from a U-net name (shipped weights), a path or a
    loaded model (returned as is).

    Raises
    ------
    InputError
        For a name whose weights do not ship (the buildings model: no labels here to train it),
        or a model whose classes are not one of :data:`UNET_MODELS`'.

    Examples
    --------
    >>> load_unet("water").card.classes  # doctest: +SKIP
    ('other', 'water')
    """
    from s2cube.models import LoadedModel, load_model

    if isinstance(model, LoadedModel):
        return model
    key = str(model)
    if key in UNET_MODELS:
        path = unet_weights_path(key)
        if not path.exists():
            raise InputError(
                f"no weights ship for the {key!r} U-net (shipped: {list(shipped_unets())}); "
                f"train one with `s2cube train landcover CATALOG --model {key} --labels-raster "
                "... --mapping ...` and pass its model.pt"
            )
        return load_model(path)
    return load_model(key)


def _check(name: str, p: np.ndarray, n_class: int, shape: tuple[int, ...] | None) -> np.ndarray:
    p = np.asarray(p, dtype=np.float32)
    if p.ndim != 3 or p.shape[0] != n_class:
        raise InputError(
            f"{name} probabilities have shape {p.shape}; expected ({n_class}, y, x) in the "
            f"order {UNET_MODELS[name].classes}"
        )
    if shape is not None and p.shape[1:] != shape:
        raise InputError(f"{name} probabilities are {p.shape[1:]}; the others are {shape}")
    return p


def chain_probabilities(
    p_water: np.ndarray, p_vegetation: np.ndarray, p_buildings: np.ndarray | None = None
) -> np.ndarray:
    """The five-class distribution ``(5, y, x)`` (s2cube codes 1..5: water, tree, grass,
    barren, built) implied by the combination order water → built → vegetation → barren.

    Inputs are the softmax outputs of the three models (``(2, y, x)``, ``(3, y, x)``,
    ``(2, y, x)`` or ``None``).

    Examples
    --------
    >>> pw = np.array([[[0.5]], [[0.5]]]); pv = np.array([[[0.2]], [[0.3]], [[0.5]]])
    >>> [round(float(v), 3) for v in chain_probabilities(pw, pv)[:, 0, 0]]
    [0.5, 0.25, 0.15, 0.1, 0.0]
    """
    pw = _check("water", p_water, 2, None)
    pv = _check("vegetation", p_vegetation, 3, pw.shape[1:])
    w = pw[1]
    b = (
        np.zeros_like(w)
        if p_buildings is None
        else _check("buildings", p_buildings, 2, pw.shape[1:])[1]
    )
    rest = (1 - w) * (1 - b)
    return np.stack([w, rest * pv[2], rest * pv[1], rest * pv[0], (1 - w) * b]).astype(np.float32)


def combine_unets(
    p_water: np.ndarray,
    p_vegetation: np.ndarray,
    p_buildings: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The three models' probabilities → s2cube classes by the documented rule (module notes).

    Parameters
    ----------
    p_water, p_vegetation, p_buildings:
        Softmax outputs ``(2, y, x)`` (other, water), ``(3, y, x)`` (other, grass, tree) and
        ``(2, y, x)`` (other, built) or ``None`` (no buildings model: built is never chosen).
    threshold:
        The probability each step needs (0 < threshold < 1).
    valid:
        ``(y, x)`` bool: pixels with data; others get class 0 and confidence 0.

    Returns
    -------
    ``(classes, confidence)``: uint8 codes (1 water, 2 tree, 3 grass, 4 barren, 5 built; 0 where
    not valid) and float32 probability of the chosen class under :func:`chain_probabilities`.

    Examples
    --------
    >>> pw = np.array([[[0.9, 0.1]], [[0.1, 0.9]]])  # (2, 1, 2): land, water
    >>> pv = np.array([[[0.1, 0.8]], [[0.2, 0.1]], [[0.7, 0.1]]])
    >>> cls, conf = combine_unets(pw, pv)
    >>> cls.tolist(), [round(float(v), 2) for v in conf[0]]
    ([[2, 1]], [0.63, 0.9])
    """
    if not 0 < threshold < 1:
        raise InputError(f"threshold={threshold}; expected a probability between 0 and 1")
    chain = chain_probabilities(p_water, p_vegetation, p_buildings)
    pw = np.asarray(p_water, dtype=np.float32)[1]
    pv = np.asarray(p_vegetation, dtype=np.float32)
    pb = np.zeros_like(pw) if p_buildings is None else np.asarray(p_buildings, dtype=np.float32)[1]
    codes = LANDCOVER_CODES
    veg = np.where(pv[2] >= pv[1], codes["tree"], codes["grass"])
    classes = np.where(
        pw > threshold,
        codes["water"],
        np.where(
            pb > threshold,
            codes["built"],
            np.where(pv[1] + pv[2] > threshold, veg, codes["barren"]),
        ),
    ).astype(np.uint8)
    conf = np.take_along_axis(chain, (classes.astype(np.intp) - 1)[None], axis=0)[0]
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        classes = np.where(valid, classes, NO_DATE).astype(np.uint8)
        conf = np.where(valid, conf, 0)
    return classes, conf.astype(np.float32)
