"""Dynamic World (Brown et al. 2022) in plain torch: the published forward model and its weights.

The network is rebuilt from the operations of Google's TensorFlow SavedModel
(``google/dynamicworld`` at ``0dd288f``, ``model/forward``; Apache-2.0) and loads its weights,
converted once by ``scripts/convert_dynamicworld.py`` into ``weights/dynamicworld.npz`` (float32,
shipped in the wheel with the upstream ``LICENSE`` and ``NOTICE``). A float32 port reproduces the
TensorFlow logits up to round-off (``tests/models/test_dynamicworld.py``).

Architecture (TF layer names in brackets):

* stem: 3×3 conv 9→64 (SAME), batch norm, mish [``conv2d``], at full resolution;
* ``ScaleAndTranslate`` to ``(H // 2, W // 2)``, triangle kernel, antialias: a normalised
  4-tap low-pass per axis (:func:`scale_translate_matrix`);
* three residual blocks of three "separable" units (1×1 conv → BN → mish → 3×3 depthwise →
  BN → mish) plus a 1×1 conv → BN → mish shortcut: 64→96, 96→144, and after concatenating a
  48-channel side unit of the stem [``conv2d_1``], 192→144;
* ``ResizeBilinear(half_pixel_centers=True)`` back to ``(H, W)`` (:func:`bilinear_matrix`),
  L2 normalisation over channels (epsilon 1e-12), 1×1 conv 144→9 → logits.

Every batch norm has epsilon 1e-3; mish is ``x * tanh(softplus(x))``. The input is 9 Sentinel-2
**L1C** (top-of-atmosphere) bands as DN, normalised by :func:`normalise_dn`.

:class:`DynamicWorldNet` takes normalised input (NCHW) and returns logits;
:class:`DynamicWorld` takes reflectance (0–1, what :func:`s2cube.models.predict` feeds) and
normalises first. :func:`load_dynamicworld` returns the :class:`~s2cube.models.LoadedModel`
that ``load_model("dynamicworld")`` gives.
"""

from __future__ import annotations

import math
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DW_BANDS",
    "DW_CLASSES",
    "DW_NORM",
    "DynamicWorld",
    "DynamicWorldNet",
    "bilinear_matrix",
    "dynamicworld_card",
    "load_dynamicworld",
    "normalise_dn",
    "scale_translate_matrix",
    "weights_path",
]

#: input bands (Earth Search v1 names) = Sentinel-2 B2, B3, B4, B5, B6, B7, B8, B11, B12
DW_BANDS = (
    "blue",
    "green",
    "red",
    "rededge1",
    "rededge2",
    "rededge3",
    "nir",
    "swir16",
    "swir22",
)

#: output classes, in the order of the logits
DW_CLASSES = (
    "water",
    "trees",
    "grass",
    "flooded_vegetation",
    "crops",
    "shrub_and_scrub",
    "built",
    "bare",
    "snow_and_ice",
)

#: per-band (p30, p70) of the published normalisation, in DW_BANDS order
DW_NORM = (
    (1.7417268007636313, 2.023298706048351),
    (1.7261204997060209, 2.038905204308012),
    (1.6798346251414997, 2.179592821212937),
    (1.7734969472909623, 2.2890068333026603),
    (2.289154079164943, 2.6171674549378166),
    (2.382939712192371, 2.773418590375327),
    (2.3828939530384052, 2.7578332604178284),
    (2.1952484264967844, 2.789092484314204),
    (1.554812948247501, 2.4140534947492487),
)

_TRAINING = (
    "Dynamic World v1 (Brown et al. 2022, Scientific Data 9:251, doi 10.1038/s41597-022-01307-4): "
    "per the paper, about 24,000 hand-annotated 510x510 px Sentinel-2 L1C tiles sampled across the "
    "14 RESOLVE biomes on all continents, 9 classes (not verified here); forward model from "
    "google/dynamicworld 0dd288f model/forward (TensorFlow), converted to torch by s2cube"
)


_NORM_CACHE: dict[tuple[str, Any], tuple[torch.Tensor, torch.Tensor]] = {}


def _norm_tensors(device: Any, dtype: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The (p30, p70) tensors on ``device``, made once: a host-to-device copy inside a forward
    pass would break CUDA graph capture (the first H200 run fell back to eager on it)."""
    key = (str(device), dtype)
    if key not in _NORM_CACHE:
        p30 = np.array([p for p, _ in DW_NORM], dtype=np.float32)[:, None, None]
        p70 = np.array([q for _, q in DW_NORM], dtype=np.float32)[:, None, None]
        _NORM_CACHE[key] = (
            torch.from_numpy(p30).to(device, dtype),
            torch.from_numpy(p70).to(device, dtype),
        )
    return _NORM_CACHE[key]


def normalise_dn(dn: Any) -> Any:
    """The published input normalisation: L1C DN (reflectance × 10000) → network input.

    Per band ``x = log(dn * 0.005 + 1); x = (x - p30) / p70; x = exp(x * 5 - 1); x / (x + 1)``.
    Works on numpy ``(..., band, y, x)`` arrays and torch ``(batch, band, y, x)`` tensors (bands
    in :data:`DW_BANDS` order on axis -3).

    Examples
    --------
    >>> import numpy as np
    >>> x = normalise_dn(np.full((9, 1, 1), 1000.0))
    >>> x.shape, bool(((x > 0) & (x < 1)).all())
    ((9, 1, 1), True)
    """
    p30 = np.array([p for p, _ in DW_NORM], dtype=np.float32)[:, None, None]
    p70 = np.array([q for _, q in DW_NORM], dtype=np.float32)[:, None, None]
    if isinstance(dn, torch.Tensor):
        t30, t70 = _norm_tensors(dn.device, dn.dtype)
        x = torch.log(dn * 0.005 + 1.0)
        x = torch.exp((x - t30) / t70 * 5.0 - 1.0)
        return x / (x + 1.0)
    dn = np.asarray(dn, dtype=np.float32)
    x = np.log(dn * np.float32(0.005) + np.float32(1.0))
    x = np.exp((x - p30) / p70 * np.float32(5.0) - np.float32(1.0))
    return (x / (x + np.float32(1.0))).astype(np.float32)


# -- TensorFlow's resize semantics as matrices ---------------------------------------------------
def scale_translate_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of TF ``ScaleAndTranslate`` (triangle kernel, antialias=True,
    translation 0, scale ``n_out / n_in``) along one axis.

    Follows ``tensorflow/core/kernels/image/scale_and_translate_op.cc``: output pixel ``i``
    samples at ``(i + 0.5) / scale``; when downsampling the kernel is widened by ``1 / scale``;
    taps are clamped to the image and the weights renormalised to sum to 1.

    Examples
    --------
    >>> (scale_translate_matrix(4, 2) * 7).round(3).tolist()  # taps 1, 3, 3, (1) over 7
    [[3.0, 3.0, 1.0, 0.0], [0.0, 1.0, 3.0, 3.0]]
    """
    scale = np.float32(n_out) / np.float32(n_in)
    inv_scale = 1.0 / float(scale)
    kernel_scale = max(inv_scale, 1.0)
    radius = 1.0 * kernel_scale
    w = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        sample = (i + 0.5) * inv_scale
        if sample < 0 or sample > n_in:
            continue
        start = max(0, min(n_in - 1, math.ceil(sample - radius - 0.5)))
        end = max(0, min(n_in - 1, math.floor(sample + radius - 0.5))) + 1
        src = np.arange(start, end)
        weight = np.maximum(0.0, 1.0 - np.abs((src + 0.5 - sample) / kernel_scale))
        total = weight.sum()
        if total > 0:
            w[i, start:end] = weight / total
    return w.astype(np.float32)


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of TF ``ResizeBilinear(align_corners=False,
    half_pixel_centers=True)`` along one axis.

    Output pixel ``i`` samples at ``(i + 0.5) * n_in / n_out - 0.5``; ``lower = max(floor, 0)``,
    ``upper = min(ceil, n_in - 1)``, ``lerp = sample - floor`` (as ``compute_interpolation_weights``
    with ``HalfPixelScaler`` in ``resize_bilinear_op.cc``).

    Examples
    --------
    >>> bilinear_matrix(2, 4).tolist()
    [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    """
    scale = float(np.float32(n_in) / np.float32(n_out))
    w = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        sample = (i + 0.5) * scale - 0.5
        floor = math.floor(sample)
        lower = max(floor, 0)
        upper = min(math.ceil(sample), n_in - 1)
        lerp = sample - floor
        w[i, lower] += 1.0 - lerp
        w[i, upper] += lerp
    return w.astype(np.float32)


class _Resize(nn.Module):
    """Separable resize ``out = Wy @ x @ Wx^T`` with TF's weights; matrices cached per shape."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._cache: dict[tuple[int, int, str], torch.Tensor] = {}

    def _matrix(self, n_in: int, n_out: int, ref: torch.Tensor) -> torch.Tensor:
        key = (n_in, n_out, str(ref.device))
        m = self._cache.get(key)
        if m is None:
            make = scale_translate_matrix if self.kind == "scale_translate" else bilinear_matrix
            m = torch.from_numpy(make(n_in, n_out)).to(ref.device)
            self._cache[key] = m
        return m

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = x.shape[-2:]
        wy = self._matrix(h, size[0], x)
        wx = self._matrix(w, size[1], x)
        # under autocast matmul runs in the autocast dtype; keep both operands the same
        kind = x.device.type
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype
        y = torch.matmul(wy.to(dtype), x.to(dtype))
        return torch.matmul(y, wx.to(dtype).t())


def _mish(x: torch.Tensor) -> torch.Tensor:
    return F.mish(x)  # x * tanh(softplus(x)), one fused kernel


class _ConvBN(nn.Module):
    """Conv (with bias) → batch norm (eps 1e-3) → mish; ``groups == cin`` for depthwise."""

    def __init__(self, cin: int, cout: int, k: int, depthwise: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, groups=cin if depthwise else 1)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mish(self.bn(self.conv(x)))


class _Sep(nn.Sequential):
    """1×1 conv unit then 3×3 depthwise unit (the "Sep Conv" of the DW figure)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(_ConvBN(cin, cout, 1), _ConvBN(cout, cout, 3, depthwise=True))


class _Block(nn.Module):
    """Three separable units plus a 1×1 shortcut unit, added."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_Sep(cin, cout), _Sep(cout, cout), _Sep(cout, cout))
        self.skip = _ConvBN(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class DynamicWorldNet(nn.Module):
    """The Dynamic World forward network: normalised 9-band input → 9 logits per pixel.

    Any height and width work (the second scale is ``H // 2``, like TF's integer cast);
    :attr:`size_multiple` is 2 so that tiled windows keep the same sub-sampling phase.

    Examples
    --------
    >>> net = DynamicWorldNet().eval()
    >>> net(torch.zeros(1, 9, 20, 22)).shape
    torch.Size([1, 9, 20, 22])
    """

    size_multiple = 2
    out_channels = 9

    def __init__(self) -> None:
        super().__init__()
        self.stem = _ConvBN(9, 64, 3)
        self.down = _Resize("scale_translate")
        self.block1 = _Block(64, 96)
        self.block2 = _Block(96, 144)
        self.side = _Sep(64, 48)
        self.block3 = _Block(192, 144)
        self.up = _Resize("bilinear")
        self.head = nn.Conv2d(144, 9, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self.stem(x)
        s = self.down(x, (h // 2, w // 2))
        a = self.block2(self.block1(s))
        y = self.block3(torch.cat([a, self.side(s)], dim=1))
        y = self.up(y, (h, w)).float()
        y = y * torch.rsqrt(torch.clamp((y * y).sum(dim=1, keepdim=True), min=1e-12))
        return self.head(y)


class DynamicWorld(nn.Module):
    """Reflectance (0–1, :data:`DW_BANDS`) in, logits out: ``normalise_dn(10000 x)`` → net.

    Negative reflectance is clipped to 0 first (the normalisation takes a log).
    """

    size_multiple = 2
    out_channels = 9

    def __init__(self, net: DynamicWorldNet | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else DynamicWorldNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dn = torch.clamp(x.float(), min=0.0) * 10000.0
        return self.net(normalise_dn(dn))


# -- weights ---------------------------------------------------------------------------------
def weights_path() -> Path:
    """The converted weights inside the installed package."""
    return Path(str(files("s2cube.models") / "weights" / "dynamicworld.npz"))


def load_net(path: str | Path | None = None) -> DynamicWorldNet:
    """A :class:`DynamicWorldNet` in eval mode with the shipped (or given) weights."""
    blob = np.load(path or weights_path())
    net = DynamicWorldNet()
    state = {k: torch.from_numpy(np.asarray(blob[k])) for k in blob.files}
    # BatchNorm's num_batches_tracked is not part of the converted weights
    missing, unexpected = net.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.endswith("num_batches_tracked")]
    if bad or unexpected:
        raise ValueError(f"weights do not fit DynamicWorldNet: missing {bad}, extra {unexpected}")
    return net.eval()


def dynamicworld_card() -> Any:
    """The model card of the shipped Dynamic World weights."""
    from s2cube.models.card import ModelCard

    return ModelCard(
        name="dynamicworld",
        input_bands=DW_BANDS,
        classes=DW_CLASSES,
        normalisation={"kind": "none"},  # inside the module: DW's own log/sigmoid scaling
        resolution_m=10.0,
        training_data=_TRAINING,
        licence=(
            "Apache-2.0 (Google: 'This code is produced for the Dynamic World Project by Google "
            "in partnership with National Geographic and the World Resources Institute.')"
        ),
        architecture="dynamicworld",
        output="softmax",
        window=256,
        product_level="l1c",
        version="google/dynamicworld@0dd288fae5fb5291d988e5ea3c12eb91df481ec5 model/forward",
        metrics={
            "tf_reference_max_abs_logit_diff": "see tests/models/test_dynamicworld.py",
        },
    )


def load_dynamicworld() -> Any:
    """The registry model ``dynamicworld``: reflectance in, probabilities out (softmax)."""
    from s2cube.models.registry import LoadedModel

    return LoadedModel(DynamicWorld(load_net()).eval(), dynamicworld_card(), source="dynamicworld")
