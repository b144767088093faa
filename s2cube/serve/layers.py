"""The served layers: their catalogue, tile matrix sets, tone curves and class colours.

What a layer *is* (:class:`LayerSpec`: variables and rendering), which tile matrix sets are
served, which tone curve a store's recorded rendering version selects, and the super-resolution
layers a nested product adds.  :mod:`s2cube.serve.tiles` reads the store and applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import render
from ..errors import InputError

__all__ = [
    "EARTH_RADIUS",
    "LAYERS",
    "SUPERRES_ATTR",
    "SUPERRES_BASE",
    "TMS_IDS",
    "TONE_CURVES",
    "LayerSpec",
    "TileRequestError",
    "class_colors",
    "get_tms",
    "superres_layer_id",
    "superres_spec",
    "tone_curve_for",
]

EARTH_RADIUS = 6378137.0


class TileRequestError(InputError):
    """A tile request that cannot be served; carries the HTTP status and the OGC exception code."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str = "InvalidParameterValue",
        locator: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.locator = locator


@dataclass(frozen=True)
class LayerSpec:
    """A served layer: which variables, and how they become colour."""

    id: str
    title: str
    variables: tuple[str, ...]
    rendering: str  # "tone" | "tci" | "date" | "classes"
    abstract: str


LAYERS: dict[str, LayerSpec] = {
    spec.id: spec
    for spec in (
        LayerSpec(
            "true-color",
            "True colour",
            ("red", "green", "blue"),
            "tone",
            "Red, green, blue through the fixed global s2cube tone curve (the store's version)",
        ),
        LayerSpec(
            "false-color",
            "False colour (NIR, red, green)",
            ("nir", "red", "green"),
            "tone",
            "Near-infrared, red, green through the global tone curve; vegetation is red",
        ),
        LayerSpec(
            "true-color-tci",
            "True colour (ESA TCI rule)",
            ("red", "green", "blue"),
            "tci",
            "Red, green, blue with the ESA TCI rule: reflectance 0-0.2 linearly to 0-255",
        ),
        LayerSpec(
            "provenance",
            "Provenance (acquisition date)",
            ("date",),
            "date",
            "Acquisition date of every pixel, viridis from the store's first to last date",
        ),
        LayerSpec(
            "landcover",
            "Land cover",
            ("landcover",),
            "classes",
            "Land-cover class (s2cube landcover): water, tree, grass, barren, built (not split "
            "into residential/industrial), in the store's palette; transparent: no clear date",
        ),
    )
}

TMS_IDS = ("WebMercatorQuad", "WorldCRS84Quad")


def get_tms(tms_id: str) -> Any:
    import morecantile

    if tms_id not in TMS_IDS:
        raise TileRequestError(
            f"unknown tile matrix set {tms_id!r}; use one of {list(TMS_IDS)}",
            locator="TileMatrixSet",
        )
    return morecantile.tms.get(tms_id)


#: the tone curve of each recorded version (``render.rendering_attrs()["tone_curve_version"]``)
TONE_CURVES = {1: render.tone_curve_v1, 2: render.tone_curve}


def tone_curve_for(rendering: dict[str, Any] | None) -> Any:
    """The tone curve a store is served with: the version recorded in its root metadata.

    A store without the record was created before the rendering was recorded, when stores
    were served with version 1 (the log curve): it keeps version 1, so its tiles do not change.

    >>> tone_curve_for({"tone_curve_version": 2}) is render.tone_curve
    True
    >>> tone_curve_for(None) is render.tone_curve_v1
    True
    """
    version = int((rendering or {}).get("tone_curve_version", 1))
    if version not in TONE_CURVES:
        raise ValueError(
            f"the store is rendered with tone curve version {version}, which this s2cube does "
            f"not know (it has {sorted(TONE_CURVES)}); upgrade s2cube to serve it"
        )
    return TONE_CURVES[version]


#: the mosaic layer whose colours every super-resolution layer repeats
SUPERRES_BASE = "true-color"
#: the root attribute that marks a nested store as a super-resolution product of its parent
SUPERRES_ATTR = "s2cube_superres"


def superres_layer_id(scale: int) -> str:
    """The layer id of the super-resolution product at ``scale`` (``superres-x4``)."""
    return f"superres-x{int(scale)}"


def superres_spec(scale: int, info: dict[str, Any]) -> LayerSpec:
    model = str(info.get("model", "unknown model"))
    return LayerSpec(
        superres_layer_id(scale),
        f"Super-resolution ×{int(scale)} (true colour)",
        LAYERS[SUPERRES_BASE].variables,
        "tone",
        f"Red, green, blue of the ×{int(scale)} super-resolved mosaic (model: {model}; "
        "learned from Sentinel-2 itself, not real sub-10 m detail) through the same global "
        "tone curve as the true-colour layer",
    )


def class_colors(classes: np.ndarray, palette: dict[int, tuple[str, str]]) -> np.ndarray:
    """RGBA (h, w, 4) uint8 of a class map: each code in its palette colour, 0 transparent.

    >>> class_colors(np.array([[0, 1]], "uint8"), {1: ("water", "#2b6cc4")})[0, 1].tolist()
    [43, 108, 196, 255]
    """
    lut = np.zeros((256, 4), dtype=np.uint8)
    for code, (_, color) in palette.items():
        h = color.lstrip("#")
        lut[int(code)] = (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 255)
    return lut[np.asarray(classes, dtype=np.uint8)]
