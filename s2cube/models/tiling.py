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
from typing import Any

import numpy as np

from s2cube.errors import InputError

__all__ = ["TileLayout", "blend_ramp", "predict_region", "to_device", "window_starts"]


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


def _symmetric_index(lo: int, n: int, size: int) -> np.ndarray:
    """Indices ``lo .. lo+size-1`` into an axis of length ``n``, mirrored past the end
    (numpy's ``mode="symmetric"``, for any overhang)."""
    i = np.arange(lo, lo + size) % (2 * n)
    return np.where(i >= n, 2 * n - 1 - i, i)


def predict_region(
    run: Callable[[Any], Any],
    slab: Any,
    *,
    slab_origin: tuple[int, int],
    image_shape: tuple[int, int],
    core: tuple[int, int, int, int],
    layout: TileLayout,
    n_out: int,
    device: Any = None,
    input_scale: float | None = None,
    reduce: str | None = None,
) -> np.ndarray:
    """Blend windowed predictions over the ``core`` of a slab.

    The slab goes to ``device`` once; windows are cut, batched, predicted and blended there
    (on a GPU nothing but the finished core comes back to the host).

    Parameters
    ----------
    run:
        Maps a torch batch ``(batch, band, window, window)`` float32 on ``device`` to
        ``(batch, n_out, window, window)`` probabilities (the model at its precision).
    slab:
        ``(time, band, h, w)`` numpy or torch: the data available to this task (chunk + halo).
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
    device:
        torch device (default CPU).
    input_scale:
        Multiply the slab by this on the device (integer DN travel at their own width; uint16
        travels as int16 bits and is widened there).
    reduce:
        ``"argmax"``: return the class index of the blended probabilities (uint8) computed on
        the device: one byte per pixel leaves it instead of ``4 * n_out``.

    Returns
    -------
    numpy.ndarray
        ``(time, n_out, y1 - y0, x1 - x0)`` float32, or ``(time, y1 - y0, x1 - x0)`` uint8
        with ``reduce="argmax"``.
    """
    import torch

    t_len, n_band, h, w = slab.shape
    oy, ox = slab_origin
    y0, y1, x0, x1 = core
    if not (oy <= y0 <= y1 <= oy + h and ox <= x0 <= x1 <= ox + w):
        raise InputError(f"core {core} is not inside the slab at {slab_origin} of size {(h, w)}")
    win, ov = layout.window, layout.overlap
    device = torch.device(device or "cpu")

    def starts(axis_len: int, lo: int, hi: int, c0: int, c1: int) -> list[int]:
        glob = window_starts(axis_len, win, ov)
        touching = glob[(glob < c1) & (glob + win > c0)]
        return sorted({_clamp(int(s), win, lo, hi) for s in touching})

    ys = starts(image_shape[0], oy, oy + h, y0, y1)
    xs = starts(image_shape[1], ox, ox + w, x0, x1)
    if t_len == 0 or y1 == y0 or x1 == x0:
        if reduce == "argmax":
            return np.zeros((t_len, y1 - y0, x1 - x0), dtype=np.uint8)
        return np.zeros((t_len, n_out, y1 - y0, x1 - x0), dtype=np.float32)

    data = to_device(slab, device, input_scale)
    ramp = torch.from_numpy(blend_ramp(win, ov)).to(device)
    acc = torch.zeros((t_len, n_out, y1 - y0, x1 - x0), dtype=torch.float32, device=device)
    wsum = torch.zeros((y1 - y0, x1 - x0), dtype=torch.float32, device=device)

    def placement(sy: int, sx: int) -> tuple[slice, slice, slice, slice] | None:
        """(core rows, core cols, window rows, window cols) a window contributes to."""
        ay0, ay1 = max(sy, y0), min(sy + win, y1)
        ax0, ax1 = max(sx, x0), min(sx + win, x1)
        if ay0 >= ay1 or ax0 >= ax1:
            return None
        return (
            slice(ay0 - y0, ay1 - y0),
            slice(ax0 - x0, ax1 - x0),
            slice(ay0 - sy, ay1 - sy),
            slice(ax0 - sx, ax1 - sx),
        )

    jobs: list[tuple[int, int, int, tuple[slice, slice, slice, slice]]] = []
    for sy in ys:
        for sx in xs:
            where = placement(sy, sx)
            if where is not None:
                cy, cx, wy, wx = where
                wsum[cy, cx] += ramp[wy, None] * ramp[None, wx]
                jobs.extend((t, sy, sx, where) for t in range(t_len))

    def cut(t: int, sy: int, sx: int) -> Any:
        ly, lx = sy - oy, sx - ox
        if ly + win <= h and lx + win <= w:
            return data[t, :, ly : ly + win, lx : lx + win]
        # window overhangs the available data (image smaller than the window): mirror, as
        # ukis-csmask does
        iy = torch.from_numpy(_symmetric_index(ly, h, win)).to(device)
        ix = torch.from_numpy(_symmetric_index(lx, w, win)).to(device)
        return data[t].index_select(1, iy).index_select(2, ix)

    for b in range(0, len(jobs), layout.batch_size):
        batch_jobs = jobs[b : b + layout.batch_size]
        batch = torch.stack([cut(t, sy, sx) for t, sy, sx, _ in batch_jobs])
        out = run(batch)
        if tuple(out.shape) != (len(batch_jobs), n_out, win, win):
            raise InputError(
                f"the model returned shape {tuple(out.shape)} for input {tuple(batch.shape)}; "
                f"expected {(len(batch_jobs), n_out, win, win)} (dense per-pixel output of "
                f"{n_out} channels)"
            )
        out = out.float()
        for k, (t, _, _, (cy, cx, wy, wx)) in enumerate(batch_jobs):
            acc[t, :, cy, cx] += out[k, :, wy, wx] * (ramp[wy, None] * ramp[None, wx])
    acc /= wsum
    if reduce == "argmax":
        return acc.argmax(dim=1).to(torch.uint8).cpu().numpy()
    return acc.cpu().numpy()


def to_device(slab: Any, device: Any, input_scale: float | None = None) -> Any:
    """``slab`` (numpy or torch, float or integer) as float32 on ``device``, times
    ``input_scale`` when given. Integers cross to the device at their own width (uint16, which
    torch supports only partly, as its int16 bits) and are widened and scaled there."""
    import torch

    if torch.is_tensor(slab):
        data = slab
    else:
        arr = np.ascontiguousarray(slab)
        if arr.dtype == np.uint16:
            bits = torch.from_numpy(arr.view(np.int16)).to(device, non_blocking=True)
            data = bits.to(torch.int32).bitwise_and_(0xFFFF)
        elif arr.dtype.kind in "iub":
            data = torch.from_numpy(arr).to(device, non_blocking=True)
        else:
            data = torch.from_numpy(np.asarray(arr, dtype=np.float32))
    data = data.to(device=device, dtype=torch.float32, non_blocking=True)
    if input_scale is not None:
        data = data * float(input_scale)
    return data
