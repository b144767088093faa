"""s2cube on dask-gateway (``pip install dask-gateway``; e.g. a Pangeo / JupyterHub deployment).

    export S2CUBE_STORE=s3://bucket/mosaic.zarr
    python cluster/gateway_run.py --gateway https://gateway.example.org --workers 8
    python cluster/gateway_run.py --workers 8 --image ghcr.io/s2cube/s2cube:0.1.0

Without ``--gateway`` the address comes from dask's config (``gateway.address``), as it does
inside a JupyterHub that runs a gateway. Workers get s2cube from the image the gateway starts
(a cluster option named ``image`` on most deployments: ``--image``), and the AWS_* variables
of this shell reach them through the ``environment`` cluster option when the deployment offers
it. tests/test_cluster_recipes.py runs this recipe's functions against a real dask-gateway
server (local backend) on 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

#: environment variables handed to the workers (credentials stay out of the recipe)
FORWARDED = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "S2CUBE_STORAGE_OPTIONS",
)


def start_cluster(gateway: Any, *, workers: int, image: str | None = None) -> Any:
    """A new gateway cluster with the options this deployment exposes, scaled to ``workers``."""
    options = gateway.cluster_options()
    if image is not None:
        if "image" not in options:
            raise SystemExit(
                "this gateway has no 'image' option; ask its admin which image has s2cube"
            )
        options.image = image
    if "environment" in options:
        env = {k: os.environ[k] for k in FORWARDED if k in os.environ}
        options.environment = {**dict(options.environment or {}), **env}
    cluster = gateway.new_cluster(options)
    cluster.scale(workers)
    return cluster


def main() -> None:
    ap = common.arguments(__doc__ or "")
    ap.add_argument("--gateway", help="gateway address (default: dask config gateway.address)")
    ap.add_argument("--image", help="worker image with s2cube (cluster option 'image')")
    args = ap.parse_args()
    from dask_gateway import Gateway

    gateway = Gateway(args.gateway)
    cluster = start_cluster(gateway, workers=args.workers, image=args.image)
    try:
        with cluster.get_client() as client:
            client.wait_for_workers(1, timeout=600)
            common.run(client, args)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
