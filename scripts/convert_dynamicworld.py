"""Convert the Dynamic World forward model's variables into the weights s2cube ships.

``python scripts/convert_dynamicworld.py [SRC_DIR]`` reads ``variables.npz`` (every variable of
Google's TensorFlow SavedModel ``google/dynamicworld@0dd288f model/forward``, keyed by TF name with
``/`` written as ``__``) from ``SRC_DIR`` (default ``$S2CUBE_SHARED_MODELS/dynamicworld`` or
``../shared/models/dynamicworld`` beside the repository), maps each to the state-dict key of
:class:`s2cube.models.dynamicworld.DynamicWorldNet`, transposes kernels from TF layout
(Conv2D ``(kh, kw, in, out)``, depthwise ``(kh, kw, in, 1)``) to torch layout, and writes
``s2cube/models/weights/dynamicworld.npz`` (float32) with the upstream ``LICENSE`` and ``NOTICE``
copied next to it.  Every source variable must be used exactly once.

A script, not part of the package: the source files live only in a checkout's ``../shared``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SRC = (
    Path(os.environ.get("S2CUBE_SHARED_MODELS", REPO.parent / "shared" / "models")) / "dynamicworld"
)
OUT = REPO / "s2cube" / "models" / "weights"

# torch module prefix -> (TF conv or depthwise layer, TF batch-norm layer or None)
_UNITS: list[tuple[str, str, str | None]] = [
    ("stem", "conv2d", "batch_normalization"),
    ("side.0", "conv2d_1", "batch_normalization_1"),
    ("side.1", "depthwise_conv2d", "batch_normalization_2"),
    ("head", "conv2d_14", None),
]
# three blocks: (first pointwise conv index, first depthwise index, first bn index, skip conv)
for name, conv0, dw0, bn0, skip in (
    ("block1", 2, 1, 3, 5),
    ("block2", 6, 4, 10, 9),
    ("block3", 10, 7, 17, 13),
):
    for unit in range(3):
        _UNITS.append(
            (
                f"{name}.body.{unit}.0",
                f"conv2d_{conv0 + unit}",
                f"batch_normalization_{bn0 + 2 * unit}",
            )
        )
        _UNITS.append(
            (
                f"{name}.body.{unit}.1",
                f"depthwise_conv2d_{dw0 + unit}",
                f"batch_normalization_{bn0 + 2 * unit + 1}",
            )
        )
    _UNITS.append((f"{name}.skip", f"conv2d_{skip}", f"batch_normalization_{bn0 + 6}"))


def convert(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TF variables (``variables.npz`` keys) → ``DynamicWorldNet`` state dict (float32 numpy)."""
    state: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key in used:
            raise ValueError(f"{key} mapped twice")
        used.add(key)
        return np.asarray(variables[key], dtype=np.float32)

    for prefix, layer, bn in _UNITS:
        conv = prefix if prefix == "head" else f"{prefix}.conv"
        if layer.startswith("depthwise"):
            kernel = take(f"{layer}__depthwise_kernel").transpose(2, 3, 0, 1)  # (in, 1, kh, kw)
        else:
            kernel = take(f"{layer}__kernel").transpose(3, 2, 0, 1)  # (out, in, kh, kw)
        state[f"{conv}.weight"] = np.ascontiguousarray(kernel)
        state[f"{conv}.bias"] = take(f"{layer}__bias")
        if bn is not None:
            state[f"{prefix}.bn.weight"] = take(f"{bn}__gamma")
            state[f"{prefix}.bn.bias"] = take(f"{bn}__beta")
            state[f"{prefix}.bn.running_mean"] = take(f"{bn}__moving_mean")
            state[f"{prefix}.bn.running_var"] = take(f"{bn}__moving_variance")
    unused = sorted(set(variables) - used)
    if unused:
        raise ValueError(f"variables not mapped: {unused}")
    return state


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", type=Path, default=SRC)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with np.load(args.src / "variables.npz") as blob:
        variables = {k: blob[k] for k in blob.files}
    state = convert(variables)

    import torch

    from s2cube.models.dynamicworld import DynamicWorldNet

    # the state must load into the port with nothing missing but BN's batch counters
    missing, unexpected = DynamicWorldNet().load_state_dict(
        {k: torch.from_numpy(v) for k, v in state.items()}, strict=False
    )
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (
        missing,
        unexpected,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "dynamicworld.npz"
    np.savez_compressed(path, **state)
    for name in ("LICENSE", "NOTICE"):
        shutil.copyfile(args.src / name, args.out / f"dynamicworld.{name}")
    n = sum(v.size for v in state.values())
    print(f"wrote {path} ({n} parameters, {path.stat().st_size / 1e6:.2f} MB)")
    return path


if __name__ == "__main__":
    main()
