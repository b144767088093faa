"""s2cube's hot numpy kernels against their previous versions, one process, same inputs.

1. **Feather blend.** The baseline is the kernel as it was before issue 11's kernel work,
   kept here as the oracle: scipy's ``distance_transform_edt`` for the feather weights and
   the weighted mean over every pixel.  Today's
   :func:`s2cube.composite.kernels.composite_window` computes the same distances with
   OpenCV's exact transform (made bit-identical) and blends only the pixels two or more
   scenes weigh.  Each case is a block of the production shape (``block`` px + the blend
   halo, 4 bands, ``t`` scenes in priority order, blobby clouds covering ``cloud`` of each
   scene, harmonization on); it prints the best of ``--repeat`` wall times of both, their
   ratio and Mpix/s of output.
2. **Reference palette** (the survey's per-pixel median of the clear looks):
   :func:`s2cube.harmonize.radiometry.reference_composite` (one sort along time) against
   ``np.nanmedian``.
3. **Gather** (a read chunk's output pixels from its source window):
   :meth:`s2cube.reader.gather.GatherMap.apply` (``np.take``) against fancy indexing.
4. **Harmonization of a cell's blocks** (``apply_knots`` on 16 blocks of 310² px, 4
   transfers): the cached lookup table (now taken from 2¹⁵ px, was 2¹⁷) against the float
   interpolation; each table is built inside the clock, once per transfer, as in a cell.
5. **SCL → mask codes** (:func:`s2cube.mask.scl_to_mask` on uint8 SCL, every read chunk and
   survey look): a 256-entry lookup table (OpenCV's ``LUT``) against the masked table lookup.
6. **Index maps of read chunks** (:func:`s2cube.reader.gather.gather_map`, block-wise): every
   index digit as a band of one raster warped once, against one warp per digit.
7. **A block's window from its read chunks** (``composite/engine.py: _assemble``): one copy of
   each chunk's overlap into the preallocated window, against slicing the concatenated
   mosaic of whole chunks.

Every section checks that both give identical values, and stops if they do not::

    python tests/benchmarks/bench_kernels.py [--quick] [--repeat 3]
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
    fn()  # warm: imports, OpenCV's first call, caches
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
        inputs = (refl, codes, knots, spec)
        t_new, new = _best(lambda a=inputs: kernels.composite_window(*a), repeat)
        with mock.patch.object(kernels, "blend_composite", _baseline_blend):
            t_old, old = _best(lambda a=inputs: kernels.composite_window(*a), repeat)
        same = all(np.array_equal(a, b) for a, b in zip(old, new, strict=True))
        print(
            f"{t} | {block} | {cloud} | {t_old:.3f} | {t_new:.3f} | ×{t_old / t_new:.2f} | "
            f"{block * block / t_new / 1e6:.2f} | {same}"
        )
        if not same:
            raise SystemExit("the kernel's output differs from the full formula")
    _others(args.quick, repeat)
    return 0


def _row(name: str, t_old: float, t_new: float, same: bool) -> None:
    print(f"{name} | {t_old * 1e3:.2f} ms | {t_new * 1e3:.2f} ms | ×{t_old / t_new:.2f} | {same}")
    if not same:
        raise SystemExit(f"{name}: the new kernel's values differ from the baseline's")


def _others(quick: bool, repeat: int) -> None:
    import warnings

    from s2cube.harmonize import radiometry
    from s2cube.reader.gather import GatherMap

    rng = np.random.default_rng(1)
    print("\nkernel | baseline | now | baseline ÷ now | same")
    # 2. the reference palette of a survey: t looks of (4, n, n) coarse pixels, 40 % clear
    t, n = (8, 40) if quick else (32, 150)
    refl = rng.integers(0, 6000, (t, 4, n, n)).astype("uint16")
    clear = rng.random((t, n, n)) < 0.4

    def nanmedian():
        valid = clear[:, None] & (refl > 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(np.where(valid, refl.astype("float64"), np.nan), axis=0)

    t_old, old = _best(nanmedian, repeat)
    t_new, new = _best(lambda: radiometry.reference_composite(refl, clear), repeat)
    _row(f"reference palette, {t} looks of {n}² px", t_old, t_new,
         np.array_equal(old, new, equal_nan=True))  # fmt: skip
    # 3. the gather of one read chunk (a near-identity warp of a 700² source window)
    m = 150 if quick else 600
    src = rng.integers(0, 5000, (m + m // 6, m + m // 6)).astype("uint16")
    yy, xx = np.mgrid[0:m, 0:m]
    index = (yy * 1.02).astype("int32") * src.shape[1] + (xx * 1.01).astype("int32")
    gmap = GatherMap((0, 0, *src.shape), index.astype("int32"))

    def fancy():
        flat = np.empty(src.size + 1, dtype=src.dtype)
        flat[:-1] = src.ravel()
        flat[-1] = 0
        return flat[gmap.index]

    t_old, old = _best(fancy, repeat)
    t_new, new = _best(lambda: gmap.apply(src), repeat)
    _row(f"gather, {m}² px", t_old, t_new, np.array_equal(old, new))
    # 4. harmonizing the 16 blocks of a cell, 4 transfers (bands), 310² px per block
    b = 64 if quick else 310
    blocks = [rng.integers(1, 6000, (b, b)).astype("uint16") for _ in range(16)]
    knots = [((0.0, 10000.0), (float(k), 10000.0 + 37 * k)) for k in range(1, 5)]

    def interp():
        return [radiometry._apply_knots(x, k) for x in blocks for k in knots]

    def lut():
        radiometry._knots_lut.cache_clear()  # one table per transfer, built inside the clock
        return [radiometry._knots_lut(tuple(map(tuple, k)))[x] for x in blocks for k in knots]

    t_old, old = _best(interp, repeat)
    t_new, new = _best(lut, repeat)
    same = all(np.array_equal(a, c) for a, c in zip(old, new, strict=True))
    _row(f"harmonize 16 blocks × 4 bands of {b}² px", t_old, t_new, same)
    # 5. SCL → mask codes of a read chunk's scenes (uint8): the masked table lookup it was,
    # against today's 256-entry lookup table (OpenCV's LUT)
    from s2cube.mask import SCL_TO_MASK, scl_to_mask

    t, m = (4, 150) if quick else (16, 640)
    scl = rng.integers(0, 13, (t, m, m)).astype("uint8")

    def masked():
        valid = scl < len(SCL_TO_MASK)
        out = np.zeros(scl.shape, dtype="uint8")
        out[valid] = SCL_TO_MASK[scl[valid].astype("intp")]
        return out

    t_old, old = _best(masked, repeat)
    t_new, new = _best(lambda: scl_to_mask(scl), repeat)
    _row(f"SCL → codes, {t} scenes of {m}² px", t_old, t_new, np.array_equal(old, new))
    # 6. the GDAL index maps of read chunks (block-wise warps): one warp per index digit, as
    # before, against every digit as a band of one raster warped once
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from s2cube.reader import gather, gdal_env

    grid = gather.SourceGrid(
        CRS.from_epsg(32633).to_wkt(), tuple(from_origin(499980, 5200020, 10, 10))[:6], 10980, 10980
    )
    side = 256 if quick else 600
    r, c = int((90 - 46.6) * 12000), int((180 + 15.3) * 12000)
    orig = gather._warp_index

    def maps(together: bool) -> list[np.ndarray]:
        gather.clear_cache()
        with mock.patch.object(
            gather, "_warp_index", lambda *a, **k: orig(*a, **{**k, "together": together})
        ):
            return [
                gather.gather_map(
                    grid,
                    crs="EPSG:4326",
                    transform=from_origin(-180, 90, 1 / 12000, 1 / 12000),
                    width=360 * 12000,
                    height=180 * 12000,
                    window=(r + i * side, c + j * side, side, side),
                    env=gdal_env(),
                    dtype=dtype,
                ).index
                for i in range(2)
                for j in range(2)
            ]

    for dtype in ("uint16", "uint8"):
        t_old, old = _best(lambda: maps(False), repeat)
        t_new, new = _best(lambda: maps(True), repeat)
        same = all(np.array_equal(a, b) for a, b in zip(old, new, strict=True))
        _row(f"index maps, 4 chunks of {side}² px, {dtype} source", t_old, t_new, same)

    # 7. a block's window assembled from its read chunks (16 blocks of a 64-scene cell: 2×2
    # chunks of 600² px around a 310² px window, 5 bands, 20 planned scenes): the mosaic of
    # whole chunks sliced, stacked per band and per scene (as before), against one copy of
    # each chunk's overlap into the preallocated window
    from s2cube.composite.engine import _assemble

    t_sc, n_b, side, win = (6, 5, 200, 110) if quick else (20, 5, 600, 310)
    rng = np.random.default_rng(7)
    chunks = [
        [
            [
                [rng.integers(0, 10000, (1, 1, side, side)).astype("uint16") for _ in range(2)]
                for _ in range(2)
            ]
            for _ in range(n_b)
        ]
        for _ in range(t_sc)
    ]
    y0 = x0 = side - win // 2

    def mosaic_sliced() -> np.ndarray:
        return np.stack(
            [
                np.stack(
                    [
                        np.concatenate(
                            [np.concatenate([c[0, 0] for c in row], axis=1) for row in rows]
                        )[y0 : y0 + win, x0 : x0 + win]
                        for rows in per_t
                    ]
                )
                for per_t in chunks
            ]
        )

    t_old, old = _best(mosaic_sliced, repeat)
    t_new, new = _best(lambda: _assemble(chunks, y0, x0, win, win), repeat)
    _row(
        f"block window, {t_sc} scenes × {n_b} bands, {win}² px",
        t_old,
        t_new,
        np.array_equal(old, new),
    )


if __name__ == "__main__":
    raise SystemExit(main())
