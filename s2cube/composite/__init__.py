"""Compositing: the one engine of s2cube.

====================  =================================================================
module                owns
====================  =================================================================
``kernels``           numpy kernels: source selection, harmonization, blending, and
                      :func:`composite_window` (what every block and every chunk runs)
``order``             the priority order of observations, hazy scenes last
``engine``            the store's cell engine: planned reads → block tasks → lazy cell
``wrapper``           :func:`composite`, the xarray/dask call for any cube
====================  =================================================================

:func:`composite` and the cell engine run the same kernel with the same
:class:`~s2cube.config.MosaicConfig`, so a notebook composite of a cell equals the store's.
"""

from __future__ import annotations

from ..config import CompositeSpec
from .kernels import (
    blend_composite,
    blend_halo,
    composite_window,
    harmonize_window,
    priority_composite,
    select_sources,
)
from .order import demote_hazy, priority_order
from .wrapper import composite

__all__ = [
    "CompositeSpec",
    "blend_composite",
    "blend_halo",
    "composite",
    "composite_window",
    "demote_hazy",
    "harmonize_window",
    "priority_composite",
    "priority_order",
    "select_sources",
]
