"""Sliding-window inference kernels: numpy/torch in, numpy out; no dask, no xarray.

The window layout is global: along an axis of length ``n`` windows start at ``0, s, 2s, ...``
(``s = window - overlap``) plus one window flush with the far edge, and each window's output
is blended with a fixed ramp. A pixel's value therefore depends only on the image, never on
which chunk computes it: a chunk that sees ``window - 1`` pixels of halo on every side holds
every window that covers its pixels and reproduces the single-pass result exactly. With a
smaller halo a window is shifted inside the available data (approximate; the halo then only
has to cover the network's effective receptive field).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from s2cube.errors import InputError

__all__ = ["TileLayout", "blend_ramp", "predict_region", "window_starts"]


def window_starts(n: int, window: int, overlap: int) -> np.ndarray:
    """Global window starts along an axis of length ``n``.

    Examples
    --------
    >>> window_starts(10, 4, 1).tolist()
    [0, 3, 6]
    >>> window_starts(11, 4, 1).tolist()
    [0, 3, 6, 7]
    >>> window_starts(3, 4, 1).tolist()
    [0]
    """
    if n <= window:
        return np.zeros(1, dtype=np.int64)
    stride = window - overlap
    starts = np.arange(0, n - window + 1, stride, dtype=np.int64)
    if starts[-1] != n - window:
        starts = np.append(starts, n - window)
    return starts


def blend_ramp(window: int, overlap: int) -> np.ndarray:
    """1-D blending weights: a linear ramp over ``overlap`` pixels at both ends, 1 inside.

    Strictly positive, so a pixel seen by one window only keeps that window's value.

    Examples
    --------
    >>> blend_ramp(6, 2).tolist()
    [0.25, 0.75, 1.0, 1.0, 0.75, 0.25]
    """
    i = np.arange(window, dtype=np.float64)
    if overlap <= 0:
        return np.ones(window, dtype=np.float32)
    ramp = np.minimum(1.0, np.minimum(i + 0.5, window - i - 0.5) / overlap)
    return ramp.astype(np.float32)


@dataclass(frozen=True)
class TileLayout:
    """Tiling parameters, validated once at graph-build time."""

    window: int = 256
    overlap: int = 32
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.window < 1:
            raise InputError(f"window={self.window}; expected a positive tile size in pixels")
        if not 0 <= self.overlap < self.window:
            raise InputError(
                f"overlap={self.overlap} with window={self.window}; expected 0 <= overlap < window"
            )
        if self.batch_size < 1:
            raise InputError(f"batch_size={self.batch_size}; expected >= 1")


def _clamp(start: int, window: int, lo: int, hi: int) -> int:
    """Shift a window into the available range [lo, hi) (or to lo if it cannot fit)."""
    if hi - lo <= window:
        return lo
    return min(max(start, lo), hi - window)


def predict_region(
    run: Callable[[np.ndarray], np.ndarray],
    slab: np.ndarray,
    *,
    slab_origin: tuple[int, int],
    image_shape: tuple[int, int],
    core: tuple[int, int, int, int],
    layout: TileLayout,
    n_out: int,
) -> np.ndarray:
    """Blend windowed predictions over the ``core`` of a slab.

    Parameters
    ----------
    run:
        Maps a batch ``(batch, band, window, window)`` float32 to ``(batch, n_out, window,
        window)`` float32 (the model, on its device, at its precision).
    slab:
        ``(time, band, h, w)``: the data available to this task (chunk plus halo).
    slab_origin:
        Absolute ``(y, x)`` of ``slab[..., 0, 0]`` in the whole image.
    image_shape:
        ``(height, width)`` of the whole image (fixes the global window layout).
    core:
        Absolute ``(y0, y1, x0, x1)`` to predict; must lie inside the slab.
    layout:
        Window, overlap and batch size.
    n_out:
        Output channels.

    Returns
    -------
    numpy.ndarray
        ``(time, n_out, y1 - y0, x1 - x0)`` float32.
    """
    t_len, n_band, h, w = slab.shape
    oy, ox = slab_origin
    y0, y1, x0, x1 = core
    if not (oy <= y0 <= y1 <= oy + h and ox <= x0 <= x1 <= ox + w):
        raise InputError(f"core {core} is not inside the slab at {slab_origin} of size {(h, w)}")
    win, ov = layout.window, layout.overlap
    ramp = blend_ramp(win, ov)

    def starts(axis_len: int, lo: int, hi: int, c0: int, c1: int) -> list[int]:
        glob = window_starts(axis_len, win, ov)
        touching = glob[(glob < c1) & (glob + win > c0)]
        return sorted({_clamp(int(s), win, lo, hi) for s in touching})

    ys = starts(image_shape[0], oy, oy + h, y0, y1)
    xs = starts(image_shape[1], ox, ox + w, x0, x1)
    acc = np.zeros((t_len, n_out, y1 - y0, x1 - x0), dtype=np.float32)
    wsum = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    jobs = [(t, sy, sx) for t in range(t_len) for sy in ys for sx in xs]
    if t_len == 0 or not jobs or y1 == y0 or x1 == x0:
        return acc

    for sy in ys:
        for sx in xs:
            ay0, ay1 = max(sy, y0), min(sy + win, y1)
            ax0, ax1 = max(sx, x0), min(sx + win, x1)
            if ay0 < ay1 and ax0 < ax1:
                wsum[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] += np.outer(
                    ramp[ay0 - sy : ay1 - sy], ramp[ax0 - sx : ax1 - sx]
                )

    for b in range(0, len(jobs), layout.batch_size):
        batch_jobs = jobs[b : b + layout.batch_size]
        batch = np.empty((len(batch_jobs), n_band, win, win), dtype=np.float32)
        for k, (t, sy, sx) in enumerate(batch_jobs):
            tile = slab[t, :, sy - oy : sy - oy + win, sx - ox : sx - ox + win]
            ph, pw = win - tile.shape[-2], win - tile.shape[-1]
            if ph or pw:  # image (or slab) smaller than the window: mirror, as ukis-csmask does
                tile = np.pad(tile, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
            batch[k] = tile
        out = np.asarray(run(batch), dtype=np.float32)
        if out.shape != (len(batch_jobs), n_out, win, win):
            raise InputError(
                f"the model returned shape {out.shape} for input {batch.shape}; expected "
                f"{(len(batch_jobs), n_out, win, win)} (a dense per-pixel output of {n_out} channels)"
            )
        for k, (t, sy, sx) in enumerate(batch_jobs):
            ay0, ay1 = max(sy, y0), min(sy + win, y1)
            ax0, ax1 = max(sx, x0), min(sx + win, x1)
            if ay0 >= ay1 or ax0 >= ax1:
                continue
            weight = np.outer(ramp[ay0 - sy : ay1 - sy], ramp[ax0 - sx : ax1 - sx])
            acc[t, :, ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] += (
                out[k, :, ay0 - sy : ay1 - sy, ax0 - sx : ax1 - sx] * weight
            )
    acc /= wsum
    return acc
