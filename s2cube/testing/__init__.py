"""Test helpers shipped with s2cube: a synthetic Sentinel-2 L2A sample catalog."""

from __future__ import annotations

from s2cube.testing.sample import (
    BANDS,
    BOA_ADD_OFFSET,
    PARAMS_FILENAME,
    SAMPLE_BBOX,
    SAMPLE_DATES,
    make_sample_catalog,
    sample_truth,
)

__all__ = [
    "BANDS",
    "BOA_ADD_OFFSET",
    "PARAMS_FILENAME",
    "SAMPLE_BBOX",
    "SAMPLE_DATES",
    "make_sample_catalog",
    "sample_truth",
]
