"""What every cluster recipe shares: the run arguments and the mosaic call.

The store is an object-storage URL (``s3://bucket/mosaic.zarr``) that the driver and every
worker reach; credentials come from the environment (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_DEFAULT_REGION``, or ``S2CUBE_STORAGE_OPTIONS`` as a JSON
object, e.g. ``{"client_kwargs": {"endpoint_url": "https://minio.example:9000"}}``), never from
the recipe. A local path works only on a file system every worker mounts at the same path.
"""

from __future__ import annotations

import argparse
import os
import warnings
from typing import Any

warnings.filterwarnings("ignore", category=PendingDeprecationWarning)


def arguments(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument(
        "--store",
        default=os.environ.get("S2CUBE_STORE"),
        help="store URL, e.g. s3://bucket/mosaic.zarr (default: $S2CUBE_STORE)",
    )
    ap.add_argument("--catalog", default="earth-search", help="STAC API, preset or catalog.json")
    ap.add_argument("--bbox", nargs=4, type=float, default=(15.0, 45.0, 17.0, 47.0))
    ap.add_argument("--start", default="2023-06-01")
    ap.add_argument("--end", default="2023-08-31")
    ap.add_argument("--max-cloud", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=4, help="workers to scale to")
    ap.add_argument("--gpu", action="store_true", help="GPU workers + the learned cloud mask")
    return ap


def run(client: Any, args: argparse.Namespace) -> Any:
    """The mosaic on ``client``'s cluster; progress bar and dashboard link on the terminal."""
    import s2cube

    if not args.store:
        raise SystemExit("give --store s3://bucket/mosaic.zarr (or set S2CUBE_STORE)")
    print("dask dashboard:", client.dashboard_link)
    config = s2cube.MosaicConfig(mask_method="combined" if args.gpu else "scl")
    report = s2cube.mosaic(
        args.catalog,
        store=args.store,
        bbox=args.bbox,
        start=args.start,
        end=args.end,
        max_cloud=args.max_cloud,
        config=config,
        client=client,
        progress=True,
    )
    print(f"{len(report.written)} cell(s) written in {report.seconds:.0f} s -> {report.store}")
    return report
