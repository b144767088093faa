"""Colour harmonization and quality metrics (numpy kernels).

* :mod:`s2cube.harmonize.radiometry`: per-scene, per-band transfer functions fitted on clear
  pixels shared with a reference palette (linear gain/offset or histogram matching), stored as
  monotone piecewise-linear *knots* so both methods apply the same way.
* :mod:`s2cube.harmonize.fit`: the per-scene parameters (knots, haze score) fitted from the
  survey and kept in the store's scene table.
* :mod:`s2cube.harmonize.metrics`: seam and colour-consistency metrics.

Blending lives with the composite (:mod:`s2cube.composite.kernels`): it is part of choosing
and mixing sources, not of radiometry.
"""

from __future__ import annotations

from .metrics import colour_difference, seam_metric
from .radiometry import (
    IDENTITY,
    apply_knots,
    fit_histogram,
    fit_linear,
    fit_transfer,
    reference_composite,
)

__all__ = [
    "IDENTITY",
    "apply_knots",
    "colour_difference",
    "fit_histogram",
    "fit_linear",
    "fit_transfer",
    "reference_composite",
    "seam_metric",
]
