"""Land cover from Sentinel-2 time series: Dynamic World per date, fused over time.

:func:`landcover` (the xarray/dask call, :mod:`s2cube.landcover.wrapper`) runs the Dynamic World
network (:mod:`s2cube.models.dynamicworld`) per chunk with a halo through the inference engine,
maps its 9 classes to s2cube's and fuses the clear dates (:mod:`s2cube.landcover.kernels`).
:func:`landcover_unets` runs the seed's three U-nets (water, vegetation, buildings;
:mod:`s2cube.landcover.unets`) on a 4-band image and combines them by a documented rule;
:func:`landcover_unets_series` runs them on every date of a 4-band series and fuses each
model's clear-date probabilities before the rule (:mod:`s2cube.landcover.series`);
:mod:`s2cube.landcover.train` trains them (``s2cube train landcover``);
:mod:`s2cube.landcover.built_split` is the experimental, unvalidated residential/industrial split.
See ``docs/landcover.md`` for what was validated and what was not.
"""

from __future__ import annotations

from s2cube.landcover.kernels import (
    DW_TO_LANDCOVER,
    LANDCOVER_CLASSES,
    LANDCOVER_CODES,
    LANDCOVER_COLORS,
    NO_DATE,
    SPLIT_CLASSES,
    dw_to_landcover,
    fuse,
)
from s2cube.landcover.series import landcover_unets_series
from s2cube.landcover.unets import UNET_MODELS, combine_unets, load_unet, shipped_unets
from s2cube.landcover.wrapper import landcover, landcover_unets

__all__ = [
    "DW_TO_LANDCOVER",
    "LANDCOVER_COLORS",
    "SPLIT_CLASSES",
    "LANDCOVER_CLASSES",
    "LANDCOVER_CODES",
    "NO_DATE",
    "dw_to_landcover",
    "fuse",
    "landcover",
    "landcover_unets",
    "landcover_unets_series",
    "UNET_MODELS",
    "combine_unets",
    "load_unet",
    "shipped_unets",
]
