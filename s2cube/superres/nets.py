"""The super-resolution networks in plain torch: an SRResNet generator and a patch discriminator.

:class:`Generator` follows SRResNet (Ledig et al., 2017, "Photo-realistic single image
super-resolution using a generative adversarial network"): a 9×9 head convolution with PReLU,
``blocks`` residual blocks, a 3×3 convolution closed by a global skip from the head, ``log2(scale)``
sub-pixel (pixel-shuffle ×2) stages and a 9×9 tail convolution.  Two deliberate changes:

* **no batch normalisation** in the residual blocks (conv-PReLU-conv, residual scaled by 0.1), as
  in EDSR (Lim et al., 2017): BN removes the absolute radiometry SR must keep (reflectance is a
  physical quantity, not a texture), makes the output depend on batch statistics when training
  on a few patches, and costs memory; residual scaling keeps a deep BN-free stack stable;
* **an input skip**: the network predicts a correction to the bicubic upsampling of its input
  (as in VDSR, Kim et al., 2016), so an untrained or briefly trained generator starts at the
  bicubic baseline instead of at noise.  The bicubic kernel reaches 2 input pixels, well inside
  the convolutions' receptive field, so it does not widen the context tiled inference needs.

:class:`Discriminator` is fully convolutional (PatchGAN-style): it scores overlapping patches,
so it takes any input size and its logits map has one score per patch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Discriminator", "Generator", "ResidualBlock"]


class ResidualBlock(nn.Module):
    """conv3×3 → PReLU → conv3×3, added back to the input scaled by ``res_scale``."""

    def __init__(self, features: int, res_scale: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1),
            nn.PReLU(features),
            nn.Conv2d(features, features, 3, padding=1),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class Generator(nn.Module):
    """SRResNet generator: ``(N, bands, h, w)`` normalised reflectance → ``(N, bands, h·s, w·s)``.

    Parameters
    ----------
    scale
        Upscaling factor, a power of two (2, 4, 8): one pixel-shuffle ×2 stage per factor 2.
    bands
        Input and output bands (the same bands, same order; 4 = red, green, blue, nir).
    features
        Channels of the feature maps (64 in SRResNet).
    blocks
        Residual blocks (16 in SRResNet).

    Examples
    --------
    >>> gen = Generator(scale=4, bands=4, features=8, blocks=2)
    >>> gen(torch.zeros(1, 4, 6, 5)).shape
    torch.Size([1, 4, 24, 20])
    """

    def __init__(
        self, scale: int = 4, bands: int = 4, features: int = 64, blocks: int = 16
    ) -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"Generator scale={scale}; expected a power of two >= 2 (2, 4, 8)")
        if bands < 1 or features < 1 or blocks < 0:
            raise ValueError(
                f"Generator bands={bands}, features={features}, blocks={blocks}; expected "
                "bands >= 1, features >= 1, blocks >= 0"
            )
        self.scale = int(scale)
        self.bands = int(bands)
        self.features = int(features)
        self.blocks = int(blocks)
        self.head = nn.Sequential(nn.Conv2d(bands, features, 9, padding=4), nn.PReLU(features))
        self.body = nn.Sequential(
            *[ResidualBlock(features) for _ in range(blocks)],
            nn.Conv2d(features, features, 3, padding=1),
        )
        ups: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            ups += [
                nn.Conv2d(features, features * 4, 3, padding=1),
                nn.PixelShuffle(2),
                nn.PReLU(features),
            ]
        self.upsample = nn.Sequential(*ups)
        self.tail = nn.Conv2d(features, bands, 9, padding=4)
        # start as the bicubic upsampling: the correction branch's last layer begins near zero
        nn.init.normal_(self.tail.weight, std=1e-3)
        nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.head(x)
        feat = feat + self.body(feat)
        correction = self.tail(self.upsample(feat))
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + correction


class Discriminator(nn.Module):
    """Patch discriminator: ``(N, bands, H, W)`` → ``(N, 1, H/2^k, W/2^k)`` real/fake logits.

    SRGAN's discriminator without its dense head (conv blocks of stride 1 and 2, LeakyReLU 0.2),
    so it is fully convolutional and judges every receptive-field patch; spectral normalisation
    on each convolution instead of batch normalisation keeps the GAN phase stable on small
    batches.

    Parameters
    ----------
    bands
        Input bands.
    features
        Channels of the first block (doubled at each stride-2 block, at most ``8 × features``).
    downsamplings
        Stride-2 blocks (each halves the logits map).

    Examples
    --------
    >>> disc = Discriminator(bands=4, features=8, downsamplings=2)
    >>> disc(torch.zeros(2, 4, 32, 32)).shape
    torch.Size([2, 1, 8, 8])
    """

    def __init__(self, bands: int = 4, features: int = 64, downsamplings: int = 3) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        layers: list[nn.Module] = [nn.Conv2d(bands, features, 3, padding=1), nn.LeakyReLU(0.2)]
        ch = features
        for _ in range(downsamplings):
            out = min(ch * 2, features * 8)
            layers += [
                sn(nn.Conv2d(ch, out, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.2),
                sn(nn.Conv2d(out, out, 3, padding=1)),
                nn.LeakyReLU(0.2),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.bands = int(bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out
