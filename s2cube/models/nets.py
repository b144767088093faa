"""Networks in plain torch (torchvision/timm/smp do not import on CPU-only torch here).

* :class:`VGG16UNet`: the land-cover U-net of Tasar et al.: the 13 conv layers of VGG16 as the
  encoder, two centre convolutions, and a decoder that mirrors the encoder (3-3-3-2-2 convs)
  with skip connections.
* :class:`CloudUNet`: a compact U-net for cloud/shadow segmentation (trains on 2 CPU cores).
* :class:`HazeNet`: the 3-conv-layer haze classifier; classifies patches and, being fully
  convolutional, also gives a dense haze map.
* :class:`InferenceModel`: reflectance in, probabilities out (normalisation and activation
  from the model card around any network); this is what the inference engine runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ARCHITECTURES", "CloudUNet", "HazeNet", "InferenceModel", "VGG16UNet", "build"]


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def _stack(cin: int, cout: int, n: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += _conv_bn_relu(cin if i == 0 else cout, cout)
    return nn.Sequential(*layers)


class VGG16UNet(nn.Module):
    """U-net with a VGG16 encoder (Tasar et al.).

    Encoder: VGG16's five blocks of 2, 2, 3, 3, 3 conv layers (13 in all), each followed by
    2×2 max pooling. Centre: two 3×3 conv layers. Decoder: five stages of 2× upsampling,
    concatenation with the matching encoder block, and 3, 3, 3, 2, 2 conv layers. Input
    height and width must be multiples of 32 (:attr:`size_multiple`).

    Parameters
    ----------
    in_channels, n_classes:
        Input bands and output classes.
    width:
        Channels of the first block (64 in VGG16; smaller for tests and CPUs).

    Examples
    --------
    >>> net = VGG16UNet(4, 6, width=4)
    >>> net(torch.zeros(1, 4, 64, 64)).shape
    torch.Size([1, 6, 64, 64])
    """

    size_multiple = 32
    encoder_layers = (2, 2, 3, 3, 3)

    def __init__(self, in_channels: int, n_classes: int, width: int = 64) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        self.out_channels = n_classes
        self.encoder = nn.ModuleList()
        cin = in_channels
        for c, n in zip(chans, self.encoder_layers, strict=True):
            self.encoder.append(_stack(cin, c, n))
            cin = c
        self.centre = _stack(chans[-1], chans[-1], 2)
        self.decoder = nn.ModuleList()
        cin = chans[-1]
        for c, n in zip(reversed(chans), reversed(self.encoder_layers), strict=True):
            self.decoder.append(_stack(cin + c, c, n))
            cin = c
        self.head = nn.Conv2d(chans[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.centre(x)
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


class CloudUNet(nn.Module):
    """A compact U-net (two conv layers per level) for cloud and shadow segmentation.

    Examples
    --------
    >>> net = CloudUNet(4, 3, width=8, depth=2)
    >>> net(torch.zeros(2, 4, 32, 32)).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(self, in_channels: int, n_classes: int, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        self.size_multiple = 2**depth
        self.out_channels = n_classes
        chans = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans[:-1]:
            self.down.append(_stack(cin, c, 2))
            cin = c
        self.bottom = _stack(chans[-2], chans[-1], 2)
        self.up = nn.ModuleList()
        self.reduce = nn.ModuleList()
        for c_skip, c_in in zip(reversed(chans[:-1]), reversed(chans[1:]), strict=True):
            self.reduce.append(nn.Conv2d(c_in, c_skip, 1))
            self.up.append(_stack(2 * c_skip, c_skip, 2))
        self.head = nn.Conv2d(width, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for reduce, block, skip in zip(self.reduce, self.up, reversed(skips), strict=True):
            x = reduce(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


class HazeNet(nn.Module):
    """The 3-conv-layer haze classifier.

    Three 3×3 conv + ReLU layers (the first two followed by 2×2 max pooling) and a 1×1
    classifier. :meth:`classify` averages the logits over a patch (training on patch labels);
    :meth:`forward` returns a dense per-pixel map upsampled to the input size, so the same
    weights run through the tiled inference engine.

    Examples
    --------
    >>> net = HazeNet(4)
    >>> net.classify(torch.zeros(3, 4, 32, 32)).shape, net(torch.zeros(1, 4, 32, 32)).shape
    (torch.Size([3, 2]), torch.Size([1, 2, 32, 32]))
    """

    size_multiple = 4

    def __init__(self, in_channels: int, n_classes: int = 2, width: int = 16) -> None:
        super().__init__()
        self.out_channels = n_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(2 * width, n_classes, 1)

    def logits_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits ``(batch, class)``."""
        return self.logits_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            self.logits_map(x), size=x.shape[-2:], mode="bilinear", align_corners=False
        )


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "vgg16-unet": VGG16UNet,
    "cloud-unet": CloudUNet,
    "haze-net": HazeNet,
}


def build(architecture: str, **kwargs: Any) -> nn.Module:
    """Instantiate a network by its architecture name."""
    from s2cube.errors import InputError

    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise InputError(
            f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}"
        ) from None
    return cls(**kwargs)


class InferenceModel(nn.Module):
    """Reflectance (0–1) in, probabilities out: normalisation → network → activation.

    Parameters
    ----------
    net:
        Any module mapping ``(batch, band, y, x)`` to ``(batch, channel, y, x)`` logits.
    mean, std:
        Per-band standardisation (``None`` for none).
    output:
        ``"softmax"``, ``"sigmoid"`` or ``"identity"``.
    """

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        output: str = "softmax",
    ) -> None:
        super().__init__()
        self.net = net
        self.output = output
        self.size_multiple = getattr(net, "size_multiple", 1)
        if mean is not None and std is not None:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        else:
            self.mean = None
            self.std = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            x = (x - self.mean) / self.std
        logits = self.net(x).float()
        if self.output == "softmax":
            return torch.softmax(logits, dim=1)
        if self.output == "sigmoid":
            return torch.sigmoid(logits)
        return logits
