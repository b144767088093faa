"""What filling holes costs a mosaic run, against the same run without filling, one process.

The built-in synthetic catalog (generated here, offline), period 2023-08-18..20 (one mostly
cloudy date and one 35 % cloudy date), 8 cells of ``--cell`` px at 1/4000°, ``fill_periods=1``
with Telea.  Both runs are cold (a fresh store, the process's read caches cleared); the best
of ``--repeat`` wall times of each, their ratio, and from the filled store's records the
seconds of the fill step per cell (``fill_seconds``: store read with the halo, donor reads,
fill, second write, overview levels) and the share of pixels filled.

The fill reads each cell with ``min(256, cell)`` px of its neighbours: at the tests' 200-px
cells that halo is a whole cell, 9× the donor area of the cell itself; at the default grid
(12,000-px cells in 4000-px blocks) it is 1.27×.  So this ratio is an upper bound for the
default grid::

    python tests/benchmarks/bench_fill.py [--repeat 3] [--cell 200]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

import s2cube
from s2cube.config import MosaicConfig
from s2cube.grid import GlobalGrid
from s2cube.reader.cache import clear
from s2cube.store import read_manifest
from s2cube.testing import make_sample_catalog

BBOX = (11.92, 46.02, 12.08, 46.08)
PERIOD = ("2023-08-18", "2023-08-20")


def run(
    catalog: Path, store: Path, config: MosaicConfig, grid: GlobalGrid
) -> tuple[float, list[float]]:
    """Wall seconds of one cold run, and each cell's ``fill_seconds`` (from the progress)."""
    shutil.rmtree(store, ignore_errors=True)
    clear()
    fills: list[float] = []

    def progress(cell: str, rec: dict) -> None:
        if "fill_seconds" in rec:
            fills.append(rec["fill_seconds"])

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s2cube.mosaic(
            str(catalog), store=store, bbox=BBOX, start=PERIOD[0], end=PERIOD[1], grid=grid,
            config=config, progress=progress,
        )  # fmt: skip
    return time.perf_counter() - t0, fills


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cell", type=int, default=200, help="cell edge in px (1/4000° pixels)")
    args = ap.parse_args(argv)
    grid = GlobalGrid(
        resolution=Fraction(1, 4000), cell_size=Fraction(args.cell, 4000), chunk_size=args.cell // 2
    )
    root = Path(tempfile.mkdtemp(prefix="bench_fill_"))
    try:
        catalog = make_sample_catalog(root / "sample", seed=0)
        configs = {"plain": MosaicConfig(), "fill": MosaicConfig(fill_periods=1, inpaint="telea")}
        best = {name: float("inf") for name in configs}
        fill_s: list[float] = []
        for _ in range(args.repeat):
            for name, config in configs.items():  # alternating: the machine's drift hits both
                seconds, fills = run(catalog, root / f"{name}.zarr", config, grid)
                best[name] = min(best[name], seconds)
                fill_s = fills or fill_s
        records = read_manifest(root / "fill.zarr")
        shares = [r["fill"] for r in records.values()]
        pixels = sum(sum(s.values()) for s in shares)
        donor = sum(s["donor_from_other_period"] for s in shares) / pixels
        inpainted = sum(s["inpainted"] for s in shares) / pixels
        print(f"{len(records)} cells of {args.cell} px, best of {args.repeat} cold runs")
        print(f"  without filling: {best['plain']:.2f} s")
        print(f"  with filling:    {best['fill']:.2f} s  (× {best['fill'] / best['plain']:.2f})")
        print(
            f"  fill step per cell (last run): median {np.median(fill_s):.2f} s, "
            f"max {max(fill_s):.2f} s; {donor:.1%} of the pixels from donors, "
            f"{inpainted:.1%} inpainted"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
