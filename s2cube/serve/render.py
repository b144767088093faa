"""Web encoding of rendered tiles: (h, w, 4) uint8 RGBA → PNG/JPEG/WebP bytes.

The colour itself (tone curve, TCI rule, date colours) is core rendering and lives in
:mod:`s2cube.render`; this module owns only what an HTTP response needs: the offered formats,
their media types and the encoder (Pillow).
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["FORMATS", "encode"]

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}
"""Tile formats offered by the server: file extension → media type."""


def encode(rgba: np.ndarray, fmt: str, *, quality: int = 85) -> bytes:
    """Encode an (h, w, 4) uint8 image as ``fmt`` (a key of :data:`FORMATS`).

    PNG and WebP keep the alpha (transparent nodata); JPEG has none, so nodata becomes black.

    Parameters
    ----------
    rgba : numpy.ndarray
        ``(h, w, 4)`` uint8 image, e.g. from :func:`s2cube.render.stack_rgba`.
    fmt : str
        ``"png"``, ``"jpeg"`` (or ``"jpg"``) or ``"webp"``, case-insensitive.
    quality : int, default 85
        JPEG/WebP quality (1-100); PNG is lossless.

    Returns
    -------
    bytes
        The encoded image.

    Examples
    --------
    >>> encode(np.zeros((4, 4, 4), "uint8"), "png")[:4]
    b'\\x89PNG'
    """
    from PIL import Image

    fmt = fmt.lower()
    buf = io.BytesIO()
    if fmt == "png":
        # tiles are encoded per request: the fastest zlib level, size matters less
        Image.fromarray(rgba, "RGBA").save(buf, "PNG", compress_level=1)
    elif fmt in ("jpeg", "jpg"):
        Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB").save(
            buf, "JPEG", quality=quality
        )
    elif fmt == "webp":
        Image.fromarray(rgba, "RGBA").save(buf, "WEBP", quality=quality, method=0)
    else:
        raise ValueError(f"unknown image format {fmt!r}; use one of {sorted(FORMATS)}")
    return buf.getvalue()
