"""Quick-look PNGs of composites (true colour through the global tone curve).

The colour rules themselves live in :mod:`s2cube.render`; this module only picks the red, green
and blue bands of a composite dataset and writes the picture.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from .render import tci, tone_curve

__all__ = ["tci_rule", "true_colour", "write_png"]


def tci_rule(dn: np.ndarray) -> np.ndarray:
    """ESA TCI rule: reflectance DN 0–2000 → 0–255 linearly (clipped).

    The same function as :func:`s2cube.render.tci`, kept under this name for existing callers.

    Examples
    --------
    >>> tci_rule(np.array([0, 1000, 3000], dtype="uint16"))
    array([  0, 128, 255], dtype=uint8)
    """
    return tci(dn)


def true_colour(ds: xr.Dataset, *, rule: str = "curve") -> np.ndarray:
    """``(y, x, 4)`` RGBA uint8 of a composite; alpha 0 where there is no data.

    Parameters
    ----------
    ds : xarray.Dataset
        A composite with ``red``, ``green`` and ``blue`` uint16 reflectance (0 = nodata).
    rule : {"curve", "tci"}, default "curve"
        ``"curve"``: the global tone curve, identical everywhere; ``"tci"``: the ESA TCI rule.

    Examples
    --------
    >>> rgba = true_colour(s2cube.open_store("mosaic.zarr", cell="r0c0"))  # doctest: +SKIP
    """
    curve = tone_curve if rule == "curve" else tci_rule
    rgb = np.stack([np.asarray(ds[b].values) for b in ("red", "green", "blue")], axis=-1)
    out = np.zeros((*rgb.shape[:2], 4), dtype="uint8")
    out[..., :3] = curve(rgb)
    out[..., 3] = np.where((rgb > 0).all(axis=-1), 255, 0)
    return out


def write_png(ds: xr.Dataset, path: str | os.PathLike[str], *, rule: str = "curve") -> Path:
    """Write a true-colour PNG of a (small) composite dataset and return its path.

    Examples
    --------
    >>> write_png(ds, "quicklook.png")  # doctest: +SKIP
    PosixPath('quicklook.png')
    """
    from PIL import Image

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(true_colour(ds, rule=rule), mode="RGBA").save(p)
    return p
