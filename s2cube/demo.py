"""``s2cube demo``: the whole pipeline offline on the built-in synthetic sample catalog."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

from .grid import GlobalGrid

__all__ = ["DEMO_GRID", "run_demo"]

#: coarse grid for the demo: 1/2000° pixels (~55 m), 0.1° cells (200 px), 100 px chunks
DEMO_GRID = GlobalGrid(resolution=Fraction(1, 2000), cell_size=Fraction(1, 10), chunk_size=100)


def run_demo(out: str | os.PathLike[str], *, workers: int = 2, seed: int = 0) -> dict[str, Any]:
    """Generate the sample catalog under ``out``, mosaic it on a local cluster, write a PNG."""
    from distributed import Client, LocalCluster

    from .driver import mosaic
    from .quicklook import write_png
    from .store import open_store, store_info
    from .testing import SAMPLE_BBOX, SAMPLE_DATES, make_sample_catalog

    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    catalog = make_sample_catalog(out_p / "catalog", seed=seed)
    store = out_p / "mosaic.zarr"
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=":0", processes=True
        ) as cluster,
        Client(cluster) as client,
    ):
        print(f"dask dashboard: {client.dashboard_link}")
        report = mosaic(
            catalog,
            store=store,
            bbox=SAMPLE_BBOX,
            start=SAMPLE_DATES[0],
            end=SAMPLE_DATES[1],
            grid=DEMO_GRID,
            client=client,
            progress=True,
        )
    ds = open_store(store, bbox=SAMPLE_BBOX).load()
    png = write_png(ds, out_p / "quicklook.png")
    info = store_info(store)
    cells = (
        f"{len(report.written)} written, {len(report.skipped)} resumed, {len(report.empty)} empty"
    )
    return {
        "catalog": str(catalog),
        "store": str(store),
        "quicklook": str(png),
        "cells": cells,
        "coverage": f"{100 * info['composited_fraction']:.2f} %",
        "dates": f"{info['date_min']} .. {info['date_max']}",
        "seconds": report.seconds,
    }
