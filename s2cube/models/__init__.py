"""Deep-learning inference and training: networks, weights, the tiled dask engine, masks.

Public API: :func:`predict` (any torch model over numpy/dask/xarray images, chunking-invariant),
:func:`load_model` / :func:`save_model` (registry names such as ``"csmask-l2a-4b"`` or paths),
:class:`ModelCard`, :func:`cloud_mask` (s2cube mask codes from a learned model). Training lives
in :mod:`s2cube.models.train`, the ``s2cube train`` command in :mod:`s2cube.models.cli`.

Layers: kernels (numpy/torch) in :mod:`~s2cube.models.tiling` (windows and blending),
:mod:`~s2cube.models.patches` (training patches), :mod:`~s2cube.models.fitting` (the training
loop) and :mod:`~s2cube.models.nets`; the model on a worker in :mod:`~s2cube.models.runtime`;
wrappers in :mod:`~s2cube.models.chunked` (dask), :mod:`~s2cube.models.engine` (numpy/xarray)
and :mod:`~s2cube.models.train` (xarray cubes); weights and cards in
:mod:`~s2cube.models.registry` and :mod:`~s2cube.models.card`.

torch is an optional dependency (extra ``ml``); it is imported when a function needs it.
"""

from __future__ import annotations

from s2cube.models.card import ModelCard
from s2cube.models.engine import predict
from s2cube.models.masks import MASK_CODES, cloud_mask, combine_with_scl
from s2cube.models.registry import REGISTRY, LoadedModel, load_model, save_model
from s2cube.models.runtime import ModelPlugin, register_model, resolve_device

__all__ = [
    "MASK_CODES",
    "REGISTRY",
    "LoadedModel",
    "ModelCard",
    "ModelPlugin",
    "cloud_mask",
    "combine_with_scl",
    "load_model",
    "predict",
    "register_model",
    "resolve_device",
    "save_model",
]
