"""A small learned inpainter: a partial-convolution U-net (Liu et al. 2018), plain torch.

It is trained here, on CPU, by hiding clear pixels of real scenes under real cloud masks of
other dates (:func:`train_inpainter`), and used by :func:`inpaint_learned` for holes that no
donor could fill.  Whether it is worth using is measured, not assumed: ``docs/fill.md`` and
``scripts/fill_report.py`` compare it with OpenCV Telea on held-out pixels, and
:func:`s2cube.fill.fill_holes` uses it only when asked.

Input scaling: reflectance ``dn / 10000 / SCALE`` per band; the network sees the masked bands
and the mask, and predicts all bands; observed pixels are always copied through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["PartialConv2d", "InpaintNet", "train_inpainter", "inpaint_learned", "SCALE"]

SCALE = 0.3
"""Reflectance mapped to 1.0 at the network's input and output."""


class PartialConv2d(nn.Module):
    """Convolution over valid pixels only, renormalised by their count; returns the new mask."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=True)
        self.ones: torch.Tensor
        self.register_buffer("ones", torch.ones(1, 1, k, k))
        self.stride, self.pad, self.k = stride, k // 2, k

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            count = F.conv2d(m, self.ones, stride=self.stride, padding=self.pad)
            new_m = (count > 0).to(x.dtype)
            ratio = (self.k * self.k) / count.clamp(min=1.0) * new_m
        raw = self.conv(x * m)
        assert self.conv.bias is not None  # built with bias=True
        b = self.conv.bias.view(1, -1, 1, 1)
        return ((raw - b) * ratio + b) * new_m, new_m


class InpaintNet(nn.Module):
    """Partial-conv U-net: 4 stride-2 encoder stages, nearest-upsampling decoder with skips."""

    def __init__(self, bands: int = 4, width: int = 32) -> None:
        super().__init__()
        w = [width, width * 2, width * 2, width * 2]
        self.enc = nn.ModuleList(
            [PartialConv2d(bands, w[0], 5, 2)]
            + [PartialConv2d(w[i], w[i + 1], 3, 2) for i in range(3)]
        )
        self.dec = nn.ModuleList(
            [PartialConv2d(w[3] + w[2], w[2], 3)]
            + [PartialConv2d(w[i + 1] + w[i], w[i], 3) for i in (1, 0)]
            + [PartialConv2d(w[0] + bands, bands, 3)]
        )

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        feats, masks = [(x, m)], []
        h, hm = x, m.expand_as(x[:, :1])
        for layer in self.enc:
            h, hm = layer(h, hm)
            h = F.leaky_relu(h, 0.2)
            feats.append((h, hm))
        masks = feats[::-1]
        for i, layer in enumerate(self.dec):
            skip, skip_m = masks[i + 1]
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            hm = F.interpolate(hm, size=skip.shape[-2:], mode="nearest")
            h, hm = layer(torch.cat([h, skip], 1), torch.maximum(hm, skip_m[:, :1]))
            if i < len(self.dec) - 1:
                h = F.leaky_relu(h, 0.2)
        return h


def _to_input(bands: np.ndarray) -> np.ndarray:
    return (np.asarray(bands, "float32") / 10000.0 / SCALE).clip(0, 4)


def train_inpainter(
    images: Sequence[np.ndarray],
    clear: Sequence[np.ndarray],
    hide_masks: Sequence[np.ndarray],
    *,
    steps: int = 400,
    patch: int = 96,
    batch: int = 8,
    width: int = 24,
    lr: float = 2e-3,
    seed: int = 0,
) -> InpaintNet:
    """Train on patches: clear pixels of ``images`` hidden under random ``hide_masks``.

    Parameters
    ----------
    images
        ``(band, y, x)`` uint16 scenes.
    clear
        ``(y, x)`` bool per scene: pixels that are truth (clear in that scene).
    hide_masks
        ``(y, x)`` bool real cloud masks (of other dates) to hide pixels with.
    steps, patch, batch, width, lr, seed
        Training schedule; seeded (same inputs, same weights on one machine).

    The loss is the L1 error on the hidden clear pixels (plus 0.1 × on the visible ones).
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    xs = [_to_input(im) for im in images]
    net = InpaintNet(xs[0].shape[0], width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    net.train()
    for _ in range(steps):
        xb: list[np.ndarray] = []
        mb: list[np.ndarray] = []
        tb: list[np.ndarray] = []
        wb: list[np.ndarray] = []
        while len(xb) < batch:
            i = int(rng.integers(len(xs)))
            _, ny, nx = xs[i].shape
            y0, x0 = int(rng.integers(ny - patch)), int(rng.integers(nx - patch))
            c = clear[i][y0 : y0 + patch, x0 : x0 + patch]
            if c.mean() < 0.9:
                continue
            hm = hide_masks[int(rng.integers(len(hide_masks)))]
            hy, hx = int(rng.integers(hm.shape[0] - patch)), int(rng.integers(hm.shape[1] - patch))
            hide = hm[hy : hy + patch, hx : hx + patch]
            if not 0.05 < hide.mean() < 0.7:
                continue
            seen = c & ~hide
            xb.append(xs[i][:, y0 : y0 + patch, x0 : x0 + patch])
            mb.append(seen[None])
            tb.append(c[None])
            wb.append((c & hide)[None])
        x = torch.from_numpy(np.stack(xb))
        m = torch.from_numpy(np.stack(mb).astype("float32"))
        ok = torch.from_numpy(np.stack(tb).astype("float32"))
        hid = torch.from_numpy(np.stack(wb).astype("float32"))
        pred = net(x * m, m)
        err = (pred - x).abs()
        loss = (err * hid).sum() / hid.sum().clamp(min=1) / x.shape[1]
        loss = loss + 0.1 * (err * m * ok).sum() / (m * ok).sum().clamp(min=1) / x.shape[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def inpaint_learned(net: InpaintNet, bands: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill ``hole`` of ``(band, y, x)`` uint16 with ``net``; other pixels unchanged, fills ≥ 1."""
    bands = np.asarray(bands)
    hole = np.asarray(hole, bool)
    seen = ~hole & (bands > 0).all(axis=0)
    x = torch.from_numpy(_to_input(bands)[None])
    m = torch.from_numpy(seen[None, None].astype("float32"))
    with torch.no_grad():
        pred = net(x * m, m)[0].numpy()
    dn = np.clip(np.rint(pred * SCALE * 10000.0), 1, 65535).astype(bands.dtype)
    return np.where(hole[None], dn, bands)
