"""Quick-look PNGs of composites (true colour through the global tone curve)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["tci_rule", "true_colour", "write_png"]


def tci_rule(dn: np.ndarray) -> np.ndarray:
    """ESA TCI rule: reflectance DN 0–2000 → 0–255 linearly (clipped); see :func:`s2cube.serve.render.tci`."""
    from .serve.render import tci

    return tci(dn)


def true_colour(ds: xr.Dataset, *, rule: str = "curve") -> np.ndarray:
    """``(y, x, 4)`` RGBA uint8 of a composite; alpha 0 where there is no data.

    ``rule`` is ``"curve"`` (the global tone curve, identical everywhere) or ``"tci"``.
    """
    from .serve.render import tone_curve

    curve = tone_curve if rule == "curve" else tci_rule
    rgb = np.stack([np.asarray(ds[b].values) for b in ("red", "green", "blue")], axis=-1)
    out = np.zeros((*rgb.shape[:2], 4), dtype="uint8")
    out[..., :3] = curve(rgb)
    out[..., 3] = np.where((rgb > 0).all(axis=-1), 255, 0)
    return out


def write_png(ds: xr.Dataset, path: str | os.PathLike[str], *, rule: str = "curve") -> Path:
    """Write a true-colour PNG of a (small) composite dataset."""
    from PIL import Image

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(true_colour(ds, rule=rule), mode="RGBA").save(p)
    return p
