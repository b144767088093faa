"""Throughput of ``s2cube superres`` (cells/s, output Mpix/s) vs the bare SR kernel, one run.

A real parent store is made first (the 120 m Earth Search fixture, ``--cells`` cells of
``--cell-px`` px on a 1/800° grid); then, on the same cells:

* ``kernel``: :func:`s2cube.superres.infer.superres_array` alone over each parent cell plus
  its halo (arrays already in memory, no store, no dask, no overviews);
* ``store``: :func:`s2cube.superres.run.superres_store` end to end, what ``s2cube superres``
  runs: leases, product template, parent reads, the kernel, cell writes (sharded, checksummed),
  per-cell and coarse overviews, one task per cell on dask's threads.

Output Mpix/s counts product pixels (``cells × (cell_px·scale)²``).  The ratio store/kernel is
the cost of everything around the network.  The generator is the shipped one when it exists
(else a seeded random ``Generator(scale)`` of the same default size: same arithmetic).  Run::

    python tests/benchmarks/bench_superres_store.py [--device cpu|cuda] [--quick] [--json OUT]
    pytest -s tests/benchmarks/bench_superres_store.py
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO.parent / "shared/data/s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m/catalog.json"


def _generator(scale: int) -> tuple[Any, str]:
    from s2cube.superres import model

    if scale in list(model.shipped_scales()):
        return model.load_generator(scale), "shipped"
    import torch

    from s2cube.superres import nets

    torch.manual_seed(0)
    return nets.Generator(scale=scale).eval(), "random (default size)"


def run(
    *, device: str = "cpu", scale: int = 4, cells: int = 4, cell_px: int = 100, tile: int = 128
) -> dict[str, Any]:
    import s2cube
    from s2cube.grid import GlobalGrid
    from s2cube.store.superres import read_parent_window
    from s2cube.superres.infer import superres_array
    from s2cube.superres.run import SuperresOptions, _default_halo, superres_store

    grid = GlobalGrid(resolution=Fraction(1, 800), cell_size=Fraction(cell_px, 800), chunk_size=50)
    side = int(np.ceil(np.sqrt(cells)))
    # side × side cells of the fixture's overlap, from the one holding (15.95, 45.95)
    first = grid.cell_window(grid.cell_of(15.95, 45.95))
    w, n = first.bounds[0], first.bounds[3]
    deg, eps = float(grid.cell_size), 1e-6
    bbox = (w + eps, n - side * deg + eps, w + side * deg - eps, n - eps)
    gen, which = _generator(scale)
    halo = _default_halo(gen)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "m.zarr"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            made = s2cube.mosaic(CATALOG, store=store, bbox=bbox, grid=grid)
        names = sorted(made.written)
        from s2cube.grid import Cell

        arrays = []
        for name in names:
            got = read_parent_window(store, grid.cell_window(Cell.from_name(name)).pad(halo))
            arrays.append(np.stack([got[b] for b in ("red", "green", "blue", "nir")]))
        superres_array(arrays[0][:, :32, :32], gen, tile=tile, device=device)  # warm-up
        t0 = time.perf_counter()
        for arr in arrays:
            superres_array(arr, gen, halo=halo, tile=tile, device=device)
        t_kernel = time.perf_counter() - t0
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = superres_store(
                store, bbox=bbox, scale=scale, generator=gen,
                options=SuperresOptions(tile=tile), device=device,
            )  # fmt: skip
        t_store = time.perf_counter() - t0
    n = len(report.written)
    out_mpix = n * (cell_px * scale) ** 2 / 1e6
    res = {
        "device": device,
        "generator": which,
        "scale": scale,
        "cells": n,
        "cell_px": cell_px,
        "halo": halo,
        "tile": tile,
        "kernel_s": round(t_kernel, 3),
        "store_s": round(t_store, 3),
        "kernel_cells_per_s": round(len(arrays) / t_kernel, 3),
        "store_cells_per_s": round(n / t_store, 3),
        "kernel_out_mpix_per_s": round(out_mpix / t_kernel, 3),
        "store_out_mpix_per_s": round(out_mpix / t_store, 3),
        "store_over_kernel_throughput": round(t_kernel / t_store, 3),
    }
    return res


def _print(res: dict[str, Any]) -> None:
    print(
        f"\nsuperres x{res['scale']} on {res['device']} ({res['generator']} generator), "
        f"{res['cells']} cells of {res['cell_px']} px, halo {res['halo']}, tile {res['tile']}\n"
        f"  kernel : {res['kernel_cells_per_s']:.3f} cells/s, "
        f"{res['kernel_out_mpix_per_s']:.3f} output Mpix/s ({res['kernel_s']} s)\n"
        f"  store  : {res['store_cells_per_s']:.3f} cells/s, "
        f"{res['store_out_mpix_per_s']:.3f} output Mpix/s ({res['store_s']} s)\n"
        f"  ratio store/kernel throughput: {res['store_over_kernel_throughput']:.3f}"
    )


@pytest.mark.benchmark
def test_bench_superres_store_cpu() -> None:
    pytest.importorskip("torch")
    if not CATALOG.exists():
        pytest.skip(f"{CATALOG} is missing")
    res = run(device="cpu", cells=4, cell_px=100)
    _print(res)
    assert res["cells"] == 4


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--cell-px", type=int, default=100)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="4 cells of 50 px")
    parser.add_argument("--json", help="Write the numbers to this file.")
    a = parser.parse_args()
    cells, px = (4, 50) if a.quick else (a.cells, a.cell_px)
    result = run(device=a.device, scale=a.scale, cells=cells, cell_px=px, tile=a.tile)
    _print(result)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
