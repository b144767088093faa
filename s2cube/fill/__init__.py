"""Holes: donors from other periods, then inpainting (see ``docs/fill.md``).

:func:`fill_holes` (also ``s2cube.fill_holes``) fills a composite's holes and records how in a
``fill`` variable; :mod:`s2cube.fill.kernels` holds the numpy kernels, :mod:`s2cube.fill.learned`
the small partial-convolution inpainter (torch, imported only when used).
"""

from .api import FILL_HALO, donor_periods, fill_holes, fill_window, period_rank
from .kernels import (
    FILL_CODES,
    FILL_DONOR,
    FILL_INPAINTED,
    FILL_NONE,
    FILL_OBSERVED,
    fill_from_donors,
    inpaint,
)

__all__ = [
    "FILL_CODES",
    "FILL_HALO",
    "FILL_DONOR",
    "FILL_INPAINTED",
    "FILL_NONE",
    "FILL_OBSERVED",
    "donor_periods",
    "fill_from_donors",
    "fill_holes",
    "fill_window",
    "inpaint",
    "period_rank",
]
