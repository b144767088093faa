"""Colour harmonization, seam blending and quality metrics (numpy kernels).

* :mod:`s2cube.harmonize.radiometry`: per-scene, per-band transfer functions fitted on clear
  pixels shared with a reference palette (linear gain/offset or histogram matching), stored as
  monotone piecewise-linear *knots* so both methods apply the same way.
* :mod:`s2cube.harmonize.blend`: the priority composite with feathered or multi-band blending
  where the source scene changes.
* :mod:`s2cube.harmonize.metrics`: seam and colour-consistency metrics.
"""

from __future__ import annotations

from .blend import blend_composite
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
    "blend_composite",
    "colour_difference",
    "fit_histogram",
    "fit_linear",
    "fit_transfer",
    "reference_composite",
    "seam_metric",
]
