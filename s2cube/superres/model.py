"""The generator as a product: normalisation, the shipped weights and their model cards.

* :func:`to_input` / :func:`from_output`: uint16 L2A reflectance (× 10000) ↔ the network's
  units (reflectance, ``DN / 10000``, float32).  The map is linear, so the Wald degradation
  (a linear blur + decimation) commutes with it and the consistency loss and metric mean the
  same thing in DN and in network units.
* :func:`load_generator`, :func:`shipped_scales`, :func:`model_card`: the weights that ship in
  ``s2cube/superres/weights/`` as ``sr-x<scale>.pt`` (the generator's ``state_dict``, float16)
  with the card ``sr-x<scale>.json`` (architecture, bands, normalisation, training data,
  held-out metrics).  Only weights that beat bicubic on held-out scenes ship
  (``docs/superres.md``).
* :func:`context_pixels`: the input halo tiled inference needs to equal one pass over the image.
"""

from __future__ import annotations

import json
import math
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, require

if TYPE_CHECKING:
    from .nets import Generator

__all__ = [
    "BANDS",
    "DN_SCALE",
    "context_pixels",
    "from_output",
    "load_generator",
    "model_card",
    "shipped_scales",
    "to_input",
    "weights_path",
]

#: the bands every shipped generator reads and writes, in this order
BANDS: tuple[str, ...] = ("red", "green", "blue", "nir")
#: L2A digital numbers per unit of reflectance
DN_SCALE = 10000.0
#: reach of the bicubic input skip, in input pixels (a 4-tap kernel: 2 on each side)
_BICUBIC_REACH = 2


def to_input(x: np.ndarray) -> np.ndarray:
    """uint16 reflectance × 10000 → float32 reflectance, the generator's input units.

    Nodata (0) maps to 0.0: fill it before inference (the kernel fills each nodata pixel
    with its nearest valid neighbour, :func:`s2cube.superres.infer.fill_nodata`).

    Examples
    --------
    >>> to_input(np.array([0, 1000, 10000], dtype="uint16")).tolist()
    [0.0, 0.10000000149011612, 1.0]
    """
    return (np.asarray(x).astype(np.float32) / np.float32(DN_SCALE)).astype(np.float32)


def from_output(y: np.ndarray) -> np.ndarray:
    """Generator output (reflectance, float) → uint16 × 10000, rounded, clipped to 1..65535.

    The lower bound is 1 because 0 is nodata: a data pixel the network drives to or below
    zero reflectance stays data.

    Examples
    --------
    >>> from_output(np.array([-0.2, 0.1, 0.12345, 9.0])).tolist()
    [1, 1000, 1234, 65535]
    """
    dn = np.rint(np.asarray(y, dtype=np.float64) * DN_SCALE)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def _weights_dir() -> Path:
    return Path(str(files("s2cube.superres") / "weights"))


def weights_path(scale: int) -> Path:
    """Where the shipped ×``scale`` weights are (whether or not they exist)."""
    return _weights_dir() / f"sr-x{int(scale)}.pt"


def shipped_scales() -> list[int]:
    """The scales with shipped weights (and a card), ascending.

    Examples
    --------
    >>> all(isinstance(s, int) for s in shipped_scales())
    True
    """
    out = []
    for pt in _weights_dir().glob("sr-x*.pt"):
        tail = pt.stem.removeprefix("sr-x")
        if tail.isdigit() and pt.with_suffix(".json").exists():
            out.append(int(tail))
    return sorted(out)


def _check_shipped(scale: int) -> None:
    shipped = shipped_scales()
    if int(scale) not in shipped:
        other = f"pass one of the shipped scales {shipped}, or " if shipped else ""
        raise InputError(
            f"scale={scale} has no shipped super-resolution weights "
            f"(shipped: {shipped or 'none'}); "
            f"{other}train a generator with `s2cube train sr` and pass its file (--weights FILE)"
        )


def model_card(scale: int = 4) -> dict[str, Any]:
    """The model card of the shipped ×``scale`` generator (a JSON dict).

    Keys: ``name``, ``scale``, ``bands``, ``architecture`` and ``arch_kwargs`` (how to rebuild
    the network), ``normalisation``, ``training_data``, ``held_out``, ``metrics`` (SR, bicubic
    and nearest on the held-out scenes), ``epochs``, ``seconds_per_epoch``, ``licence``.

    Raises
    ------
    InputError
        If no weights ship for ``scale`` (the message names the shipped scales).
    """
    _check_shipped(scale)
    card: dict[str, Any] = json.loads(weights_path(scale).with_suffix(".json").read_text())
    return card


def load_generator(scale: int = 4, *, device: str | None = None) -> Generator:
    """The shipped ×``scale`` generator, float32, in eval mode, on ``device``.

    Parameters
    ----------
    scale
        Upscaling factor (:func:`shipped_scales` lists those that ship).
    device
        ``"cpu"``, ``"cuda"`` or None (CUDA when this process sees a GPU).

    Raises
    ------
    InputError
        If no weights ship for ``scale``.

    Examples
    --------
    >>> gen = load_generator(4, device="cpu")  # doctest: +SKIP
    >>> gen.scale, gen.bands  # doctest: +SKIP
    (4, 4)
    """
    torch: Any = require("torch", "ml")
    from ..models.runtime import resolve_device
    from .nets import Generator

    card = model_card(scale)
    gen = Generator(**card["arch_kwargs"])
    state = torch.load(weights_path(scale), map_location="cpu", weights_only=True)
    gen.load_state_dict({k: v.float() for k, v in state.items()})
    return gen.to(resolve_device(device)).eval()


def context_pixels(gen: Generator) -> int:
    """Input pixels of context on each side that tiled inference needs (receptive-field radius).

    Each convolution reaches ``(k - 1) // 2 × dilation`` pixels at the resolution it runs at;
    a convolution after pixel-shuffle stages that upscaled by ``f`` so far reaches ``1/f`` of
    that in input pixels.  The sum over the chain (head, residual blocks, upsampling, tail),
    rounded up, bounds how far an output pixel looks; the bicubic input skip (2 px) runs in
    parallel and is smaller.  A tile read with this halo computes the same output as one pass
    over the whole image, up to float rounding (stated tolerance: ≤ 1 DN).

    Examples
    --------
    >>> from s2cube.superres.nets import Generator
    >>> context_pixels(Generator(scale=4, features=8, blocks=2))
    12
    """
    import torch

    reach = 0.0
    factor = 1
    for mod in gen.modules():
        if isinstance(mod, torch.nn.PixelShuffle):
            factor *= int(mod.upscale_factor)
        elif isinstance(mod, torch.nn.Conv2d):
            k = max(int(mod.kernel_size[0]), int(mod.kernel_size[1]))
            d = max(int(mod.dilation[0]), int(mod.dilation[1]))
            reach += ((k - 1) // 2) * d / factor
    return max(int(math.ceil(reach - 1e-9)), _BICUBIC_REACH)
