"""Cluster recipes for s2cube (run as a script; see README.md).

python cluster/examples.py local   --store mosaic.zarr
python cluster/examples.py connect --scheduler tcp://host:8786 --store mosaic.zarr
"""

from __future__ import annotations

import argparse
import warnings

warnings.filterwarnings("ignore", category=PendingDeprecationWarning)


def main() -> None:
    from distributed import Client

    import s2cube
    from s2cube.cluster import connect, make_cluster
    from s2cube.testing import SAMPLE_BBOX, SAMPLE_DATES, make_sample_catalog

    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["local", "connect"])
    ap.add_argument("--scheduler")
    ap.add_argument("--store", default="cluster-demo.zarr")
    ap.add_argument("--catalog", help="STAC source (default: the built-in sample catalog)")
    ap.add_argument(
        "--mask",
        default="scl",
        choices=["scl", "model", "combined"],
        help="model/combined run the csmask U-net per block (on GPU workers if any)",
    )
    args = ap.parse_args()
    client = Client(make_cluster()) if args.mode == "local" else connect(args.scheduler)
    print("dashboard:", client.dashboard_link)
    catalog = args.catalog or make_sample_catalog("sample-catalog")
    report = s2cube.mosaic(
        catalog,
        store=args.store,
        bbox=SAMPLE_BBOX,
        start=SAMPLE_DATES[0],
        end=SAMPLE_DATES[1],
        grid=s2cube.GlobalGrid(resolution=1 / 4000, cell_size=0.05),
        config=s2cube.MosaicConfig(mask_method=args.mask),
        client=client,
        progress=True,
    )
    print(report.written, f"{report.seconds:.1f} s")


if __name__ == "__main__":
    main()
