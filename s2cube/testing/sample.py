"""The synthetic sample catalog's public names, where they were first defined.

Kept so that ``from s2cube.testing.sample import ...`` keeps working; the code lives in the
modules listed in :mod:`s2cube.testing`, which documents the catalog.
"""

from __future__ import annotations

from s2cube.testing.acquisitions import BOA_ADD_OFFSET, SAMPLE_BBOX, SAMPLE_DATES
from s2cube.testing.catalog import PARAMS_FILENAME, make_sample_catalog
from s2cube.testing.scenes import BANDS, sample_truth

__all__ = [
    "BANDS",
    "BOA_ADD_OFFSET",
    "PARAMS_FILENAME",
    "SAMPLE_BBOX",
    "SAMPLE_DATES",
    "make_sample_catalog",
    "sample_truth",
]
