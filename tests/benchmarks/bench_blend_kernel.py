"""The compositing kernel's feather blend: today's kernel against the full formula, one process.

The baseline is the kernel as it was before issue 11's kernel work, kept here as the oracle:
scipy's ``distance_transform_edt`` for the feather weights and the weighted mean over every
pixel.  Today's :func:`s2cube.composite.kernels.composite_window` computes the same distances
with OpenCV's exact transform (made bit-identical) and blends only the pixels two or more
scenes weigh.  Each case is a block of the production shape (``block`` px + the blend halo,
4 bands, ``t`` scenes in priority order, blobby clouds covering ``cloud`` of each scene,
harmonization on); it prints the best of ``--repeat`` wall times of both, their ratio, Mpix/s
of output, and whether the outputs are identical (they must be)::

    python tests/benchmarks/bench_blend_kernel.py [--quick] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import numpy as np
from scipy import ndimage

from s2cube.composite import kernels
from s2cube.config import MosaicConfig
from s2cube.mask import CLEAR, CLOUD, SNOW


def _inputs(t: int, n: int, cloud: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = np.empty((t, n, n), "uint8")
    refl = np.empty((t, 4, n, n), "uint16")
    for k in range(t):
        f = ndimage.gaussian_filter(rng.normal(size=(n, n)), 20)
        codes[k] = np.where(f > np.quantile(f, 1 - cloud), CLOUD, CLEAR)
        base = rng.integers(300, 3000, (4, 1, 1))
        refl[k] = (base + rng.integers(0, 200, (4, n, n))).astype("uint16")
    return refl, codes


def _baseline_blend(refl, codes, *, width=0, method="feather"):
    """The kernel's feather blend before this change: scipy distances, every pixel blended."""
    source, count = kernels.select_sources(codes)
    idx = np.clip(source, 0, None)
    out = np.where(source[None] >= 0, np.take_along_axis(refl, idx[None, None], 0)[0], 0)
    out = out.astype("uint16")
    usable = ((codes == CLEAR) | (codes == SNOW)) & (refl > 0).all(axis=1)
    scenes = np.unique(source[source >= 0])
    if width <= 0 or len(scenes) < 2:
        return out, source, count
    with mock.patch.object(
        kernels, "_distance", lambda m: ndimage.distance_transform_edt(m).astype("float64")
    ):
        w = kernels._feather_weights(source, usable, scenes, float(width))
    total = w.sum(axis=0)
    for b in range(refl.shape[1]):
        acc = np.zeros(source.shape, dtype="float64")
        for k, s in enumerate(scenes):
            acc += w[k] * refl[s, b]
        with np.errstate(invalid="ignore", divide="ignore"):
            val = np.where(total > 0, acc / total, out[b])
        out[b] = np.where(source >= 0, np.clip(np.rint(val), 1, 65535), 0).astype("uint16")
    return out, source, count


def _best(fn, repeat: int):
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t0)
    return best, res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (used by the test suite)")
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    spec = MosaicConfig().spec
    h = spec.blend_halo
    cases = [(4, 128, 0.5)] if args.quick else [(4, 1024, 0.5), (8, 1024, 0.5), (8, 1024, 0.8)]
    print(f"feather width {spec.blend_width}, halo {h}; best of {repeat}")
    print("scenes | block px | cloud | baseline s | kernel s | baseline ÷ kernel | Mpix/s | same")
    for t, block, cloud in cases:
        refl, codes = _inputs(t, block + 2 * h, cloud)
        knots = [[((0.0, 10000.0), (10.0, 10100.0))] * 4 for _ in range(t)]
        t_new, new = _best(lambda: kernels.composite_window(refl, codes, knots, spec), repeat)
        with mock.patch.object(kernels, "blend_composite", _baseline_blend):
            t_old, old = _best(lambda: kernels.composite_window(refl, codes, knots, spec), repeat)
        same = all(np.array_equal(a, b) for a, b in zip(old, new, strict=True))
        print(
            f"{t} | {block} | {cloud} | {t_old:.3f} | {t_new:.3f} | ×{t_old / t_new:.2f} | "
            f"{block * block / t_new / 1e6:.2f} | {same}"
        )
        if not same:
            raise SystemExit("the kernel's output differs from the full formula")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
