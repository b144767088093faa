"""The survey's SCL look at production size: at the source's own resolution against warped to
the grid, one process, the same file and window.

A production cell is 1° on the 1/12000° grid (12000² px) and its coarse look 1500² px
(``plan_factor`` 8).  One Sentinel-2 tile's SCL is 5490² px at 20 m.  This writes such an SCL
(blobby clouds and shadows, one UTM zone, deflate-tiled like an L2A COG), then looks at it over
the 1° cell it sits in:

* ``grid``: the reference (``read_coarse_look(..., native=False)``): SCL sampled onto the grid
  at full resolution (12000² px, through the gather map of :mod:`s2cube.reader.gather`),
  masked, dilated on the grid and reduced to coarse pixels;
* ``native``: the production survey (``native=True``): SCL read at 20 m without a warp and
  reduced by :func:`s2cube.plan.native_codes`.

It prints wall time (best of ``--repeat``, cold: caches cleared before each run), peak traced
memory (tracemalloc: numpy and GDAL's read buffers), their ratios, and how many of the grid
look's clear coarse pixels the native look also calls clear (it never calls clear one that is
not: that is checked, and the script stops if it fails).

``--cells`` also times the whole production path (``s2cube.composite_cell(...).compute()``,
survey, plan and blocks) with the native and the grid survey, alternating in one process,
cold, on the real fixture and the synthetic stacks of ``bench_peers.py``, and prints plan and
total times, their ratios and the plans' read fractions.  Numbers are printed, never
asserted::

    python tests/benchmarks/bench_survey.py [--repeat 2] [--size 5490] [--cells 8,32,64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from fractions import Fraction
from pathlib import Path

import numpy as np


def _scl(size: int, seed: int = 0) -> np.ndarray:
    """Vegetation (4) with blobby clouds (9), their shadows (3), some water (6), a nodata edge."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((-(-size // 8), -(-size // 8))), 6)
    noise = np.kron(noise, np.ones((8, 8)))[:size, :size]
    scl = np.full((size, size), 4, "uint8")
    scl[noise > np.quantile(noise, 0.75)] = 9
    shadow = np.roll(noise, (40, 60), axis=(0, 1)) > np.quantile(noise, 0.8)
    scl[shadow & (scl == 4)] = 3
    scl[noise < np.quantile(noise, 0.05)] = 6
    scl[:, : size // 20] = 0  # a swath edge
    return scl


def _write(path: Path, scl: np.ndarray) -> None:
    import rasterio
    from rasterio.transform import from_origin

    # a tile of UTM 33N whose 1° cell (15–16°E, 46–47°N) it covers
    profile = dict(
        driver="GTiff",
        width=scl.shape[1],
        height=scl.shape[0],
        count=1,
        dtype="uint8",
        nodata=0,
        crs="EPSG:32633",
        transform=from_origin(499980, 5210000, 20 * 5490 / scl.shape[0], 20 * 5490 / scl.shape[0]),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(scl, 1)


def _measure(fn, repeat: int) -> tuple[float, float, object]:
    from s2cube.reader import gather

    best, out = float("inf"), None
    for _ in range(repeat):
        gather.clear_cache()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    gather.clear_cache()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, peak, out


def main(argv: list[str] | None = None) -> dict[str, float]:
    import pystac

    from s2cube.grid import GlobalGrid
    from s2cube.mask import CLEAR
    from s2cube.plan import coarse_window, read_coarse_look

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--size", type=int, default=5490, help="SCL side in pixels (20 m at 5490)")
    ap.add_argument("--cell", type=float, default=1.0, help="cell side in degrees")
    ap.add_argument("--cells", default="", help="also the whole path: synthetic sizes, e.g. 8,32")
    ap.add_argument("--cache", default=None, help="directory for the synthetic catalogs")
    args = ap.parse_args(argv)
    if args.cells:
        _cells([int(n) for n in args.cells.split(",")], args.repeat, args.cache)

    grid = GlobalGrid(
        resolution=Fraction(1, 12000), cell_size=Fraction(args.cell).limit_denominator()
    )
    cell = grid.cell_of(15.5, 46.5)
    factor = 8
    window = coarse_window(grid, cell, 4, factor)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "SCL.tif"
        _write(path, _scl(args.size))
        item = pystac.Item("scene", None, None, __import__("datetime").datetime(2023, 8, 1), {})
        item.add_asset("scl", pystac.Asset(str(path)))
        res = {}
        looks = {}
        for name, native in (("grid", False), ("native", True)):
            t, peak, look = _measure(
                lambda native=native: read_coarse_look(
                    item,
                    window,
                    factor=factor,
                    cloud_dilation=2,
                    shadow_dilation=2,
                    bands=None,
                    native=native,
                ),
                args.repeat,
            )
            res[f"{name}_s"], res[f"{name}_peak_mib"] = t, peak
            looks[name] = look.codes  # type: ignore[attr-defined]
    ref, got = looks["grid"], looks["native"]
    bad = int(((got == CLEAR) & (ref != CLEAR)).sum())
    if bad:
        raise SystemExit(f"the native look calls {bad} coarse pixels clear that are not")
    kept = (got == CLEAR).sum() / max((ref == CLEAR).sum(), 1)
    res["clear_kept"] = float(kept)
    print(
        f"SCL {args.size}² px at {20 * 5490 / args.size:.0f} m; cell {args.cell}° on 1/12000° "
        f"({grid.cell_pixels}² px), coarse look {ref.shape[0]}×{ref.shape[1]} (factor {factor})"
    )
    for name in ("grid", "native"):
        print(f"  {name:6s}: {res[name + '_s']:.2f} s, peak {res[name + '_peak_mib']:.0f} MiB")
    print(
        f"  native ÷ grid: time ×{res['native_s'] / res['grid_s']:.3f}, peak memory "
        f"×{res['native_peak_mib'] / res['grid_peak_mib']:.3f}; clear coarse pixels kept "
        f"{kept:.1%}, wrongly clear 0"
    )
    return res


def _cells(sizes: list[int], repeat: int, cache: str | None) -> None:
    """Production path with the native and the grid survey, alternating, cold."""
    import s2cube
    import s2cube.plan as plan
    from s2cube.grid import GlobalGrid
    from s2cube.reader import gather
    from s2cube.testing import make_sample_catalog

    real = (
        Path(__file__).resolve().parents[2].parent
        / "shared/data/s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m/catalog.json"
    )
    cases = []
    if real.exists():
        grid = GlobalGrid(resolution=Fraction(1, 1000), cell_size=Fraction(1, 2))
        cases.append(("real fixture", s2cube.search(real), grid, grid.cell_of(15.9, 46.1)))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(cache or tmp)
        grid = GlobalGrid(resolution=Fraction(1, 12000), cell_size=Fraction(1, 10))
        for n in sizes:
            for cs in (0.5, 1.5):
                cat = make_sample_catalog(
                    root / f"n{n // 2}-c{cs}",
                    seed=1,
                    n_dates=n // 2,
                    size=1200,
                    pixel_size=10.0,
                    cloud_scale=cs,
                )
                cases.append(
                    (f"{n} scenes cloud ×{cs}", s2cube.search(cat), grid, grid.cell_of(12.0, 46.05))
                )
        print(
            "| case | grid survey: plan + total s | native: plan + total s | total ratio "
            "| read fraction grid / native |"
        )
        print("|---|---|---|---|---|")
        for name, items, grid, cell in cases:
            best: dict[bool, tuple[float, float]] = {}
            frac: dict[bool, float] = {}
            for _ in range(repeat):
                for native in (False, True):
                    plan.NATIVE_SURVEY = native
                    gather.clear_cache()
                    t0 = time.perf_counter()
                    lazy = s2cube.composite_cell(
                        items, cell, grid=grid, config=s2cube.MosaicConfig()
                    )
                    t1 = time.perf_counter()
                    lazy.compute()
                    t2 = time.perf_counter()
                    if native not in best or t2 - t0 < sum(best[native]):
                        best[native] = (t1 - t0, t2 - t1)
                    frac[native] = float(lazy.attrs.get("read_fraction", float("nan")))
            plan.NATIVE_SURVEY = True
            g, n_ = best[False], best[True]
            print(
                f"| {name} | {g[0]:.2f} + {g[1]:.2f} = {sum(g):.2f} | {n_[0]:.2f} + {n_[1]:.2f} = "
                f"{sum(n_):.2f} | ×{sum(g) / sum(n_):.2f} faster "
                f"| {frac[False]:.2f} / {frac[True]:.2f} |"
            )


if __name__ == "__main__":
    main()
