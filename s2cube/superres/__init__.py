"""Super-resolution of Sentinel-2 reflectance (issue 13): an SRGAN trained by the Wald protocol.

The model side: :mod:`~s2cube.superres.nets` (the SRResNet generator and the patch
discriminator, plain torch), :mod:`~s2cube.superres.model` (normalisation, the shipped
weights and their model cards, the context a tiled run needs),
:mod:`~s2cube.superres.degrade` (the sensor blur + decimation of the Wald protocol),
:mod:`~s2cube.superres.metrics` (PSNR, SSIM, SAM and the opensr-test-style consistency,
improvement, omission and hallucination scores) and :mod:`~s2cube.superres.train`
(``s2cube train sr``).  Inference over images, dask arrays and stores:
:mod:`~s2cube.superres.infer`, :mod:`~s2cube.superres.wrapper`, :mod:`~s2cube.superres.run`.

What the shipped model is, what it was trained on and what its metrics prove:
``docs/superres.md``.  torch is an optional dependency (extra ``ml``); nothing here imports
it until a function needs it.
"""

from __future__ import annotations
